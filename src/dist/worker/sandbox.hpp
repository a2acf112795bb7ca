#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "kiln/dist/job.hpp"
#include "kiln/util/expected.hpp"

namespace kiln::dist {

struct SandboxLimits {
  std::chrono::milliseconds wall{std::chrono::minutes(10)};  // then the job is killed
  uint64_t memory_bytes = uint64_t{4} << 30;                 // address space (RLIMIT_AS)
  uint64_t max_output_bytes = uint64_t{256} << 20;           // stdout + stderr + output files
};

struct SandboxOutcome {
  int exit_code = 0;
  std::string out;
  std::string err;
  bool timed_out = false;
};

// Runs `job.argv` under bubblewrap: the toolchain's top-level entries
// (`toolchain_root`/usr, its /lib and /bin links, ...) read-only at their
// absolute paths, `job_dir` read-write at `job.cwd` (so that debug
// information names the client's directory, as a local compile would), a
// private /tmp, /proc and /dev, no network and no other namespace shared,
// only `job.env` in the environment, and the limits. The error says why the
// sandbox could not run (not what the compiler said).
expected<SandboxOutcome, std::string> run_in_sandbox(const std::string& toolchain_root,
                                                     const std::string& job_dir,
                                                     const JobRequest& job,
                                                     const SandboxLimits& limits);

// The bubblewrap command line run_in_sandbox uses (for the documentation and
// the tests).
std::vector<std::string> sandbox_argv(const std::string& toolchain_root, const std::string& job_dir,
                                      const JobRequest& job, const SandboxLimits& limits);

}  // namespace kiln::dist
