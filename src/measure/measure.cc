#include "measure/measure.h"

#include <string_view>

#include "common/hex.h"
#include "common/openssl.h"
#include "eventlog/abi.h"
#include "eventlog/builder.h"
#include "measure/authenticode.h"
#include "measure/linux_boot.h"
#include "simulator/tdvf.h"

namespace tdxvirt::measure {

namespace {

constexpr uint32_t kMrRtmr1 = 2;  // MR index in the log (RTMR1)
constexpr uint32_t kMrRtmr2 = 3;  // RTMR2
constexpr std::string_view kCallingBootOption = "Calling EFI Application from Boot Option";
constexpr std::string_view kExitBootServices = "Exit Boot Services Invocation";
constexpr std::string_view kExitBootServicesOk = "Exit Boot Services Returned with Success";
// The description TCG_PCClientTaggedEvent data the stub writes (only digests reach the registers).
constexpr std::string_view kLoadOptionsTagText("LOADED_IMAGE::LoadOptions\0", 26);
constexpr std::string_view kInitrdTagText("Linux initrd\0", 13);

std::string StripPrefix(const std::string& s, std::string_view prefix) {
  return s.rfind(prefix, 0) == 0 ? s.substr(prefix.size()) : s;
}

}  // namespace

Sha384Digest DirectBootRtmr1(const Sha384Digest& kernel, bool separator_in_rtmr1) {
  eventlog::EventLogBuilder log;
  log.Add(kMrRtmr1, eventlog::kEvEfiBootServicesApplication, kernel, {});
  log.AddHashed(kMrRtmr1, eventlog::kEvEfiAction, AsBytes(kCallingBootOption));
  if (separator_in_rtmr1) {
    const uint8_t zero[4] = {};
    log.AddHashed(kMrRtmr1, eventlog::kEvSeparator, zero);
  }
  log.AddHashed(kMrRtmr1, eventlog::kEvEfiAction, AsBytes(kExitBootServices));
  log.AddHashed(kMrRtmr1, eventlog::kEvEfiAction, AsBytes(kExitBootServicesOk));
  return log.rtmrs()[1];
}

Sha384Digest DirectBootRtmr2(const Sha384Digest& load_options,
                             const std::optional<Sha384Digest>& initrd) {
  eventlog::EventLogBuilder log;
  log.AddTag(kMrRtmr2, eventlog::kTagLoadOptions, AsBytes(kLoadOptionsTagText), load_options);
  if (initrd) log.AddTag(kMrRtmr2, eventlog::kTagInitrd, AsBytes(kInitrdTagText), *initrd);
  return log.rtmrs()[2];
}

Result<Sha384Digest> LoadOptionsDigest(const std::string& cmdline, bool has_initrd) {
  auto options = eventlog::DirectBootLoadOptions(cmdline, has_initrd);
  if (!options.ok()) return Error{"--cmdline: " + options.error()};
  return ossl::Sha384(*options);
}

Result<Report> Measure(const Inputs& in) {
  Report r;
  if (!in.firmware && !in.kernel && !in.cmdline && !in.initrd)
    return Error{"nothing to measure: give --firmware and/or --kernel, --cmdline, --initrd"};

  if (in.firmware) {
    auto sections = simulator::ParseTdvfMetadata(*in.firmware);
    if (!sections.ok())
      return Error{"--firmware: " + StripPrefix(sections.error(), "firmware: ") +
                   " (pass the whole TDVF/OVMF image QEMU loads with -bios)"};
    r.mrtd_single_pass = simulator::ComputeMrtd(*sections, *in.firmware);
    r.mrtd_two_pass = simulator::ComputeMrtdTwoPass(*sections, *in.firmware);
    r.limits.push_back(
        "mrtd: single_pass is the page order of QEMU 9 and later (and TDX trees before 8.2); "
        "two_pass is that of QEMU 8.2 TDX trees (qemu-tdx 8.2.50, Ubuntu 24.04's 8.2.2); pin the "
        "one your host's QEMU uses");
  } else {
    r.limits.push_back("mrtd: not computed (no --firmware)");
  }

  const uint64_t memory = in.memory_bytes.value_or(2ull << 30);
  const bool direct_boot = in.kernel || in.cmdline || in.initrd;
  if (in.kernel) {
    QemuDirectBoot boot;
    boot.cmdline = in.cmdline.value_or("");
    if (in.initrd) boot.initrd_size = in.initrd->size;
    boot.memory_bytes = memory;
    auto patched = PatchSetupHeaderAsQemu(*in.kernel, boot);
    if (!patched.ok()) {
      const std::string& e = patched.error();
      return Error{e.rfind("--", 0) == 0 ? e : "--kernel: " + StripPrefix(e, "kernel: ")};
    }
    auto digest = AuthenticodeSha384(*patched);
    if (!digest.ok())
      return Error{"--kernel: " + digest.error() +
                   " (OVMF direct boot needs a kernel with the EFI stub, CONFIG_EFI_STUB)"};
    auto raw = AuthenticodeSha384(*in.kernel);  // cannot fail where the patched image parsed
    PredictedEvent e{1, "EV_EFI_BOOT_SERVICES_APPLICATION",
                     "kernel (Authenticode after QEMU's setup-header patch)", std::nullopt,
                     *digest, raw.ok() ? std::optional<Sha384Digest>(*raw) : std::nullopt};
    r.events.push_back(e);
    r.rtmr1 = DirectBootRtmr1(*digest);
    r.rtmr1_separator = DirectBootRtmr1(*digest, true);
    if (raw.ok()) {
      r.rtmr1_unpatched = DirectBootRtmr1(*raw);
      r.rtmr1_unpatched_separator = DirectBootRtmr1(*raw, true);
    }
    r.limits.push_back(
        "rtmr1: kernel, \"Calling EFI Application from Boot Option\", \"Exit Boot Services "
        "Invocation\", \"Exit Boot Services Returned with Success\", with the separator in RTMR0 as "
        "in the real OVMF logs; rtmr1_alternatives give the kernel unpatched (QEMU >= 10 with OVMF "
        ">= edk2-stable202505) and the separator in RTMR1 (tdx-measure's layout)");
    if (!in.memory_bytes && in.initrd)
      r.limits.push_back("memory: --memory not given, 2 GiB assumed (it sets the initrd address "
                         "QEMU writes into the kernel's setup header)");
    else if (in.memory_bytes && !in.initrd)
      r.limits.push_back("memory: without --initrd, --memory changes nothing computed here (it "
                         "moves only the initrd address in the setup header, and RTMR0's TD HOB)");
  } else {
    r.limits.push_back("rtmr1: not computed (no --kernel)");
  }

  if (direct_boot) {
    const std::string cmdline = in.cmdline.value_or("");
    auto options = eventlog::DirectBootLoadOptions(cmdline, in.initrd.has_value());
    if (!options.ok()) return Error{"--cmdline: " + options.error()};
    PredictedEvent e{2, "EV_EVENT_TAG", "LOADED_IMAGE::LoadOptions",
                     cmdline + (in.initrd ? " initrd=initrd" : ""), ossl::Sha384(*options),
                     std::nullopt};
    r.events.push_back(e);
    std::optional<Sha384Digest> initrd;
    if (in.initrd) {
      initrd = in.initrd->digest;
      r.events.push_back({2, "EV_EVENT_TAG", "Linux initrd", std::nullopt, *initrd, std::nullopt});
    }
    r.rtmr2 = DirectBootRtmr2(e.digest, initrd);
    r.limits.push_back("rtmr2: needs a Linux EFI stub >= 6.9 (older kernels measure neither the "
                       "command line nor the initrd into the TD log, and RTMR2 stays zero)");
    if (cmdline.empty() && !in.initrd)
      r.limits.push_back("rtmr2: empty command line without initrd: predicted as a LoadOptions "
                         "event over the UTF-16 NUL alone; not checked against a real TD");
  }

  r.limits.push_back(
      "rtmr0: not computed: it covers the TD HOB (memory size), the CFV, the Secure Boot "
      "variables, QEMU's ACPI tables (CPU count, devices, machine options) and the boot "
      "variables; replay a real log of the same VM shape instead (docs/measure.md)");
  if (in.cpus)
    r.limits.push_back("cpus: --cpus changes only RTMR0 (ACPI MADT), which is not computed; "
                       "nothing in this output depends on it");
  return r;
}

nlohmann::ordered_json ReportJson(const Report& r) {
  using J = nlohmann::ordered_json;
  auto hex = [](const std::optional<Sha384Digest>& d) -> J {
    return d ? J(ToHex(*d)) : J(nullptr);
  };
  J out;
  out["mrtd"] = r.mrtd_single_pass
                    ? J{{"single_pass", ToHex(*r.mrtd_single_pass)},
                        {"two_pass", ToHex(*r.mrtd_two_pass)}}
                    : J(nullptr);
  J events = J::array();
  for (const auto& e : r.events) {
    J j{{"register", "rtmr" + std::to_string(e.rtmr)}, {"type", e.type}, {"what", e.what}};
    if (e.text) j["text"] = *e.text;
    j["digest"] = ToHex(e.digest);
    if (e.digest_unpatched) j["digest_unpatched"] = ToHex(*e.digest_unpatched);
    events.push_back(j);
  }
  out["events"] = events;
  out["rtmr1"] = hex(r.rtmr1);
  out["rtmr2"] = hex(r.rtmr2);
  out["rtmr1_alternatives"] =
      r.rtmr1 ? J{{"unpatched_kernel", hex(r.rtmr1_unpatched)},
                  {"separator_in_rtmr1", hex(r.rtmr1_separator)},
                  {"unpatched_kernel_separator_in_rtmr1", hex(r.rtmr1_unpatched_separator)}}
              : J(nullptr);
  out["limits"] = r.limits;
  return out;
}

}  // namespace tdxvirt::measure
