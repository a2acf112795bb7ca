#include "kiln/service/builder.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "kiln/util/process.hpp"
#include "kiln/util/string.hpp"

namespace kiln::service {
namespace {

namespace fs = std::filesystem;

bool name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '+' || c == '-';
}

void append_capped(std::string* log, std::string_view text, uint64_t cap) {
  if (log->size() >= cap) {
    return;
  }
  if (log->size() + text.size() > cap) {
    log->append(text.substr(0, cap - log->size()));
    log->append("\n[kiln-server: log truncated]\n");
    return;
  }
  log->append(text);
}

// The executable `target` under `dir`: kiln-bin/<target> as configured, or,
// for a project that sets its own output directory, the first executable
// regular file of that name in the build tree.
std::string find_executable(const std::string& build_dir, const std::string& target) {
  std::string expected_path = build_dir + "/kiln-bin/" + target;
  struct stat st;
  if (::stat(expected_path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) {
    return expected_path;
  }
  std::error_code ec;
  for (fs::recursive_directory_iterator it(build_dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->path().filename() == target && it->is_regular_file(ec) &&
        ::access(it->path().c_str(), X_OK) == 0) {
      return it->path().string();
    }
  }
  return "";
}

}  // namespace

bool valid_cmake_arg(std::string_view arg, std::string* why) {
  auto refuse = [&](std::string text) {
    if (why) {
      *why = std::move(text);
    }
    return false;
  };
  if (!arg.starts_with("-D")) {
    return refuse("a cmake_arg must be -DNAME=VALUE");
  }
  if (arg.find_first_of("\n\r") != std::string_view::npos) {
    return refuse("a cmake_arg must not hold a newline");
  }
  size_t eq = arg.find('=');
  if (eq == std::string_view::npos) {
    return refuse("a cmake_arg must be -DNAME=VALUE");
  }
  std::string_view name = arg.substr(2, eq - 2);
  if (size_t colon = name.find(':'); colon != std::string_view::npos) {
    std::string_view type = name.substr(colon + 1);
    name = name.substr(0, colon);
    if (type != "BOOL" && type != "STRING" && type != "PATH" && type != "FILEPATH" &&
        type != "INTERNAL") {
      return refuse("unknown cache type in cmake_arg: " + std::string(type));
    }
  }
  if (name.empty() || name.size() > 256) {
    return refuse("a cmake_arg needs a variable name");
  }
  for (char c : name) {
    if (!name_char(c)) {
      return refuse("bad character in cmake_arg name: " + std::string(name));
    }
  }
  // The service decides how the build runs and where the executable lands.
  if (name.ends_with("_COMPILER_LAUNCHER") || name == "CMAKE_RUNTIME_OUTPUT_DIRECTORY" ||
      name == "CMAKE_GENERATOR" || name == "CMAKE_MAKE_PROGRAM") {
    return refuse(std::string(name) + " is set by the service");
  }
  return true;
}

CacheCounts count_cache_events(const std::string& kiln_log_path) {
  CacheCounts counts;
  std::ifstream in(kiln_log_path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("\"event\":\"hit\"") != std::string::npos) {
      ++counts.hits;
    } else if (line.find("\"event\":\"compile\"") != std::string::npos) {
      ++counts.misses;
    }
  }
  return counts;
}

static uint64_t tree_bytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      total += static_cast<uint64_t>(st.st_blocks) * 512;
    }
  }
  return total;
}

BuildResult build_program(const BuildSpec& spec, const util::Logger& log) {
  BuildResult result;
  // The steps stop when the replica stops or the build directory grows past
  // its limit: a watcher checks both every second.
  std::atomic<bool> stop_steps{false};
  std::atomic<bool> too_big{false};
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    int ticks = 0;
    while (!done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (spec.cancel && spec.cancel->load()) {
        stop_steps = true;
      }
      if (++ticks % 10 == 0 && tree_bytes(spec.build_dir) > spec.max_build_bytes) {
        too_big = true;
        stop_steps = true;
      }
    }
  });
  struct Join {
    std::atomic<bool>& done;
    std::thread& t;
    ~Join() {
      done = true;
      t.join();
    }
  } join{done, watcher};
  auto started = std::chrono::steady_clock::now();
  auto remaining = [&]() {
    auto left = spec.timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now() - started);
    return std::max(left, std::chrono::milliseconds(1));
  };
  std::error_code ec;
  fs::create_directories(spec.build_dir, ec);
  if (ec) {
    result.log = "kiln-server: cannot create the build directory: " + ec.message() + "\n";
    return result;
  }

  std::vector<std::string> configure = {
      spec.cmake,
      "-S",
      spec.source_dir,
      "-B",
      spec.build_dir,
      "-G",
      "Ninja",
      "-DCMAKE_BUILD_TYPE=Release",
      "-DCMAKE_RUNTIME_OUTPUT_DIRECTORY=" + spec.build_dir + "/kiln-bin"};
  if (!spec.kiln.empty()) {
    configure.push_back("-DCMAKE_C_COMPILER_LAUNCHER=" + spec.kiln);
    configure.push_back("-DCMAKE_CXX_COMPILER_LAUNCHER=" + spec.kiln);
  }
  // The user's settings last, so that CMAKE_BUILD_TYPE can be changed.
  configure.insert(configure.end(), spec.cmake_args.begin(), spec.cmake_args.end());

  auto run_step = [&](const std::vector<std::string>& argv, const char* step) -> bool {
    util::RunOptions options;
    options.env = &spec.env;
    options.timeout = remaining();
    options.cwd = spec.build_dir;
    options.default_signals = true;
    options.cancel = &stop_steps;
    auto ran = util::run_capture(argv, options);
    if (!ran) {
      append_capped(&result.log,
                    std::string("kiln-server: cannot run ") + argv[0] + ": " +
                        std::strerror(ran.error()) + "\n",
                    spec.max_log_bytes);
      result.outcome = BuildOutcome::system_error;
      return false;
    }
    append_capped(&result.log, ran->out, spec.max_log_bytes);
    append_capped(&result.log, ran->err, spec.max_log_bytes);
    if (ran->cancelled && too_big.load()) {
      result.outcome = BuildOutcome::compile_error;
      append_capped(&result.log,
                    "kiln-server: the build directory passed its size limit of " +
                        std::to_string(spec.max_build_bytes >> 20) + " MiB and was stopped\n",
                    spec.max_log_bytes);
      return false;
    }
    if (ran->cancelled) {
      result.cancelled = true;
      result.outcome = BuildOutcome::system_error;
      append_capped(&result.log, "kiln-server: build cancelled (the replica is stopping)\n",
                    spec.max_log_bytes);
      return false;
    }
    if (ran->timed_out) {
      result.outcome = BuildOutcome::system_error;
      append_capped(&result.log,
                    "kiln-server: the build passed its time limit of " +
                        std::to_string(spec.timeout.count() / 1000) + " s and was stopped\n",
                    spec.max_log_bytes);
      return false;
    }
    if (ran->exit_code != 0) {
      result.outcome = BuildOutcome::compile_error;
      log.debug("build_step_failed", {{"step", step}, {"exit_code", ran->exit_code}});
      return false;
    }
    return true;
  };

  if (!run_step(configure, "configure")) {
    return result;
  }
  std::vector<std::string> build = {spec.cmake, "--build", spec.build_dir, "--target", spec.target};
  if (spec.parallelism > 0) {
    build.push_back("-j");
    build.push_back(std::to_string(spec.parallelism));
  }
  if (!run_step(build, "build")) {
    return result;
  }
  std::string binary = find_executable(spec.build_dir, spec.target);
  if (binary.empty()) {
    result.outcome = BuildOutcome::compile_error;
    append_capped(&result.log, "kiln-server: target '" + spec.target + "' built no executable\n",
                  spec.max_log_bytes);
    return result;
  }
  struct stat st;
  if (::stat(binary.c_str(), &st) != 0) {
    result.outcome = BuildOutcome::system_error;
    return result;
  }
  if (static_cast<uint64_t>(st.st_size) > spec.max_binary_bytes) {
    result.outcome = BuildOutcome::compile_error;
    append_capped(&result.log,
                  "kiln-server: the executable is " + std::to_string(st.st_size) +
                      " bytes, more than the limit of " + std::to_string(spec.max_binary_bytes) +
                      "\n",
                  spec.max_log_bytes);
    return result;
  }
  result.outcome = BuildOutcome::success;
  result.binary_path = binary;
  return result;
}

}  // namespace kiln::service
