// How a released key travels to the TD, exactly as Intel's KBS wraps it (service/key_transfer.go
// getWrappedKey; reference/key-broker.md §1.5): a fresh 32-byte secret wrapping key (SWK) seals the
// key with AES-256-GCM, and the SWK is RSA-OAEP-encrypted (SHA-256, MGF1-SHA-256, empty label) to
// the public key the attestation token binds. The TD opens both with its private key; Intel's
// `tdx-cli decrypt` performs the RSA step on the same `wrapped_swk`.
//
// Pure functions over bytes (OpenSSL EVP underneath); no I/O.
#pragma once

#include "common/bytes.h"
#include "common/openssl.h"
#include "common/result.h"

namespace tdxvirt::kbs {

// The forms a TD's public key takes in the token claim `attester_held_data` (the request's
// runtime/user data). A K-layout exponent is odd and so never starts with 0x30, which tells the
// forms apart without guessing.
enum class HeldKeyForm {
  kExponentModulus,       // u32le exponent || big-endian modulus: Intel's KBS and C client layout
  kExponentBigEndian,     // u32be exponent || modulus: the ITA pilot token (00 01 00 01), whose
                          // little-endian reading is even and so no RSA exponent
  kSubjectPublicKeyInfo,  // DER SPKI: what tdx-cli `token -f pub.pem` sends
};
struct TdPublicKey {
  ossl::PkeyPtr key;
  HeldKeyForm form = HeldKeyForm::kExponentModulus;
};
// Errors name `attester_held_data`, what is wrong and the fix. The modulus must exceed 2048 bits,
// as Intel's KBS requires.
Result<TdPublicKey> ParseHeldPublicKey(ByteSpan held_data);
// The K layout of an RSA public key: what `attest secret` sends as user data (Intel's KBS reads it).
Result<Bytes> HeldDataForKey(EVP_PKEY* rsa_key);

// Intel's response fields, decoded from base64.
struct WrappedSecret {
  // u32le(iv length = 12) || u32le(tag length = 16) || u32le(len(ciphertext||tag)) || iv ||
  // ciphertext || tag
  Bytes wrapped_key;
  Bytes wrapped_swk;  // RSA-OAEP-SHA-256(SWK)
};
Result<WrappedSecret> WrapSecret(ByteSpan secret, EVP_PKEY* td_public_key);
// Parses the 12-byte header (bounded by the buffer; IV 12, tag 16) and opens the GCM box.
Result<Bytes> OpenWrappedKey(ByteSpan wrapped_key, ByteSpan swk);
// RSA-OAEP-SHA-256 of wrapped_swk with the TD's key, then OpenWrappedKey.
Result<Bytes> UnwrapSecret(const WrappedSecret& wrapped, EVP_PKEY* td_private_key);

}  // namespace tdxvirt::kbs
