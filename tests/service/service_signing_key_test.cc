// `serve attestation --init-signing-key` after an interruption: every partial state it can leave
// (and ones it cannot, made by hand) is created on disk, then the command is run.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/file.h"
#include "service/jose.h"
#include "test_util.h"

namespace tdxvirt::service {
namespace {

using tdxvirt::testing::RunTdxvirt;
using tdxvirt::testing::TempDir;
using tdxvirt::testing::WriteFile;

std::string Text(const std::string& path) {
  auto b = ReadFile(path);
  return b.ok() ? std::string(AsString(*b)) : "";
}

// Killed between its two writes, an init left the key alone: the next init issues the chain for
// that same key instead of refusing because the key exists.
TEST(SigningKeyInit, KeyWithoutChainIsCompletedForTheSameKey) {
  TempDir d;
  std::string key = d.File("k.pem"), chain = d.File("c.pem");
  auto pem = CreateSigningKeyPem({.key_bits = 2048});
  ASSERT_TRUE(pem.ok()) << pem.error();
  ASSERT_TRUE(WriteFileAtomic(key, AsBytes(pem->first), 0600).ok());
  auto r = RunTdxvirt("serve attestation --init-signing-key --signing-key " + key + " --signing-chain " + chain);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["created"], "chain for the existing key");
  EXPECT_EQ(Text(key), pem->first);  // the key is kept
  auto loaded = SigningKey::Load(key, chain);  // checks the chain's leaf is this key
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  struct stat st {};
  ASSERT_EQ(stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(chain.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST(SigningKeyInit, ChainWithoutKeyIsRefusedWithTheFix) {
  TempDir d;
  std::string key = d.File("k.pem"), chain = d.File("c.pem");
  WriteFile(chain, "-----BEGIN CERTIFICATE-----\n");
  auto s = InitSigningKeyFiles(key, chain, {.key_bits = 2048});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), chain + " exists but " + key + " does not: a chain without its key cannot sign; restore " +
                           key + ", or remove " + chain + " and run --init-signing-key again");
  EXPECT_FALSE(std::filesystem::exists(key));
}

TEST(SigningKeyInit, UnusableKeyWithoutChainIsRefusedWithTheFix) {
  TempDir d;
  std::string key = d.File("k.pem"), chain = d.File("c.pem");
  WriteFile(key, "-----BEGIN PRIVATE KEY-----\nMIIE");  // cut short by an older, non-atomic writer
  auto s = InitSigningKeyFiles(key, chain, {.key_bits = 2048});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), key + " exists without " + chain + " but is not a PEM private key: remove " + key +
                           " and run --init-signing-key again");
  EXPECT_FALSE(std::filesystem::exists(chain));
}

TEST(SigningKeyInit, CreatesBothThenRefusesToOverwrite) {
  TempDir d;
  std::string key = d.File("k.pem"), chain = d.File("c.pem");
  auto s = InitSigningKeyFiles(key, chain, {.key_bits = 2048});
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_EQ(*s, SigningKeyInit::kCreated);
  std::string before = Text(key);
  auto again = InitSigningKeyFiles(key, chain, {.key_bits = 2048});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error(), key + " and " + chain +
                               " exist; refusing to overwrite a signing key (remove both to create a new one)");
  EXPECT_EQ(Text(key), before);
  EXPECT_TRUE(SigningKey::Load(key, chain).ok());
}

}  // namespace
}  // namespace tdxvirt::service
