#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "kiln/util/expected.hpp"

namespace kiln::util {

struct RunResult {
  // Exit status of the child; 128 + signal number when a signal ended it.
  int exit_code = 0;
  std::string out;         // captured stdout
  std::string err;         // captured stderr
  bool timed_out = false;  // killed because RunOptions::timeout expired
  bool cancelled = false;  // killed because RunOptions::cancel was set
};

struct RunOptions {
  // The child's whole environment ("NAME=value"); nullptr: this process's.
  const std::vector<std::string>* env = nullptr;
  // Zero: wait for as long as the child runs. Otherwise the child leads a
  // process group of its own, and when the time is up the whole group (the
  // compiler's cc1, as, ...) is killed with SIGKILL, and the result says
  // timed_out. For daemons: a hung compiler must not hang a worker. (A client
  // keeps the default, so that ^C still reaches the compiler.)
  std::chrono::milliseconds timeout{0};
  // The child's working directory; empty: this process's.
  std::string cwd;
  // Daemons: the child starts with no signal blocked and the default action
  // for SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1/2, whatever
  // the calling thread blocks or the process ignores. The client keeps what it
  // inherited (nohup's ignored SIGHUP reaches the compiler, as without kiln).
  // Daemons' children also inherit no descriptor but 0, 1 and 2 (a killed
  // server's orphaned build must not hold its listening socket); the client
  // keeps them (make's jobserver pipes).
  bool default_signals = false;
  // With a timeout: when this becomes true while the child runs (checked
  // every 100 ms), its process group is killed and the result says
  // cancelled. For a worker whose client went away.
  const std::atomic<bool>* cancel = nullptr;
};

// Runs argv[0] (an absolute or relative path, not searched in PATH) with the
// current environment, capturing stdout and stderr in memory. Returns the errno
// of a failed spawn. Thread-safe (while no thread changes the environment).
expected<RunResult, int> run_capture(const std::vector<std::string>& argv);

// The same with `env` ("NAME=value" strings) as the child's whole environment.
expected<RunResult, int> run_capture(const std::vector<std::string>& argv,
                                     const std::vector<std::string>& env);

// The same with options (environment, timeout).
expected<RunResult, int> run_capture(const std::vector<std::string>& argv,
                                     const RunOptions& options);

// Replaces this process with argv[0]. Returns only on failure (with errno set).
void exec_replace(const std::vector<std::string>& argv);

}  // namespace kiln::util
