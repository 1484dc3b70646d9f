// DCAP collateral: what a verifier needs besides the quote (CRLs, TCB Info, QE Identity and the
// chains that sign them), in the forms it arrives in:
//  - the single-file JSON bundle (dcap-qvl's QuoteCollateralV3 layout; see shared MANIFEST.md);
//  - raw Intel PCS / PCCS responses: `{"tcbInfo":{...},"signature":"..."}` bodies, DER CRLs (or
//    hex text, as PCCS serves the root CA CRL) and URL-encoded PEM issuer-chain headers.
//
// The signed JSON documents are kept as the exact bytes that were signed: never re-serialized.
#pragma once

#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"

namespace tdxvirt::verify {

struct Collateral {
  std::string pck_crl_issuer_chain;  // PEM: PCK Platform/Processor CA, root
  Bytes root_ca_crl;                 // DER
  Bytes pck_crl;                     // DER
  std::string tcb_info_issuer_chain;  // PEM: TCB Signing, root
  std::string tcb_info;               // exact signed text of the "tcbInfo" object
  ByteArray<64> tcb_info_signature{};  // r||s
  std::string qe_identity_issuer_chain;
  std::string qe_identity;  // exact signed text of the "enclaveIdentity" object
  ByteArray<64> qe_identity_signature{};
  // Optional PCK leaf + CA (PEM), for quotes that carry no PCK chain (encrypted-PPID certification
  // data, whose PCK certificate comes from a PCCS). A chain inside the quote always wins.
  std::string pck_certificate_chain;
};

// The JSON bundle. Fields are named in errors ("collateral: tcb_info_signature: ...").
Result<Collateral> ParseCollateralBundle(std::string_view json_text);
std::string SerializeCollateralBundle(const Collateral& c);

// A directory of raw PCS/PCCS responses. Accepted names, per item (first found wins; ours, then
// PCS sample names, then Intel QVL's sample-app layout):
//   tcb_info.json | tcb_info_response.json | sample_tcbInfo_response | tcbInfo.json
//       PCS body {"tcbInfo":...,"signature":...}
//   qe_identity.json | qe_identity_response.json | sample_qeIdentity_response | qeIdentity.json
//       PCS body {"enclaveIdentity":...,"signature":...}
//   pck_crl.der | pckcrl | intermediateCaCrl.der     DER (or hex text); optional
//   root_ca_crl.der | rootcrl.der | rootCaCrl.der    DER (or hex text); optional
//   tcb_info_issuer_chain.pem | tcbSignChain.pem     PEM, or the URL-encoded header value
//   qe_identity_issuer_chain.pem                     optional: defaults to the TCB Info chain
//   pck_crl_issuer_chain.pem | pckSignChain.pem      optional
//   pckCert.pem (+ pckSignChain.pem)                optional PCK certificate for quotes without one
// Missing CRLs are not a load error: verification reports them unless CRL checks are skipped.
Result<Collateral> LoadCollateralDirectory(const std::string& dir);
// A file (bundle) or a directory (raw responses).
Result<Collateral> LoadCollateral(const std::string& path);

// Writes `c` as raw responses into `dir` (the first name of each item above).
Status WriteCollateralDirectory(const Collateral& c, const std::string& dir);

// A PCS body holding `key` ("tcbInfo" or "enclaveIdentity") and "signature" (hex r||s).
struct SignedJson {
  std::string body;  // exact text of the member's value
  ByteArray<64> signature{};
};
Result<SignedJson> ParsePcsSignedJson(std::string_view response_body, std::string_view key);

// The exact source text of the value of top-level member `key` of a JSON object text. The whole text
// must be valid JSON; duplicate top-level keys are rejected (which copy was signed?).
Result<std::string_view> RawJsonMember(std::string_view object_text, std::string_view key);

// A CRL given as DER or as hex text of DER (PCCS serves /rootcacrl as hex).
Result<Bytes> CrlBytes(ByteSpan data);
// Percent-decoding of an issuer-chain header value ('+' is not special in these headers).
Result<std::string> UrlDecode(std::string_view text);
// Percent-encoding as PCS applies it to issuer-chain headers: all but unreserved characters.
std::string UrlEncode(std::string_view text);
// A PEM chain given raw or URL-encoded (as in a saved header).
Result<std::string> PemOrUrlEncoded(std::string_view text);

}  // namespace tdxvirt::verify
