// What each event of a TD event log says, and the boot it describes: the kernel, initrd and
// command line, Secure Boot state, the loaders and boot attempts. Each decoded event is *bound*
// when its digest was recomputed from its own data (GRUB strings, EFI variables, separators,
// actions, the stub's LoadOptions), *opaque* when only the digest can be compared (Authenticode
// of an image, the initrd, ACPI blobs), and *broken* when the recomputed digest differs: a log
// whose data does not match its digests is refused, whatever it replays to.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eventlog/abi.h"

namespace tdxvirt::eventlog {

enum class Binding { kBound, kOpaque, kBroken };
std::string_view BindingName(Binding b);  // "bound", "opaque", "broken"

struct DecodedEvent {
  size_t number = 0;
  Binding binding = Binding::kOpaque;
  // Type-specific fields, e.g. {"variable":"SecureBoot","guid":"8be4df61-...","value":"00"},
  // {"device_path":"...\\EFI\\BOOT\\BOOTX64.EFI"}, {"text":"grub_cmd: linux ..."},
  // {"tag":"LOADED_IMAGE::LoadOptions","text":"console=hvc0 ..."}.
  nlohmann::ordered_json fields = nlohmann::ordered_json::object();
  std::string problem;  // for kBroken: "digest is not SHA-384 of the event data"
};
// One per events[i] (same order and numbering). Never fails: what cannot be decoded is opaque.
std::vector<DecodedEvent> DecodeEvents(const EventLog& log);

// {"number","offset","mr_index","register":"rtmr0"|null,"type":"0x80000003","type_name",
//  "digests":{"sha384":hex,...},"binding","fields",("problem")}
nlohmann::ordered_json EventToJson(const Event& e, const DecodedEvent& d);

// "event 18 (EV_EVENT_TAG LOADED_IMAGE::LoadOptions, RTMR2, offset 1834)": how refusals name events.
std::string DescribeEvent(const Event& e, const DecodedEvent& d);

struct MeasuredItem {
  evidence::Sha384Digest digest{};  // the event's SHA-384 digest
  Binding binding = Binding::kOpaque;
  size_t event = 0;                 // record number
  std::string source;               // "efi-stub", "grub", "efi-app", "uki", "td-shim"
  std::optional<std::string> text;  // the command line, when the event carries it (bound)
};

struct BootMeasurements {
  std::optional<bool> secure_boot;        // the SecureBoot variable; nullopt when not measured
  std::optional<MeasuredItem> kernel;     // of the last successful boot attempt
  std::optional<MeasuredItem> initrd;
  std::optional<MeasuredItem> cmdline;
  std::vector<std::string> boot_path;     // device paths / names of the loaded images, in order
  size_t boot_attempts = 0;               // "Calling EFI Application from Boot Option" events
  std::vector<std::string> warnings;      // e.g. "two separators in RTMR0 (events 7, 15)"
};
BootMeasurements Summarize(const EventLog& log, const std::vector<DecodedEvent>& decoded);

}  // namespace tdxvirt::eventlog
