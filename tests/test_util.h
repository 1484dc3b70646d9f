// Helpers shared by the test suites: the team's real test data and running the tdxvirt binary.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/openssl.h"

namespace tdxvirt::testing {

// Path under shared/testdata, e.g. TestdataPath("quotes/tdx-v4-uptodate/quote.bin").
std::string TestdataPath(const std::string& relative);
// Reads a file under shared/testdata; fails the test (and returns empty) when it is missing.
Bytes ReadTestdata(const std::string& relative);

struct CommandResult {
  int exit_code = -1;
  std::string out;  // standard output
  std::string err;  // standard error
};
// Runs the tdxvirt binary with `args` (shell words, already quoted), optional stdin text.
CommandResult RunTdxvirt(const std::string& args, const std::string& stdin_text = "");

// Starts `tdxvirt args...` in the background (stdin /dev/null, stderr to `err_path`); the child
// gets SIGTERM if the test process dies, so a test killed by its timeout leaves no server behind.
pid_t SpawnTdxvirt(const std::vector<std::string>& args, const std::string& err_path);
// Sends SIGTERM to a spawned daemon and reaps it: its exit code, or -1 if a signal ended it.
int TerminateAndWait(pid_t pid);
// Polls a daemon's log (generously: a loaded 2-core machine) for the port it logged after
// `"address":"127.0.0.1:`; 0 when it never appears (the daemon is then killed).
int WaitForLoggedPort(const std::string& log_path, pid_t pid);
// A whole text file ("" when missing).
std::string ReadFileText(const std::string& path);

// A self-signed P-256 certificate for 127.0.0.1 (CA:TRUE, so clients can trust it directly): the
// identity of loopback HTTPS peers in tests.
struct TlsIdentity {
  ossl::PkeyPtr key;
  ossl::X509Ptr cert;
  std::string cert_pem;
};
TlsIdentity MakeLoopbackTlsIdentity(const std::string& common_name);

// A fresh directory under the test temp dir, removed by the caller's TempDir destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& content);

}  // namespace tdxvirt::testing
