// `tdxvirt quickstart`: the whole mission on one machine, with the simulator standing in for TDX
// hardware. Every component runs in this process on loopback and real sockets (QGS on a UNIX
// socket, the attestation service over HTTPS, the device plugin and a kubelet stand-in over gRPC),
// so what runs is the same code a cluster runs, wired together without Kubernetes.
//
//   1 platform   simulated PKI + collateral, TDVF firmware, a TDX node with N keys, QGS, the
//                attestation service with a policy derived from the VM
//   2 admission  the VM manifest through the webhook logic (validate + mutate): the patch
//   3 placement  the node agent's device plugin and a kubelet: one key for this TD; the (N+1)th
//                TD finds none
//   4 domain     the TD's libvirt domain XML, checked against libvirt's schema
//   5 attest     the TD booted from that XML: key pair, quote through the QGS, token; the relying
//                party verifies the token and the values the owner expects
//   6 refuse     a debug TD and a TD with the wrong MRCONFIGID are refused, and why
//   7 measured-boot  the kernel and command line pinned; another command line refused
//   8 key-broker the key broker (serve kbs) releases the TD's disk key, wrapped to a key made in
//                the TD, under a policy pinning MRTD and MRCONFIGID; another MRCONFIGID gets 403
#pragma once

#include <iosfwd>
#include <string>

namespace tdxvirt::quickstart {

struct Options {
  std::string dir;           // artefacts; "" = a new /tmp/tdxvirt-quickstart.XXXXXX
  std::string manifest;      // the TDX VirtualMachine (YAML/JSON)
  std::string schema_dir;    // libvirt RelaxNG schemas; "" = skip the schema check
  int keys = 2;              // TDX keys on the simulated node
  // The KubeVirt release the cluster runs: what tdxvirt adds and what it leaves to KubeVirt
  // differ (docs/kubevirt.md, "Division of labour"); the report shows which.
  std::string kubevirt_version = "1.8";
  bool json = false;         // one JSON report on stdout instead of the readable one
  bool verbose = false;      // component logs to stderr (default: to files in dir)
};

// Runs the steps in order and stops at the first failure. Returns 0 when everything held (a
// verified token, the refusals refused), 1 when a step failed, 2 for bad options. Progress goes
// to `progress` (stderr), the report to `out`. Every server it started is stopped before it
// returns, also after SIGINT/SIGTERM (which end the run after the current step).
int Run(const Options& options, std::ostream& out, std::ostream& progress);

}  // namespace tdxvirt::quickstart
