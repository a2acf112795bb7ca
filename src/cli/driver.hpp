#pragma once

#include <functional>
#include <string>
#include <vector>

#include "kiln/cli/settings.hpp"

namespace kiln::cli {

// What the driver does to the world that a test may want to replace.
struct DriverHooks {
  // Loads the configuration (with defaults for what failed, and the
  // errors). May throw: the driver recovers.
  std::function<LoadedConfig()> load_config;
  // Replaces kiln with `compiler args...`. The real one returns only when the
  // compiler cannot be executed (127); a test's returns the status to use.
  std::function<int(const std::string& compiler, const std::vector<std::string>& args)> exec;
};

// The real hooks: cli::load_config and execv.
DriverHooks default_hooks();

// Everything main() does, for argv as main() received it (argv[0] decides
// whether kiln runs as `kiln <compiler> ...`, a masquerading symlink, or
// `kiln <option>`). Returns the exit status.
//
// Nothing that goes wrong inside kiln breaks the build: an exception from any
// step (configuration, the compilation, statistics, cleanup) is caught here,
// reported on stderr, and the compiler runs as if kiln were not there, unless
// the compilation had already finished, whose status is then returned.
int run(const std::vector<std::string>& argv, const DriverHooks& hooks);

}  // namespace kiln::cli
