// Starting a cpp-httplib server on its own thread, so that stopping it right away works.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

namespace tdxvirt {

// Runs server.listen_after_bind() (bind first) on a new thread and returns once the accept loop
// runs or has already ended. Why wait: httplib's stop() does nothing until the loop has set
// is_running(), so a stop() that came first (a SIGTERM or Ctrl-C just after start) was lost and
// the join then waited forever.
template <class Server>
std::thread ListenInThread(Server& server) {
  auto ended = std::make_shared<std::atomic<bool>>(false);
  std::thread t([&server, ended] {
    server.listen_after_bind();
    ended->store(true);
  });
  while (!server.is_running() && !ended->load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return t;
}

}  // namespace tdxvirt
