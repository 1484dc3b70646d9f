#include "simulator/platform.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>  // renameat2
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <tuple>
#include <nlohmann/json.hpp>

#include "common/file.h"
#include "common/hex.h"
#include "common/time.h"
#include "simulator/pki.h"

namespace tdxvirt::simulator {

namespace {

using Json = nlohmann::ordered_json;

constexpr int64_t kDay = 86400;
constexpr int64_t kCertYears = 10;

std::string UpperHex(ByteSpan b) {
  std::string s = ToHex(b);
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

Json ComponentArray(const std::array<uint8_t, 16>& svns) {
  Json a = Json::array();
  for (uint8_t v : svns) a.push_back({{"svn", v}});
  return a;
}

Json Level(const std::array<uint8_t, 16>& sgx, uint16_t pce_svn, const evidence::TeeTcbSvn& tdx,
           const char* date, const char* status, std::vector<std::string> advisories) {
  std::array<uint8_t, 16> tdx_svns;
  std::copy(tdx.begin(), tdx.end(), tdx_svns.begin());
  Json l = {{"tcb",
             {{"sgxtcbcomponents", ComponentArray(sgx)},
              {"pcesvn", pce_svn},
              {"tdxtcbcomponents", ComponentArray(tdx_svns)}}},
            {"tcbDate", date},
            {"tcbStatus", status}};
  if (!advisories.empty()) l["advisoryIDs"] = advisories;
  return l;
}

Status WriteText(const std::string& path, const std::string& text, mode_t mode) {
  return WriteFileAtomic(path, AsBytes(text), mode);
}

Result<std::string> ReadText(const std::string& path) {
  auto data = ReadFile(path);
  if (!data.ok()) return Error{data.error()};
  return std::string(AsString(*data));
}

}  // namespace

Result<TcbScenario> ParseTcbScenario(std::string_view name) {
  if (name == "uptodate") return TcbScenario::kUpToDate;
  if (name == "outofdate") return TcbScenario::kOutOfDate;
  if (name == "revoked") return TcbScenario::kRevoked;
  return Error{"unknown TCB scenario \"" + std::string(name) + "\"; use uptodate, outofdate or revoked"};
}

std::string_view TcbScenarioName(TcbScenario s) {
  switch (s) {
    case TcbScenario::kUpToDate: return "uptodate";
    case TcbScenario::kOutOfDate: return "outofdate";
    case TcbScenario::kRevoked: return "revoked";
  }
  return "uptodate";
}

ByteArray<32> SimQeMrSigner() { return ossl::Sha256(AsBytes("tdxvirt simulated TD quoting enclave")); }
evidence::Sha384Digest SimMrSeam() { return ossl::Sha384(AsBytes("tdxvirt simulated TDX module")); }

Result<SimPlatform> SimPlatform::Create(const PlatformConfig& config) {
  if (config.cpu_svn_components[0] < 2 || config.cpu_svn_components[0] > 253)
    return Error{"sim platform: cpu_svn_components[0] must be 2..253 (the TCB levels are built "
                 "two below and two above it)"};
  SimPlatform p;
  p.config_ = config;
  if (p.config_.issued_at == 0) p.config_.issued_at = int64_t(time(nullptr));
  for (auto* key : {&p.root_key_, &p.pck_ca_key_, &p.pck_key_, &p.tcb_signing_key_, &p.attestation_key_}) {
    *key = NewP256Key();
    if (!*key) return Error{"cannot generate a P-256 key: " + ossl::LastError()};
  }
  if (RAND_bytes(p.report_mac_key_.data(), int(p.report_mac_key_.size())) != 1 ||
      RAND_bytes(p.qe_id_.data(), int(p.qe_id_.size())) != 1)
    return Error{"no randomness: " + ossl::LastError()};

  const int64_t nb = p.config_.issued_at - kDay;
  const int64_t na = p.config_.issued_at + kCertYears * 365 * kDay;
  auto root = IssueCertificate({kSimRootCn, true, 1, nb, na}, p.root_key_.get(), nullptr, nullptr);
  if (!root.ok()) return Error{root.error()};
  p.root_ = std::move(*root);
  const PlatformFaults& f = config.faults;
  auto ca = IssueCertificate({f.pck_ca_common_name, true, 0, nb, na}, p.pck_ca_key_.get(), p.root_.get(),
                             p.root_key_.get());
  if (!ca.ok()) return Error{ca.error()};
  p.pck_ca_ = std::move(*ca);
  if (f.pck_crl_from_processor_ca) {
    p.processor_ca_key_ = NewP256Key();
    if (!p.processor_ca_key_) return Error{"cannot generate a P-256 key: " + ossl::LastError()};
    auto processor = IssueCertificate({kSimPckProcessorCaCn, true, 0, nb, na}, p.processor_ca_key_.get(),
                                      p.root_.get(), p.root_key_.get());
    if (!processor.ok()) return Error{processor.error()};
    p.processor_ca_ = std::move(*processor);
  }
  auto signing = IssueCertificate({kSimTcbSigningCn, false, -1, nb, na}, p.tcb_signing_key_.get(),
                                  p.root_.get(), p.root_key_.get());
  if (!signing.ok()) return Error{signing.error()};
  p.tcb_signing_ = std::move(*signing);

  evidence::PckExtensions ext;
  RAND_bytes(ext.ppid.data(), int(ext.ppid.size()));
  ext.cpu_svn_components = config.cpu_svn_components;
  std::copy(config.cpu_svn_components.begin(), config.cpu_svn_components.end(), ext.cpu_svn.begin());
  ext.pce_svn = config.pce_svn;
  ext.pce_id = config.pce_id;
  ext.fmspc = config.fmspc;
  ext.sgx_type = 1;  // Scalable
  CertSpec leaf{f.pck_common_name, false, -1, nb, na};
  leaf.sgx_extensions = &ext;
  auto pck = IssueCertificate(leaf, p.pck_key_.get(), p.pck_ca_.get(), p.pck_ca_key_.get());
  if (!pck.ok()) return Error{pck.error()};
  p.pck_ = std::move(*pck);

  Status s = p.BuildCollateral();
  if (!s.ok()) return Error{s.error()};
  return p;
}

Status SimPlatform::BuildCollateral() {
  const PlatformConfig& c = config_;
  const std::string issue = FormatRfc3339(c.issued_at);
  const std::string next = FormatRfc3339(c.issued_at + c.collateral_days * kDay);

  // Three levels, descending; which one the platform meets is the scenario.
  const int p0 = c.cpu_svn_components[0];
  int up = p0, ood = p0 - 1, rev = p0 - 2;
  if (c.scenario == TcbScenario::kOutOfDate) up = p0 + 1, ood = p0, rev = p0 - 1;
  if (c.scenario == TcbScenario::kRevoked) up = p0 + 2, ood = p0 + 1, rev = p0;
  auto comps = [&](int first) {
    std::array<uint8_t, 16> a = c.cpu_svn_components;
    a[0] = uint8_t(first);
    return a;
  };
  Json levels = Json::array();
  levels.push_back(Level(comps(up), c.pce_svn, c.tee_tcb_svn, "2025-01-01T00:00:00Z", "UpToDate", {}));
  levels.push_back(Level(comps(ood), c.pce_svn, c.tee_tcb_svn, "2024-01-01T00:00:00Z", "OutOfDate",
                         {"TDXVIRT-SIM-SA-0001"}));
  levels.push_back(Level(comps(rev), c.pce_svn, c.tee_tcb_svn, "2023-01-01T00:00:00Z", "Revoked",
                         {"TDXVIRT-SIM-SA-0001", "TDXVIRT-SIM-SA-0002"}));

  const std::string zero_signer(96, '0');
  Json module_levels = Json::array();
  module_levels.push_back(
      {{"tcb", {{"isvsvn", c.tee_tcb_svn[0]}}}, {"tcbDate", "2025-01-01T00:00:00Z"}, {"tcbStatus", "UpToDate"}});
  if (c.tee_tcb_svn[0] > 0)
    module_levels.push_back(
        {{"tcb", {{"isvsvn", 0}}}, {"tcbDate", "2023-01-01T00:00:00Z"}, {"tcbStatus", "OutOfDate"}});
  char module_id[8];
  std::snprintf(module_id, sizeof module_id, "TDX_%02X", c.tee_tcb_svn[1]);

  Json tcb_info = {
      {"id", "TDX"},
      {"version", 3},
      {"issueDate", issue},
      {"nextUpdate", next},
      {"fmspc", UpperHex(c.fmspc)},
      {"pceId", UpperHex(c.faults.tcb_info_pce_id.value_or(c.pce_id))},
      {"tcbType", 0},
      {"tcbEvaluationDataNumber", 17},
      {"tdxModule",
       {{"mrsigner", zero_signer}, {"attributes", "0000000000000000"}, {"attributesMask", "FFFFFFFFFFFFFFFF"}}},
      {"tdxModuleIdentities",
       Json::array({{{"id", module_id},
                     {"mrsigner", zero_signer},
                     {"attributes", "0000000000000000"},
                     {"attributesMask", "FFFFFFFFFFFFFFFF"},
                     {"tcbLevels", module_levels}}})},
      {"tcbLevels", levels}};

  Json qe_levels = Json::array();
  qe_levels.push_back(
      {{"tcb", {{"isvsvn", c.qe_isv_svn}}}, {"tcbDate", "2025-01-01T00:00:00Z"}, {"tcbStatus", "UpToDate"}});
  if (c.qe_isv_svn > 0)
    qe_levels.push_back(
        {{"tcb", {{"isvsvn", 0}}}, {"tcbDate", "2023-01-01T00:00:00Z"}, {"tcbStatus", "OutOfDate"}});
  Json qe_identity = {{"id", "TD_QE"},
                      {"version", 2},
                      {"issueDate", issue},
                      {"nextUpdate", next},
                      {"tcbEvaluationDataNumber", 17},
                      {"miscselect", "00000000"},
                      {"miscselectMask", "FFFFFFFF"},
                      {"attributes", "11000000000000000000000000000000"},
                      {"attributesMask", "FBFFFFFFFFFFFFFF0000000000000000"},
                      {"mrsigner", UpperHex(SimQeMrSigner())},
                      {"isvprodid", 2},
                      {"tcbLevels", qe_levels}};

  verify::Collateral& col = collateral_;
  col.tcb_info = tcb_info.dump();
  col.qe_identity = qe_identity.dump();
  for (auto [body, sig] : {std::pair{&col.tcb_info, &col.tcb_info_signature},
                           std::pair{&col.qe_identity, &col.qe_identity_signature}}) {
    auto signature = ossl::SignEcdsaP256Sha256(tcb_signing_key_.get(), AsBytes(*body));
    if (!signature.ok()) return Error{signature.error()};
    *sig = *signature;
  }
  col.tcb_info_issuer_chain = CertToPem(tcb_signing_.get()) + CertToPem(root_.get());
  col.qe_identity_issuer_chain = col.tcb_info_issuer_chain;
  const PlatformFaults& f = c.faults;
  // The PCK CRL's issuer: the PCK CA, or (a fault) a Processor CA the PCK does not come from.
  X509* crl_ca = f.pck_crl_from_processor_ca ? processor_ca_.get() : pck_ca_.get();
  EVP_PKEY* crl_ca_key = f.pck_crl_from_processor_ca ? processor_ca_key_.get() : pck_ca_key_.get();
  if (!crl_ca || !crl_ca_key) return Error{"sim platform: no PCK CA to issue the PCK CRL"};
  col.pck_crl_issuer_chain = CertToPem(crl_ca) + CertToPem(root_.get());
  const int64_t crl_next = c.issued_at + c.collateral_days * kDay;
  std::vector<X509*> root_revoked;
  if (f.tcb_signing_revoked) root_revoked.push_back(tcb_signing_.get());
  if (f.pck_ca_revoked) root_revoked.push_back(pck_ca_.get());
  auto root_crl = IssueCrl(root_.get(), root_key_.get(), c.issued_at, crl_next, root_revoked);
  if (!root_crl.ok()) return Error{root_crl.error()};
  col.root_ca_crl = std::move(*root_crl);
  std::vector<X509*> revoked;
  if (c.pck_revoked) revoked.push_back(pck_.get());
  std::unique_ptr<X509_NAME, decltype(&X509_NAME_free)> other_name(nullptr, X509_NAME_free);
  if (!f.pck_crl_issuer_cn.empty()) {
    other_name.reset(X509_NAME_new());
    X509_NAME_add_entry_by_txt(other_name.get(), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(f.pck_crl_issuer_cn.c_str()), -1, -1, 0);
  }
  auto pck_crl = IssueCrl(crl_ca, f.pck_crl_signed_by_root ? root_key_.get() : crl_ca_key, c.issued_at,
                          crl_next, revoked, other_name.get());
  if (!pck_crl.ok()) return Error{pck_crl.error()};
  col.pck_crl = std::move(*pck_crl);
  return OkStatus();
}

Result<ByteArray<64>> SimPlatform::SignAsTcbSigner(std::string_view body) const {
  return ossl::SignEcdsaP256Sha256(tcb_signing_key_.get(), AsBytes(body));
}

Result<std::string> SimPlatform::ReissuePckCaPem() const {
  auto nb = ossl::TimeToUnix(X509_get0_notBefore(pck_ca_.get()));
  auto na = ossl::TimeToUnix(X509_get0_notAfter(pck_ca_.get()));
  if (!nb.ok() || !na.ok()) return Error{"sim platform: PCK CA with a malformed validity time"};
  auto ca = IssueCertificate({ossl::CommonName(X509_get_subject_name(pck_ca_.get())), true, 0, *nb, *na},
                             pck_ca_key_.get(), root_.get(), root_key_.get());
  if (!ca.ok()) return Error{ca.error()};
  return CertToPem(ca->get());
}

std::string SimPlatform::root_pem() const { return CertToPem(root_.get()); }

std::string SimPlatform::pck_chain_pem() const {
  return CertToPem(pck_.get()) + CertToPem(pck_ca_.get()) + CertToPem(root_.get());
}

// ---- Persistence ------------------------------------------------------------------------------

namespace {

// Every file Save writes; another file in an existing directory would be lost by the swap.
constexpr const char* kSimFiles[] = {
    "root_ca.key", "pck_ca.key",  "pck.key",         "tcb_signing.key", "attestation.key",
    "report_mac.key", "root_ca.pem", "pck_ca.pem", "pck.pem", "tcb_signing.pem",
    "collateral.json", "platform.json"};

std::string StagingPrefix(const std::string& base) { return "." + base + ".init-"; }

// Staging directories of `base` in `parent` that no live Save holds locked (left by a killed one).
void RemoveStaleStaging(const std::string& parent, const std::string& base) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(parent, ec)) {
    std::string name = e.path().filename().string();
    if (!name.starts_with(StagingPrefix(base)) || !e.is_directory(ec) || e.is_symlink(ec)) continue;
    int fd = open(e.path().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) std::filesystem::remove_all(e.path(), ec);
    close(fd);
  }
}

}  // namespace

// The whole directory is replaced at once: written into a staging directory beside it, then
// swapped in (renameat2 RENAME_EXCHANGE) or renamed into place. A Save killed at any moment leaves
// the old platform or the new one, never keys of one with certificates of the other.
Status SimPlatform::Save(const std::string& dir_in) const {
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  size_t slash = dir.rfind('/');
  std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : dir.substr(0, slash);
  std::string base = slash == std::string::npos ? dir : dir.substr(slash + 1);
  if (base.empty() || base == "." || base == "..")
    return Error{"simulator directory " + dir_in + ": give a directory name"};
  struct stat st {};
  bool exists = lstat(dir.c_str(), &st) == 0;
  if (exists && !S_ISDIR(st.st_mode))
    return Error{"simulator directory " + dir + " exists and is not a directory"};
  if (exists) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      std::string name = e.path().filename().string();
      bool ours = name.starts_with(".") && name.find(".tmp-") != std::string::npos;
      for (const char* f : kSimFiles) ours = ours || name == f;
      if (!ours)
        return Error{"simulator directory " + dir + " holds " + name +
                     ", which is not the simulator's; move it away or give another --dir"};
    }
    if (ec) return Error{"simulator directory " + dir + ": " + ec.message()};
  }
  RemoveStaleStaging(parent, base);
  std::string staging = (parent == "/" ? "" : parent) + "/" + StagingPrefix(base) + "XXXXXX";
  if (!mkdtemp(staging.data()))
    return Error{"cannot create a staging directory in " + parent + ": " + std::strerror(errno)};
  int lock = open(staging.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock >= 0) flock(lock, LOCK_EX);  // marks it live for RemoveStaleStaging
  auto abandon = [&](const std::string& error) {
    std::error_code ec;
    std::filesystem::remove_all(staging, ec);
    if (lock >= 0) close(lock);
    return Error{error};
  };
  if (Status s = WriteFiles(staging); !s.ok()) return abandon(s.error());
  if (Status s = FsyncDirectory(staging); !s.ok()) return abandon(s.error());
  if (exists ? renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) != 0
             : rename(staging.c_str(), dir.c_str()) != 0)
    return abandon("cannot put the new platform in place at " + dir + ": " + std::strerror(errno) +
                   (exists ? "; remove the directory (or give another --dir) and run again" : ""));
  Status synced = FsyncDirectory(parent);
  std::error_code ec;
  if (exists) std::filesystem::remove_all(staging, ec);  // now the old platform
  if (lock >= 0) close(lock);
  return synced;
}

Status SimPlatform::WriteFiles(const std::string& dir) const {
  const std::pair<const char*, EVP_PKEY*> keys[] = {
      {"root_ca.key", root_key_.get()},         {"pck_ca.key", pck_ca_key_.get()},
      {"pck.key", pck_key_.get()},              {"tcb_signing.key", tcb_signing_key_.get()},
      {"attestation.key", attestation_key_.get()}};
  for (const auto& [name, key] : keys) {
    Status s = WriteText(dir + "/" + name, KeyToPem(key), 0600);
    if (!s.ok()) return s;
  }
  Status s = WriteText(dir + "/report_mac.key", ToHex(report_mac_key_) + "\n", 0600);
  if (!s.ok()) return s;
  const std::pair<const char*, X509*> certs[] = {{"root_ca.pem", root_.get()},
                                                 {"pck_ca.pem", pck_ca_.get()},
                                                 {"pck.pem", pck_.get()},
                                                 {"tcb_signing.pem", tcb_signing_.get()}};
  for (const auto& [name, cert] : certs) {
    s = WriteText(dir + "/" + name, CertToPem(cert), 0644);
    if (!s.ok()) return s;
  }
  s = WriteText(dir + "/collateral.json", verify::SerializeCollateralBundle(collateral_), 0644);
  if (!s.ok()) return s;
  const auto& c = config_;
  Json j = {{"fmspc", ToHex(c.fmspc)},
            {"pce_id", ToHex(c.pce_id)},
            {"cpu_svn_components", c.cpu_svn_components},
            {"pce_svn", c.pce_svn},
            {"tee_tcb_svn", ToHex(c.tee_tcb_svn)},
            {"tee_tcb_svn2", ToHex(c.tee_tcb_svn2)},
            {"qe_isv_svn", c.qe_isv_svn},
            {"scenario", TcbScenarioName(c.scenario)},
            {"issued_at", FormatRfc3339(c.issued_at)},
            {"collateral_days", c.collateral_days},
            {"pck_revoked", c.pck_revoked},
            {"qe_vendor_id", ToHex(c.faults.qe_vendor_id)},
            {"qe_id", ToHex(qe_id_)}};
  return WriteText(dir + "/platform.json", j.dump(2) + "\n", 0644);
}

Result<SimPlatform> SimPlatform::Load(const std::string& dir) {
  auto text = ReadText(dir + "/platform.json");
  if (!text.ok()) return Error{"not a simulator directory (run `tdxvirt sim init --dir " + dir + "`): " + text.error()};
  Json j = Json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error{dir + "/platform.json: not a JSON object"};
  SimPlatform p;
  PlatformConfig& c = p.config_;
  try {
    auto hex = [&](const char* field, auto& out) -> Status {
      auto v = FromHexFixed<std::tuple_size_v<std::remove_reference_t<decltype(out)>>>(
          j.at(field).get<std::string>(), std::string("platform.json: ") + field);
      if (!v.ok()) return Error{v.error()};
      out = *v;
      return OkStatus();
    };
    for (Status s : {hex("fmspc", c.fmspc), hex("pce_id", c.pce_id), hex("tee_tcb_svn", c.tee_tcb_svn),
                     hex("tee_tcb_svn2", c.tee_tcb_svn2), hex("qe_id", p.qe_id_)})
      if (!s.ok()) return Error{s.error()};
    c.cpu_svn_components = j.at("cpu_svn_components").get<std::array<uint8_t, 16>>();
    c.pce_svn = j.at("pce_svn").get<uint16_t>();
    c.qe_isv_svn = j.at("qe_isv_svn").get<uint16_t>();
    auto scenario = ParseTcbScenario(j.at("scenario").get<std::string>());
    if (!scenario.ok()) return Error{"platform.json: " + scenario.error()};
    c.scenario = *scenario;
    auto issued = ParseRfc3339(j.at("issued_at").get<std::string>());
    if (!issued.ok()) return Error{"platform.json: issued_at: " + issued.error()};
    c.issued_at = *issued;
    c.collateral_days = j.at("collateral_days").get<int64_t>();
    c.pck_revoked = j.at("pck_revoked").get<bool>();
    if (j.contains("qe_vendor_id")) {  // absent in directories made before it was saved
      Status s = hex("qe_vendor_id", c.faults.qe_vendor_id);
      if (!s.ok()) return Error{s.error()};
    }
  } catch (const Json::exception& e) {
    return Error{dir + "/platform.json: " + e.what()};
  }
  const std::pair<const char*, ossl::PkeyPtr*> keys[] = {
      {"root_ca.key", &p.root_key_},         {"pck_ca.key", &p.pck_ca_key_},
      {"pck.key", &p.pck_key_},              {"tcb_signing.key", &p.tcb_signing_key_},
      {"attestation.key", &p.attestation_key_}};
  for (const auto& [name, key] : keys) {
    auto pem = ReadText(dir + "/" + name);
    if (!pem.ok()) return Error{pem.error()};
    auto k = KeyFromPem(*pem);
    if (!k.ok()) return Error{dir + "/" + name + ": " + k.error()};
    *key = std::move(*k);
  }
  auto mac = ReadText(dir + "/report_mac.key");
  if (!mac.ok()) return Error{mac.error()};
  auto mac_key = FromHexFixed<32>(*mac, dir + "/report_mac.key");
  if (!mac_key.ok()) return Error{mac_key.error()};
  p.report_mac_key_ = *mac_key;
  const std::pair<const char*, ossl::X509Ptr*> certs[] = {{"root_ca.pem", &p.root_},
                                                          {"pck_ca.pem", &p.pck_ca_},
                                                          {"pck.pem", &p.pck_},
                                                          {"tcb_signing.pem", &p.tcb_signing_}};
  for (const auto& [name, cert] : certs) {
    auto pem = ReadText(dir + "/" + name);
    if (!pem.ok()) return Error{pem.error()};
    auto chain = ossl::ParsePemChain(*pem);
    if (!chain.ok() || chain->size() != 1) return Error{dir + "/" + name + ": expected one PEM certificate"};
    *cert = std::move(chain->front());
  }
  // Keys of one platform with certificates of another (a directory written by an older tdxvirt
  // that was killed during `sim init`) would give quotes that never verify: refuse it by name.
  const std::tuple<const char*, const char*, EVP_PKEY*, X509*> pairs[] = {
      {"root_ca.key", "root_ca.pem", p.root_key_.get(), p.root_.get()},
      {"pck_ca.key", "pck_ca.pem", p.pck_ca_key_.get(), p.pck_ca_.get()},
      {"pck.key", "pck.pem", p.pck_key_.get(), p.pck_.get()},
      {"tcb_signing.key", "tcb_signing.pem", p.tcb_signing_key_.get(), p.tcb_signing_.get()}};
  for (const auto& [key_name, cert_name, key, cert] : pairs)
    if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1)
      return Error{dir + "/" + key_name + " does not match " + dir + "/" + cert_name +
                   ": the directory is from an interrupted `sim init`; run `tdxvirt sim init --dir " +
                   dir + "` again"};
  auto collateral = verify::LoadCollateral(dir + "/collateral.json");
  if (!collateral.ok()) return Error{collateral.error()};
  p.collateral_ = std::move(*collateral);
  return p;
}

}  // namespace tdxvirt::simulator
