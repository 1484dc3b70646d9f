#include "simulator/td.h"

#include <openssl/hmac.h>

#include "common/file.h"
#include "common/hex.h"
#include "eventlog/replay.h"
#include "common/openssl.h"

namespace tdxvirt::simulator {

TdConfig DefaultTdConfig() {
  TdConfig c;
  c.td.td_attributes = {0x00, 0x00, 0x00, 0x10, 0, 0, 0, 0};  // SEPT_VE_DISABLE
  c.td.xfam = {0xe7, 0x02, 0x06, 0x00, 0, 0, 0, 0};
  return c;
}

Result<TdConfig> ParseTdConfig(const nlohmann::json& j) {
  if (!j.is_object()) return Error{"TD config: expected a JSON object"};
  TdConfig c = DefaultTdConfig();
  auto hex = [&](const char* field, auto& out) -> Status {
    auto it = j.find(field);
    if (it == j.end()) return OkStatus();
    if (!it->is_string()) return Error{std::string("TD config: ") + field + ": expected a hex string"};
    auto v = FromHexFixed<std::tuple_size_v<std::remove_reference_t<decltype(out)>>>(
        it->get<std::string>(), std::string("TD config: ") + field);
    if (!v.ok()) return Error{v.error()};
    out = *v;
    return OkStatus();
  };
  for (Status s : {hex("mr_td", c.td.mr_td), hex("mr_config_id", c.td.mr_config_id),
                   hex("mr_owner", c.td.mr_owner), hex("mr_owner_config", c.td.mr_owner_config),
                   hex("rtmr0", c.td.rtmr[0]), hex("rtmr1", c.td.rtmr[1]), hex("rtmr2", c.td.rtmr[2]),
                   hex("rtmr3", c.td.rtmr[3]), hex("td_attributes", c.td.td_attributes),
                   hex("xfam", c.td.xfam), hex("servtd_hash", c.servtd_hash)})
    if (!s.ok()) return Error{s.error()};
  if (auto it = j.find("debug"); it != j.end()) {
    if (!it->is_boolean()) return Error{"TD config: debug: expected true or false"};
    if (it->get<bool>()) c.td.td_attributes[0] |= 0x01;
    else c.td.td_attributes[0] &= uint8_t(~0x01);
  }
  if (auto it = j.find("td15"); it != j.end()) {
    if (!it->is_boolean()) return Error{"TD config: td15: expected true or false"};
    c.td15 = it->get<bool>();
  }
  return c;
}

nlohmann::json TdConfigToJson(const TdConfig& c) {
  nlohmann::json j{{"mr_td", ToHex(c.td.mr_td)},
                   {"mr_config_id", ToHex(c.td.mr_config_id)},
                   {"mr_owner", ToHex(c.td.mr_owner)},
                   {"mr_owner_config", ToHex(c.td.mr_owner_config)},
                   {"td_attributes", ToHex(c.td.td_attributes)},
                   {"xfam", ToHex(c.td.xfam)},
                   {"td15", c.td15}};
  for (int i = 0; i < 4; ++i) j["rtmr" + std::to_string(i)] = ToHex(c.td.rtmr[i]);
  if (c.td15) j["servtd_hash"] = ToHex(c.servtd_hash);
  return j;
}

Result<TdConfig> LoadTdConfigFile(const std::string& path) {
  if (path.empty()) return DefaultTdConfig();
  auto text = ReadFile(path, 1 << 20);
  if (!text.ok()) return Error{text.error()};
  auto j = nlohmann::json::parse(AsString(*text), nullptr, false);
  if (j.is_discarded()) return Error{path + ": not valid JSON"};
  auto config = ParseTdConfig(j);
  if (!config.ok()) return Error{path + ": " + config.error()};
  return config;
}

Status SimTd::ExtendRtmr(int index, const evidence::Sha384Digest& data) {
  if (index < 0 || index > 3)
    return Error{"RTMR index " + std::to_string(index) + " does not exist; TDs have RTMR0..RTMR3"};
  eventlog::ExtendRtmr(config_.td.rtmr[index], data);
  return OkStatus();
}

ByteArray<32> ReportMac(const ByteArray<32>& key, const evidence::TdReport& report) {
  auto bytes = evidence::SerializeTdReport(report);
  ByteArray<32> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), int(key.size()), bytes.data(), 224, mac.data(), &len);
  return mac;
}

evidence::TdReport SimTd::Report(const evidence::ReportData& report_data) const {
  const PlatformConfig& pc = platform_.config();
  evidence::TdReport r;
  r.mac_struct.report_type = {evidence::kReportTypeTdx, 0, uint8_t(config_.td15 ? 1 : 0), 0};
  std::copy(pc.cpu_svn_components.begin(), pc.cpu_svn_components.end(), r.mac_struct.cpu_svn.begin());
  r.mac_struct.report_data = report_data;
  r.tee_tcb_info.valid = {0xff, 0x03, 0, 0, 0, 0, 0, 0};
  r.tee_tcb_info.tee_tcb_svn = pc.tee_tcb_svn;
  r.tee_tcb_info.mr_seam = SimMrSeam();
  if (config_.td15) {
    std::copy(pc.tee_tcb_svn2.begin(), pc.tee_tcb_svn2.end(), r.tee_tcb_info.reserved.begin());
    std::copy(config_.servtd_hash.begin(), config_.servtd_hash.end(), r.td_info.reserved.begin());
  }
  r.td_info.td = config_.td;
  r.mac_struct.tee_tcb_info_hash = ossl::Sha384(evidence::SerializeTeeTcbInfo(r.tee_tcb_info));
  r.mac_struct.tee_info_hash = ossl::Sha384(evidence::SerializeTdInfo(r.td_info));
  r.mac_struct.mac = ReportMac(platform_.report_mac_key(), r);
  return r;
}

ByteArray<evidence::kTdReportSize> SimTd::ReportBytes(const evidence::ReportData& report_data) const {
  return evidence::SerializeTdReport(Report(report_data));
}

}  // namespace tdxvirt::simulator
