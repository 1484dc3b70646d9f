#include "common/file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <vector>

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
  EXPECT_EQ(r.error(), dir.File("big") + " is larger than the limit of 99 bytes");
  EXPECT_TRUE(ReadFile(dir.File("big"), 100).ok());
}

TEST(File, MissingFileNamesThePath) {
  auto r = ReadFile("/nonexistent/quote.bin");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "cannot open /nonexistent/quote.bin: No such file or directory");
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
  // The temporary's name ends in a random suffix; the rest is compared whole.
  EXPECT_TRUE(std::regex_match(
      s.error(), std::regex(R"(cannot create /nonexistent-dir/\.x\.tmp-[0-9a-f]{16}: No such file or directory)")))
      << s.error();
}

std::vector<std::string> Temporaries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos)
      out.push_back(e.path().filename().string());
  return out;
}

// The mode is exact from creation, whatever the umask (0077 would turn 0644 into 0600, 0 would
// leave it; 0777 would create 0000).
TEST(File, AtomicWriteModeIsIndependentOfTheUmask) {
  TempDir dir;
  for (mode_t umask_value : {mode_t(0), mode_t(022), mode_t(077), mode_t(0777)}) {
    mode_t old = umask(umask_value);
    Status a = WriteFileAtomic(dir.File("pub"), AsBytes("p"), 0644);
    Status b = WriteFileAtomic(dir.File("key"), AsBytes("k"), 0600);
    umask(old);
    ASSERT_TRUE(a.ok()) << a.error();
    ASSERT_TRUE(b.ok()) << b.error();
    struct stat st {};
    ASSERT_EQ(stat(dir.File("pub").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0644u) << std::oct << umask_value;
    ASSERT_EQ(stat(dir.File("key").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << std::oct << umask_value;
  }
  EXPECT_TRUE(Temporaries(dir.path()).empty());
}

// A symbolic link or file planted where a new file is to be created is refused, never written
// through (the old WriteFileAtomic opened PATH.tmp.<pid> with O_TRUNC and followed it).
TEST(File, CreateNewFileRefusesAPlantedSymlinkOrFile) {
  TempDir dir;
  WriteFile(dir.File("victim"), "original");
  std::filesystem::create_symlink(dir.File("victim"), dir.File("planted"));
  auto r = CreateNewFile(dir.File("planted"), 0600);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "cannot create " + dir.File("planted") + ": File exists");
  std::filesystem::create_symlink(dir.File("absent"), dir.File("dangling"));
  auto dangling = CreateNewFile(dir.File("dangling"), 0600);
  ASSERT_FALSE(dangling.ok());
  EXPECT_EQ(dangling.error(), "cannot create " + dir.File("dangling") + ": File exists");
  EXPECT_FALSE(std::filesystem::exists(dir.File("absent")));
  auto existing = CreateNewFile(dir.File("victim"), 0600);
  ASSERT_FALSE(existing.ok());
  EXPECT_EQ(existing.error(), "cannot create " + dir.File("victim") + ": File exists");
  auto back = ReadFile(dir.File("victim"));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(AsString(*back), "original");
}

// The temporary name is no longer predictable; the old one (PATH.tmp.<pid>) planted as a symlink
// to a file of the victim's receives nothing, and a symlink with the new prefix is removed, not
// followed.
TEST(File, AtomicWriteNeverWritesThroughAPlantedTemporary) {
  TempDir dir;
  WriteFile(dir.File("victim"), "original");
  std::string key = dir.File("key.pem");
  std::filesystem::create_symlink(dir.File("victim"), key + ".tmp." + std::to_string(getpid()));
  std::filesystem::create_symlink(dir.File("victim"), dir.File(".key.pem.tmp-0000000000000000"));
  ASSERT_TRUE(WriteFileAtomic(key, AsBytes("SECRET"), 0600).ok());
  EXPECT_EQ(AsString(*ReadFile(dir.File("victim"))), "original");
  EXPECT_EQ(AsString(*ReadFile(key)), "SECRET");
  EXPECT_FALSE(std::filesystem::is_symlink(dir.File(".key.pem.tmp-0000000000000000")));
}

// A temporary left by a killed writer (no lock held) is removed by the next write of the same
// file; one that a live writer holds locked is left alone.
TEST(File, AtomicWriteRemovesStaleTemporariesOnly) {
  TempDir dir;
  std::string key = dir.File("key.pem");
  WriteFile(dir.File(".key.pem.tmp-1111111111111111"), "half a key");
  WriteFile(dir.File(".key.pem.tmp-2222222222222222"), "being written");
  WriteFile(dir.File(".other.pem.tmp-3333333333333333"), "another file's");
  int live = open(dir.File(".key.pem.tmp-2222222222222222").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(live, 0);
  ASSERT_EQ(flock(live, LOCK_EX), 0);
  ASSERT_TRUE(WriteFileAtomic(key, AsBytes("k"), 0600).ok());
  auto left = Temporaries(dir.path());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{".key.pem.tmp-2222222222222222",
                                            ".other.pem.tmp-3333333333333333"}));
  close(live);
}

TEST(File, AtomicWriteWithoutReplaceKeepsTheExistingFile) {
  TempDir dir;
  std::string key = dir.File("key.pem");
  ASSERT_TRUE(WriteFileAtomic(key, AsBytes("first"), 0600, false).ok());
  Status s = WriteFileAtomic(key, AsBytes("second"), 0600, false);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), key + " exists; refusing to replace it");
  EXPECT_EQ(AsString(*ReadFile(key)), "first");
  EXPECT_TRUE(Temporaries(dir.path()).empty());
}

// A writer killed with -9 while it rewrites a file leaves one whole version, never a mix, and the
// next write cleans up what it left.
TEST(File, AtomicWriteKilledMidWriteLeavesAWholeFile) {
  TempDir dir;
  std::string path = dir.File("state");
  const size_t size = 4 << 20;
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(ready[0]);
    for (unsigned gen = 0;; ++gen) {
      std::string data(size, char('a' + gen % 26));
      if (!WriteFileAtomic(path, AsBytes(data), 0600).ok()) _exit(1);
      if (gen == 0 && write(ready[1], "x", 1) != 1) _exit(1);
    }
  }
  close(ready[1]);
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);  // the first version is complete: kill during a later one
  close(ready[0]);
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  auto back = ReadFile(path, size);
  ASSERT_TRUE(back.ok()) << back.error();
  ASSERT_EQ(back->size(), size);
  EXPECT_EQ(std::count(back->begin(), back->end(), (*back)[0]), std::ptrdiff_t(size));
  ASSERT_TRUE(WriteFileAtomic(path, AsBytes("next"), 0600).ok());
  EXPECT_TRUE(Temporaries(dir.path()).empty());
}

TEST(File, ReadRegularFileRefusesFifoDirectoryDeviceAndSymlink) {
  TempDir dir;
  ASSERT_EQ(mkfifo(dir.File("fifo").c_str(), 0600), 0);  // no writer: a blocking open would hang
  auto f = ReadRegularFile(dir.File("fifo"), 100);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error(), dir.File("fifo") + " is a FIFO (named pipe), not a regular file");
  EXPECT_EQ(ReadRegularFile(dir.path(), 100).error(), dir.path() + " is a directory, not a regular file");
  EXPECT_EQ(ReadRegularFile("/dev/null", 100).error(), "/dev/null is a character device, not a regular file");
  WriteFile(dir.File("real"), "text");
  std::filesystem::create_symlink(dir.File("real"), dir.File("link"));
  EXPECT_EQ(AsString(*ReadRegularFile(dir.File("link"), 100)), "text");
  EXPECT_EQ(ReadRegularFile(dir.File("link"), 100, false).error(),
            dir.File("link") + " is a symbolic link, not a regular file");
  EXPECT_EQ(ReadRegularFile(dir.File("real"), 3).error(),
            dir.File("real") + " is larger than the limit of 3 bytes");
}

}  // namespace
}  // namespace tdxvirt
