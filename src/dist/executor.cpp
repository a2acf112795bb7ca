#include "kiln/dist/executor.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "kiln/cache/key.hpp"
#include "kiln/cache/trace.hpp"
#include "kiln/dist/client.hpp"
#include "kiln/dist/dist_plugin_abi.h"
#include "kiln/dist/job.hpp"
#include "kiln/util/clock.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/path.hpp"
#include "kiln/util/string.hpp"

namespace kiln::dist {

namespace {

// After a scheduler did not answer, compiles skip the cluster this long.
constexpr int64_t k_scheduler_down_ns = 30'000'000'000;

// Options that name a file the dependency-only run must not write, with
// their argument (separate or attached).
bool is_output_option(const std::string& a, bool* takes_next) {
  *takes_next = false;
  for (const char* opt : {"-o", "-MF", "-MT", "-MQ"}) {
    if (a == opt) {
      *takes_next = true;
      return true;
    }
    if (a.starts_with(opt) && a.size() > std::strlen(opt)) {
      return true;
    }
  }
  return a == "-c" || a == "-MD" || a == "-MMD" || a == "-MP";
}

// The depfile's prerequisites (make syntax, as GCC and clang write it).
// False if a name has an escaped space or other quoting we do not handle.
bool parse_depfile(const std::string& text, std::vector<std::string>* out) {
  std::string flat;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == '\n') {
      flat += ' ';
      ++i;
    } else if (text[i] == '\\' || text[i] == '$') {
      return false;
    } else {
      flat += text[i] == '\n' ? ' ' : text[i];
    }
  }
  auto colon = flat.find(": ");
  if (colon == std::string::npos) {
    return false;
  }
  for (const auto& word : util::split(flat.substr(colon + 2), ' ')) {
    if (!word.empty()) {
      out->push_back(word);
    }
  }
  return true;
}

std::string lexical(const std::string& path) {
  return std::filesystem::path(path).lexically_normal().string();
}

struct PluginResult {
  std::string result;
  bool has_result = false;
  std::string counters;
  std::string error;
};

void on_result(void* ctx, const char* result, size_t size, const char* counters,
               const char* error) {
  auto* r = static_cast<PluginResult*>(ctx);
  if (result) {
    r->result.assign(result, size);
    r->has_result = true;
  }
  r->counters = counters ? counters : "";
  r->error = error ? error : "";
}

kiln_dist_run_fn load_plugin(const std::string& dir, std::string* error) {
  static kiln_dist_run_fn fn = nullptr;
  if (fn) {
    return fn;
  }
  std::string path = dir + "/libkiln-dist.so";
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* e = ::dlerror();
    *error = e ? e : ("cannot load " + path);
    return nullptr;
  }
  fn = reinterpret_cast<kiln_dist_run_fn>(::dlsym(handle, KILN_DIST_PLUGIN_ENTRY));
  if (!fn) {
    *error = path + " has no " + KILN_DIST_PLUGIN_ENTRY;
  }
  return fn;
}

}  // namespace

DistExecutor::DistExecutor(DistSettings settings, std::string plugin_dir, cache::Executor& local,
                           util::Logger log, std::function<void(const std::string&)> warn,
                           std::string log_file)
    : m_settings(std::move(settings)),
      m_plugin_dir(std::move(plugin_dir)),
      m_log_file(std::move(log_file)),
      m_local(local),
      m_log(std::move(log)),
      m_warn(std::move(warn)) {}

expected<util::RunResult, int> DistExecutor::fall_back(const cache::Command& command,
                                                       const std::string& reason,
                                                       const std::string& detail) {
  m_log.warn("dist_not_used", {{"reason", reason}, {"detail", detail}});
  if (!m_settings.fallback_to_local) {
    util::RunResult r;
    r.exit_code = 1;
    r.err = "kiln: the build cluster could not compile " +
            (command.compile ? command.compile->source : std::string("this")) + " (" + reason +
            (detail.empty() ? "" : ": " + detail) + "), and dist.fallback_to_local is false\n";
    ++m_stats.local_fallbacks["refused_" + reason];
    return r;
  }
  ++m_stats.local_fallbacks[reason];
  m_warn("build cluster not used (" + reason + "), compiling locally");
  return m_local.run(command);
}

expected<JobRequest, NotDistributed> prepare_job(const cache::Command& command,
                                                 cache::Executor& local) {
  const cache::CompileStep& step = *command.compile;
  for (const auto& a : command.argv) {
    if (a.starts_with("-Wp,") || a.starts_with("-specs") || a == "-save-temps" ||
        a.starts_with("-save-temps=") || a.starts_with("-fplugin") || a == "-") {
      return unexpected(NotDistributed{"not_distributable", a});
    }
  }
  // 1. The headers: a dependency-only run of the same command, here and under
  // the pipeline's trace (the manifest learns what the compiler looked at).
  std::string deps_file = step.cache_dir + "/tmp/dist-deps." + util::unique_suffix();
  if (!util::make_directories(step.cache_dir + "/tmp")) {
    return unexpected(NotDistributed{"cannot_prepare", "no temporary directory"});
  }
  cache::Command deps;
  deps.env = command.env;
  deps.cwd = command.cwd;
  for (size_t i = 0; i < command.argv.size(); ++i) {
    bool takes_next = false;
    if (i > 0 && is_output_option(command.argv[i], &takes_next)) {
      i += takes_next ? 1 : 0;
      continue;
    }
    deps.argv.push_back(command.argv[i]);
  }
  deps.argv.insert(deps.argv.end(), {"-M", "-MF", deps_file});
  // Where the pipeline's trace of this compile stands before the scan: what
  // the scan adds to it is what the preprocessor opened.
  std::string trace_file;
  for (const auto& kv : command.env) {
    if (kv.starts_with("KILN_TRACE_FILE=")) {
      trace_file = kv.substr(sizeof("KILN_TRACE_FILE=") - 1);
    }
  }
  const auto trace_start =
      trace_file.empty() ? size_t{0} : static_cast<size_t>(util::FileStat::of(trace_file).size);
  auto scanned = local.run(deps);
  auto text = util::read_file(deps_file);
  ::unlink(deps_file.c_str());
  if (!scanned || scanned->exit_code != 0 || !text) {
    // The compile will fail the same way, here, with the compiler's message.
    return unexpected(NotDistributed{"cannot_prepare", "the dependency scan failed"});
  }
  std::vector<std::string> prerequisites;
  if (!parse_depfile(*text, &prerequisites)) {
    return unexpected(NotDistributed{"not_distributable", "a header name the depfile quotes"});
  }
  // A header that `__has_include` found but nothing included is not in the
  // depfile, yet the worker must see it, or the test is false there and the
  // object differs (GCC opens what it probes: it is in the trace). What is
  // not a regular file (directories, /dev/null) or is the kernel's (/proc,
  // /sys) is not an input.
  // clang lists what `__has_include` found in its dependency output, and
  // what else it opens is its driver's (/etc/os-release, CUDA's version
  // file), not the compile's: only GCC's trace adds inputs.
  if (!trace_file.empty() && step.family != compiler::Family::clang) {
    auto all = util::read_file(trace_file);
    if (all && all->size() >= trace_start) {
      cache::Trace t = cache::Trace::parse(std::string_view(*all).substr(trace_start));
      for (const auto& r : t.read) {
        std::string abs = lexical(util::join_path(command.cwd, r));
        if (!abs.starts_with("/proc/") && !abs.starts_with("/sys/") && !abs.starts_with("/dev/") &&
            util::FileStat::of(abs).is_regular()) {
          prerequisites.push_back(r);
        }
      }
    }
  }
  JobRequest job;
  job.argv = command.argv;
  job.cwd = command.cwd;
  // Only what changes the compiler's output leaves this machine (the user's
  // tokens and keys never do), and PATH, where gcc's driver finds `as`. The
  // trace (LD_PRELOAD of kiln's library) stays here.
  for (const auto& kv : command.env) {
    std::string_view name = std::string_view(kv).substr(0, kv.find('='));
    if (name == "PATH" || cache::is_output_environment(name)) {
      job.env.push_back(kv);
    }
  }
  std::set<std::string> seen;
  for (const auto& p : prerequisites) {
    std::string abs = lexical(util::join_path(command.cwd, p));
    if (!seen.insert(abs).second) {
      continue;
    }
    // A path through a symbolic link would resolve differently in the job's
    // root, where only the files are: such a compile stays here.
    if (util::real_path(abs) != abs) {
      return unexpected(NotDistributed{"not_distributable", "an input through a link: " + abs});
    }
    auto data = util::read_file(abs);
    if (!data) {
      return unexpected(NotDistributed{"cannot_prepare", "cannot read " + abs});
    }
    job.inputs.push_back({abs.substr(1), std::move(*data)});
  }
  const std::string cwd = lexical(command.cwd);
  for (const auto& o : step.outputs) {
    std::string abs = lexical(util::join_path(command.cwd, o));
    if (!abs.starts_with(cwd + "/")) {
      return unexpected(
          NotDistributed{"not_distributable", "an output outside the directory: " + o});
    }
    job.outputs.push_back(abs.substr(cwd.size() + 1));
  }
  if (!is_safe_absolute_dir(cwd) || util::real_path(cwd) != cwd) {
    return unexpected(NotDistributed{"not_distributable", "the working directory is a link"});
  }
  job.cwd = cwd;
  return job;
}

expected<util::RunResult, int> DistExecutor::run(const cache::Command& command) {
  if (!command.compile) {
    return m_local.run(command);
  }
  const cache::CompileStep& step = *command.compile;
  const auto started = std::chrono::steady_clock::now();
  auto ms_since = [](std::chrono::steady_clock::time_point t) {
    return static_cast<int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t)
            .count());
  };
  auto prepared = prepare_job(command, m_local);
  if (!prepared) {
    return fall_back(command, prepared.error().reason, prepared.error().detail);
  }
  JobRequest& job = *prepared;
  const std::string cwd = job.cwd;
  const int64_t prepare_ms = ms_since(started);

  // 2. The cluster, through the plugin; not while the scheduler is known to
  // be down (each compile would wait for it first).
  const std::string down_marker = step.cache_dir + "/tmp/dist-scheduler-down";
  util::FileStat down = util::FileStat::of(down_marker);
  const int64_t now_ns = util::Clock::system().wall_ns();
  if (down.exists() && now_ns - down.mtime_ns < k_scheduler_down_ns) {
    return fall_back(command, "scheduler_unreachable", "marked down a moment ago");
  }
  std::string error;
  kiln_dist_run_fn plugin = load_plugin(m_plugin_dir, &error);
  if (!plugin) {
    return fall_back(command, "no_plugin", error);
  }
  std::string token = m_settings.token;
  if (token.starts_with("/")) {
    token = std::string(util::trim(util::read_file(token).value_or("")));
  }
  std::string ca;
  if (!m_settings.scheduler_ca.empty()) {
    ca = util::read_file(m_settings.scheduler_ca).value_or("");
  }
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  std::string client_id = std::string(host) + ":" + std::to_string(::getpid());
  std::string settings = nlohmann::json{{"scheduler_url", m_settings.scheduler_url},
                                        {"token", token},
                                        {"scheduler_ca_pem", ca},
                                        {"client_id", client_id},
                                        {"retry_limit", m_settings.retry_limit},
                                        {"log_file", m_log_file},
                                        {"scheduler_retry_ms", m_settings.scheduler_wait_s * 1000}}
                             .dump();
  std::string body = encode_job(job);
  kiln_dist_request request{KILN_DIST_PLUGIN_ABI,
                            settings.c_str(),
                            command.argv[0].c_str(),
                            step.compiler_identity.c_str(),
                            step.cache_dir.c_str(),
                            body.data(),
                            body.size()};
  PluginResult got;
  const auto sent = std::chrono::steady_clock::now();
  int status = plugin(&request, on_result, &got);
  const int64_t cluster_ms = ms_since(sent);
  auto counters = nlohmann::json::parse(got.counters, nullptr, false);
  if (counters.is_object()) {
    m_stats.jobs += counters.value("jobs", uint64_t{0});
    m_stats.bytes_sent += counters.value("bytes_sent", uint64_t{0});
    m_stats.bytes_received += counters.value("bytes_received", uint64_t{0});
    if (counters.contains("retries") && counters["retries"].is_object()) {
      for (auto& [reason, n] : counters["retries"].items()) {
        m_stats.retries[reason] += n.is_number_unsigned() ? n.get<uint64_t>() : 0;
      }
    }
  }
  if (status == 1 + static_cast<int>(DistFailure::scheduler_unreachable)) {
    (void)util::write_file(down_marker, "");
  }
  if (status != 0 || !got.has_result) {
    static const char* names[] = {"scheduler_unreachable", "no_capacity", "retries_exhausted",
                                  "refused", "unauthorised"};
    std::string reason = status >= 1 && status <= 5 ? names[status - 1]
                         : status == 100            ? "toolchain"
                                                    : "plugin_error";
    return fall_back(command, reason, got.error);
  }
  auto result = decode_result(got.result);
  if (!result) {
    return fall_back(command, "plugin_error", result.error());
  }
  // 3. The outputs, where the compiler would have written them.
  for (const auto& out : result->outputs) {
    std::string path = cwd + "/" + out.path;
    if (!util::write_file_atomic(path, out.data)) {
      return fall_back(command, "cannot_write_output", path);
    }
  }
  ++m_stats.succeeded;
  // Where a job's time goes on this side: the dependency scan and reading the
  // inputs (prepare), and the cluster (allocation, upload, the worker, the
  // answer).
  m_log.event("dist_compiled", {{"source", step.source},
                                {"exit_code", result->exit_code},
                                {"prepare_ms", prepare_ms},
                                {"cluster_ms", cluster_ms},
                                {"job_bytes", static_cast<int64_t>(body.size())}});
  util::RunResult r;
  r.exit_code = result->exit_code;
  r.out = std::move(result->out);
  r.err = std::move(result->err);
  return r;
}

}  // namespace kiln::dist
