// Appraisal policies: what a relying party accepts of a TD, as files (JSON or YAML) in a directory
// (a ConfigMap mount), named in attest requests by `policy_ids`. Intel's service writes policies in
// Rego; these are the declarative subset TDX owners need, checked field by field so a mismatch says
// exactly which value differed.
//
//   id: 3fa85f64-5717-4562-b3fc-2c963f66afa6  # a UUID, as Trust Authority's policy ids (every
//                                 # Intel client refuses other ids: tdx-cli uuid.Parse, pycli
//                                 # uuid.UUID, C is_valid_uuid; KBS decodes the claim as uuid.UUID)
//   name: prod-web                # optional human name, metadata only (never matched)
//   version: v1                   # echoed in policy_ids_matched/unmatched
//   tcb_status: [UpToDate]        # allowed attester_tcb_status values (default: UpToDate only)
//   mrtd: <96 hex> | [<hex>, ...] # allowed values; the same for rtmr0..rtmr3, mrconfigid,
//                                 # mrowner, mrownerconfig; xfam and td_attributes take 16 hex
//   allow_debug: false            # a debuggable TD (ATTRIBUTES bit 0) never matches unless true
//   min_tee_tcb_svn: <32 hex>     # every TEE_TCB_SVN byte at least this
//   min_seam_svn: 262             # tdx_seamsvn (TDX module major << 8 | minor) at least this
//
// Measured boot (the request's event_log, replayed against the quote; measured_boot.h). Any of
// these keys makes the event log required: without one the policy does not match.
//   kernel_digest: <96 hex> | [..]  # the kernel event's SHA-384 digest (PE Authenticode)
//   initrd_digest: <96 hex> | [..]  # the initrd event's digest (SHA-384 of the file)
//   cmdline: "console=hvc0" | [..]  # the command line text; only a bound (re-hashed) text matches
//   cmdline_digest: <96 hex> | [..] # the command line event's digest (`tdxvirt measure --cmdline`)
//   secure_boot: true               # the measured SecureBoot variable
//   rtmr_verdicts: {rtmr3: match}   # per register: match | match_or_unexplained | any; default
//                                   # match for rtmr0..2, match_or_unexplained for rtmr3
// A pinned value counts only when the register its event extends matches the quote: a log whose
// register the quote does not confirm proves nothing about its events.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "evidence/quote.h"
#include "service/measured_boot.h"

namespace tdxvirt::service {

// What a policy requires of one RTMR's event log verdict.
enum class RtmrRequirement { kMatch, kMatchOrUnexplained, kAny };
std::string_view RtmrRequirementName(RtmrRequirement r);  // "match", "match_or_unexplained", "any"

struct Policy {
  std::string id;    // a UUID, lower case
  std::string name;  // human name, metadata
  std::string version = "v1";
  std::string description;
  std::vector<std::string> tcb_status = {"UpToDate"};
  std::vector<evidence::Sha384Digest> mrtd, mrconfigid, mrowner, mrownerconfig;
  std::vector<evidence::Sha384Digest> rtmr[4];
  std::vector<ByteArray<8>> xfam, td_attributes;
  bool allow_debug = false;
  std::optional<evidence::TeeTcbSvn> min_tee_tcb_svn;
  std::optional<uint32_t> min_seam_svn;
  // Measured boot pins (empty / nullopt: not pinned).
  std::vector<evidence::Sha384Digest> kernel_digest, initrd_digest, cmdline_digest;
  std::vector<std::string> cmdline;
  std::optional<bool> secure_boot;
  std::array<std::optional<RtmrRequirement>, 4> rtmr_verdicts;  // nullopt: the default
  std::string hash;  // SHA-384 (hex) of the policy's source text, as Intel reports "hash"
};

// JSON or YAML text (JSON when it starts with '{' or '['), at most 1 MiB, within the bounds of every
// outside document (common/document.h: nesting, nodes, text that YAML aliases expand to). Unknown
// and duplicate keys are errors, so a misspelt "mrdt" cannot silently allow everything. `source`
// names the file in errors.
Result<Policy> ParsePolicy(std::string_view text, std::string_view source = "policy");
nlohmann::ordered_json PolicyToJson(const Policy& p);

// A policy id as Trust Authority's: exactly 8-4-4-4-12 hex digits (the form all three Intel clients
// send; Go's uuid.Parse would also take braces and "urn:uuid:", C's is_valid_uuid would not, so
// neither is accepted). Either case is accepted and the id is returned in lower case, the case
// Intel's clients print and KBS compares, so "3FA8..." and "3fa8..." name the same policy. The
// error says what a UUID looks like.
Result<std::string> ParsePolicyId(std::string_view id);

// tdx_seamsvn as this service defines it: TEE_TCB_SVN[1] << 8 | TEE_TCB_SVN[0] (TDX module major
// and minor SVN).
uint32_t SeamSvn(const evidence::TeeTcbSvn& svn);

// True when the policy uses any measured-boot key (the event log is required).
bool PolicyNeedsEventLog(const Policy& p);
// The requirement in force for RTMR `i`: the policy's, else match (0..2) / match_or_unexplained (3).
RtmrRequirement EffectiveRtmrRequirement(const Policy& p, int i);

// Empty when `body` (with `tcb_status`) satisfies the policy; otherwise one reason per failed rule,
// e.g. "mrtd: 1a2b... is not an allowed value". `measured_boot` is the request's appraised event
// log, nullptr when none was sent (then every measured-boot key fails with "event_log: ...").
std::vector<std::string> EvaluatePolicy(const Policy& p, const evidence::TdQuoteBody& body,
                                        std::string_view tcb_status,
                                        const MeasuredBoot* measured_boot = nullptr);

using PolicySet = std::map<std::string, Policy>;

// Reads every *.json, *.yaml, *.yml directly in `dir` (hidden names, such as a ConfigMap's ..data,
// skipped; at most 1000 files of 1 MiB). Any bad file or duplicate id fails the whole load.
Result<PolicySet> LoadPolicyDirectory(const std::string& dir);

// The current policies of a directory, reloaded when its content changes.
class PolicyStore {
 public:
  explicit PolicyStore(std::string dir) : dir_(std::move(dir)) {}
  // Loads if the directory's content changed since the last successful load. On error the
  // previous set stays in force and the error is returned. `changed` tells whether a new set was
  // installed. A file is parsed again only when its content changed: a refused file costs its
  // parse once, not on every reload.
  Status Reload(bool* changed = nullptr);
  std::shared_ptr<const PolicySet> Get() const;
  const std::string& dir() const { return dir_; }
  // Files parsed so far (those with unchanged content are not parsed again).
  size_t files_parsed() const { return files_parsed_; }

 private:
  struct ParsedFile {
    std::string digest;  // SHA-256 of the text parsed
    Result<Policy> policy;
  };
  std::string dir_;
  mutable std::mutex mu_;
  std::shared_ptr<const PolicySet> set_ = std::make_shared<PolicySet>();
  std::string fingerprint_;
  std::mutex reload_mu_;  // one Reload at a time; guards parsed_
  std::map<std::string, ParsedFile> parsed_;  // by file name
  std::atomic<size_t> files_parsed_{0};
};

}  // namespace tdxvirt::service
