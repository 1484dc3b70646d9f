#!/usr/bin/env python3
"""Strip a KubeVirt CRD openAPIV3Schema for shipping with tdxvirt (data/kubevirt/SOURCE.md).

Removes every `description` keyword (at schema positions only: a property *named* description,
or a `description` inside `default`/`example`/`enum` values, is kept) and minifies. Everything
else stays, so pruning (type, properties, items, additionalProperties, x-kubernetes-*) and any
later validation see the upstream schema unchanged.

Usage: strip-kubevirt-schema.py IN.json OUT.json
"""
import json
import sys

# Keywords whose value is one schema, a list of schemas, or a map of name -> schema.
ONE = ("items", "additionalProperties", "not", "additionalItems")
LIST = ("allOf", "anyOf", "oneOf")
MAP = ("properties", "patternProperties", "definitions", "dependencies")


def strip(node):
    if not isinstance(node, dict):
        return node  # `additionalProperties: true`, or a tuple-form element that is not a schema
    out = {}
    for key, value in node.items():
        if key == "description":
            continue
        if key in ONE:
            out[key] = [strip(v) for v in value] if isinstance(value, list) else strip(value)
        elif key in LIST:
            out[key] = [strip(v) for v in value]
        elif key in MAP:
            out[key] = {name: strip(v) for name, v in value.items()}
        else:
            out[key] = value  # data (default, example, enum, ...) or a scalar keyword
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    text = json.dumps(strip(schema), separators=(",", ":"), ensure_ascii=True)
    with open(sys.argv[2], "w", encoding="ascii") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
