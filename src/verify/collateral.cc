#include "verify/collateral.h"

#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <optional>

#include <nlohmann/json.hpp>

#include "common/file.h"
#include "common/hex.h"

namespace tdxvirt::verify {

namespace {

using nlohmann::json;

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  return i;
}

// Index just past the JSON string starting at s[i] == '"'. The text is already known to be valid
// JSON, so this only has to find the end, not validate.
size_t SkipString(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return s.size();
}

// Index just past the JSON value starting at s[i] (valid JSON assumed).
size_t SkipValue(std::string_view s, size_t i) {
  if (s[i] == '"') return SkipString(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      char c = s[i];
      if (c == '"') {
        i = SkipString(s, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return s.size();
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\n' &&
         s[i] != '\r' && s[i] != '\t')
    ++i;
  return i;
}

Result<std::string> GetString(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string())
    return Error{std::string("collateral: ") + field + ": missing or not a string"};
  return it->get<std::string>();
}

Result<Bytes> GetHex(const json& j, const char* field) {
  auto s = GetString(j, field);
  if (!s.ok()) return Error{s.error()};
  auto b = FromHex(*s);
  if (!b.ok()) return Error{std::string("collateral: ") + field + ": " + b.error()};
  return b;
}

Result<ByteArray<64>> GetSignature(const json& j, const char* field) {
  auto s = GetString(j, field);
  if (!s.ok()) return Error{s.error()};
  auto sig = FromHexFixed<64>(*s, std::string("collateral: ") + field);
  if (!sig.ok()) return Error{sig.error() + " (ECDSA r||s)"};
  return sig;
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Reads the first of `names` that exists in `dir`.
Result<Bytes> ReadFirst(const std::string& dir, std::initializer_list<const char*> names) {
  std::string tried;
  for (const char* name : names) {
    std::string path = dir + "/" + name;
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) return ReadFile(path);
    tried += (tried.empty() ? "" : " or ") + std::string(name);
  }
  return Error{"collateral directory " + dir + " has no " + tried};
}

}  // namespace

Result<std::string_view> RawJsonMember(std::string_view text, std::string_view key) {
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return Error{"not valid JSON"};
  if (!parsed.is_object()) return Error{"not a JSON object"};
  size_t i = SkipSpace(text, 0);
  ++i;  // '{'
  std::optional<std::string_view> found;
  for (;;) {
    i = SkipSpace(text, i);
    if (text[i] == '}') break;
    size_t key_end = SkipString(text, i);
    std::string name = json::parse(text.substr(i, key_end - i)).get<std::string>();
    i = SkipSpace(text, key_end) + 1;  // ':'
    i = SkipSpace(text, i);
    size_t value_end = SkipValue(text, i);
    if (name == key) {
      if (found) return Error{"member \"" + std::string(key) + "\" appears more than once"};
      found = text.substr(i, value_end - i);
    }
    i = SkipSpace(text, value_end);
    if (text[i] == ',') ++i;
  }
  if (!found) return Error{"no member \"" + std::string(key) + "\""};
  return *found;
}

Result<SignedJson> ParsePcsSignedJson(std::string_view body, std::string_view key) {
  auto raw = RawJsonMember(body, key);
  if (!raw.ok()) return Error{"PCS response: " + raw.error()};
  if (raw->empty() || raw->front() != '{')
    return Error{"PCS response: \"" + std::string(key) + "\" is not an object"};
  json j = json::parse(body);
  auto sig = j.find("signature");
  if (sig == j.end() || !sig->is_string())
    return Error{"PCS response: no \"signature\" string beside \"" + std::string(key) + "\""};
  auto bytes = FromHexFixed<64>(sig->get<std::string>(), "PCS response: signature");
  if (!bytes.ok()) return Error{bytes.error()};
  return SignedJson{std::string(*raw), *bytes};
}

Result<Collateral> ParseCollateralBundle(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Error{"collateral: not a JSON object (expected the bundle with pck_crl, tcb_info, ...)"};
  Collateral c;
  auto str = [&](const char* f, std::string& out) -> Status {
    auto v = GetString(j, f);
    if (!v.ok()) return Error{v.error()};
    out = std::move(*v);
    return OkStatus();
  };
  auto crl = [&](const char* f, Bytes& out) -> Status {
    auto v = GetHex(j, f);
    if (!v.ok()) return Error{v.error() + " (hex of the DER CRL)"};
    out = std::move(*v);
    return OkStatus();
  };
  auto sig = [&](const char* f, ByteArray<64>& out) -> Status {
    auto v = GetSignature(j, f);
    if (!v.ok()) return Error{v.error()};
    out = *v;
    return OkStatus();
  };
  for (Status s : {str("pck_crl_issuer_chain", c.pck_crl_issuer_chain), crl("root_ca_crl", c.root_ca_crl),
                   crl("pck_crl", c.pck_crl), str("tcb_info_issuer_chain", c.tcb_info_issuer_chain),
                   str("tcb_info", c.tcb_info), sig("tcb_info_signature", c.tcb_info_signature),
                   str("qe_identity_issuer_chain", c.qe_identity_issuer_chain),
                   str("qe_identity", c.qe_identity),
                   sig("qe_identity_signature", c.qe_identity_signature)}) {
    if (!s.ok()) return Error{s.error()};
  }
  return c;
}

std::string SerializeCollateralBundle(const Collateral& c) {
  nlohmann::ordered_json j;
  j["pck_crl_issuer_chain"] = c.pck_crl_issuer_chain;
  j["root_ca_crl"] = ToHex(c.root_ca_crl);
  j["pck_crl"] = ToHex(c.pck_crl);
  j["tcb_info_issuer_chain"] = c.tcb_info_issuer_chain;
  j["tcb_info"] = c.tcb_info;
  j["tcb_info_signature"] = ToHex(c.tcb_info_signature);
  j["qe_identity_issuer_chain"] = c.qe_identity_issuer_chain;
  j["qe_identity"] = c.qe_identity;
  j["qe_identity_signature"] = ToHex(c.qe_identity_signature);
  return j.dump(2) + "\n";
}

Result<Bytes> CrlBytes(ByteSpan data) {
  if (!data.empty() && data[0] == 0x30) return Bytes(data.begin(), data.end());  // DER SEQUENCE
  auto decoded = FromHex(AsString(data));
  if (!decoded.ok()) return Error{"CRL is neither DER nor hex text of DER: " + decoded.error()};
  if (decoded->empty() || (*decoded)[0] != 0x30) return Error{"CRL hex text does not hold DER"};
  return decoded;
}

std::string UrlEncode(std::string_view text) {
  std::string out;
  out.reserve(text.size() * 3);
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(char(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

Result<std::string> UrlDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size())
      return Error{"URL encoding: '%' at position " + std::to_string(i) + " needs two hex digits"};
    auto byte = FromHex(text.substr(i + 1, 2));
    if (!byte.ok() || byte->size() != 1)
      return Error{"URL encoding: bad escape at position " + std::to_string(i)};
    out.push_back(char((*byte)[0]));
    i += 2;
  }
  return out;
}

Result<std::string> PemOrUrlEncoded(std::string_view text) {
  // Raw PEM has "-----BEGIN CERTIFICATE-----" with a space; URL-encoded PEM keeps the dashes and
  // letters but has "%20" there, so the bare "-----BEGIN" would match both.
  if (text.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos) return std::string(text);
  auto decoded = UrlDecode(text);
  if (!decoded.ok()) return decoded;
  if (decoded->find("-----BEGIN CERTIFICATE-----") == std::string::npos)
    return Error{"issuer chain is neither PEM nor URL-encoded PEM"};
  return decoded;
}

Result<Collateral> LoadCollateralDirectory(const std::string& dir) {
  Collateral c;
  // Returns false (no error) when an optional item is absent.
  auto present = [&](std::initializer_list<const char*> names) {
    for (const char* name : names) {
      struct stat st {};
      if (stat((dir + "/" + name).c_str(), &st) == 0) return true;
    }
    return false;
  };
  auto signed_doc = [&](std::initializer_list<const char*> names, const char* key, std::string& body,
                        ByteArray<64>& sig) -> Status {
    auto raw = ReadFirst(dir, names);
    if (!raw.ok()) return Error{raw.error()};
    auto doc = ParsePcsSignedJson(AsString(*raw), key);
    if (!doc.ok()) return Error{dir + "/" + *names.begin() + ": " + doc.error()};
    body = std::move(doc->body);
    sig = doc->signature;
    return OkStatus();
  };
  auto chain = [&](std::initializer_list<const char*> names, std::string& out) -> Status {
    auto raw = ReadFirst(dir, names);
    if (!raw.ok()) return Error{raw.error()};
    auto pem = PemOrUrlEncoded(AsString(*raw));
    if (!pem.ok()) return Error{dir + "/" + *names.begin() + ": " + pem.error()};
    out = std::move(*pem);
    return OkStatus();
  };
  auto crl = [&](std::initializer_list<const char*> names, Bytes& out) -> Status {
    if (!present(names)) return OkStatus();  // the verifier reports it unless CRLs are skipped
    auto raw = ReadFirst(dir, names);
    if (!raw.ok()) return Error{raw.error()};
    auto der = CrlBytes(*raw);
    if (!der.ok()) return Error{dir + "/" + *names.begin() + ": " + der.error()};
    out = std::move(*der);
    return OkStatus();
  };
  // Names: ours first, then Intel PCS sample responses, then Intel QVL's sample-app layout.
  for (Status s :
       {signed_doc({"tcb_info.json", "tcb_info_response.json", "sample_tcbInfo_response", "tcbInfo.json"},
                   "tcbInfo", c.tcb_info, c.tcb_info_signature),
        signed_doc({"qe_identity.json", "qe_identity_response.json", "sample_qeIdentity_response",
                    "qeIdentity.json"},
                   "enclaveIdentity", c.qe_identity, c.qe_identity_signature),
        crl({"pck_crl.der", "pckcrl", "intermediateCaCrl.der"}, c.pck_crl),
        crl({"root_ca_crl.der", "rootcrl.der", "rootCaCrl.der"}, c.root_ca_crl),
        chain({"tcb_info_issuer_chain.pem", "tcbSignChain.pem"}, c.tcb_info_issuer_chain)}) {
    if (!s.ok()) return Error{s.error()};
  }
  // PCS signs TCB Info and QE Identity with the same TCB Signing chain; one file may serve both.
  if (present({"qe_identity_issuer_chain.pem"})) {
    Status s = chain({"qe_identity_issuer_chain.pem"}, c.qe_identity_issuer_chain);
    if (!s.ok()) return Error{s.error()};
  } else {
    c.qe_identity_issuer_chain = c.tcb_info_issuer_chain;
  }
  if (present({"pck_crl_issuer_chain.pem", "pckSignChain.pem"})) {
    Status s = chain({"pck_crl_issuer_chain.pem", "pckSignChain.pem"}, c.pck_crl_issuer_chain);
    if (!s.ok()) return Error{s.error()};
  }
  if (present({"pckCert.pem"})) {
    Status s = chain({"pckCert.pem"}, c.pck_certificate_chain);
    if (!s.ok()) return Error{s.error()};
    c.pck_certificate_chain += c.pck_crl_issuer_chain;  // leaf, then its CA (and root)
  }
  return c;
}

Result<Collateral> LoadCollateral(const std::string& path) {
  if (IsDirectory(path)) return LoadCollateralDirectory(path);
  auto raw = ReadFile(path);
  if (!raw.ok()) return Error{raw.error()};
  auto c = ParseCollateralBundle(AsString(*raw));
  if (!c.ok()) return Error{path + ": " + c.error()};
  return c;
}

Status WriteCollateralDirectory(const Collateral& c, const std::string& dir) {
  if (!IsDirectory(dir) && mkdir(dir.c_str(), 0755) != 0)
    return Error{"cannot create collateral directory " + dir};
  auto signed_body = [](const char* key, const std::string& body, const ByteArray<64>& sig) {
    // The body is spliced in verbatim: re-serializing would change the signed bytes.
    return std::string("{\"") + key + "\":" + body + ",\"signature\":\"" + ToHex(sig) + "\"}";
  };
  struct Item {
    const char* name;
    std::string data;
  };
  const Item items[] = {
      {"tcb_info.json", signed_body("tcbInfo", c.tcb_info, c.tcb_info_signature)},
      {"qe_identity.json", signed_body("enclaveIdentity", c.qe_identity, c.qe_identity_signature)},
      {"pck_crl.der", std::string(AsString(c.pck_crl))},
      {"root_ca_crl.der", std::string(AsString(c.root_ca_crl))},
      {"tcb_info_issuer_chain.pem", c.tcb_info_issuer_chain},
      {"qe_identity_issuer_chain.pem", c.qe_identity_issuer_chain},
      {"pck_crl_issuer_chain.pem", c.pck_crl_issuer_chain},
  };
  for (const auto& item : items) {
    Status s = WriteFileAtomic(dir + "/" + item.name, AsBytes(item.data));
    if (!s.ok()) return s;
  }
  return OkStatus();
}

}  // namespace tdxvirt::verify
