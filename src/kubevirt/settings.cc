#include "kubevirt/settings.h"

#include "common/file.h"
#include "kubevirt/document.h"

namespace tdxvirt::kubevirt {

namespace {

// ConfigMap data values are strings; accept "true"/"false" there.
Result<bool> AsBool(const Json& v, const std::string& key) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_string() && (v == "true" || v == "false")) return v == "true";
  return Error{"settings: " + key + " must be true or false"};
}

Result<std::string> AsString(const Json& v, const std::string& key) {
  if (v.is_string()) return v.get<std::string>();
  return Error{"settings: " + key + " must be a string"};
}

Status AbsolutePath(const std::string& p, const std::string& key, bool allow_empty) {
  if (p.empty() && allow_empty) return OkStatus();
  if (p.empty() || p[0] != '/' || p.find('\0') != std::string::npos)
    return Error{"settings: " + key + " must be an absolute path, got \"" + p + "\""};
  return OkStatus();
}

Status Apply(const Json& j, ClusterSettings& s) {
  if (!j.is_object()) return Error{"settings: expected a mapping of settings"};
  static const char* kKnown[] = {"featureGate",   "qgsEnforced",    "tdvf",
                                 "qgsSocketPath", "keyResourceName", "nodeLabel",
                                 "nodeLabelValue", "tdvfPlain",     "tdvfSecureBoot",
                                 "sidecarImage",  "hookVersion",   "kubevirtVersion"};
  for (const auto& [key, v] : j.items()) {
    bool known = false;
    for (const char* k : kKnown) known = known || key == k;
    if (!known)
      return Error{"settings: unknown key \"" + key +
                   "\" (known: featureGate, qgsSocketPath, qgsEnforced, keyResourceName, "
                   "nodeLabel, nodeLabelValue, tdvf.plain, tdvf.secureBoot, sidecarImage, "
                   "hookVersion, kubevirtVersion)"};
    if (key == "featureGate") {
      auto b = AsBool(v, key);
      if (!b.ok()) return Error{b.error()};
      s.feature_gate = *b;
    } else if (key == "qgsEnforced") {
      auto b = AsBool(v, key);
      if (!b.ok()) return Error{b.error()};
      s.qgs_enforced = *b;
    } else if (key == "tdvf") {
      if (!v.is_object()) return Error{"settings: tdvf must be a mapping {plain, secureBoot}"};
      for (const auto& [k, p] : v.items()) {
        auto str = AsString(p, "tdvf." + k);
        if (!str.ok()) return Error{str.error()};
        if (k == "plain") s.tdvf = *str;
        else if (k == "secureBoot") s.tdvf_secure_boot = *str;
        else return Error{"settings: unknown key tdvf." + k + " (known: plain, secureBoot)"};
      }
    } else {
      auto str = AsString(v, key);
      if (!str.ok()) return Error{str.error()};
      if (key == "qgsSocketPath") s.qgs_socket_path = *str;
      else if (key == "keyResourceName") s.key_resource = *str;
      else if (key == "nodeLabel") s.node_label = *str;
      else if (key == "nodeLabelValue") s.node_label_value = *str;
      else if (key == "tdvfPlain") s.tdvf = *str;
      else if (key == "tdvfSecureBoot") s.tdvf_secure_boot = *str;
      else if (key == "sidecarImage") s.sidecar_image = *str;
      else if (key == "hookVersion") s.hook_version = *str;
      else s.kubevirt_version = *str;  // kKnown leaves only kubevirtVersion
    }
  }
  if (auto st = AbsolutePath(s.qgs_socket_path, "qgsSocketPath", false); !st.ok()) return st;
  if (auto st = AbsolutePath(s.tdvf, "tdvf.plain", false); !st.ok()) return st;
  if (auto st = AbsolutePath(s.tdvf_secure_boot, "tdvf.secureBoot", true); !st.ok()) return st;
  if (s.key_resource.empty() || s.key_resource.find('/') == std::string::npos)
    return Error{"settings: keyResourceName must be a domain-qualified resource name such as " +
                 std::string(kDefaultKeyResource)};
  if (s.node_label.empty()) return Error{"settings: nodeLabel must not be empty"};
  if (s.kubevirt_version != "auto") {
    auto v = kube::ParseKubevirtVersion(s.kubevirt_version);
    if (!v.ok() || !v->exact() || v->Text() != s.kubevirt_version)
      return Error{"settings: kubevirtVersion must be \"1.6\", \"1.7\", \"1.8\", \"1.9\" or "
                   "\"auto\" (read from the KubeVirt CR), got \"" + s.kubevirt_version + "\""};
  }
  if (s.hook_version != "v1alpha2" && s.hook_version != "v1alpha3")
    return Error{"settings: hookVersion must be v1alpha2 or v1alpha3"};
  return OkStatus();
}

}  // namespace

Result<kube::KubevirtVersion> EffectiveKubevirtVersion(const ClusterSettings& s) {
  if (s.kubevirt_version != "auto") return kube::ParseKubevirtVersion(s.kubevirt_version);
  if (s.observed_version) return *s.observed_version;
  return Error{"kubevirtVersion is auto and the KubeVirt version is not known yet (the KubeVirt "
               "CR has no status.observedKubeVirtVersion, or it could not be read); name it in the "
               "settings: kubevirtVersion: \"1.9\""};
}

Result<ClusterSettings> ParseClusterSettings(std::string_view text) {
  auto j = ParseDocument(text, "settings");
  if (!j.ok()) return Error{j.error()};
  ClusterSettings s;
  const Json* source = &*j;
  Json nested;
  if (StringField(*j, "kind") == "ConfigMap") {
    const Json& data = j->contains("data") ? (*j)["data"] : Json::object();
    if (!data.is_object()) return Error{"settings: ConfigMap data must be a mapping"};
    if (data.contains("settings.yaml")) {
      if (!data["settings.yaml"].is_string())
        return Error{"settings: ConfigMap data settings.yaml must be a string"};
      auto inner = ParseDocument(data["settings.yaml"].get<std::string>(), "settings");
      if (!inner.ok()) return Error{inner.error()};
      nested = std::move(*inner);
    } else {
      nested = data;
    }
    source = &nested;
  }
  if (auto st = Apply(*source, s); !st.ok()) return Error{st.error()};
  return s;
}

Result<ClusterSettings> LoadClusterSettings(const std::string& path) {
  if (path.empty()) return ClusterSettings{};
  auto bytes = ReadFile(path, 1 << 20);
  if (!bytes.ok()) return Error{"--settings " + path + ": " + bytes.error()};
  auto s = ParseClusterSettings(tdxvirt::AsString(*bytes));
  if (!s.ok()) return Error{"--settings " + path + ": " + s.error()};
  return s;
}

}  // namespace tdxvirt::kubevirt
