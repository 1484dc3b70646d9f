// Reference values of a TD ahead of time, for OVMF/TDVF direct boot (QEMU -kernel): what a policy
// pins (mrtd, kernel/initrd/cmdline digests) and the RTMR1/RTMR2 a quote will carry. Register
// predictions replay events through eventlog::EventLogBuilder, the same writer the simulator uses,
// so a simulated TD and `tdxvirt measure` cannot disagree about the event sequence.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/result.h"
#include "evidence/td_types.h"

namespace tdxvirt::measure {

using evidence::Sha384Digest;

// RTMR1 of an OVMF direct boot from the kernel's Authenticode digest: the kernel application,
// "Calling EFI Application from Boot Option", "Exit Boot Services Invocation", "Exit Boot Services
// Returned with Success". `separator_in_rtmr1` adds the EV_SEPARATOR after "Calling ..." as
// tdx-measure and dstack-mr expect; the real OVMF logs in testdata record it under MR index 1
// (RTMR0) instead, so the default leaves it out (docs/measure.md).
Sha384Digest DirectBootRtmr1(const Sha384Digest& kernel_authenticode,
                             bool separator_in_rtmr1 = false);

// RTMR2 from the Linux EFI stub's tags: LoadOptions (digest = SHA-384 of the UTF-16LE load options)
// then, with an initrd, "Linux initrd" (digest = SHA-384 of the file).
Sha384Digest DirectBootRtmr2(const Sha384Digest& load_options_digest,
                             const std::optional<Sha384Digest>& initrd_digest);

// SHA-384 of eventlog::DirectBootLoadOptions(cmdline, has_initrd): the cmdline_digest a policy pins.
// Error (prefixed "--cmdline: ") when the text is not UTF-8.
Result<Sha384Digest> LoadOptionsDigest(const std::string& cmdline, bool has_initrd);

// The inputs of `tdxvirt measure`, already read (the CLI does the I/O).
struct Inputs {
  std::optional<Bytes> firmware;
  std::optional<Bytes> kernel;
  struct Initrd {
    Sha384Digest digest{};
    uint64_t size = 0;
  };
  std::optional<Initrd> initrd;
  std::optional<std::string> cmdline;
  std::optional<uint64_t> memory_bytes;  // default 2 GiB (limits say so)
  std::optional<uint32_t> cpus;
};

struct PredictedEvent {
  int rtmr = 0;
  std::string type;
  std::string what;
  std::optional<std::string> text;
  Sha384Digest digest{};
  std::optional<Sha384Digest> digest_unpatched;  // kernel: the raw file's Authenticode hash
};

struct Report {
  std::optional<Sha384Digest> mrtd_single_pass, mrtd_two_pass;
  std::vector<PredictedEvent> events;
  std::optional<Sha384Digest> rtmr1, rtmr2;
  // RTMR1 under the other firmware/QEMU behaviours: kernel unpatched (QEMU >= 10 with newer OVMF),
  // separator in RTMR1 (tdx-measure's layout), and both.
  std::optional<Sha384Digest> rtmr1_unpatched, rtmr1_separator, rtmr1_unpatched_separator;
  std::vector<std::string> limits;
};

// Errors name the flag (--firmware, --kernel, --cmdline, --initrd, --memory).
Result<Report> Measure(const Inputs& in);

// {"mrtd":{"single_pass","two_pass"}|null, "events":[...], "rtmr1", "rtmr2",
//  "rtmr1_alternatives":{...}, "limits":[...]} (docs/measure.md).
nlohmann::ordered_json ReportJson(const Report& r);

}  // namespace tdxvirt::measure
