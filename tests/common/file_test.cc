#include "common/file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "test_util.h"

namespace tdxvirt {
namespace {

using testing::TempDir;
using testing::WriteFile;

TEST(File, ReadsBinaryAsIs) {
  TempDir dir;
  WriteFile(dir.File("q"), std::string("\x04\x00\x02\x00\x81", 5));
  auto r = ReadBinaryOrHex(dir.File("q"));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(*r, (Bytes{4, 0, 2, 0, 0x81}));
}

TEST(File, DecodesHexText) {
  TempDir dir;
  WriteFile(dir.File("q"), "0x04000200\n81\n");
  auto r = ReadBinaryOrHex(dir.File("q"));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(*r, (Bytes{4, 0, 2, 0, 0x81}));
}

TEST(File, EnforcesSizeLimit) {
  TempDir dir;
  WriteFile(dir.File("big"), std::string(100, '\x01'));
  auto r = ReadFile(dir.File("big"), 99);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("larger than the limit of 99 bytes"), std::string::npos);
  EXPECT_TRUE(ReadFile(dir.File("big"), 100).ok());
}

TEST(File, MissingFileNamesThePath) {
  auto r = ReadFile("/nonexistent/quote.bin");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("/nonexistent/quote.bin"), std::string::npos);
}

TEST(File, AtomicWriteSetsModeAndReplaces) {
  TempDir dir;
  std::string path = dir.File("key.pem");
  ASSERT_TRUE(WriteFileAtomic(path, AsBytes("first"), 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(path, AsBytes("second"), 0600).ok());
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto back = ReadFile(path);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(AsString(*back), "second");
}

TEST(File, AtomicWriteFailureLeavesNoFile) {
  auto s = WriteFileAtomic("/nonexistent-dir/x", AsBytes("data"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("cannot create"), std::string::npos);
}

}  // namespace
}  // namespace tdxvirt
