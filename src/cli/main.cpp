// kiln: the compiler cache front end. Everything but the wiring lives in the
// libraries; see docs/architecture.md.
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "kiln/cache/compilation.hpp"
#include "kiln/cli/commands.hpp"
#include "kiln/cli/settings.hpp"
#include "kiln/compiler/compiler_info.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/path.hpp"
#include "kiln/util/process.hpp"

namespace {

int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

[[noreturn]] void exec_compiler(const std::string& compiler, const std::vector<std::string>& args) {
  std::vector<std::string> argv{compiler};
  argv.insert(argv.end(), args.begin(), args.end());
  kiln::util::exec_replace(argv);
  std::fprintf(stderr, "kiln: cannot execute %s: %s\n", compiler.c_str(), std::strerror(errno));
  std::_Exit(127);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kiln;
  const int64_t start = now_ns();
  std::string_view name = util::base_name(argv[0]);
  std::vector<std::string> rest(argv + 1, argv + argc);

  std::string compiler_name;
  if (name == "kiln" || name.starts_with("kiln-") || name.starts_with("lt-kiln")) {
    if (rest.empty() || rest[0].starts_with("-")) {
      auto [config, errors] = cli::load_config();
      return cli::run_command(rest, config, errors);
    }
    compiler_name = rest[0];
    rest.erase(rest.begin());
  } else {
    compiler_name = std::string(name);  // masquerading as the compiler
  }

  std::string self = util::real_path("/proc/self/exe");
  std::string compiler = compiler::find_compiler(compiler_name, self);
  if (compiler.empty()) {
    std::fprintf(stderr, "kiln: cannot find compiler \"%s\" in PATH\n", compiler_name.c_str());
    return 127;
  }

  auto [config, config_errors] = cli::load_config();
  if (!config_errors.empty()) {
    cli::warn_once("configuration: " + cli::describe(config_errors) + " (using defaults for it)");
  }
  if (config.disable) {
    exec_compiler(compiler, rest);
  }
  if (auto r = util::make_directories(config.cache_dir); !r) {
    cli::warn_once("cannot create cache directory " + config.cache_dir + ": " +
                   std::strerror(r.error()) + "; running the compiler without cache");
    exec_compiler(compiler, rest);
  }

  util::Logger log;
  if (!config.log_file.empty() && !log.open(config.log_file)) {
    cli::warn_once("cannot open log file " + config.log_file);
  }

  cache::Invocation inv;
  inv.config = &config;
  inv.log = &log;
  inv.cwd = util::current_dir();
  inv.compiler_path = compiler;
  inv.args = rest;
  inv.start_ns = start;

  cache::Stats stats;
  cache::Compilation compilation(inv, stats);
  cache::Outcome outcome = compilation.run();
  for (const auto& problem : compilation.storage_problems()) {
    cli::warn_once("storage " + problem +
                   " (skipped for this compilation; kiln --check-storage tests every level)");
  }
  if (const auto* local = compilation.local()) {
    stats.add(cache::Counter::files, local->files_delta());
    stats.add(cache::Counter::size, local->size_delta());
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
    cli::warn_once("cannot update statistics in " + config.cache_dir +
                   "/stats: " + std::strerror(errno));
  }
  if (const auto* local = compilation.local(); local && local->size_delta() > 0) {
    cli::maybe_start_cleanup(config);
  }
  if (outcome.kind == cache::Outcome::Kind::fall_back) {
    exec_compiler(compiler, rest);
  }
  return outcome.exit_code;
}
