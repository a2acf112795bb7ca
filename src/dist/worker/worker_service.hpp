#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kiln/dist/protocol.hpp"
#include "kiln/dist/toolchain_cache.hpp"
#include "kiln/dist/worker/input_store.hpp"
#include "kiln/dist/worker/sandbox.hpp"
#include "kiln/net/server/http_server.hpp"
#include "kiln/util/clock.hpp"
#include "kiln/util/log.hpp"
#include "kiln/util/thread_annotations.hpp"

namespace kiln::dist {

struct WorkerOptions {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;
  // Where clients reach this worker; empty: https://<listen_host>:<bound port>.
  // Its host goes into the certificate. https:// (the default) or http://.
  std::string public_url;
  std::string scheduler_url;     // http(s)://host:port of the scheduler
  std::string scheduler_ca_pem;  // trust for an https scheduler; empty: the system store
  std::string worker_token;
  std::string server_id;  // empty: "<hostname>-<port>"
  int cores = 0;          // 0: the machine's
  std::string work_dir;   // toolchains/, inputs/ and jobs/ under it
  uint64_t toolchain_cache_bytes = uint64_t{10} << 30;
  uint64_t input_cache_bytes = uint64_t{1} << 30;  // InputStore; 0: inputs are written
  SandboxLimits limits;
  JobLimits job_limits;
  uint64_t max_body_bytes = uint64_t{1} << 30;
  std::chrono::milliseconds drain_grace{std::chrono::minutes(5)};
};

// A worker (docs/dist-protocol.md, "Worker"): an HTTPS server with a fresh
// self-signed certificate, a heartbeat to the scheduler, toolchains in a
// size-limited cache, jobs run in a bubblewrap sandbox on a bounded pool of
// `cores + 1 + cores/8` threads. Logs carry job_id and server_id.
class WorkerService {
 public:
  static expected<std::unique_ptr<WorkerService>, std::string> start(WorkerOptions options,
                                                                     util::Logger log);
  ~WorkerService();

  uint16_t port() const { return m_server->port(); }
  const std::string& server_id() const { return m_options.server_id; }
  const std::string& public_url() const { return m_options.public_url; }
  const std::string& certificate() const { return m_cert_pem; }
  const InputStore& input_store() const { return *m_inputs; }

  // SIGTERM: tell the scheduler at once, take no new job, finish the running
  // ones (up to drain_grace), deregister, stop. Returns when done.
  void drain();
  // Stops at once (jobs are abandoned; the scheduler prunes this worker).
  void stop();

  void handle(net::ServerRequest&& request, net::Reply reply);

 private:
  explicit WorkerService(WorkerOptions options, util::Logger log);
  void heartbeat_loop();
  bool send_heartbeat();
  void handle_toolchain(const std::string& id, const std::string& job_id,
                        net::ServerRequest&& request, net::Reply reply);
  void handle_run(const std::string& job_id, net::ServerRequest&& request, net::Reply reply);
  bool authorised(const net::ServerRequest& request, const std::string& job_id) const;
  void run_job(const std::string& job_id, std::string body, net::Reply reply,
               std::shared_ptr<const std::atomic<bool>> client_gone);
  void pool_loop();
  void job_ended();

  WorkerOptions m_options;
  util::Logger m_log;
  std::string m_nonce;
  std::string m_cert_pem;
  std::unique_ptr<ToolchainCache> m_toolchains;
  std::unique_ptr<InputStore> m_inputs;
  std::unique_ptr<net::HttpServer> m_server;

  util::Mutex m_mutex;
  std::condition_variable_any m_cv;
  bool m_stopping GUARDED_BY(m_mutex) = false;
  bool m_draining GUARDED_BY(m_mutex) = false;
  bool m_heartbeat_now GUARDED_BY(m_mutex) = false;
  // The least time between two heartbeats (docs/dist-protocol.md).
  static constexpr std::chrono::milliseconds k_job_end_gap{250};
  bool m_heartbeats_stopped GUARDED_BY(m_mutex) = false;
  std::vector<std::string> m_jobs GUARDED_BY(m_mutex);  // accepted, not finished
  std::deque<std::function<void()>> m_queue GUARDED_BY(m_mutex);
  uint64_t m_jobs_done GUARDED_BY(m_mutex) = 0;
  // Ended since the last acknowledged heartbeat, oldest first, at most
  // k_max_ended (the scheduler's grace for a pending job covers the rest).
  static constexpr size_t k_max_ended = 1000;
  std::vector<std::string> m_ended GUARDED_BY(m_mutex);
  double m_busy_seconds GUARDED_BY(m_mutex) = 0;
  uint64_t m_jobs_failed GUARDED_BY(m_mutex) = 0;
  uint64_t m_jobs_refused GUARDED_BY(m_mutex) = 0;
  int m_interval_ms GUARDED_BY(m_mutex) = 2000;
  std::thread m_heartbeat;
  std::vector<std::thread> m_pool;
};

}  // namespace kiln::dist
