#pragma once

#include <string>
#include <vector>

#include "kiln/util/expected.hpp"

namespace kiln::util {

struct RunResult {
  // Exit status of the child; 128 + signal number when a signal ended it.
  int exit_code = 0;
  std::string out;  // captured stdout
  std::string err;  // captured stderr
};

// Runs argv[0] (an absolute or relative path, not searched in PATH) with the
// current environment, capturing stdout and stderr in memory. Returns the errno
// of a failed spawn. Thread-compatible.
expected<RunResult, int> run_capture(const std::vector<std::string>& argv);

// The same with `env` ("NAME=value" strings) as the child's whole environment.
expected<RunResult, int> run_capture(const std::vector<std::string>& argv,
                                     const std::vector<std::string>& env);

// This process's environment as "NAME=value" strings, with `overrides`
// replacing or adding variables of the same names.
std::vector<std::string> environment_with(const std::vector<std::string>& overrides);

// Replaces this process with argv[0]. Returns only on failure (with errno set).
void exec_replace(const std::vector<std::string>& argv);

}  // namespace kiln::util
