#include "kubevirt/document.h"

namespace tdxvirt::kubevirt {

Result<Json> ParseDocument(std::string_view text, std::string_view what) {
  return ParseBoundedDocument(text, what);
}

const Json* Get(const Json& j, std::string_view key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

const Json* Path(const Json& j, std::initializer_list<std::string_view> keys) {
  const Json* cur = &j;
  for (auto k : keys) {
    cur = Get(*cur, k);
    if (!cur) return nullptr;
  }
  return cur;
}

std::string PointerToken(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

}  // namespace tdxvirt::kubevirt
