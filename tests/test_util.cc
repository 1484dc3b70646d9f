#include "test_util.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/file.h"

namespace tdxvirt::testing {

pid_t SpawnTdxvirt(const std::vector<std::string>& args, const std::string& err_path) {
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = open("/dev/null", O_RDONLY);
    if (err < 0 || in < 0) _exit(126);
    dup2(err, 2);
    dup2(in, 0);
    std::vector<char*> argv{const_cast<char*>(TDXVIRT_BIN)};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(TDXVIRT_BIN, argv.data());
    _exit(127);
  }
  return pid;
}

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
