// A check of YAML text before it reaches yaml-cpp. Debian 12's yaml-cpp 0.7 does not fail on a
// ',' that starts a value in block context (",x", "- a\n,", "--- ,"): it loops, allocating until
// the process runs out of memory (found by fuzz_kubevirt_review). Such text is never valid YAML: a
// ',' can start a token only inside [ ] or { }. This scan refuses it first, with the line.
#pragma once

#include <string_view>

#include "common/result.h"

namespace tdxvirt {

// Skips comments, quoted scalars and block scalar (| >) content. Also refuses a ',' that begins a
// continuation line of a plain scalar (valid YAML, but which yaml-cpp handles in the same code).
Status CheckYamlBlockCommas(std::string_view text, std::string_view what);

}  // namespace tdxvirt
