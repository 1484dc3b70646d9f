#!/usr/bin/env python3
"""Independent Authenticode SHA-384 of a PE/COFF file, written from the Microsoft PE/COFF and
Authenticode specifications with the Python standard library only, for tests/measure to compare
against src/measure/authenticode.cc. Prints the lowercase hex digest."""
import hashlib
import struct
import sys


def authenticode_sha384(image: bytes) -> str:
    (pe_offset,) = struct.unpack_from("<I", image, 0x3C)
    assert image[pe_offset:pe_offset + 4] == b"PE\0\0"
    number_of_sections, = struct.unpack_from("<H", image, pe_offset + 6)
    optional_size, = struct.unpack_from("<H", image, pe_offset + 20)
    optional = pe_offset + 24
    magic, = struct.unpack_from("<H", image, optional)
    size_of_headers, = struct.unpack_from("<I", image, optional + 60)
    checksum = optional + 64
    if magic == 0x20B:
        rva_count_field, directories = optional + 108, optional + 112
    else:
        rva_count_field, directories = optional + 92, optional + 96
    rva_count, = struct.unpack_from("<I", image, rva_count_field)

    # Build the hashed byte string by listing what is excluded, then keeping the rest.
    excluded = [(checksum, checksum + 4)]
    certificate_size = 0
    if rva_count > 4:
        entry = directories + 4 * 8
        excluded.append((entry, entry + 8))
        _, certificate_size = struct.unpack_from("<II", image, entry)
    header = bytearray()
    for i in range(size_of_headers):
        if not any(lo <= i < hi for lo, hi in excluded):
            header.append(image[i])

    table = optional + optional_size
    sections = []
    for n in range(number_of_sections):
        raw_size, raw_pointer = struct.unpack_from("<II", image, table + 40 * n + 16)
        if raw_size:
            sections.append((raw_pointer, raw_size))
    sections.sort()

    h = hashlib.sha384()
    h.update(bytes(header))
    sum_of_bytes = size_of_headers
    for pointer, size in sections:
        h.update(image[pointer:pointer + size])
        sum_of_bytes += size
    if len(image) > sum_of_bytes:
        h.update(image[sum_of_bytes:len(image) - certificate_size])
    return h.hexdigest()


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        print(authenticode_sha384(f.read()))
