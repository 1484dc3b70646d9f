// A deterministic QuoteBackend for the QGS tests: the "quote" is a fixed 16-byte tag followed by
// the report, so a test can tell which report a reply answers.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "qgs/backend.h"
#include "test_util.h"
#include "verify/collateral.h"

namespace tdxvirt::qgs::testing {

inline const Bytes kFakeQuoteTag = {'T', 'D', 'X', 'V', 'I', 'R', 'T', '-',
                                    'F', 'A', 'K', 'E', '-', 'Q', 0,   1};

inline Bytes FakeQuoteFor(ByteSpan report) {
  Bytes q = kFakeQuoteTag;
  q.insert(q.end(), report.begin(), report.end());
  return q;
}

// A TDREPORT-shaped 1024 bytes: REPORTTYPE 0x81/0/0/0, zero reserved, then a pattern from `seed`.
inline Bytes TestReport(uint8_t seed = 1) {
  Bytes r(1024, 0);
  r[0] = 0x81;
  for (size_t i = 16; i < r.size(); ++i) r[i] = uint8_t((i * 7 + seed * 13) % 251);
  return r;
}

// The PCS 2023 sample collateral of shared/testdata.
inline verify::Collateral SampleCollateral() {
  auto c = verify::LoadCollateralDirectory(
      tdxvirt::testing::TestdataPath("quotes/tdx-v4-spr-e4-pcs-2023"));
  if (!c.ok()) throw std::runtime_error(c.error());
  return *c;
}

inline const Bytes kSampleFmspc = {0x50, 0x80, 0x6f, 0x00, 0x00, 0x00};  // its TCB Info's

class FakeBackend : public QuoteBackend {
 public:
  std::chrono::milliseconds delay{0};  // per GetQuote, to make calls overlap
  std::atomic<bool> fail{false};       // every call fails
  std::atomic<int> calls{0};
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  verify::Collateral collateral;

  Result<Bytes> GetQuote(ByteSpan td_report, ByteSpan) override {
    ++calls;
    int now = ++in_flight;
    int seen = max_in_flight.load();
    while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    --in_flight;
    if (fail) return Error{"fake backend told to fail"};
    if (td_report.size() != 1024) return Error{"fake backend: not 1024 bytes"};
    return FakeQuoteFor(td_report);
  }

  Result<verify::Collateral> GetCollateral(ByteSpan fmspc, std::string_view pck_ca) override {
    ++calls;
    if (fail) return Error{"fake backend told to fail"};
    if (!std::equal(fmspc.begin(), fmspc.end(), kSampleFmspc.begin(), kSampleFmspc.end()))
      return Error{"fake backend: unknown FMSPC"};
    if (pck_ca != "platform" && pck_ca != "processor") return Error{"fake backend: unknown CA"};
    return collateral;
  }

  Result<PlatformInfo> GetPlatformInfo() override {
    ++calls;
    if (fail) return Error{"fake backend told to fail"};
    return PlatformInfo{.tdqe_isvsvn = 4,
                        .pce_isvsvn = 13,
                        .platform_id = Bytes(16, 0xab),
                        .cpu_svn = Bytes(16, 0x03)};
  }
};

}  // namespace tdxvirt::qgs::testing
