#pragma once

#include <string>
#include <vector>

#include "kiln/cache/config.hpp"
#include "kiln/config/error.hpp"

namespace kiln::cli {

// Runs `kiln <option>...` (everything that is not a compilation) and returns
// the exit status: 0 success, 1 failure, 2 bad usage. `config_errors` are
// what could not be read of the configuration (`kiln -p` shows them).
int run_command(const std::vector<std::string>& args, cache::Config& config,
                const std::vector<config::Error>& config_errors);

// Prints "kiln: warning: <message>" on stderr unless the same message was
// printed in the last hour (a marker in $TMPDIR/kiln-<uid>, a directory only
// this user can write; without one, every warning is printed), so a build with a broken
// cache directory warns once instead of on every compilation.
// Messages that differ only in numbers (elapsed times, ports) count as the same.
void warn_once(const std::string& message);

// Starts a detached process that trims the local cache to its size limit, if
// the statistics say it is over. The caller does not wait.
void maybe_start_cleanup(const cache::Config& config);

// Runs the cleanup now; returns a line for the user.
std::string cleanup_now(const cache::Config& config);

}  // namespace kiln::cli
