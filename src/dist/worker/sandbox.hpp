#pragma once

#include <atomic>
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
  bool cancelled = false;  // `cancel` became true: killed
};

// Runs `job.argv` under bubblewrap with `root` as its file system: each
// top-level entry of `root` read-only at /<entry> (a toolchain and the job's
// inputs laid out under their absolute paths; see make_job_root), the
// working directory `job.cwd` (root + cwd, which must exist) writable, so
// that debug information names the client's directory as a local compile
// would; a private $TMPDIR, /proc and /dev; no network and no namespace
// shared; only `job.env` in the environment; and the limits. The error says
// why the sandbox could not run (not what the compiler said).
// When `cancel` becomes true (the client went away), the job is killed.
expected<SandboxOutcome, std::string> run_in_sandbox(const std::string& root, const JobRequest& job,
                                                     const SandboxLimits& limits,
                                                     const std::atomic<bool>* cancel = nullptr);

// The bubblewrap command line run_in_sandbox uses (for the documentation and
// the tests).
std::vector<std::string> sandbox_argv(const std::string& root, const JobRequest& job,
                                      const SandboxLimits& limits);

class InputStore;

// Builds a job's root at `root` (which must not exist): the toolchain's tree
// hard-linked (directories made, links copied, files linked: nothing is
// copied and the cache's files are never written), the job's inputs at their
// paths, and the working directory and the outputs' directories made. An
// input outside the working directory (read-only in the sandbox) comes from
// `store` when there is one (a hard link); the others are written. Refuses
// an input that would replace a toolchain file or go through a symbolic link.
expected<void, std::string> make_job_root(const std::string& root,
                                          const std::string& toolchain_root, const JobRequest& job,
                                          InputStore* store = nullptr);

}  // namespace kiln::dist
