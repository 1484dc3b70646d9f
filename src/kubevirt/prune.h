// What a live API server does to a VirtualMachine / VirtualMachineInstance before any webhook
// sees it: structural pruning with the CRD's schema (KEP-2332). Unknown keys are removed unless
// the schema says `x-kubernetes-preserve-unknown-fields: true`, so on KubeVirt 1.6 a
// `launchSecurity.tdx` disappears and on 1.7-1.9 everything under it does. Offline review prunes
// first so it gives the answer a cluster would (shared/reference/kubevirt-versions.md, row 5).
//
// The schemas are the releases' own (data/kubevirt/SOURCE.md), compiled into the library.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "kube/kubevirt_version.h"
#include "kubevirt/document.h"

namespace tdxvirt::kubevirt {

// `object` pruned with the VirtualMachine or VirtualMachineInstance schema (by `kind`) of release
// `v`. Other kinds, and versions that are not exact() (a newer release has its own schema, which
// we must not guess), come back unchanged. Root apiVersion, kind and metadata are kept as they are.
// `pruned`, when given, receives each removed key as a dotted path with [i] for array indexes
// ("spec.domain.launchSecurity.tdx.QGS"), appended sorted as the API server sorts them. Errors
// only for nesting deeper than any ParseDocument result (kMaxPruneDepth).
Result<Json> PruneForKubevirt(const Json& object, const kube::KubevirtVersion& v,
                              std::vector<std::string>* pruned = nullptr);

// The shipped openAPIV3Schema of `kind` at release `v`, parsed once; nullptr for other kinds and
// for versions that are not exact().
const Json* KubevirtCrdSchema(const kube::KubevirtVersion& v, std::string_view kind);

// The engine: structural pruning of a resource with any openAPIV3Schema, its root treated as an
// embedded resource (as the API server treats every custom resource). Used with small schemas in
// tests. `additionalProperties: false`, which the API server refuses in a CRD, counts as absent.
Result<Json> PruneWithSchema(const Json& object, const Json& schema,
                             std::vector<std::string>* pruned = nullptr);

// Nesting pruning follows: twice ParseDocument's bound, so only a hand-built value reaches it.
inline constexpr int kMaxPruneDepth = 2 * kMaxDocumentDepth;

}  // namespace tdxvirt::kubevirt
