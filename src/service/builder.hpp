#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "kiln/util/log.hpp"

namespace kiln::service {

// One program build: CMake configures the project with Ninja and kiln as the
// compiler launcher, Ninja builds one executable target. docs/service.md,
// "How a program is built".
struct BuildSpec {
  std::string source_dir;               // the project's top (CMakeLists.txt there)
  std::string build_dir;                // created; the executable lands in <build_dir>/kiln-bin
  std::string target;                   // the executable target
  std::vector<std::string> cmake_args;  // checked by valid_cmake_arg
  std::string cmake;                    // absolute path of cmake
  std::string kiln;                     // absolute path of kiln, the launcher; empty: none
  std::vector<std::string> env;         // the whole environment of cmake and the compilers
  int parallelism = 0;                  // ninja -j; 0: Ninja's default
  std::chrono::milliseconds timeout{600000};  // configure and build together
  uint64_t max_binary_bytes = uint64_t{512} << 20;
  // The build directory's size (checked every second while the build runs;
  // past it the build is stopped: a compile error of the program).
  uint64_t max_build_bytes = uint64_t{10} << 30;
  uint64_t max_log_bytes = uint64_t{1} << 20;
  const std::atomic<bool>* cancel = nullptr;  // a stopping replica
};

enum class BuildOutcome {
  success,
  compile_error,  // the user's program: configure or compile failed, no such target
  system_error,   // this replica: cmake missing, timeout, disk, cancelled
};

struct BuildResult {
  BuildOutcome outcome = BuildOutcome::system_error;
  std::string log;          // CMake's and the compilers' output, verbatim (capped)
  std::string binary_path;  // with success
  bool cancelled = false;
};

// Runs the two steps; never throws. The log of a compile error is what
// cmake and ninja printed, standard output and error in that order.
BuildResult build_program(const BuildSpec& spec, const util::Logger& log);

// A cmake_arg the API accepts: "-D<NAME>[:<TYPE>]=<value>" with NAME of
// [A-Za-z0-9_.+-], no newline, and not one of the settings the service owns
// (the launchers, CMAKE_RUNTIME_OUTPUT_DIRECTORY, CMAKE_GENERATOR).
bool valid_cmake_arg(std::string_view arg, std::string* why);

// Counts of kiln's debug log of one build (KILN_LOGFILE): compilations
// served from the cache and compiled.
struct CacheCounts {
  int64_t hits = 0;
  int64_t misses = 0;
};
CacheCounts count_cache_events(const std::string& kiln_log_path);

}  // namespace kiln::service
