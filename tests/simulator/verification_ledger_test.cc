// docs/verification.md's ledger is complete: every check name the verifier can report is listed
// with the tests that prove it, every test named there exists, and every mutation of
// scripts/mutate.sh is listed. Check names are taken from the source (string literals in
// verifier.cc) and from what the verifier reports for a simulated platform.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "simulator/platform.h"
#include "simulator/quoting_enclave.h"
#include "simulator/td.h"
#include "verify/verifier.h"

namespace tdxvirt::simulator {
namespace {

const std::string kSource = TDXVIRT_SOURCE_DIR;

std::string ReadText(const std::string& relative) {
  std::ifstream in(kSource + "/" + relative);
  EXPECT_TRUE(in.good()) << relative;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Ledger {
  std::set<std::string> checks, mutations, tests;
};

// The table under "## Ledger": | `check`, ... | refused when | `mutation`, ... | `Suite.Test`, ... |
Ledger ParseLedger() {
  std::string doc = ReadText("docs/verification.md");
  size_t from = doc.find("## Ledger");
  EXPECT_NE(from, std::string::npos) << "docs/verification.md has no \"## Ledger\" section";
  size_t to = doc.find("\n## ", from + 1);
  std::istringstream lines(doc.substr(from, to == std::string::npos ? std::string::npos : to - from));
  Ledger out;
  const std::regex code("`([^`]+)`");
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("| `", 0) != 0) continue;
    std::vector<std::string> cols;
    std::stringstream row(line.substr(1));
    for (std::string col; std::getline(row, col, '|');) cols.push_back(col);
    EXPECT_GE(cols.size(), 4u) << line;
    if (cols.size() < 4) continue;
    auto collect = [&](const std::string& col, std::set<std::string>& into) {
      for (std::sregex_iterator it(col.begin(), col.end(), code), end; it != end; ++it) into.insert((*it)[1]);
    };
    collect(cols[0], out.checks);
    collect(cols[2], out.mutations);
    collect(cols[3], out.tests);
  }
  return out;
}

TEST(VerificationLedger, EveryCheckNameInTheSourceIsListed) {
  Ledger ledger = ParseLedger();
  ASSERT_FALSE(ledger.checks.empty());
  std::string src = ReadText("src/verify/verifier.cc");
  // From the collateral preparation to the JSON output (whose keys are not check names).
  size_t begin = src.find("// ---- Collateral preparation");
  size_t end = src.find("nlohmann::ordered_json VerificationResultToJson(");
  ASSERT_NE(begin, std::string::npos);
  ASSERT_NE(end, std::string::npos);
  std::string region = src.substr(begin, end - begin);
  // Snake-case literals are check names, or the prefixes and suffixes they are built from
  // (name + "_signature"): each must be a listed name, or a part of one.
  const std::regex literal("\"(_?[a-z][a-z0-9]*(?:_[a-z0-9]+)*)\"");
  int seen = 0;
  for (std::sregex_iterator it(region.begin(), region.end(), literal), stop; it != stop; ++it) {
    std::string s = (*it)[1];
    ++seen;
    bool listed = ledger.checks.count(s) > 0;
    for (const auto& name : ledger.checks) {
      if (s[0] == '_' && name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0)
        listed = true;
      if (s[0] != '_' && name.rfind(s + "_", 0) == 0) listed = true;
    }
    EXPECT_TRUE(listed) << "\"" << s << "\" in src/verify/verifier.cc looks like a check name but "
                        << "docs/verification.md's ledger does not list it";
  }
  EXPECT_GT(seen, 20);
}

TEST(VerificationLedger, EveryReportedCheckIsListed) {
  PlatformConfig config;
  config.issued_at = 1767225600;
  auto p = SimPlatform::Create(config);
  ASSERT_TRUE(p.ok()) << p.error();
  evidence::ReportData nonce{};
  auto quote = SimQuotingEnclave(*p).Quote(SimTd(*p, DefaultTdConfig()).ReportBytes(nonce));
  ASSERT_TRUE(quote.ok()) << quote.error();
  auto root = verify::TrustedRoot::FromPem(p->root_pem());
  ASSERT_TRUE(root.ok());
  auto intel = verify::TrustedRoot::IntelSgxRootCa();
  ASSERT_TRUE(intel.ok());
  // Prepared under this root (every check runs) and under another (collateral_root appears too).
  std::set<std::string> reported;
  for (const auto* prep_root : {&*root, &*intel}) {
    auto prepared = verify::PreparedCollateral::Prepare(p->collateral(), *prep_root);
    auto r = verify::QuoteVerifier(*root).Verify(*quote, *prepared, {.now = config.issued_at + 60});
    for (const auto& c : r.checks) reported.insert(c.name);
  }
  EXPECT_GT(reported.size(), 30u);
  Ledger ledger = ParseLedger();
  for (const auto& name : reported)
    EXPECT_TRUE(ledger.checks.count(name)) << name << " is reported but not in docs/verification.md's ledger";
}

TEST(VerificationLedger, EveryNamedTestExists) {
  Ledger ledger = ParseLedger();
  ASSERT_FALSE(ledger.tests.empty());
  std::string sources = ReadText("tests/verify/verifier_test.cc") + ReadText("tests/simulator/simulator_test.cc") +
                        ReadText("tests/simulator/verifier_refusals_test.cc");
  for (const auto& test : ledger.tests) {
    size_t dot = test.find('.');
    ASSERT_NE(dot, std::string::npos) << test;
    std::string decl = "TEST(" + test.substr(0, dot) + ", " + test.substr(dot + 1) + ")";
    EXPECT_NE(sources.find(decl), std::string::npos) << decl << " is named in the ledger but does not exist";
  }
}

TEST(VerificationLedger, EveryMutationIsListed) {
  Ledger ledger = ParseLedger();
  std::istringstream script(ReadText("scripts/mutate.sh"));
  std::set<std::string> mutations;
  const std::regex row("^([a-z_]+) @@ ");
  for (std::string line; std::getline(script, line);) {
    std::smatch m;
    if (std::regex_search(line, m, row)) mutations.insert(m[1]);
  }
  EXPECT_GT(mutations.size(), 20u);
  for (const auto& m : mutations)
    EXPECT_TRUE(ledger.mutations.count(m)) << "mutation " << m << " is not in docs/verification.md's ledger";
  for (const auto& m : ledger.mutations) {
    EXPECT_TRUE(mutations.count(m)) << "the ledger names mutation " << m << ", scripts/mutate.sh has none";
  }
}

}  // namespace
}  // namespace tdxvirt::simulator
