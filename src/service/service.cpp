#include "kiln/service/service.hpp"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "kiln/compiler/compiler_info.hpp"
#include "kiln/net/curl_client.hpp"
#include "kiln/net/percent.hpp"
#include "kiln/net/server/http_server.hpp"
#include "kiln/service/artifact_store.hpp"
#include "kiln/service/builder.hpp"
#include "kiln/service/program_id.hpp"
#include "kiln/service/recipe.hpp"
#include "kiln/service/store.hpp"
#include "kiln/util/base64.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/hash.hpp"
#include "kiln/util/process.hpp"
#include "kiln/util/string.hpp"

extern char** environ;

namespace kiln::service {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

net::ServerResponse json_response(int status, const json& body) {
  net::ServerResponse r;
  r.status = status;
  r.content_type = "application/json";
  // Logs and messages come from compilers and clients: any bytes. Invalid
  // UTF-8 is replaced rather than thrown on (nlohmann's default).
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  return r;
}

// Every error answer: {"error": message, "code": short name}.
net::ServerResponse error_response(int status, const std::string& message, std::string_view code) {
  return json_response(status, json{{"error", message}, {"code", code}});
}

// A program or target name: 1 to 128 of [A-Za-z0-9_.+-], not starting with
// '.' or '-' (so that it is a safe file and URL path component).
bool valid_name(std::string_view name) {
  return valid_target_name(name);
}

std::vector<std::string_view> path_segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t end = path.find('/', i);
    if (end == std::string_view::npos) {
      end = path.size();
    }
    out.push_back(path.substr(i, end - i));
    i = end;
  }
  return out;
}

// Fixed threads running posted tasks in order; the API's handlers block on
// the database and on the leader, which the server's I/O threads must not.
class TaskPool {
 public:
  explicit TaskPool(int threads) {
    for (int i = 0; i < threads; ++i) {
      m_threads.emplace_back([this] { run(); });
    }
  }
  ~TaskPool() { stop(); }
  void post(std::function<void()> task) {
    {
      std::lock_guard lock(m_mutex);
      if (m_stopping) {
        return;
      }
      m_tasks.push_back(std::move(task));
    }
    m_cv.notify_one();
  }
  void stop() {
    {
      std::lock_guard lock(m_mutex);
      m_stopping = true;
    }
    m_cv.notify_all();
    for (auto& t : m_threads) {
      if (t.joinable()) {
        t.join();
      }
    }
    m_threads.clear();
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(m_mutex);
        m_cv.wait(lock, [&] { return m_stopping || !m_tasks.empty(); });
        if (m_tasks.empty()) {
          return;
        }
        task = std::move(m_tasks.front());
        m_tasks.pop_front();
      }
      task();
    }
  }
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<std::function<void()>> m_tasks;
  bool m_stopping = false;
  std::vector<std::thread> m_threads;
};

struct Metrics {
  std::mutex mutex;
  std::map<int, uint64_t> responses;         // by status
  std::map<std::string, uint64_t> compiled;  // by final status
  std::atomic<int64_t> compiling{0};
  std::atomic<uint64_t> compile_ms_sum{0};
  std::atomic<uint64_t> cache_hits{0};
  std::atomic<uint64_t> cache_misses{0};
  std::atomic<uint64_t> uploads_ok{0};
  std::atomic<uint64_t> uploads_failed{0};
  std::atomic<uint64_t> upload_retries{0};
  std::atomic<uint64_t> upload_bytes{0};
  std::atomic<uint64_t> binaries_received{0};
  std::atomic<uint64_t> binaries_refused{0};
  std::atomic<uint64_t> stale_results{0};
  std::atomic<uint64_t> lost_binaries{0};

  void count_response(int status) {
    std::lock_guard lock(mutex);
    ++responses[status];
  }
  void count_compiled(Status status) {
    std::lock_guard lock(mutex);
    ++compiled[std::string(to_string(status))];
  }
};

struct CheckResult {
  bool ok = false;
  std::string detail;
  int64_t checked_at_ms = 0;  // 0: never
};

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json program_json(const Program& p, int64_t workers) {
  json j;
  j["name"] = p.name;
  j["id"] = p.id;
  j["version"] = p.version;
  j["status"] = std::string(to_string(p.status));
  j["compiled_by"] = p.compiled_by ? json(*p.compiled_by) : json(nullptr);
  j["log"] = p.log;
  j["cache"] = {{"hits", p.cache_hits}, {"misses", p.cache_misses}};
  j["binary_sha256"] = p.binary_sha256 ? json(*p.binary_sha256) : json(nullptr);
  j["compile_count"] = p.compile_count;
  j["source_sha256"] = p.source_sha256;
  auto recipe = json::parse(p.recipe, nullptr, false);
  if (recipe.is_object()) {
    j["target"] = recipe.value("target", "");
    j["cmake_args"] = recipe.value("cmake_args", json::array());
  }
  if (auto shard = shard_of(p.id, static_cast<uint32_t>(workers))) {
    j["worker"] = *shard;
  }
  j["created_at_ms"] = p.created_at_ms;
  j["updated_at_ms"] = p.updated_at_ms;
  return j;
}

std::string sha256_hex(std::string_view data) {
  util::Hasher h;
  h.update(data);
  return h.finish().to_hex();
}

}  // namespace

struct Service::Impl {
  ServiceOptions o;
  util::Logger log;
  FatalHandler on_fatal;
  std::unique_ptr<Store> api_store;          // the API threads' connection (serialized)
  std::unique_ptr<ArtifactStore> artifacts;  // replica 0 only
  std::unique_ptr<net::HttpServer> server;
  std::unique_ptr<TaskPool> api_pool;
  std::atomic<bool> stopping{false};
  std::atomic<bool> fatal_sent{false};
  bool stopped = false;
  std::mutex stop_mutex;

  std::mutex wake_mutex;
  std::condition_variable wake_cv;
  uint64_t wake_seq = 0;

  std::vector<std::thread> compile_threads;
  std::thread maintenance;
  std::thread listener;  // PostgreSQL: LISTEN for new Pending versions
  std::atomic<int64_t> notifications{0};

  Metrics metrics;

  std::mutex state_mutex;  // what the maintenance thread learns
  CheckResult cache_check;
  std::string leader_from_members;
  bool cache_configured = false;

  bool leader() const { return o.worker_id == 0; }

  std::string leader_url() {
    if (leader()) {
      return o.public_url;
    }
    if (!o.leader_url.empty()) {
      return o.leader_url;
    }
    std::lock_guard lock(state_mutex);
    return leader_from_members;
  }

  void wake_compilers() {
    {
      std::lock_guard lock(wake_mutex);
      ++wake_seq;
    }
    wake_cv.notify_all();
  }

  void fatal(int code, const std::string& why) {
    if (fatal_sent.exchange(true)) {
      return;
    }
    log.log(util::LogLevel::error, "fatal", {{"message", why}});
    if (on_fatal) {
      on_fatal(code, why);
    }
  }

  // --- The compile loop ---------------------------------------------------

  std::vector<std::string> build_environment(const std::string& slot_dir) const {
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
      std::string_view entry(*e);
      if (entry.starts_with("KILN_DIR=") || entry.starts_with("KILN_BASEDIR=") ||
          entry.starts_with("KILN_LOGFILE=") || entry.starts_with("KILN_SERVER_") ||
          entry.starts_with("KILN_INFLIGHT_WAIT_S=") || entry.starts_with("MAKEFLAGS=")) {
        continue;
      }
      env.emplace_back(entry);
    }
    // One local cache a replica, shared by its builds; paths below the
    // slot rewritten relative, so that the same sources built in another
    // slot or on another replica hit (docs/service.md, "The shared cache").
    env.push_back("KILN_DIR=" + o.data_dir + "/cache");
    env.push_back("KILN_BASEDIR=" + slot_dir);
    env.push_back("KILN_LOGFILE=" + slot_dir + "/kiln-log.jsonl");
    env.push_back("KILN_INFLIGHT_WAIT_S=" + std::to_string(o.inflight_wait_s));
    return env;
  }

  struct Outcome {
    Status status = Status::system_error;
    std::string log;
    int64_t hits = 0;
    int64_t misses = 0;
    std::optional<std::string> sha;
    bool cancelled = false;
  };

  Outcome compile(Store& store, int slot, const Claim& claim, const util::Logger& plog) {
    Outcome out;
    // A slot directory of this run: a build orphaned by a killed earlier run
    // (its cmake survives a kill -9 of the server) writes into its own.
    std::string slot_dir =
        o.data_dir + "/work/" + std::to_string(::getpid()) + "-slot-" + std::to_string(slot);
    std::error_code ec;
    fs::remove_all(slot_dir, ec);
    fs::create_directories(slot_dir, ec);
    if (ec) {
      out.log = "kiln-server: cannot create " + slot_dir + ": " + ec.message();
      return out;
    }
    auto source = store.get_source(claim.source_sha256);
    if (!source) {
      out.log = "kiln-server: cannot read the program's sources: " + source.error();
      return out;
    }
    if (!*source) {
      out.log = "kiln-server: the program's sources are missing from the database";
      return out;
    }
    auto archive = util::base64_decode(**source);
    if (!archive) {
      out.log = "kiln-server: the stored sources are not valid base64";
      return out;
    }
    auto recipe = json::parse(claim.recipe, nullptr, false);
    if (!recipe.is_object() || !recipe.contains("target")) {
      out.log = "kiln-server: the stored recipe is not valid JSON";
      return out;
    }
    std::string target = recipe.value("target", "");
    std::vector<std::string> cmake_args = recipe.value("cmake_args", std::vector<std::string>{});

    // The project's top is always <slot>/src, whatever the archive's top
    // directory is called, so that the same sources give the same relative
    // paths, and cache keys, in every program.
    std::string unpack_dir = slot_dir + "/unpack";
    std::string top = slot_dir + "/src";
    auto extracted = extract_archive(*archive, unpack_dir, o.archive_limits);
    if (!extracted) {
      out.log = "kiln-server: cannot unpack the program: " + extracted.error().message;
      return out;
    }
    fs::rename(extracted->top.empty() ? unpack_dir : unpack_dir + "/" + extracted->top, top, ec);
    if (ec) {
      out.log = "kiln-server: cannot move the sources into place: " + ec.message();
      return out;
    }
    if (!extracted->has_cmakelists) {
      auto toml = util::read_file(top + "/kiln-program.toml");
      if (!toml) {
        out.log = "kiln-server: cannot read kiln-program.toml";
        return out;
      }
      auto lists = cmakelists_from_recipe(*toml, target);
      if (!lists) {
        out.status = Status::compile_error;
        out.log = "kiln-program.toml: " + lists.error() + "\n";
        return out;
      }
      if (!util::write_file(top + "/CMakeLists.txt", *lists)) {
        out.log = "kiln-server: cannot write the generated CMakeLists.txt";
        return out;
      }
    }

    BuildSpec spec;
    spec.source_dir = top;
    spec.build_dir = slot_dir + "/build";
    spec.target = target;
    spec.cmake_args = cmake_args;
    spec.cmake = o.cmake_path;
    spec.kiln = o.kiln_path;
    spec.env = build_environment(slot_dir);
    spec.parallelism = o.build_parallelism;
    spec.timeout = o.compile_timeout;
    spec.max_binary_bytes = o.max_binary_bytes;
    spec.max_build_bytes = o.max_build_bytes;
    spec.cancel = &stopping;
    BuildResult built = build_program(spec, plog);
    CacheCounts counts = count_cache_events(slot_dir + "/kiln-log.jsonl");
    out.hits = counts.hits;
    out.misses = counts.misses;
    out.log = std::move(built.log);
    if (built.cancelled) {
      out.cancelled = true;
      return out;
    }
    if (built.outcome == BuildOutcome::compile_error) {
      out.status = Status::compile_error;
      return out;
    }
    if (built.outcome != BuildOutcome::success) {
      out.status = Status::system_error;
      return out;
    }
    auto binary = util::read_file(built.binary_path);
    if (!binary) {
      out.log += "kiln-server: cannot read the built executable\n";
      return out;
    }
    std::string sha = sha256_hex(*binary);
    if (leader()) {
      auto put = artifacts->put(claim.id, claim.version, sha, *binary);
      if (!put) {
        out.log += "kiln-server: cannot store the binary: " + put.error().message + "\n";
        return out;
      }
    } else {
      auto upload_started = Clock::now();
      auto uploaded = upload_binary([this] { return leader_url(); }, claim.id, claim.version, sha,
                                    *binary, o.internal_token, o.upload, &stopping, plog,
                                    [this] { ++metrics.upload_retries; });
      if (!uploaded.ok) {
        if (stopping.load()) {
          out.cancelled = true;
          return out;
        }
        ++metrics.uploads_failed;
        std::string url = uploaded.url.empty() ? leader_url() : uploaded.url;
        out.log += "Failed to upload binary to '" + url + "': " + uploaded.reason + "\n";
        plog.log(util::LogLevel::error, "upload_failed",
                 {{"url", url}, {"reason", uploaded.reason}, {"attempts", uploaded.attempts}});
        return out;
      }
      ++metrics.uploads_ok;
      metrics.upload_bytes += binary->size();
      int64_t upload_us =
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - upload_started)
              .count();
      plog.event("uploaded", {{"url", uploaded.url},
                              {"bytes", static_cast<int64_t>(binary->size())},
                              {"attempts", uploaded.attempts},
                              {"us", upload_us}});
    }
    out.status = Status::success;
    out.sha = sha;
    fs::remove_all(slot_dir, ec);  // failed builds stay for a look until the slot is reused
    return out;
  }

  void compile_loop(int slot) {
    std::unique_ptr<Store> store;
    while (!stopping.load()) {
      if (!store) {
        auto opened = open_store(o.database_url);
        if (!opened) {
          log.log(util::LogLevel::warn, "database_unavailable", {{"error", opened.error()}});
          std::this_thread::sleep_for(std::chrono::seconds(1));
          continue;
        }
        store = std::move(*opened);
      }
      uint64_t seen;
      {
        std::lock_guard lock(wake_mutex);
        seen = wake_seq;
      }
      auto claims = store->claim(o.worker_id, o.workers, 1);
      if (!claims) {
        log.log(util::LogLevel::warn, "claim_failed", {{"error", claims.error()}});
        std::unique_lock lock(wake_mutex);
        wake_cv.wait_for(lock, o.poll_interval * 4, [&] { return stopping.load(); });
        continue;
      }
      if (claims->empty()) {
        std::unique_lock lock(wake_mutex);
        wake_cv.wait_for(lock, o.poll_interval,
                         [&] { return stopping.load() || wake_seq != seen; });
        continue;
      }
      const Claim& claim = claims->front();
      util::Logger plog = log.bind({{"program_id", claim.id}, {"program", claim.name}});
      plog.event("compile_started", {{"version", claim.version}, {"slot", slot}});
      ++metrics.compiling;
      auto started = Clock::now();
      Outcome out = compile(*store, slot, claim, plog);
      --metrics.compiling;
      int64_t ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
      if (out.cancelled) {
        plog.event("compile_cancelled", {{"version", claim.version}});
        continue;  // stop() puts the shard's Compiling programs back to Pending
      }
      metrics.compile_ms_sum += static_cast<uint64_t>(ms);
      metrics.cache_hits += static_cast<uint64_t>(out.hits);
      metrics.cache_misses += static_cast<uint64_t>(out.misses);
      metrics.count_compiled(out.status);
      // The result is recorded even if the database blinks: retry a while.
      for (int attempt = 0;; ++attempt) {
        // PostgreSQL's text refuses invalid UTF-8 and NUL bytes, which a
        // compiler can print (a Latin-1 source quoted in an error).
        auto finished = store->finish(claim.id, claim.version, out.status,
                                      util::to_valid_utf8(out.log), out.hits, out.misses, out.sha);
        if (finished) {
          if (!*finished) {
            ++metrics.stale_results;
          }
          plog.event(*finished ? "compile_finished" : "stale_result_dropped",
                     {{"version", claim.version},
                      {"status", to_string(out.status)},
                      {"ms", ms},
                      {"cache_hits", out.hits},
                      {"cache_misses", out.misses}});
          break;
        }
        plog.log(util::LogLevel::warn, "finish_failed", {{"error", finished.error()}});
        if (attempt >= 30 || stopping.load()) {
          break;  // Compiling until this replica restarts and resets it
        }
        std::this_thread::sleep_for(std::chrono::seconds(1));
      }
    }
  }

  // --- Maintenance: heartbeat, scaling, health of the cache, cleanup ------

  void check_scaling(Store& store) {
    if (!o.kube.statefulset.empty()) {
      auto replicas = statefulset_replicas(o.kube);
      if (!replicas) {
        log.log(util::LogLevel::warn, "scaling_check_failed", {{"error", replicas.error()}});
        return;
      }
      if (*replicas != o.workers) {
        fatal(3, scaling_message(*replicas, o.workers, true));
      }
      return;
    }
    auto members = store.members(o.heartbeat_interval * 3 + std::chrono::seconds(1));
    if (!members) {
      log.log(util::LogLevel::warn, "scaling_check_failed", {{"error", members.error()}});
      return;
    }
    for (const Member& m : *members) {
      if (m.workers != o.workers) {
        fatal(3, scaling_message(m.workers, o.workers, false));
        return;
      }
      if (m.worker_id >= o.workers) {
        fatal(3, scaling_message(m.worker_id + 1, o.workers, false));
        return;
      }
    }
  }

  void refresh_leader(Store& store) {
    if (leader() || !o.leader_url.empty()) {
      return;
    }
    auto members = store.members(o.heartbeat_interval * 3 + std::chrono::seconds(1));
    if (!members) {
      return;
    }
    std::string url;
    std::chrono::milliseconds best{INT64_MAX};
    for (const Member& m : *members) {
      if (m.worker_id == 0 && m.age < best) {
        best = m.age;
        url = m.url;
      }
    }
    // A leader that stopped has left the table; uploads keep going to its
    // last address, where it comes back (a restart) or fails with it named.
    if (url.empty()) {
      return;
    }
    std::lock_guard lock(state_mutex);
    leader_from_members = url;
  }

  void check_cache() {
    if (o.kiln_path.empty()) {
      return;
    }
    std::vector<std::string> env = build_environment(o.data_dir + "/work");
    util::RunOptions options;
    options.env = &env;
    options.timeout = std::chrono::seconds(20);
    options.default_signals = true;
    auto ran = util::run_capture({o.kiln_path, "--check-storage"}, options);
    CheckResult r;
    r.checked_at_ms = unix_ms();
    if (!ran) {
      r.detail = std::string("cannot run kiln: ") + std::strerror(ran.error());
    } else {
      r.ok = ran->exit_code == 0 && !ran->timed_out;
      r.detail = std::string(util::trim(ran->out + ran->err));
    }
    bool remote = r.detail.find('\n') != std::string::npos;  // more than the local level
    if (!r.ok) {
      log.log(util::LogLevel::warn, "cache_unhealthy", {{"detail", r.detail}});
    }
    std::lock_guard lock(state_mutex);
    cache_check = r;
    cache_configured = remote;
  }

  void cleanup(Store& store) {
    auto programs = store.list();
    if (!programs) {
      log.log(util::LogLevel::warn, "cleanup_failed", {{"error", programs.error()}});
      return;
    }
    std::set<std::pair<std::string, int64_t>> keep;
    for (const Program& p : *programs) {
      keep.emplace(p.id, p.version);
    }
    auto removed = artifacts->cleanup(keep, std::chrono::hours(1));
    auto sources = store.remove_unreferenced_sources(std::chrono::hours(1));
    log.event("cleanup", {{"binaries_removed", removed.binaries_removed},
                          {"temporaries_removed", removed.temporaries_removed},
                          {"sources_removed", sources ? *sources : int64_t{-1}}});
  }

  // PostgreSQL only: wakes the compile loops when any replica makes a
  // version Pending (the store NOTIFYs), so that a program submitted to
  // another replica is claimed in milliseconds, not at the next poll. The
  // poll stays, for a notification lost with a connection.
  void listen_loop() {
    std::unique_ptr<Listener> listener;
    while (!stopping.load()) {
      if (!listener) {
        auto opened = listen_postgres(o.database_url, k_pending_channel);
        if (!opened) {
          log.log(util::LogLevel::warn, "listen_failed", {{"error", opened.error()}});
          std::unique_lock lock(wake_mutex);
          wake_cv.wait_for(lock, std::chrono::seconds(2), [&] { return stopping.load(); });
          continue;
        }
        listener = std::move(*opened);
        // Anything made Pending while not listening: look now.
        wake_compilers();
      }
      auto got = listener->wait(std::chrono::milliseconds(200));
      if (!got) {
        log.log(util::LogLevel::warn, "listen_lost", {{"error", got.error()}});
        listener.reset();
        continue;
      }
      if (*got) {
        ++notifications;
        wake_compilers();
      }
    }
  }

  void maintenance_loop() {
    std::unique_ptr<Store> store;
    auto last_heartbeat = Clock::time_point{};
    auto last_scaling = Clock::now() - o.scaling_interval + std::chrono::milliseconds(500);
    auto last_cache = Clock::time_point{};
    auto last_cleanup = Clock::now();
    while (!stopping.load()) {
      if (!store) {
        auto opened = open_store(o.database_url);
        if (opened) {
          store = std::move(*opened);
        } else {
          log.log(util::LogLevel::warn, "database_unavailable", {{"error", opened.error()}});
        }
      }
      auto now = Clock::now();
      if (store && now - last_heartbeat >= o.heartbeat_interval) {
        last_heartbeat = now;
        if (auto hb = store->heartbeat_member(o.worker_id, o.workers, o.public_url); !hb) {
          log.log(util::LogLevel::warn, "heartbeat_failed", {{"error", hb.error()}});
        }
        refresh_leader(*store);
      }
      if (store && now - last_scaling >= o.scaling_interval) {
        last_scaling = now;
        check_scaling(*store);
      }
      if (now - last_cache >= std::chrono::seconds(30)) {
        last_cache = now;
        check_cache();
      }
      if (store && leader() && now - last_cleanup >= o.cleanup_interval) {
        last_cleanup = now;
        cleanup(*store);
      }
      std::unique_lock lock(wake_mutex);
      wake_cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return stopping.load(); });
    }
  }

  // --- The API ------------------------------------------------------------

  void handle(const net::ServerRequest& req, const net::Reply& reply) {
    net::ServerResponse response;
    try {
      response = route(req);
    } catch (const std::exception& e) {
      log.log(util::LogLevel::error, "handler_failed", {{"path", req.path}, {"error", e.what()}});
      response = error_response(500, "internal error", "internal");
    }
    metrics.count_response(response.status);
    if (response.status >= 400) {
      log.log(response.status >= 500 ? util::LogLevel::warn : util::LogLevel::info, "refused",
              {{"method", req.method},
               {"path", req.path},
               {"status", response.status},
               {"peer", req.peer},
               {"error", response.status == 404 && response.body.empty()
                             ? std::string()
                             : response.body.substr(0, 300)}});
    }
    reply(std::move(response));
  }

  net::ServerResponse method_not_allowed(const char* allow) {
    auto r = error_response(405, "method not allowed", "method_not_allowed");
    r.headers.emplace_back("Allow", allow);
    return r;
  }

  net::ServerResponse route(const net::ServerRequest& req) {
    auto seg = path_segments(req.path);
    if (seg.size() == 1 && seg[0] == "healthz") {
      return req.method == "GET" ? healthz() : method_not_allowed("GET");
    }
    if (seg.size() == 1 && seg[0] == "cluster_healthz") {
      return req.method == "GET" ? cluster_healthz() : method_not_allowed("GET");
    }
    if (seg.size() == 1 && seg[0] == "metrics") {
      return req.method == "GET" ? metrics_response() : method_not_allowed("GET");
    }
    if (seg.empty() || seg[0] != "v0") {
      return error_response(404, "no such endpoint: " + req.path, "not_found");
    }
    if (seg.size() == 2 && seg[1] == "openapi.json") {
      if (req.method != "GET") {
        return method_not_allowed("GET");
      }
      net::ServerResponse r;
      r.body = std::string(openapi_document());
      return r;
    }
    if (seg.size() >= 2 && seg[1] == "programs") {
      if (seg.size() == 2) {
        return req.method == "GET" ? list_programs() : method_not_allowed("GET");
      }
      std::string name(seg[2]);
      if (!valid_name(name)) {
        return error_response(400,
                              "bad program name: 1 to 128 of A-Z a-z 0-9 _ . + -, not starting "
                              "with . or -",
                              "bad_name");
      }
      if (seg.size() == 3) {
        if (req.method == "GET") {
          return get_program(name);
        }
        if (req.method == "PUT") {
          return put_program(name, req);
        }
        if (req.method == "DELETE") {
          return delete_program(name);
        }
        return method_not_allowed("GET, PUT, DELETE");
      }
      if (seg.size() == 4 && seg[3] == "binary") {
        return req.method == "GET" ? get_binary(name) : method_not_allowed("GET");
      }
    }
    if (seg.size() == 5 && seg[1] == "internal" && seg[2] == "binaries") {
      if (!o.internal_token.empty()) {
        auto auth = req.header("authorization");
        if (!auth || !util::constant_time_equal(*auth, "Bearer " + o.internal_token)) {
          return error_response(401, "missing or wrong internal token", "unauthorized");
        }
      }
      if (!leader()) {
        return error_response(421, "this replica is not the leader (replica 0)", "not_leader");
      }
      std::string id(seg[3]);
      auto version = util::parse_int(seg[4]);
      if (!shard_key(id) || !version || *version < 1) {
        return error_response(400, "expected /v0/internal/binaries/<program id>/<version>",
                              "bad_path");
      }
      if (req.method == "PUT") {
        return receive_binary(id, *version, req);
      }
      if (req.method == "GET") {
        return send_binary(id, *version);
      }
      return method_not_allowed("GET, PUT");
    }
    return error_response(404, "no such endpoint: " + req.path, "not_found");
  }

  net::ServerResponse db_error(const std::string& error) {
    log.log(util::LogLevel::warn, "database_error", {{"error", error}});
    return error_response(503, "database unavailable: " + error, "database");
  }

  net::ServerResponse list_programs() {
    auto programs = api_store->list();
    if (!programs) {
      return db_error(programs.error());
    }
    json list = json::array();
    for (const Program& p : *programs) {
      list.push_back(program_json(p, o.workers));
    }
    return json_response(200, json{{"programs", list}});
  }

  net::ServerResponse get_program(const std::string& name) {
    auto program = api_store->get(name);
    if (!program) {
      return db_error(program.error());
    }
    if (!*program) {
      return error_response(404, "no program named " + name, "unknown_program");
    }
    return json_response(200, program_json(**program, o.workers));
  }

  net::ServerResponse delete_program(const std::string& name) {
    auto removed = api_store->remove(name);
    if (!removed) {
      return db_error(removed.error());
    }
    if (!*removed) {
      return error_response(404, "no program named " + name, "unknown_program");
    }
    log.event("program_deleted", {{"program", name}});
    net::ServerResponse r;
    r.status = 204;
    r.content_type.clear();
    return r;
  }

  net::ServerResponse put_program(const std::string& name, const net::ServerRequest& req) {
    std::string target;
    std::vector<std::string> cmake_args;
    for (std::string_view pair : util::split(req.query, '&')) {
      if (pair.empty()) {
        continue;
      }
      size_t eq = pair.find('=');
      std::string_view key = pair.substr(0, eq);
      auto value = net::percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
      if (!value) {
        return error_response(400, "bad percent-encoding in the query", "bad_query");
      }
      if (key == "target") {
        target = *value;
      } else if (key == "cmake_arg") {
        if (util::to_valid_utf8(*value) != *value) {
          return error_response(400, "a cmake_arg must be UTF-8 text", "bad_cmake_arg");
        }
        std::string why;
        if (!valid_cmake_arg(*value, &why)) {
          return error_response(400, why, "bad_cmake_arg");
        }
        cmake_args.push_back(*value);
      } else {
        return error_response(400, "unknown query parameter: " + std::string(key), "bad_query");
      }
    }
    if (target.empty()) {
      target = name;  // the usual case: the program is named after its executable
    }
    if (!valid_target_name(target)) {
      return error_response(400, "bad target name: " + target, "bad_target");
    }
    if (req.body.empty()) {
      return error_response(400, "the body must be the program's tar.gz archive", "bad_archive");
    }
    if (req.body.size() > o.max_archive_bytes) {
      return error_response(413,
                            "the archive is " + std::to_string(req.body.size()) +
                                " bytes, more than the limit of " +
                                std::to_string(o.max_archive_bytes),
                            "too_large");
    }
    auto summary = inspect_archive(req.body, o.archive_limits);
    if (!summary) {
      int status = summary.error().problem == ArchiveProblem::too_large ? 413
                   : summary.error().problem == ArchiveProblem::invalid ? 400
                                                                        : 500;
      return error_response(status, "archive refused: " + summary.error().message, "bad_archive");
    }
    if (!summary->has_cmakelists) {
      std::string member =
          summary->top.empty() ? "kiln-program.toml" : summary->top + "/kiln-program.toml";
      auto toml = read_archive_member(req.body, member, 1 << 20);
      if (!toml || !*toml) {
        return error_response(400, "cannot read kiln-program.toml from the archive", "bad_recipe");
      }
      if (auto lists = cmakelists_from_recipe(**toml, target); !lists) {
        return error_response(400, "kiln-program.toml: " + lists.error(), "bad_recipe");
      }
    }
    std::string sha = sha256_hex(req.body);
    std::string recipe = json{{"cmake_args", cmake_args}, {"target", target}}.dump();
    if (auto stored = api_store->put_source(sha, util::base64_encode(req.body)); !stored) {
      return db_error(stored.error());
    }
    auto upserted = api_store->upsert(name, sha, recipe);
    if (!upserted) {
      return db_error(upserted.error());
    }
    Program program = upserted->program;
    if (!upserted->changed && program.status == Status::system_error) {
      // Submitting a program again retries a failure of the service.
      if (auto retried = api_store->retry_system_error(program.id, program.version);
          retried && *retried) {
        program.status = Status::pending;
        upserted->changed = true;
      }
    }
    if (upserted->changed) {
      log.event("program_submitted", {{"program_id", program.id},
                                      {"program", name},
                                      {"version", program.version},
                                      {"bytes", static_cast<int64_t>(req.body.size())}});
      if (shard_of(program.id, static_cast<uint32_t>(o.workers)) ==
          static_cast<uint32_t>(o.worker_id)) {
        wake_compilers();
      }
    }
    return json_response(
        program.version == 1 && upserted->changed && program.compile_count == 0 ? 201 : 200,
        program_json(program, o.workers));
  }

  net::ServerResponse binary_lost(const Program& p, const std::string& why) {
    ++metrics.lost_binaries;
    log.log(util::LogLevel::warn, "binary_lost",
            {{"program_id", p.id}, {"version", p.version}, {"reason", why}});
    auto back = api_store->back_to_pending(p.id, p.version);
    if (back && *back) {
      wake_compilers();
    }
    return error_response(
        404, "the leader has lost the binary (" + why + "); the program is compiled again",
        "binary_lost");
  }

  net::ServerResponse get_binary(const std::string& name) {
    auto program = api_store->get(name);
    if (!program) {
      return db_error(program.error());
    }
    if (!*program) {
      return error_response(404, "no program named " + name, "unknown_program");
    }
    const Program& p = **program;
    if (p.status != Status::success || !p.binary_sha256) {
      return error_response(
          409, "program " + name + " has no binary: it is " + std::string(to_string(p.status)),
          "no_binary");
    }
    std::string data;
    if (leader()) {
      auto binary = artifacts->get(p.id, p.version);
      if (!binary) {
        if (binary.error().problem == ArtifactProblem::not_found) {
          return binary_lost(p, "not in the artifact store");
        }
        return error_response(500, "cannot read the binary: " + binary.error().message, "io");
      }
      if (binary->sha256_hex != *p.binary_sha256) {
        return binary_lost(p, "its checksum does not match");
      }
      data = std::move(binary->data);
    } else {
      std::string leader = leader_url();
      if (leader.empty()) {
        return error_response(503,
                              "the leader's address is not known (no heartbeat from "
                              "replica 0)",
                              "leader_unknown");
      }
      net::HttpLimits limits;
      limits.max_body_bytes = o.max_binary_bytes + 1024;
      auto client = net::make_curl_client(
          net::HttpTimeouts{2000, static_cast<int>(o.upload.timeout.count())}, limits);
      std::vector<std::string> headers;
      if (!o.internal_token.empty()) {
        headers.push_back("Authorization: Bearer " + o.internal_token);
      }
      std::string url = leader + "/v0/internal/binaries/" + p.id + "/" + std::to_string(p.version);
      auto got = client->get(url, headers);
      if (!got) {
        return error_response(502,
                              "cannot reach the leader at " + leader + ": " + got.error().message,
                              "leader_unreachable");
      }
      if (got->status == 404) {
        return binary_lost(p, "the leader has no copy");
      }
      if (got->status != 200) {
        return error_response(502, "the leader answered " + std::to_string(got->status),
                              "leader_error");
      }
      if (sha256_hex(got->body) != *p.binary_sha256) {
        return binary_lost(p, "the leader's copy does not match its checksum");
      }
      data = std::move(got->body);
    }
    net::ServerResponse r;
    r.content_type = "application/octet-stream";
    r.headers.emplace_back("X-Kiln-Sha256", *p.binary_sha256);
    r.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + p.name + "\"");
    r.body = std::move(data);
    return r;
  }

  net::ServerResponse receive_binary(const std::string& id, int64_t version,
                                     const net::ServerRequest& req) {
    auto sha = req.header("x-kiln-sha256");
    if (!sha) {
      return error_response(400, "X-Kiln-Sha256 is missing", "bad_request");
    }
    auto put = artifacts->put(id, version, *sha, req.body);
    if (!put) {
      ++metrics.binaries_refused;
      switch (put.error().problem) {
        case ArtifactProblem::hash_mismatch:
          return error_response(422, put.error().message, "hash_mismatch");
        case ArtifactProblem::no_space:
          return error_response(507, put.error().message, "insufficient_storage");
        case ArtifactProblem::invalid:
          return error_response(400, put.error().message, "bad_request");
        default:
          return error_response(500, put.error().message, "io");
      }
    }
    ++metrics.binaries_received;
    log.event("binary_received", {{"program_id", id},
                                  {"version", version},
                                  {"bytes", static_cast<int64_t>(req.body.size())},
                                  {"peer", req.peer}});
    return json_response(201, json{{"sha256", *sha}, {"bytes", req.body.size()}});
  }

  net::ServerResponse send_binary(const std::string& id, int64_t version) {
    auto binary = artifacts->get(id, version);
    if (!binary) {
      if (binary.error().problem == ArtifactProblem::not_found) {
        return error_response(404, "no such binary", "not_found");
      }
      return error_response(500, binary.error().message, "io");
    }
    net::ServerResponse r;
    r.content_type = "application/octet-stream";
    r.headers.emplace_back("X-Kiln-Sha256", binary->sha256_hex);
    r.body = std::move(binary->data);
    return r;
  }

  json health_json(bool* healthy) {
    json checks;
    bool ok = true;
    auto version = api_store->schema_version();
    checks["database"] =
        version ? json{{"ok", true}} : json{{"ok", false}, {"error", version.error()}};
    ok = ok && version.has_value();

    std::string probe = o.data_dir + "/.healthz-" + util::unique_suffix();
    bool writable = util::write_file(probe, "ok").has_value();
    ::unlink(probe.c_str());
    struct statvfs vfs;
    double used = 0;
    if (::statvfs(o.data_dir.c_str(), &vfs) == 0 && vfs.f_blocks > 0) {
      used = 100.0 * (1.0 - static_cast<double>(vfs.f_bavail) / static_cast<double>(vfs.f_blocks));
    }
    bool disk_ok = used < 95.0;
    checks["data_dir"] = {{"ok", writable && disk_ok},
                          {"path", o.data_dir},
                          {"writable", writable},
                          {"disk_used_percent", std::round(used * 10) / 10}};
    ok = ok && writable && disk_ok;
    {
      std::lock_guard lock(state_mutex);
      if (cache_check.checked_at_ms == 0) {
        checks["cache"] = {{"ok", true}, {"detail", "not checked yet"}};
      } else {
        // A cache level that is down slows compiles but fails none: it is
        // reported here and does not make the replica unhealthy.
        checks["cache"] = {{"ok", cache_check.ok},
                           {"remote", cache_configured},
                           {"detail", cache_check.detail},
                           {"checked_at_ms", cache_check.checked_at_ms}};
      }
    }
    *healthy = ok;
    return json{{"healthy", ok},        {"worker_id", o.worker_id},
                {"workers", o.workers}, {"leader", leader()},
                {"url", o.public_url},  {"compiling", metrics.compiling.load()},
                {"checks", checks}};
  }

  net::ServerResponse healthz() {
    bool healthy = false;
    json body = health_json(&healthy);
    return json_response(healthy ? 200 : 503, body);
  }

  net::ServerResponse cluster_healthz() {
    auto members = api_store->members(o.heartbeat_interval * 3 + std::chrono::seconds(1));
    std::map<int64_t, Member> freshest;
    std::vector<Member> strangers;
    if (members) {
      for (const Member& m : *members) {
        if (m.worker_id >= o.workers || m.worker_id < 0) {
          strangers.push_back(m);
          continue;
        }
        auto it = freshest.find(m.worker_id);
        if (it == freshest.end() || m.age < it->second.age) {
          freshest[m.worker_id] = m;
        }
      }
    }
    std::vector<std::future<json>> asks;
    for (int64_t i = 0; i < o.workers; ++i) {
      auto it = freshest.find(i);
      if (it == freshest.end()) {
        std::promise<json> missing;
        missing.set_value(json{{"worker_id", i},
                               {"healthy", false},
                               {"error", members ? "no heartbeat from this replica: programs of "
                                                   "its shard wait until it is back"
                                                 : "database unavailable: " + members.error()}});
        asks.push_back(missing.get_future());
        continue;
      }
      Member m = it->second;
      asks.push_back(std::async(std::launch::async, [m]() {
        json entry{{"worker_id", m.worker_id},
                   {"url", m.url},
                   {"last_heartbeat_ms_ago", static_cast<int64_t>(m.age.count())}};
        auto client = net::make_curl_client(net::HttpTimeouts{1000, 2000});
        auto got = client->get(m.url + "/healthz");
        if (!got) {
          entry["healthy"] = false;
          entry["error"] = got.error().message;
          return entry;
        }
        entry["status"] = got->status;
        entry["healthy"] = got->status == 200;
        auto body = json::parse(got->body, nullptr, false);
        if (!body.is_discarded()) {
          entry["health"] = body;
        }
        return entry;
      }));
    }
    json replicas = json::array();
    bool all = true;
    for (auto& f : asks) {
      json entry = f.get();
      all = all && entry.value("healthy", false);
      replicas.push_back(entry);
    }
    json body{{"all_healthy", all}, {"workers", o.workers}, {"replicas", replicas}};
    if (!strangers.empty()) {
      json extra = json::array();
      for (const Member& m : strangers) {
        extra.push_back({{"worker_id", m.worker_id}, {"workers", m.workers}, {"url", m.url}});
      }
      body["unexpected_members"] = extra;
      body["all_healthy"] = false;
      all = false;
    }
    return json_response(all ? 200 : 503, body);
  }

  net::ServerResponse metrics_response() {
    std::string out;
    auto line = [&](const std::string& name, const std::string& labels, uint64_t value) {
      out += name;
      if (!labels.empty()) {
        out += "{" + labels + "}";
      }
      out += " " + std::to_string(value) + "\n";
    };
    out += "# TYPE kiln_server_responses_total counter\n";
    {
      std::lock_guard lock(metrics.mutex);
      for (auto& [status, n] : metrics.responses) {
        line("kiln_server_responses_total", "code=\"" + std::to_string(status) + "\"", n);
      }
      out += "# TYPE kiln_server_programs_compiled_total counter\n";
      for (auto& [status, n] : metrics.compiled) {
        line("kiln_server_programs_compiled_total", "status=\"" + status + "\"", n);
      }
    }
    out += "# TYPE kiln_server_compiling gauge\n";
    line("kiln_server_compiling", "",
         static_cast<uint64_t>(std::max<int64_t>(0, metrics.compiling)));
    out += "# TYPE kiln_server_compile_seconds_sum counter\n";
    out += "kiln_server_compile_seconds_sum " +
           std::to_string(static_cast<double>(metrics.compile_ms_sum.load()) / 1000.0) + "\n";
    auto counter = [&](const char* name, uint64_t value) {
      out += std::string("# TYPE ") + name + " counter\n";
      line(name, "", value);
    };
    counter("kiln_server_cache_hits_total", metrics.cache_hits);
    counter("kiln_server_cache_misses_total", metrics.cache_misses);
    counter("kiln_server_uploads_total", metrics.uploads_ok);
    counter("kiln_server_uploads_failed_total", metrics.uploads_failed);
    counter("kiln_server_upload_retries_total", metrics.upload_retries);
    counter("kiln_server_upload_bytes_total", metrics.upload_bytes);
    counter("kiln_server_binaries_received_total", metrics.binaries_received);
    counter("kiln_server_binaries_refused_total", metrics.binaries_refused);
    counter("kiln_server_stale_results_total", metrics.stale_results);
    counter("kiln_server_lost_binaries_total", metrics.lost_binaries);
    counter("kiln_server_pending_notifications_total", static_cast<uint64_t>(notifications.load()));
    auto stats = server->stats();
    counter("kiln_server_http_connections_total", stats.connections);
    counter("kiln_server_http_requests_total", stats.requests);
    counter("kiln_server_http_rejected_total", stats.rejected);
    net::ServerResponse r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = std::move(out);
    return r;
  }
};

Service::Service(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

Service::~Service() {
  stop();
}

uint16_t Service::port() const {
  return m_impl->server->port();
}

const std::string& Service::public_url() const {
  return m_impl->o.public_url;
}

expected<std::unique_ptr<Service>, std::string> Service::start(ServiceOptions options,
                                                               util::Logger log,
                                                               FatalHandler on_fatal) {
  if (options.workers < 1 || options.worker_id < 0 || options.worker_id >= options.workers) {
    return unexpected(std::string("the worker id must be in [0, workers)"));
  }
  if (options.data_dir.empty()) {
    return unexpected(std::string("a data directory is required"));
  }
  std::error_code ec;
  // Builds of an earlier run are abandoned (their programs are reset below).
  fs::remove_all(options.data_dir + "/work", ec);
  fs::create_directories(options.data_dir + "/work", ec);
  if (ec) {
    return unexpected("cannot create " + options.data_dir + "/work: " + ec.message());
  }
  options.data_dir = fs::canonical(options.data_dir, ec).string();
  if (options.database_url.empty()) {
    options.database_url = "sqlite://" + options.data_dir + "/kiln-server.db";
  }
  if (options.cmake_path.empty()) {
    // kiln's own $PATH lookup (for compilers) finds cmake as well.
    options.cmake_path = compiler::find_compiler("cmake", "");
    if (options.cmake_path.empty()) {
      return unexpected(std::string("cmake is not in PATH"));
    }
  }
  auto impl = std::make_unique<Impl>();
  impl->o = std::move(options);
  impl->log = log.bind({{"worker_id", impl->o.worker_id}});
  impl->on_fatal = std::move(on_fatal);
  auto store = open_store(impl->o.database_url);
  if (!store) {
    return unexpected("database " + impl->o.database_url + ": " + store.error());
  }
  impl->api_store = std::move(*store);
  if (impl->leader()) {
    impl->artifacts = std::make_unique<ArtifactStore>(impl->o.data_dir + "/binaries");
  }
  // A crashed earlier run of this replica left programs Compiling.
  auto reset = impl->api_store->reset_compiling(impl->o.worker_id, impl->o.workers);
  if (!reset) {
    return unexpected("database: " + reset.error());
  }
  if (*reset > 0) {
    impl->log.event("reset_compiling", {{"programs", *reset}});
  }

  net::ServerOptions so;
  so.host = impl->o.listen_host;
  so.port = impl->o.listen_port;
  so.threads = 2;
  so.max_body_bytes = std::max(impl->o.max_archive_bytes, impl->o.max_binary_bytes);
  // Archives to /v0/programs, binaries to /v0/internal: each its own limit,
  // so a large body to the API is refused before it is read into memory.
  so.body_limit_for = [archive = impl->o.max_archive_bytes, binary = impl->o.max_binary_bytes](
                          std::string_view, std::string_view target) {
    return target.starts_with("/v0/internal/") ? binary : archive;
  };
  so.io_timeout = std::chrono::milliseconds(
      std::max<int64_t>(30000, static_cast<int64_t>(impl->o.upload.timeout.count())));
  Impl* raw = impl.get();
  impl->api_pool = std::make_unique<TaskPool>(std::max(1, impl->o.api_threads));
  auto server = net::HttpServer::start(so, [raw](net::ServerRequest&& req, net::Reply reply) {
    auto shared = std::make_shared<net::ServerRequest>(std::move(req));
    raw->api_pool->post([raw, shared, reply = std::move(reply)]() { raw->handle(*shared, reply); });
  });
  if (!server) {
    return unexpected("cannot listen on " + impl->o.listen_host + ":" +
                      std::to_string(impl->o.listen_port) + ": " + server.error());
  }
  impl->server = std::move(*server);
  if (impl->o.public_url.empty()) {
    std::string host = impl->o.listen_host;
    if (host == "0.0.0.0" || host == "::") {
      char name[256] = {};
      ::gethostname(name, sizeof name - 1);
      host = name;
    }
    impl->o.public_url = "http://" + host + ":" + std::to_string(impl->server->port());
  }
  while (impl->o.public_url.ends_with('/')) {
    impl->o.public_url.pop_back();
  }
  for (int slot = 0; slot < std::max(1, impl->o.compile_jobs); ++slot) {
    impl->compile_threads.emplace_back([raw, slot] { raw->compile_loop(slot); });
  }
  impl->maintenance = std::thread([raw] { raw->maintenance_loop(); });
  if (!impl->o.database_url.starts_with("sqlite")) {
    impl->listener = std::thread([raw] { raw->listen_loop(); });
  }
  impl->log.event("started", {{"url", impl->o.public_url},
                              {"workers", impl->o.workers},
                              {"database", impl->o.database_url.starts_with("sqlite")
                                               ? impl->o.database_url
                                               : std::string("postgresql")}});
  return std::unique_ptr<Service>(new Service(std::move(impl)));
}

void Service::stop() {
  Impl& impl = *m_impl;
  std::lock_guard lock(impl.stop_mutex);
  if (impl.stopped) {
    return;
  }
  impl.stopped = true;
  impl.stopping = true;
  impl.wake_cv.notify_all();
  for (auto& t : impl.compile_threads) {
    if (t.joinable()) {
      t.join();
    }
  }
  if (impl.maintenance.joinable()) {
    impl.maintenance.join();
  }
  if (impl.listener.joinable()) {
    impl.listener.join();
  }
  impl.server->stop();
  impl.api_pool->stop();
  if (auto left = impl.api_store->remove_member(impl.o.worker_id, impl.o.public_url); !left) {
    impl.log.log(util::LogLevel::warn, "deregister_failed", {{"error", left.error()}});
  }
  // Builds cancelled above: their programs go back to Pending for the next
  // run of this replica (or the replica with this id that replaces it).
  if (auto reset = impl.api_store->reset_compiling(impl.o.worker_id, impl.o.workers);
      reset && *reset > 0) {
    impl.log.event("reset_compiling", {{"programs", *reset}});
  }
  impl.log.event("stopped");
}

}  // namespace kiln::service
