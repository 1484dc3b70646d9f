#include "test_util.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/file.h"

namespace tdxvirt::testing {

std::string TestdataPath(const std::string& relative) {
  return std::string(TDXVIRT_TESTDATA) + "/" + relative;
}

Bytes ReadTestdata(const std::string& relative) {
  auto data = ReadFile(TestdataPath(relative));
  EXPECT_TRUE(data.ok()) << data.error();
  return data.ok() ? *data : Bytes{};
}

CommandResult RunTdxvirt(const std::string& args, const std::string& stdin_text) {
  TempDir tmp;
  WriteFile(tmp.File("in"), stdin_text);
  std::string cmd = std::string(TDXVIRT_BIN) + " " + args + " <" + tmp.File("in") + " >" +
                    tmp.File("out") + " 2>" + tmp.File("err");
  int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto read = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  r.out = read(tmp.File("out"));
  r.err = read(tmp.File("err"));
  return r;
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "tdxvirt-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

}  // namespace tdxvirt::testing
