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

  // Remote levels (docs/configuration.md, "Remote storage"). Each is used when
  // its bucket or endpoint is set.
  std::string storage_order;  // e.g. "local,redis,s3"; empty: local, then redis, s3, http
  int remote_connect_timeout_ms = 1000;
  int remote_request_timeout_ms = 5000;
  int remote_backoff_s = 30;  // skip a level this long after it timed out; 0: never skip
  std::string
      remote_plugin;  // directory of libkiln-remote.so / libkiln-redis.so; empty: next to kiln

  std::string s3_bucket;
  std::string s3_endpoint;
  std::string s3_region = "us-east-1";
  std::string s3_key_prefix;
  bool s3_use_ssl = true;
  bool s3_virtual_host_style = false;
  std::string s3_server_side_encryption;  // "", "AES256", "aws:kms"
  std::string s3_sse_kms_key_id;
  bool s3_no_credentials = false;
  bool s3_read_only = false;

  std::string redis_endpoint;  // redis://[[user]:password@]host[:port][/db]
  std::string redis_key_prefix;
  int64_t redis_expiration = 0;  // seconds, 0 = never
  bool redis_read_only = false;

  std::string http_endpoint;
  std::string http_bearer_token;
  std::string http_headers;  // "Name: value" pairs separated by ';'
  bool http_read_only = false;

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
