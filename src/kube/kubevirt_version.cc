#include "kube/kubevirt_version.h"

#include <algorithm>
#include <charconv>

namespace tdxvirt::kube {

namespace {

bool ParseInt(std::string_view s, int& out) {
  if (s.empty() || s.size() > 4) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

int KubevirtVersion::profile_minor() const {
  if (major > 1) return kNewestKnownMinor;
  if (major < 1) return kOldestKnownMinor;
  return std::clamp(minor, kOldestKnownMinor, kNewestKnownMinor);
}

Result<KubevirtVersion> ParseKubevirtVersion(std::string_view text) {
  std::string_view s = text;
  if (!s.empty() && s.front() == 'v') s.remove_prefix(1);
  // Pre-release and build parts ("-rc.1", "+abc") do not change the behaviour we key on.
  s = s.substr(0, std::min(s.find('-'), s.find('+')));
  size_t dot = s.find('.');
  size_t dot2 = dot == std::string_view::npos ? dot : s.find('.', dot + 1);
  KubevirtVersion v;
  int patch = 0;
  if (dot == std::string_view::npos || !ParseInt(s.substr(0, dot), v.major) ||
      !ParseInt(s.substr(dot + 1, dot2 == std::string_view::npos ? dot2 : dot2 - dot - 1), v.minor) ||
      (dot2 != std::string_view::npos && !ParseInt(s.substr(dot2 + 1), patch)) || v.major < 0 ||
      v.minor < 0)
    return Error{"KubeVirt version \"" + std::string(text.substr(0, 40)) +
                 "\" is not MAJOR.MINOR such as 1.9 or v1.9.0"};
  return v;
}

UpstreamTdx UpstreamTdxFor(const KubevirtVersion& v) {
  const int m = v.profile_minor();
  UpstreamTdx u;
  u.tdx_field = u.node_selector = u.node_label = u.renders_domain = m >= 7;
  u.stock_launcher_runs_tds = m >= 8;
  u.key_resource = u.qgs = u.secure_boot = u.domainspec_keeps_qgs = m >= 9;
  return u;
}

}  // namespace tdxvirt::kube
