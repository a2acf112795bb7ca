#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "kiln/dist/scheduler/scheduler.hpp"
#include "kiln/net/server/http_server.hpp"

namespace kiln::dist {

struct SchedulerServiceOptions {
  net::ServerOptions server;  // listen address, TLS, limits
  SchedulerOptions scheduler;
  std::string client_token;  // clients present it as "Authorization: Bearer <token>"
  std::string worker_token;  // workers likewise; also signs job tokens
};

// The scheduler on HTTP (docs/dist-protocol.md): routes, authentication,
// a timer that prunes silent workers and ends expired waits.
class SchedulerService {
 public:
  static expected<std::unique_ptr<SchedulerService>, std::string> start(
      SchedulerServiceOptions options, const util::Clock& clock, util::Logger log);
  ~SchedulerService();  // stop()

  uint16_t port() const { return m_server->port(); }
  Scheduler& scheduler() { return *m_scheduler; }
  void stop();

  // The HTTP handler, exposed for tests that drive it without sockets.
  void handle(net::ServerRequest&& request, net::Reply reply);

 private:
  SchedulerService(SchedulerServiceOptions options, const util::Clock& clock, util::Logger log);

  const SchedulerServiceOptions m_options;
  util::Logger m_log;
  std::unique_ptr<Scheduler> m_scheduler;
  std::unique_ptr<net::HttpServer> m_server;
  std::mutex m_tick_mutex;
  std::condition_variable m_tick_cv;
  bool m_stopping = false;
  std::thread m_ticker;
};

// An answer with a JSON ErrorBody.
net::ServerResponse error_response(int status, std::string message, bool retry_elsewhere);

// Whether `request` carries "Authorization: Bearer <expected>" (compared in
// constant time). An empty `expected` accepts nothing.
bool has_bearer(const net::ServerRequest& request, std::string_view expected);

}  // namespace kiln::dist
