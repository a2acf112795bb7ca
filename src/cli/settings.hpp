#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kiln/cache/config.hpp"
#include "kiln/config/error.hpp"
#include "kiln/config/load.hpp"
#include "kiln/config/registry.hpp"
#include "kiln/util/expected.hpp"

namespace kiln::cli {

// kiln's configuration keys: storage's, then the cache's, in the order of
// docs/configuration.md. Built on first use; thread-safe.
const config::Registry& registry();

struct LoadedConfig {
  cache::Config config;               // usable even with errors (defaults for what failed)
  std::vector<config::Error> errors;  // file errors first, then the environment's
};

// Reads the configuration: defaults, the file (cache::default_config_path),
// then KILN_* variables. A broken file or variable never breaks a build: it
// is an error here, and the rest is used.
LoadedConfig load_config(const config::Getenv& getenv = config::process_getenv);

// `kiln -o key=value` and `kiln -M`: checks the value against the key's
// declaration and writes it, typed, into the file at `path`.
expected<void, config::Error> set_config_value(const std::string& path, std::string_view key,
                                               std::string_view value);

// The one line that describes `errors` for a warning or `kiln -p` (the first
// error, and how many more there are); "" for none.
std::string describe(const std::vector<config::Error>& errors);

}  // namespace kiln::cli
