#include "common/http_listen.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdlib>
#include <future>

namespace tdxvirt {
namespace {

// Fails the test (and ends the process, since a hung join cannot be undone) when `fn` does not
// finish in time: the bug this guards against is a join that never returns.
template <class Fn>
void WithinSeconds(int seconds, Fn fn) {
  auto done = std::async(std::launch::async, fn);
  if (done.wait_for(std::chrono::seconds(seconds)) != std::future_status::ready) {
    ADD_FAILURE() << "did not finish within " << seconds << " s";
    std::_Exit(1);
  }
  done.get();
}

// A stop() straight after start is what a SIGTERM or Ctrl-C during start-up does.
TEST(ListenInThread, StopRightAfterStartAlwaysEndsTheLoop) {
  WithinSeconds(60, [] {
    for (int i = 0; i < 200; ++i) {
      httplib::Server server;
      ASSERT_GT(server.bind_to_any_port("127.0.0.1"), 0);
      std::thread t = ListenInThread(server);
      EXPECT_TRUE(server.is_running());
      server.stop();
      t.join();
      EXPECT_FALSE(server.is_running());
    }
  });
}

TEST(ListenInThread, ServesRequestsOnceStarted) {
  httplib::Server server;
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& r) { r.set_content("ok", "text/plain"); });
  int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread t = ListenInThread(server);
  httplib::Client c("127.0.0.1", port);
  auto res = c.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, "ok");
  server.stop();
  t.join();
}

// Never bound: the loop ends at once; the wait must not spin forever on is_running().
TEST(ListenInThread, AServerThatCannotListenDoesNotHang) {
  WithinSeconds(30, [] {
    httplib::Server server;
    std::thread t = ListenInThread(server);
    t.join();
    EXPECT_FALSE(server.is_running());
  });
}

}  // namespace
}  // namespace tdxvirt
