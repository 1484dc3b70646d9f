#include "common/yaml_guard.h"

#include <string>

namespace tdxvirt {

namespace {

size_t Indent(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && line[i] == ' ') ++i;
  return i;
}

// Whether `line` (outside flow context) ends by opening a block scalar: "| ", ">-", "|2+" ...
bool OpensBlockScalar(std::string_view line) {
  size_t hash = line.find(" #");
  if (hash != std::string_view::npos) line = line.substr(0, hash);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.remove_suffix(1);
  while (!line.empty() && (line.back() == '-' || line.back() == '+' || (line.back() >= '1' && line.back() <= '9')))
    line.remove_suffix(1);
  if (line.empty() || (line.back() != '|' && line.back() != '>')) return false;
  line.remove_suffix(1);
  return line.empty() || line.back() == ' ' || line.back() == '-' || line.back() == ':';
}

}  // namespace

Status CheckYamlBlockCommas(std::string_view text, std::string_view what) {
  int flow = 0;
  bool in_single = false, in_double = false;
  bool block_scalar = false;
  size_t block_indent = 0;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    ++line_no;
    pos = end + 1;
    size_t indent = Indent(line);
    bool blank = indent == line.size() || line.substr(indent) == "\r";
    if (block_scalar) {
      if (blank || indent > block_indent) continue;  // block scalar content: any text
      block_scalar = false;
    }
    // Tokens may start after line start, after an indicator ("- ", "? ", ": "), after "---", or
    // after a closing quote; a ',' there outside [ ] { } is what yaml-cpp loops on.
    bool token_start = !in_single && !in_double;
    for (size_t i = 0; i < line.size(); ++i) {
      char c = line[i];
      if (in_double) {
        if (c == '\\') ++i;
        else if (c == '"') in_double = false, token_start = true;
        continue;
      }
      if (in_single) {
        if (c == '\'') {
          if (i + 1 < line.size() && line[i + 1] == '\'') ++i;
          else in_single = false, token_start = true;
        }
        continue;
      }
      if (c == ' ' || c == '\t') continue;
      if (c == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) break;
      if (token_start && c == ',' && flow == 0)
        return Error{std::string(what) + ": line " + std::to_string(line_no) +
                     ": a ',' cannot start a value outside [ ] or { }; quote the value"};
      if (token_start && c == '"') { in_double = true; continue; }
      if (token_start && c == '\'') { in_single = true; continue; }
      if (c == '[' || c == '{') ++flow;
      else if ((c == ']' || c == '}') && flow > 0) --flow;
      bool next_is_space = i + 1 >= line.size() || line[i + 1] == ' ' || line[i + 1] == '\t';
      if ((c == '-' || c == '?' || c == ':') && next_is_space) token_start = true;
      else if (flow > 0 && (c == ',' || c == '[' || c == '{' || c == ':')) token_start = true;
      else if (c == '-' && i == indent && line.substr(i).starts_with("---")) { token_start = true; i += 2; }
      else token_start = false;
    }
    if (flow == 0 && !in_single && !in_double && OpensBlockScalar(line)) {
      block_scalar = true;
      block_indent = indent;
    }
  }
  return OkStatus();
}

}  // namespace tdxvirt
