// What produces quotes behind the QGS protocol. The server decodes requests and hands their
// contents here; implementations are the TDX/QE simulator (src/simulator) today and could be a
// hardware backend (Intel's quote library over the SGX TD Quoting Enclave) later.
#pragma once

#include <cstdint>
#include <mutex>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"
#include "verify/collateral.h"

namespace tdxvirt::qgs {

// GET_PLATFORM_INFO: the TD QE's and PCE's ISV SVNs, the platform (QE) ID and the CPU SVN.
struct PlatformInfo {
  uint16_t tdqe_isvsvn = 0;
  uint16_t pce_isvsvn = 0;
  Bytes platform_id;  // 16 bytes on Intel platforms
  Bytes cpu_svn;      // 16 bytes
  bool operator==(const PlatformInfo&) const = default;
};

// Errors are returned, never thrown. Their messages go into the server's log (never to the
// client, which only gets a QGS error code), so they must not contain secrets.
//
// Thread safety: QgsServer serializes calls unless ServerOptions::serialize_backend is false;
// an implementation that is safe to call concurrently may turn that off.
class QuoteBackend {
 public:
  virtual ~QuoteBackend();

  // A quote for `td_report` (the 1024-byte TDREPORT the TD got from TDG.MR.REPORT, as received:
  // the backend validates it, e.g. its MAC). `id_list` is the optional attestation key ID list of
  // GET_QUOTE_REQ; empty from every TDX client (QEMU, the guest library).
  virtual Result<Bytes> GetQuote(ByteSpan td_report, ByteSpan id_list) = 0;

  // The verification collateral for a platform: `fmspc` (6 bytes on Intel platforms) and the PCK
  // CA that issued its PCK certificate, "platform" or "processor".
  virtual Result<verify::Collateral> GetCollateral(ByteSpan fmspc, std::string_view pck_ca) = 0;

  virtual Result<PlatformInfo> GetPlatformInfo() = 0;
};

// Wraps a backend so that one call runs at a time (what QgsServer uses by default).
class SerializedBackend : public QuoteBackend {
 public:
  explicit SerializedBackend(QuoteBackend& inner) : inner_(inner) {}
  Result<Bytes> GetQuote(ByteSpan td_report, ByteSpan id_list) override;
  Result<verify::Collateral> GetCollateral(ByteSpan fmspc, std::string_view pck_ca) override;
  Result<PlatformInfo> GetPlatformInfo() override;

 private:
  QuoteBackend& inner_;
  std::mutex mu_;
};

}  // namespace tdxvirt::qgs
