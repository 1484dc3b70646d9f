// A throw-away token PKI made with OpenSSL for the negative conformance cases that Intel's fixture
// cannot give (its CA keys are not ours): a CRL that lists the leaf, a stale CRL, a missing CDP, a
// Signing CA from another root. Shaped like Intel's (reference §8): Root CA ← Signing CA (pathlen
// 0, CDP .../crl/root-ca-crl.der) ← leaf (CA:FALSE, no EKU, CDP .../crl/ats-ca-crl.der).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/openssl.h"

namespace tdxvirt::ita::testing {

struct CertSpec {
  std::string cn;
  bool ca = false;
  int pathlen = -1;  // CA only; -1: none
  std::string cdp;   // "" : no CRL distribution point; else URI[,URI...] (one DP)
  std::string eku;   // "" : none, else an openssl extendedKeyUsage value ("clientAuth")
  int64_t not_before = 0, not_after = 0;
  long serial = 1;
};

struct Issued {
  ossl::PkeyPtr key;
  ossl::X509Ptr cert;
  Bytes der() const;
};

ossl::PkeyPtr NewRsaKey(int bits = 2048);
// Signs `s` with `issuer` (nullptr: self-signed with `key`), SHA-384 RSA PKCS#1 v1.5.
Issued Issue(const CertSpec& s, ossl::PkeyPtr key, const Issued* issuer);
// A DER CRL v2 by `issuer` with CRL Number 1, lastUpdate `this_update`, nextUpdate `next_update`,
// listing `revoked` serials.
Bytes MakeCrl(const Issued& issuer, int64_t this_update, int64_t next_update,
              const std::vector<const Issued*>& revoked = {});

// A three-level chain whose CDPs point at `crl_base` + "/crl/{root-ca,ats-ca}-crl.der".
struct Chain {
  Issued root, signing_ca, leaf;
  std::string kid;  // lowercase hex SHA-384 of the leaf DER, as tdxvirt and Intel's C fixture
};
struct ChainSpec {
  std::string crl_base;
  int64_t now = 0;
  bool signing_ca_cdp = true, leaf_cdp = true;
  std::string leaf_eku;
  std::string leaf_second_cdp;  // a second URI in the leaf's distribution point
  int64_t leaf_not_after = 0;   // 0: a year after `now`
};
Chain MakeChain(const ChainSpec& s);

// The JWKS the clients fetch: one key per entry, x5c = [leaf, Signing CA, Root] unless `x5c` given.
nlohmann::json JwkFor(const Chain& c, const std::string& alg);
// A compact JWS of `claims` with header {alg, kid, typ}, signed by `key`. alg RS256 or PS384
// (PSS salt = digest length, as ITA signs).
std::string SignToken(const nlohmann::json& claims, const std::string& alg, const std::string& kid,
                      EVP_PKEY* key);

}  // namespace tdxvirt::ita::testing
