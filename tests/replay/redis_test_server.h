// A real redis-server for a test: on a free loopback port, without persistence, ready once it
// answers PING, killed (SIGKILL, as a crash) by Kill() or at the end. Start() again brings it back
// on the same port with empty memory, as a Redis restart without persistence does.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/net.h"
#include "test_util.h"

namespace tdxvirt::testing {

// The redis-server binary, "" when it is not installed.
inline std::string RedisServerBinary() {
  for (const char* p : {"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

#define SKIP_WITHOUT_REDIS_SERVER()                                                                   \
  if (::tdxvirt::testing::RedisServerBinary().empty())                                               \
  GTEST_SKIP() << "redis-server is not installed (apt-get install redis-server; "                    \
                  "scripts/install-deps.sh installs it)"

// Sends `commands` (inline protocol, one per element) on one connection and returns the reply line
// of the last ("+PONG", ":42", "$-1", "-NOAUTH ..."); "" when the connection fails.
inline std::string RedisRaw(int port, const std::vector<std::string>& commands) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string last;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    for (const auto& c : commands) {
      std::string line = c + "\r\n";
      if (send(fd, line.data(), line.size(), MSG_NOSIGNAL) != ssize_t(line.size())) break;
      last.clear();
      char ch;
      while (recv(fd, &ch, 1, 0) == 1 && ch != '\n')
        if (ch != '\r') last += ch;
      if (!last.empty() && last[0] == '$' && last != "$-1") {  // a bulk string: its line follows
        last.clear();
        while (recv(fd, &ch, 1, 0) == 1 && ch != '\n')
          if (ch != '\r') last += ch;
      }
    }
  }
  close(fd);
  return last;
}

class RedisTestServer {
 public:
  // `extra`: more redis-server arguments, e.g. {"--requirepass", "secret"}.
  explicit RedisTestServer(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    port_ = FreeLoopbackPort();
    Start();
  }
  ~RedisTestServer() { Kill(); }
  RedisTestServer(const RedisTestServer&) = delete;
  RedisTestServer& operator=(const RedisTestServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  bool running() const { return pid_ > 0; }
  std::string Log() const { return ReadFileText(dir_.File("redis.log")); }

  // Starts (again) on the same port and waits until it answers PING; false (and a test failure)
  // when it exits or does not answer within the watchdog.
  bool Start() {
    if (pid_ > 0) return true;
    std::vector<std::string> args = {RedisServerBinary(), "--port", std::to_string(port_),
                                     "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                     "--dir", dir_.path(), "--logfile", dir_.File("redis.log")};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      int null = open("/dev/null", O_RDWR);
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    // Watchdog: generous for a loaded machine; the loop ends as soon as it answers.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "redis-server exited: " << Log();
        return false;
      }
      std::string r = RedisRaw(port_, {"PING"});
      if (r == "+PONG" || r.starts_with("-NOAUTH")) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "redis-server did not answer PING on port " << port_ << ": " << Log();
    Kill();
    return false;
  }

  // SIGKILL and reap: the port is closed when this returns.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) == -1 && errno == EINTR) {
    }
    pid_ = -1;
  }

 private:
  std::vector<std::string> extra_;
  TempDir dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace tdxvirt::testing
