// A real HTTP server on 127.0.0.1:PORT (cpp-httplib) serving fixed bodies by path: the JWKS at
// /certs and CRLs at the paths the certificates' CDPs name. Intel's C fixture pins its CDPs to
// http://localhost:8081, hence a fixed port; CTest serialises its users with RESOURCE_LOCK
// port8081.
#pragma once

#include <httplib.h>

#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace tdxvirt::ita::testing {

class StaticServer {
 public:
  explicit StaticServer(int port = 8081) {
    server_.Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard g(mu_);
      auto it = bodies_.find(req.path);
      if (it == bodies_.end()) {
        res.status = 404;
        return;
      }
      res.set_content(it->second,
                      req.path == "/certs" ? "application/json" : "application/pkix-crl");
    });
    // bind_to_port listens before returning, so requests made after the constructor queue until
    // the accept loop runs: no wait for readiness is needed.
    if (!server_.bind_to_port("127.0.0.1", port)) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1:" << port;
      return;
    }
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~StaticServer() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  void Set(const std::string& path, std::string body) {
    std::lock_guard g(mu_);
    bodies_[path] = std::move(body);
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  std::mutex mu_;
  std::map<std::string, std::string> bodies_;
};

}  // namespace tdxvirt::ita::testing
