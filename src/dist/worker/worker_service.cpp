#include "kiln/dist/worker/worker_service.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "kiln/dist/job_token.hpp"
#include "kiln/net/curl_client.hpp"
#include "kiln/net/server/tls.hpp"
#include "kiln/net/url.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/hex.hpp"
#include "kiln/util/path.hpp"

namespace kiln::dist {

namespace {

net::ServerResponse json_error(int status, std::string message, bool retry_elsewhere) {
  net::ServerResponse r;
  r.status = status;
  r.body = to_json(ErrorBody{std::move(message), retry_elsewhere});
  return r;
}

void remove_tree(const std::string& dir) {
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

std::string host_of(const std::string& url) {
  auto parsed = net::Url::parse(url);
  return parsed ? parsed->host : std::string();
}

}  // namespace

WorkerService::WorkerService(WorkerOptions options, util::Logger log)
    : m_options(std::move(options)), m_log(std::move(log)), m_nonce(util::random_hex(12)) {}

expected<std::unique_ptr<WorkerService>, std::string> WorkerService::start(WorkerOptions options,
                                                                           util::Logger log) {
  if (options.worker_token.empty() || options.scheduler_url.empty() || options.work_dir.empty()) {
    return unexpected(
        std::string("a worker token, a scheduler URL and a work directory are required"));
  }
  if (options.cores <= 0) {
    options.cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  bool tls = !options.public_url.starts_with("http://");
  std::string cert_host =
      options.public_url.empty() ? options.listen_host : host_of(options.public_url);
  if (!util::make_directories(options.work_dir + "/jobs")) {
    return unexpected("cannot create " + options.work_dir + "/jobs");
  }
  std::unique_ptr<WorkerService> w(new WorkerService(std::move(options), std::move(log)));
  WorkerOptions& o = w->m_options;
  net::ServerOptions server;
  server.host = o.listen_host;
  server.port = o.listen_port;
  server.threads = 2;
  server.max_body_bytes = o.max_body_bytes;
  server.io_timeout = std::chrono::minutes(2);
  if (tls) {
    auto identity = net::make_self_signed(o.server_id.empty() ? "kiln-worker" : o.server_id,
                                          {cert_host, "localhost"});
    if (!identity) {
      return unexpected("cannot make a certificate: " + identity.error());
    }
    w->m_cert_pem = identity->cert_pem;
    server.tls = net::TlsIdentity{identity->cert_pem, identity->key_pem};
  }
  w->m_toolchains =
      std::make_unique<ToolchainCache>(o.work_dir + "/toolchains", o.toolchain_cache_bytes);
  w->m_inputs = std::make_unique<InputStore>(o.work_dir + "/inputs", o.input_cache_bytes);
  auto* raw = w.get();
  auto started = net::HttpServer::start(server, [raw](net::ServerRequest&& req, net::Reply reply) {
    raw->handle(std::move(req), reply);
  });
  if (!started) {
    return unexpected(started.error());
  }
  w->m_server = std::move(*started);
  if (o.public_url.empty()) {
    o.public_url = std::string(tls ? "https://" : "http://") + o.listen_host + ":" +
                   std::to_string(w->m_server->port());
  }
  if (o.server_id.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    o.server_id = std::string(host) + "-" + std::to_string(w->m_server->port());
  }
  w->m_log = w->m_log.bind({{"server_id", o.server_id}});
  size_t slots = static_cast<size_t>(o.cores) + 1 + static_cast<size_t>(o.cores) / 8;
  for (size_t i = 0; i < slots; ++i) {
    w->m_pool.emplace_back([raw] { raw->pool_loop(); });
  }
  w->m_heartbeat = std::thread([raw] { raw->heartbeat_loop(); });
  w->m_log.event("worker_started",
                 {{"url", o.public_url}, {"cores", o.cores}, {"nonce", w->m_nonce}});
  return w;
}

WorkerService::~WorkerService() {
  stop();
}

void WorkerService::stop() {
  {
    util::MutexLock lock(m_mutex);
    if (m_stopping && m_pool.empty() && !m_heartbeat.joinable()) {
      return;
    }
    m_stopping = true;
  }
  m_cv.notify_all();
  if (m_server) {
    m_server->stop();
  }
  if (m_heartbeat.joinable()) {
    m_heartbeat.join();
  }
  for (auto& t : m_pool) {
    t.join();
  }
  m_pool.clear();
}

void WorkerService::drain() {
  auto deadline = std::chrono::steady_clock::now() + m_options.drain_grace;
  {
    util::MutexLock lock(m_mutex);
    m_draining = true;
  }
  m_log.event("worker_draining");
  send_heartbeat();  // the scheduler stops allocating to this worker at once
  {
    util::MutexLock lock(m_mutex);
    while (!m_jobs.empty() && std::chrono::steady_clock::now() < deadline) {
      m_cv.wait_until(m_mutex, deadline);
    }
    if (!m_jobs.empty()) {
      m_log.warn("drain_timeout", {{"jobs_abandoned", static_cast<int64_t>(m_jobs.size())}});
    }
    // No heartbeat may follow the deregistration (it would register the
    // worker again).
    m_heartbeats_stopped = true;
  }
  m_cv.notify_all();
  if (m_heartbeat.joinable()) {
    m_heartbeat.join();
  }
  auto http = net::make_curl_client({2000, 5000});
  net::HttpRequest req;
  req.method = "POST";
  req.url = m_options.scheduler_url + "/api/v1/workers/deregister";
  std::string body = to_json(Deregister{m_options.server_id, m_nonce});
  req.body = body;
  req.headers = {"Authorization: Bearer " + m_options.worker_token,
                 "Content-Type: application/json"};
  req.ca_pem = m_options.scheduler_ca_pem;
  auto r = http->perform(req);
  m_log.event("worker_deregistered", {{"ok", r && r->status == 200 ? "yes" : "no"}});
  stop();
}

bool WorkerService::send_heartbeat() {
  Heartbeat h;
  h.server_id = m_options.server_id;
  h.nonce = m_nonce;
  h.public_url = m_options.public_url;
  h.cores = m_options.cores;
  h.certificate = m_cert_pem;
  h.toolchains = m_toolchains->ids();
  {
    util::MutexLock lock(m_mutex);
    h.jobs = m_jobs;
    h.ended = m_ended;
    h.draining = m_draining;
    h.jobs_done = m_jobs_done;
    h.busy_seconds = m_busy_seconds;
  }
  static thread_local auto http = net::make_curl_client({2000, 5000});
  net::HttpRequest req;
  req.method = "POST";
  req.url = m_options.scheduler_url + "/api/v1/workers/heartbeat";
  std::string body = to_json(h);
  req.body = body;
  req.headers = {"Authorization: Bearer " + m_options.worker_token,
                 "Content-Type: application/json"};
  req.ca_pem = m_options.scheduler_ca_pem;
  auto r = http->perform(req);
  if (!r || r->status != 200) {
    m_log.warn(
        "heartbeat_failed",
        {{"error", r ? "HTTP " + std::to_string(r->status) + " " + r->body : r.error().message}});
    return false;
  }
  auto reply = parse_heartbeat_reply(r->body);
  if (!reply) {
    m_log.warn("heartbeat_failed", {{"error", reply.error()}});
    return false;
  }
  util::MutexLock lock(m_mutex);
  m_interval_ms = reply->heartbeat_interval_ms;
  // Heard: what ended before this heartbeat is not sent again (jobs that
  // ended while it was on its way are at the back).
  m_ended.erase(m_ended.begin(), m_ended.begin() + static_cast<std::ptrdiff_t>(
                                                       std::min(h.ended.size(), m_ended.size())));
  return true;
}

void WorkerService::heartbeat_loop() {
  while (true) {
    {
      util::MutexLock lock(m_mutex);
      if (m_stopping || m_heartbeats_stopped) {
        return;
      }
    }
    send_heartbeat();
    util::MutexLock lock(m_mutex);
    const auto sent = std::chrono::steady_clock::now();
    auto until = sent + std::chrono::milliseconds(m_interval_ms);
    while (!m_stopping && !m_heartbeats_stopped && !m_heartbeat_now &&
           std::chrono::steady_clock::now() < until) {
      m_cv.wait_until(m_mutex, until);
    }
    // A job's end is told soon, but jobs ending together share a heartbeat:
    // a busy worker sends at most one every k_job_end_gap, not one per job
    // (the scheduler's oversubscription covers the slot held meanwhile).
    const auto soonest = sent + k_job_end_gap;
    while (!m_stopping && !m_heartbeats_stopped && std::chrono::steady_clock::now() < soonest) {
      m_cv.wait_until(m_mutex, soonest);
    }
    if (m_stopping || m_heartbeats_stopped) {
      return;
    }
    m_heartbeat_now = false;
  }
}

void WorkerService::job_ended() {
  {
    util::MutexLock lock(m_mutex);
    m_heartbeat_now = true;
  }
  m_cv.notify_all();
}

void WorkerService::pool_loop() {
  while (true) {
    std::function<void()> task;
    {
      util::MutexLock lock(m_mutex);
      while (!m_stopping && m_queue.empty()) {
        m_cv.wait(m_mutex);
      }
      if (m_stopping) {
        return;
      }
      task = std::move(m_queue.front());
      m_queue.pop_front();
    }
    task();
  }
}

bool WorkerService::authorised(const net::ServerRequest& request, const std::string& job_id) const {
  auto value = request.header("authorization");
  if (!value || !value->starts_with("Bearer ")) {
    return false;
  }
  return check_job_token(m_options.worker_token, std::string_view(*value).substr(7), job_id,
                         m_options.server_id, util::Clock::system().wall_seconds());
}

void WorkerService::handle(net::ServerRequest&& req, net::Reply reply) {
  const std::string path = req.path;
  auto reject = [&](int status, std::string message, bool retry = false) {
    m_log.warn("request_rejected",
               {{"path", path}, {"peer", req.peer}, {"status", status}, {"error", message}});
    reply(json_error(status, std::move(message), retry));
  };
  if (path == "/healthz") {
    net::ServerResponse r;
    r.content_type = "text/plain";
    r.body = "ok\n";
    reply(std::move(r));
    return;
  }
  if (path == "/status" || path == "/metrics") {
    util::MutexLock lock(m_mutex);
    net::ServerResponse r;
    if (path == "/status") {
      r.body = nlohmann::json{{"server_id", m_options.server_id}, {"url", m_options.public_url},
                              {"cores", m_options.cores},         {"running_jobs", m_jobs.size()},
                              {"draining", m_draining},           {"jobs_done", m_jobs_done},
                              {"toolchains", m_toolchains->ids()}}
                   .dump();
    } else {
      std::ostringstream o;
      o << "# TYPE kiln_worker_jobs_running gauge\nkiln_worker_jobs_running " << m_jobs.size()
        << "\n# TYPE kiln_worker_jobs_done_total counter\nkiln_worker_jobs_done_total "
        << m_jobs_done
        << "\n# TYPE kiln_worker_jobs_failed_total counter\nkiln_worker_jobs_failed_total "
        << m_jobs_failed
        << "\n# TYPE kiln_worker_jobs_refused_total counter\nkiln_worker_jobs_refused_total "
        << m_jobs_refused
        << "\n# TYPE kiln_worker_job_seconds_total counter\nkiln_worker_job_seconds_total "
        << m_busy_seconds << "\n# TYPE kiln_worker_toolchains gauge\nkiln_worker_toolchains "
        << m_toolchains->ids().size()
        << "\n# TYPE kiln_worker_draining gauge\nkiln_worker_draining " << (m_draining ? 1 : 0)
        << "\n";
      r.content_type = "text/plain; version=0.0.4";
      r.body = o.str();
    }
    reply(std::move(r));
    return;
  }
  constexpr std::string_view k_toolchains = "/api/v1/toolchains/";
  constexpr std::string_view k_jobs = "/api/v1/jobs/";
  if (path.starts_with(k_toolchains)) {
    std::string id = path.substr(k_toolchains.size());
    if (req.method != "PUT") {
      reject(405, "use PUT for " + path);
      return;
    }
    if (!is_valid_id(id)) {
      reject(400, "not a valid toolchain id");
      return;
    }
    std::string job = req.header("x-kiln-job").value_or("");
    if (!is_valid_id(job) || !authorised(req, job)) {
      reject(401, "a job token for this worker is required");
      return;
    }
    handle_toolchain(id, job, std::move(req), reply);
    return;
  }
  if (path.starts_with(k_jobs) && path.ends_with("/run")) {
    std::string job = path.substr(k_jobs.size(), path.size() - k_jobs.size() - 4);
    if (req.method != "POST") {
      reject(405, "use POST for " + path);
      return;
    }
    if (!is_valid_id(job) || !authorised(req, job)) {
      reject(401, "a job token for this job on this worker is required");
      return;
    }
    handle_run(job, std::move(req), reply);
    return;
  }
  reject(404, "no such endpoint");
}

void WorkerService::handle_toolchain(const std::string& id, const std::string& job_id,
                                     net::ServerRequest&& req, net::Reply reply) {
  auto body = std::make_shared<std::string>(std::move(req.body));
  util::MutexLock lock(m_mutex);
  m_queue.push_back([this, id, job_id, body, reply] {
    // The upload is made for a job: its lines carry the job's id too.
    util::Logger log = m_log.bind({{"job_id", job_id}});
    auto handle = m_toolchains->acquire(
        id, [&]() -> expected<std::string, std::string> { return std::move(*body); });
    if (!handle) {
      log.warn("toolchain_refused", {{"toolchain", id}, {"error", handle.error()}});
      reply(json_error(400, "toolchain refused: " + handle.error(), false));
      return;
    }
    log.event("toolchain_ready", {{"toolchain", id}});
    net::ServerResponse r;
    r.body = "{}";
    reply(std::move(r));
  });
  m_cv.notify_all();
}

void WorkerService::handle_run(const std::string& job_id, net::ServerRequest&& req,
                               net::Reply reply) {
  util::MutexLock lock(m_mutex);
  if (m_draining || m_stopping) {
    ++m_jobs_refused;
    reply(json_error(503, "worker draining", true));
    return;
  }
  m_jobs.push_back(job_id);
  auto body = std::make_shared<std::string>(std::move(req.body));
  m_queue.push_back([this, job_id, body, reply, gone = req.client_gone] {
    run_job(job_id, std::move(*body), reply, gone);
  });
  m_cv.notify_all();
}

void WorkerService::run_job(const std::string& job_id, std::string body, net::Reply reply,
                            std::shared_ptr<const std::atomic<bool>> client_gone) {
  util::Logger log = m_log.bind({{"job_id", job_id}});
  auto started = std::chrono::steady_clock::now();
  bool counted_done = false;
  auto finish = [&](net::ServerResponse response, bool failed) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    {
      util::MutexLock lock(m_mutex);
      std::erase(m_jobs, job_id);
      m_ended.push_back(job_id);
      if (m_ended.size() > k_max_ended) {  // a scheduler long unreachable
        m_ended.erase(m_ended.begin());
      }
      if (failed) {
        ++m_jobs_failed;
      } else if (counted_done) {
        ++m_jobs_done;
        m_busy_seconds += secs;
      }
    }
    job_ended();
    reply(std::move(response));
  };
  if (client_gone && client_gone->load()) {
    log.event("job_cancelled", {{"reason", "client gone before start"}});
    finish(json_error(499, "client gone", false), true);
    return;
  }
  auto job = decode_job(body, m_options.job_limits);
  if (!job) {
    log.warn("job_refused", {{"error", job.error()}});
    finish(json_error(400, "job refused: " + job.error(), false), true);
    return;
  }
  auto toolchain =
      m_toolchains->acquire(job->toolchain, []() -> expected<std::string, std::string> {
        return unexpected(std::string("not uploaded"));
      });
  if (!toolchain) {
    log.event("toolchain_missing", {{"toolchain", job->toolchain}});
    finish(json_error(409, "toolchain missing", false), true);
    return;
  }
  const std::string root = toolchain->root();
  util::FileStat compiler = util::FileStat::of(root + job->argv[0]);
  if (!compiler.is_regular()) {
    finish(json_error(400, "argv[0] is not a program of the toolchain", false), true);
    return;
  }
  std::string dir = m_options.work_dir + "/jobs/" + job_id;
  remove_tree(dir);
  if (auto made = make_job_root(dir, root, *job, m_inputs.get()); !made) {
    remove_tree(dir);
    log.warn("job_refused", {{"error", made.error()}});
    finish(json_error(400, "job refused: " + made.error(), false), true);
    return;
  }
  auto ms_since = [](std::chrono::steady_clock::time_point t) {
    return static_cast<int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t)
            .count());
  };
  const int64_t setup_ms = ms_since(started);
  log.event("job_started", {{"toolchain", job->toolchain},
                            {"inputs", static_cast<int64_t>(job->inputs.size())},
                            {"input_store_files", static_cast<int64_t>(m_inputs->files())},
                            {"input_store_reused", static_cast<int64_t>(m_inputs->reused())},
                            {"setup_ms", setup_ms}});
  const auto run_started = std::chrono::steady_clock::now();
  auto run = run_in_sandbox(dir, *job, m_options.limits, client_gone.get());
  const int64_t run_ms = ms_since(run_started);
  if (!run) {
    remove_tree(dir);
    log.error("sandbox_failed", {{"error", run.error()}});
    finish(json_error(500, run.error(), true), true);
    return;
  }
  if (run->cancelled) {
    remove_tree(dir);
    log.event("job_cancelled", {{"reason", "the client went away"}});
    finish(json_error(499, "client gone", false), true);
    return;
  }
  if (run->timed_out) {
    remove_tree(dir);
    log.warn("job_timed_out");
    finish(json_error(504, "the job passed its wall-time limit", false), true);
    return;
  }
  // bubblewrap's own failures (a mount point it cannot create) exit 1 with
  // its name on stderr; nothing a compiler prints starts so.
  if (run->exit_code == 1 && run->err.starts_with("bwrap: ")) {
    remove_tree(dir);
    log.warn("sandbox_refused", {{"error", run->err}});
    finish(json_error(422, "cannot run here: " + run->err, false), true);
    return;
  }
  JobResult result;
  result.exit_code = run->exit_code;
  result.out = std::move(run->out);
  result.err = std::move(run->err);
  uint64_t total = result.out.size() + result.err.size();
  const std::string cwd_dir = job->cwd == "/" ? dir : dir + job->cwd;
  const std::string real_dir = util::real_path(cwd_dir);
  for (const auto& o : job->outputs) {
    std::string path = cwd_dir + "/" + o;
    // The sandboxed compiler could have made a link out of the job directory
    // (a parent directory or the file itself): only regular files inside it.
    util::FileStat st = util::FileStat::lof(path);
    std::string parent = util::real_path(std::string(util::dir_name(path)));
    if (!st.is_regular() || (parent != real_dir && !parent.starts_with(real_dir + "/"))) {
      continue;
    }
    auto data = util::read_file(path);
    if (!data) {
      continue;
    }
    total += data->size();
    result.outputs.push_back({o, std::move(*data)});
  }
  // The job's directory goes after the answer: the client need not wait
  // for it.
  if (total > m_options.limits.max_output_bytes) {
    log.warn("job_output_too_large", {{"bytes", static_cast<int64_t>(total)}});
    finish(json_error(507, "the job's output passed its limit", false), true);
    remove_tree(dir);
    return;
  }
  counted_done = true;
  // Where a job's time on the worker goes: decoding and the job's root
  // (setup), the sandboxed compiler (run), and all of it with the outputs
  // read and the directory removed (total).
  log.event("job_finished", {{"exit_code", result.exit_code},
                             {"outputs", static_cast<int64_t>(result.outputs.size())},
                             {"setup_ms", setup_ms},
                             {"run_ms", run_ms},
                             {"total_ms", ms_since(started)}});
  net::ServerResponse r;
  r.content_type = "application/x-kiln-job-result";
  r.body = encode_result(result);
  finish(std::move(r), false);
  remove_tree(dir);
}

}  // namespace kiln::dist
