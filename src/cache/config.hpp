#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kiln/util/expected.hpp"

namespace kiln::cache {

// Where a configuration value came from, for `kiln --show-config`.
enum class ConfigSource { default_value, config_file, environment, command_line };

std::string_view to_string(ConfigSource s);

// The effective configuration of one kiln invocation. Built once in main() and
// passed down; nothing below reads the environment for settings. Every key is
// documented in docs/configuration.md.
struct Config {
  std::string cache_dir;
  int64_t max_size = int64_t{5} * 1024 * 1024 * 1024;
  bool disable = false;
  std::string base_dir;
  bool direct_mode = true;
  bool depend_mode = true;
  bool hash_dir = true;
  bool read_only = false;
  bool recache = false;
  bool stats = true;
  int compression_level = 1;
  std::string file_link = "copy";  // copy | hardlink | reflink
  std::string log_file;

  std::string config_path;  // the file that was (or would be) read
  std::map<std::string, ConfigSource> sources;

  // key -> printable value, in documentation order
  std::vector<std::pair<std::string, std::string>> items() const;
};

enum class ConfigErrorKind { unreadable_file, syntax, bad_value, unknown_key };

struct ConfigError {
  ConfigErrorKind kind;
  std::string message;  // names the file or variable and the key
};

// Resolves the config file path: $KILN_CONFIG, else $XDG_CONFIG_HOME/kiln/kiln.toml,
// else ~/.config/kiln/kiln.toml.
std::string default_config_path();

// Loads defaults, then the TOML file (if it exists), then KILN_* environment
// variables. On error returns the error, and in *fallback the configuration
// with every value that could be read (defaults for the rest), so a broken
// file never breaks a build.
expected<Config, ConfigError> load_config(Config* fallback);

// Sets `key` in the TOML file at `path` (creating it), e.g. max_size = "10G".
expected<void, ConfigError> set_config_value(const std::string& path, const std::string& key,
                                             const std::string& value);

}  // namespace kiln::cache
