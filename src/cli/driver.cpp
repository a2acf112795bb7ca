#include "kiln/cli/driver.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include "kiln/cache/compilation.hpp"
#include "kiln/cli/commands.hpp"
#include "kiln/compiler/compiler_info.hpp"
#include "kiln/dist/executor.hpp"
#include "kiln/storage/plugin_storage.hpp"
#include "kiln/util/clock.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/path.hpp"
#include "kiln/util/process.hpp"

namespace kiln::cli {

namespace {

// How far a run got: what the recovery from an exception can still do.
struct Progress {
  bool command = false;           // `kiln <option>`: no compiler to fall back to
  std::string compiler_name;      // as given
  std::string compiler;           // found in PATH
  std::vector<std::string> args;  // the compiler's arguments
  std::optional<int> exit_code;   // set once the compilation has finished
};

int compile(const DriverHooks& hooks, Progress* p, int64_t start_ns) {
  std::string self = util::real_path("/proc/self/exe");
  p->compiler = compiler::find_compiler(p->compiler_name, self);
  if (p->compiler.empty()) {
    std::fprintf(stderr, "kiln: cannot find compiler \"%s\" in PATH\n", p->compiler_name.c_str());
    return 127;
  }

  auto [config, config_errors] = hooks.load_config();
  if (!config_errors.empty()) {
    warn_once("configuration: " + describe(config_errors) + " (using defaults for it)");
  }
  if (config.disable) {
    return hooks.exec(p->compiler, p->args);
  }
  if (auto r = util::make_directories(config.cache_dir); !r) {
    warn_once("cannot create cache directory " + config.cache_dir + ": " +
              std::strerror(r.error()) + "; running the compiler without cache");
    return hooks.exec(p->compiler, p->args);
  }

  util::Logger log;
  if (!config.log_file.empty() && !log.open(config.log_file)) {
    warn_once("cannot open log file " + config.log_file);
  }

  // The client's seams: its environment, taken once here, its stdout and
  // stderr, and compilers run as children of this process.
  const util::Environment env = util::Environment::of_process();
  cache::StandardOutputSink output;
  cache::LocalExecutor local;
  // With a scheduler configured, a miss's compile goes to the build cluster.
  std::optional<dist::DistExecutor> distributed;
  if (auto settings = dist::dist_settings(config.values); settings.enabled()) {
    distributed.emplace(
        std::move(settings),
        config.storage.plugin_dir.empty() ? storage::default_plugin_dir()
                                          : config.storage.plugin_dir,
        local, log, [](const std::string& m) { warn_once(m); }, config.log_file);
  }

  cache::Invocation inv;
  inv.env = &env;
  inv.output = &output;
  inv.executor = distributed ? static_cast<cache::Executor*>(&*distributed) : &local;
  inv.config = &config;
  inv.log = &log;
  inv.cwd = util::current_dir();
  inv.compiler_path = p->compiler;
  inv.args = p->args;
  inv.start_ns = start_ns;

  cache::Stats stats;
  cache::Compilation compilation(inv, stats);
  cache::Outcome outcome = compilation.run();
  if (outcome.kind != cache::Outcome::Kind::fall_back) {
    p->exit_code = outcome.exit_code;
  }
  for (const auto& problem : compilation.storage_problems()) {
    warn_once("storage " + problem +
              " (skipped for this compilation; kiln --check-storage tests every level)");
  }
  if (const auto* local_level = compilation.local()) {
    stats.add(cache::Counter::files, local_level->files_delta());
    stats.add(cache::Counter::size, local_level->size_delta());
  }
  if (distributed) {
    const dist::DistStats& d = distributed->stats();
    stats.add("dist_jobs", static_cast<int64_t>(d.jobs));
    stats.add("dist_succeeded", static_cast<int64_t>(d.succeeded));
    stats.add("dist_bytes_sent", static_cast<int64_t>(d.bytes_sent));
    stats.add("dist_bytes_received", static_cast<int64_t>(d.bytes_received));
    for (const auto& [reason, n] : d.retries) {
      stats.add("dist_retries_" + reason, static_cast<int64_t>(n));
    }
    for (const auto& [reason, n] : d.local_fallbacks) {
      stats.add("dist_local_fallbacks_" + reason, static_cast<int64_t>(n));
    }
  }
  if (!config.stats) {
    // Cleanup still needs the size and file counters.
    cache::Stats sizes;
    for (auto counter : {cache::Counter::files, cache::Counter::size}) {
      auto it = stats.delta().find(std::string(cache::to_string(counter)));
      if (it != stats.delta().end()) {
        sizes.add(counter, it->second);
      }
    }
    stats = std::move(sizes);
  }
  if (!stats.flush(config.cache_dir)) {
    warn_once("cannot update statistics in " + config.cache_dir +
              "/stats: " + std::strerror(errno));
  }
  if (const auto* local_level = compilation.local(); local_level && local_level->size_delta() > 0) {
    maybe_start_cleanup(config);
  }
  if (outcome.kind == cache::Outcome::Kind::fall_back) {
    return hooks.exec(p->compiler, p->args);
  }
  return outcome.exit_code;
}

int run_unguarded(const std::vector<std::string>& argv, const DriverHooks& hooks, Progress* p) {
  const int64_t start_ns = util::Clock::system().wall_ns();
  const std::string argv0 = argv.empty() ? std::string("kiln") : argv[0];
  std::string_view name = util::base_name(argv0);
  std::vector<std::string> rest(argv.empty() ? argv.end() : argv.begin() + 1, argv.end());

  if (name == "kiln" || name.starts_with("kiln-") || name.starts_with("lt-kiln")) {
    if (rest.empty() || rest[0].starts_with("-")) {
      p->command = true;
      auto [config, errors] = hooks.load_config();
      return run_command(rest, config, errors);
    }
    p->compiler_name = rest[0];
    rest.erase(rest.begin());
  } else {
    p->compiler_name = std::string(name);  // masquerading as the compiler
  }
  p->args = std::move(rest);
  return compile(hooks, p, start_ns);
}

// After an exception: the build must go on as if kiln were not there.
int recover(const DriverHooks& hooks, Progress* p, const char* what) {
  if (p->command) {
    std::fprintf(stderr, "kiln: internal error: %s\n", what);
    return 1;
  }
  if (p->exit_code) {
    std::fprintf(stderr, "kiln: warning: internal error after the compilation: %s\n", what);
    return *p->exit_code;
  }
  std::fprintf(stderr, "kiln: warning: internal error: %s; running the compiler without cache\n",
               what);
  if (p->compiler.empty() && !p->compiler_name.empty()) {
    try {
      p->compiler = compiler::find_compiler(p->compiler_name, util::real_path("/proc/self/exe"));
    } catch (...) {
    }
  }
  if (p->compiler.empty()) {
    std::fprintf(stderr, "kiln: cannot find compiler \"%s\" in PATH\n", p->compiler_name.c_str());
    return 127;
  }
  return hooks.exec(p->compiler, p->args);
}

}  // namespace

DriverHooks default_hooks() {
  DriverHooks hooks;
  hooks.load_config = [] { return load_config(); };
  hooks.exec = [](const std::string& compiler, const std::vector<std::string>& args) {
    std::vector<std::string> argv{compiler};
    argv.insert(argv.end(), args.begin(), args.end());
    util::exec_replace(argv);
    std::fprintf(stderr, "kiln: cannot execute %s: %s\n", compiler.c_str(), std::strerror(errno));
    return 127;
  };
  return hooks;
}

int run(const std::vector<std::string>& argv, const DriverHooks& hooks) {
  Progress progress;
  try {
    return run_unguarded(argv, hooks, &progress);
  } catch (const std::exception& e) {
    return recover(hooks, &progress, e.what());
  } catch (...) {
    return recover(hooks, &progress, "unknown exception");
  }
}

}  // namespace kiln::cli
