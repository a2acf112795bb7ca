#include "kiln/dist/scheduler/scheduler_service.hpp"

#include "kiln/dist/job_token.hpp"

namespace kiln::dist {

net::ServerResponse error_response(int status, std::string message, bool retry_elsewhere) {
  net::ServerResponse r;
  r.status = status;
  r.body = to_json(ErrorBody{std::move(message), retry_elsewhere});
  return r;
}

bool has_bearer(const net::ServerRequest& request, std::string_view expected) {
  if (expected.empty()) {
    return false;
  }
  auto value = request.header("authorization");
  constexpr std::string_view k_prefix = "Bearer ";
  if (!value || !value->starts_with(k_prefix)) {
    return false;
  }
  return constant_time_equal(std::string_view(*value).substr(k_prefix.size()), expected);
}

SchedulerService::SchedulerService(SchedulerServiceOptions options, const util::Clock& clock,
                                   util::Logger log)
    : m_options(std::move(options)), m_log(std::move(log)) {
  SchedulerOptions s = m_options.scheduler;
  s.worker_secret = m_options.worker_token;
  m_scheduler = std::make_unique<Scheduler>(s, clock, m_log);
}

expected<std::unique_ptr<SchedulerService>, std::string> SchedulerService::start(
    SchedulerServiceOptions options, const util::Clock& clock, util::Logger log) {
  if (options.client_token.empty() || options.worker_token.empty()) {
    return unexpected(std::string("both a client token and a worker token are required"));
  }
  std::unique_ptr<SchedulerService> service(
      new SchedulerService(std::move(options), clock, std::move(log)));
  auto* raw = service.get();
  auto server = net::HttpServer::start(
      service->m_options.server,
      [raw](net::ServerRequest&& req, net::Reply reply) { raw->handle(std::move(req), reply); });
  if (!server) {
    return unexpected(server.error());
  }
  service->m_server = std::move(*server);
  service->m_ticker = std::thread([raw] {
    std::unique_lock lock(raw->m_tick_mutex);
    while (!raw->m_stopping) {
      raw->m_tick_cv.wait_for(lock, std::chrono::milliseconds(100));
      lock.unlock();
      raw->m_scheduler->tick();
      lock.lock();
    }
  });
  return service;
}

SchedulerService::~SchedulerService() {
  stop();
}

void SchedulerService::stop() {
  {
    std::lock_guard lock(m_tick_mutex);
    m_stopping = true;
  }
  m_tick_cv.notify_all();
  if (m_ticker.joinable()) {
    m_ticker.join();
  }
  if (m_server) {
    m_server->stop();
  }
}

void SchedulerService::handle(net::ServerRequest&& req, net::Reply reply) {
  const std::string path = req.path;
  auto reject = [&](int status, std::string message) {
    m_log.warn("request_rejected",
               {{"path", path}, {"peer", req.peer}, {"status", status}, {"error", message}});
    reply(error_response(status, std::move(message), false));
  };
  auto method_is = [&](std::string_view m) {
    if (req.method == m) {
      return true;
    }
    reject(405, "use " + std::string(m) + " for " + path);
    return false;
  };

  if (path == "/healthz") {
    net::ServerResponse r;
    r.content_type = "text/plain";
    r.body = "ok: " + std::to_string(m_scheduler->workers()) + " workers\n";
    reply(std::move(r));
    return;
  }
  if (path == "/status") {
    net::ServerResponse r;
    r.body = m_scheduler->status_json();
    reply(std::move(r));
    return;
  }
  if (path == "/metrics") {
    net::ServerResponse r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = m_scheduler->metrics_text();
    reply(std::move(r));
    return;
  }
  if (path == "/api/v1/workers/heartbeat" || path == "/api/v1/workers/deregister") {
    if (!method_is("POST")) {
      return;
    }
    if (!has_bearer(req, m_options.worker_token)) {
      reject(401, "a worker token is required");
      return;
    }
    if (path.ends_with("heartbeat")) {
      auto h = parse_heartbeat(req.body);
      if (!h) {
        reject(400, h.error());
        return;
      }
      net::ServerResponse r;
      r.body = to_json(m_scheduler->heartbeat(*h));
      reply(std::move(r));
    } else {
      auto d = parse_deregister(req.body);
      if (!d) {
        reject(400, d.error());
        return;
      }
      m_scheduler->deregister(*d);
      net::ServerResponse r;
      r.body = "{}";
      reply(std::move(r));
    }
    return;
  }
  if (path == "/api/v1/jobs/alloc") {
    if (!method_is("POST")) {
      return;
    }
    if (!has_bearer(req, m_options.client_token)) {
      reject(401, "a client token is required");
      return;
    }
    auto a = parse_alloc_request(req.body);
    if (!a) {
      reject(400, a.error());
      return;
    }
    m_scheduler->alloc(*a, [reply](expected<Allocation, ErrorBody> result) {
      if (result) {
        net::ServerResponse r;
        r.body = to_json(*result);
        reply(std::move(r));
        return;
      }
      auto r = error_response(503, result.error().error, result.error().retry_elsewhere);
      r.headers.emplace_back("Retry-After", "1");
      reply(std::move(r));
    });
    return;
  }
  reject(404, "no such endpoint");
}

}  // namespace kiln::dist
