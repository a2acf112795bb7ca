#include "kiln/cache/config.hpp"

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "kiln/util/file.hpp"
#include "kiln/util/path.hpp"
#include "kiln/util/string.hpp"

namespace kiln::cache {

std::string_view to_string(ConfigSource s) {
  switch (s) {
    case ConfigSource::default_value:
      return "default";
    case ConfigSource::config_file:
      return "config file";
    case ConfigSource::environment:
      return "environment";
    case ConfigSource::command_line:
      return "command line";
  }
  return "?";
}

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string home() {
  return env_or("HOME", "/tmp");
}

std::string default_cache_dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg && *xdg) {
    return std::string(xdg) + "/kiln";
  }
  return home() + "/.cache/kiln";
}

struct KeySpec {
  const char* key;
  const char* env;
};

// Documentation order; env names follow ccache's where one exists.
constexpr KeySpec k_keys[] = {
    {"cache_dir", "KILN_DIR"},
    {"max_size", "KILN_MAXSIZE"},
    {"disable", "KILN_DISABLE"},
    {"base_dir", "KILN_BASEDIR"},
    {"direct_mode", "KILN_DIRECT"},
    {"depend_mode", "KILN_DEPEND"},
    {"hash_dir", "KILN_HASHDIR"},
    {"read_only", "KILN_READONLY"},
    {"recache", "KILN_RECACHE"},
    {"stats", "KILN_STATS"},
    {"compression_level", "KILN_COMPRESSLEVEL"},
    {"file_link", "KILN_FILE_LINK"},
    {"log_file", "KILN_LOGFILE"},
    {"storage", "KILN_STORAGE"},
    {"remote_connect_timeout", "KILN_REMOTE_CONNECT_TIMEOUT"},
    {"remote_request_timeout", "KILN_REMOTE_REQUEST_TIMEOUT"},
    {"remote_backoff", "KILN_REMOTE_BACKOFF"},
    {"remote_plugin", "KILN_REMOTE_PLUGIN"},
    {"s3_bucket", "KILN_S3_BUCKET"},
    {"s3_endpoint", "KILN_S3_ENDPOINT"},
    {"s3_region", "KILN_S3_REGION"},
    {"s3_key_prefix", "KILN_S3_KEY_PREFIX"},
    {"s3_use_ssl", "KILN_S3_USE_SSL"},
    {"s3_virtual_host_style", "KILN_S3_ENABLE_VIRTUAL_HOST_STYLE"},
    {"s3_server_side_encryption", "KILN_S3_SERVER_SIDE_ENCRYPTION"},
    {"s3_sse_kms_key_id", "KILN_S3_SSE_KMS_KEY_ID"},
    {"s3_no_credentials", "KILN_S3_NO_CREDENTIALS"},
    {"s3_rw_mode", "KILN_S3_RW_MODE"},
    {"redis_endpoint", "KILN_REDIS_ENDPOINT"},
    {"redis_key_prefix", "KILN_REDIS_KEY_PREFIX"},
    {"redis_expiration", "KILN_REDIS_EXPIRATION"},
    {"redis_rw_mode", "KILN_REDIS_RW_MODE"},
    {"http_endpoint", "KILN_HTTP_ENDPOINT"},
    {"http_bearer_token", "KILN_HTTP_BEARER_TOKEN"},
    {"http_headers", "KILN_HTTP_HEADERS"},
    {"http_rw_mode", "KILN_HTTP_RW_MODE"},
};

// Plain string keys of the remote levels.
const std::map<std::string_view, std::string Config::*> k_string_keys = {
    {"remote_plugin", &Config::remote_plugin},   {"s3_bucket", &Config::s3_bucket},
    {"s3_endpoint", &Config::s3_endpoint},       {"s3_region", &Config::s3_region},
    {"s3_key_prefix", &Config::s3_key_prefix},   {"s3_sse_kms_key_id", &Config::s3_sse_kms_key_id},
    {"redis_endpoint", &Config::redis_endpoint}, {"redis_key_prefix", &Config::redis_key_prefix},
    {"http_endpoint", &Config::http_endpoint},   {"http_bearer_token", &Config::http_bearer_token},
    {"http_headers", &Config::http_headers},
};

const std::map<std::string_view, bool Config::*> k_bool_keys = {
    {"disable", &Config::disable},
    {"direct_mode", &Config::direct_mode},
    {"depend_mode", &Config::depend_mode},
    {"hash_dir", &Config::hash_dir},
    {"read_only", &Config::read_only},
    {"recache", &Config::recache},
    {"stats", &Config::stats},
    {"s3_use_ssl", &Config::s3_use_ssl},
    {"s3_virtual_host_style", &Config::s3_virtual_host_style},
    {"s3_no_credentials", &Config::s3_no_credentials},
};

const std::map<std::string_view, bool Config::*> k_rw_mode_keys = {
    {"s3_rw_mode", &Config::s3_read_only},
    {"redis_rw_mode", &Config::redis_read_only},
    {"http_rw_mode", &Config::http_read_only},
};

std::optional<bool> parse_bool(std::string_view v) {
  v = util::trim(v);
  if (v == "1" || v == "true" || v == "yes" || v == "on") {
    return true;
  }
  if (v == "0" || v == "false" || v == "no" || v == "off" || v.empty()) {
    return false;
  }
  return std::nullopt;
}

// Applies one textual value; returns an error message or "".
std::string apply(Config* c, std::string_view key, const std::string& value) {
  auto set_bool = [&](bool* field) -> std::string {
    auto b = parse_bool(value);
    if (!b) {
      return "expected a boolean (true/false), got \"" + value + "\"";
    }
    *field = *b;
    return "";
  };
  if (auto it = k_string_keys.find(key); it != k_string_keys.end()) {
    c->*(it->second) = value;
    return "";
  }
  if (auto it = k_bool_keys.find(key); it != k_bool_keys.end()) {
    return set_bool(&(c->*(it->second)));
  }
  if (auto it = k_rw_mode_keys.find(key); it != k_rw_mode_keys.end()) {
    if (value != "READ_ONLY" && value != "READ_WRITE") {
      return "expected READ_ONLY or READ_WRITE, got \"" + value + "\"";
    }
    c->*(it->second) = value == "READ_ONLY";
    return "";
  }
  if (key == "storage") {
    for (const auto& level : util::split(value, ',')) {
      auto l = util::trim(level);
      if (l != "local" && l != "redis" && l != "s3" && l != "http") {
        return "expected a comma-separated list of local, redis, s3, http, got \"" + value + "\"";
      }
    }
    c->storage_order = value;
  } else if (key == "remote_connect_timeout" || key == "remote_request_timeout") {
    auto n = util::parse_int(value);
    if (!n || *n <= 0 || *n > 600000) {
      return "expected milliseconds from 1 to 600000, got \"" + value + "\"";
    }
    (key == "remote_connect_timeout" ? c->remote_connect_timeout_ms
                                     : c->remote_request_timeout_ms) = static_cast<int>(*n);
  } else if (key == "remote_backoff") {
    auto n = util::parse_int(value);
    if (!n || *n < 0 || *n > 86400) {
      return "expected seconds from 0 to 86400, got \"" + value + "\"";
    }
    c->remote_backoff_s = static_cast<int>(*n);
  } else if (key == "s3_server_side_encryption") {
    // sccache's boolean form means SSE-S3.
    if (value == "true" || value == "1" || value == "AES256") {
      c->s3_server_side_encryption = "AES256";
    } else if (value == "false" || value == "0" || value.empty()) {
      c->s3_server_side_encryption.clear();
    } else if (value == "aws:kms") {
      c->s3_server_side_encryption = value;
    } else {
      return "expected AES256, aws:kms, true or false, got \"" + value + "\"";
    }
  } else if (key == "redis_expiration") {
    auto n = util::parse_int(value);
    if (!n || *n < 0) {
      return "expected seconds (0 = never), got \"" + value + "\"";
    }
    c->redis_expiration = *n;
  } else if (key == "cache_dir") {
    if (value.empty()) {
      return "must not be empty";
    }
    c->cache_dir = value;
  } else if (key == "max_size") {
    auto s = util::parse_size(value);
    if (!s || *s < 0) {
      return "expected a size such as 5G or 500M, got \"" + value + "\"";
    }
    c->max_size = *s;
  } else if (key == "base_dir") {
    if (!value.empty() && value.front() != '/') {
      return "must be an absolute path, got \"" + value + "\"";
    }
    c->base_dir = value.empty() ? "" : util::normalize(value);
  } else if (key == "compression_level") {
    auto n = util::parse_int(value);
    if (!n || *n < -5 || *n > 19) {
      return "expected an integer from -5 to 19, got \"" + value + "\"";
    }
    c->compression_level = static_cast<int>(*n);
  } else if (key == "file_link") {
    if (value != "copy" && value != "hardlink" && value != "reflink") {
      return "expected copy, hardlink or reflink, got \"" + value + "\"";
    }
    c->file_link = value;
  } else if (key == "log_file") {
    c->log_file = value;
  } else {
    return "unknown key";
  }
  return "";
}

bool known_key(std::string_view key) {
  for (const auto& k : k_keys) {
    if (key == k.key) {
      return true;
    }
  }
  return false;
}

// The value as text for apply(); nullopt for TOML types no key takes (float,
// array, table, date), which are then reported as bad values.
std::optional<std::string> toml_value_text(const toml::node& node) {
  if (node.is_string()) {
    return *node.value_exact<std::string>();
  }
  if (node.is_boolean()) {
    return *node.value_exact<bool>() ? "true" : "false";
  }
  if (node.is_integer()) {
    return std::to_string(*node.value_exact<int64_t>());
  }
  return std::nullopt;
}

void apply_environment(Config* c, std::string* error) {
  for (const auto& k : k_keys) {
    const char* v = std::getenv(k.env);
    if (!v) {
      continue;
    }
    std::string msg = apply(c, k.key, v);
    if (!msg.empty()) {
      if (error->empty()) {
        *error = std::string(k.env) + ": " + msg;
      }
      continue;
    }
    c->sources[k.key] = ConfigSource::environment;
  }
}

}  // namespace

std::string default_config_path() {
  const char* explicit_path = std::getenv("KILN_CONFIG");
  if (explicit_path && *explicit_path) {
    return explicit_path;
  }
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  if (xdg && *xdg) {
    return std::string(xdg) + "/kiln/kiln.toml";
  }
  return home() + "/.config/kiln/kiln.toml";
}

namespace {
// "redis://:secret@host" -> "redis://:***@host", for printing.
std::string redact_url(const std::string& url) {
  auto at = url.find('@');
  auto scheme = url.find("://");
  if (at == std::string::npos || scheme == std::string::npos || at < scheme) {
    return url;
  }
  auto colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) {
    return url;
  }
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}
}  // namespace

std::vector<std::pair<std::string, std::string>> Config::items() const {
  auto b = [](bool v) { return std::string(v ? "true" : "false"); };
  return {
      {"cache_dir", cache_dir},
      {"max_size", util::format_size(max_size)},
      {"disable", b(disable)},
      {"base_dir", base_dir},
      {"direct_mode", b(direct_mode)},
      {"depend_mode", b(depend_mode)},
      {"hash_dir", b(hash_dir)},
      {"read_only", b(read_only)},
      {"recache", b(recache)},
      {"stats", b(stats)},
      {"compression_level", std::to_string(compression_level)},
      {"file_link", file_link},
      {"log_file", log_file},
      {"storage", storage_order},
      {"remote_connect_timeout", std::to_string(remote_connect_timeout_ms)},
      {"remote_request_timeout", std::to_string(remote_request_timeout_ms)},
      {"remote_backoff", std::to_string(remote_backoff_s)},
      {"remote_plugin", remote_plugin},
      {"s3_bucket", s3_bucket},
      {"s3_endpoint", s3_endpoint},
      {"s3_region", s3_region},
      {"s3_key_prefix", s3_key_prefix},
      {"s3_use_ssl", b(s3_use_ssl)},
      {"s3_virtual_host_style", b(s3_virtual_host_style)},
      {"s3_server_side_encryption", s3_server_side_encryption},
      {"s3_sse_kms_key_id", s3_sse_kms_key_id},
      {"s3_no_credentials", b(s3_no_credentials)},
      {"s3_rw_mode", s3_read_only ? "READ_ONLY" : "READ_WRITE"},
      {"redis_endpoint", redact_url(redis_endpoint)},
      {"redis_key_prefix", redis_key_prefix},
      {"redis_expiration", std::to_string(redis_expiration)},
      {"redis_rw_mode", redis_read_only ? "READ_ONLY" : "READ_WRITE"},
      {"http_endpoint", http_endpoint},
      {"http_bearer_token", http_bearer_token.empty() ? "" : "(set)"},
      {"http_headers", http_headers},
      {"http_rw_mode", http_read_only ? "READ_ONLY" : "READ_WRITE"},
  };
}

expected<Config, ConfigError> load_config(Config* fallback) {
  Config c;
  c.cache_dir = default_cache_dir();
  c.config_path = default_config_path();
  for (const auto& k : k_keys) {
    c.sources[k.key] = ConfigSource::default_value;
  }

  std::optional<ConfigError> error;
  util::FileStat st = util::FileStat::of(c.config_path);
  if (st.exists()) {
    auto text = util::read_file(c.config_path);
    if (!text) {
      error = ConfigError{ConfigErrorKind::unreadable_file,
                          c.config_path + ": cannot read: " + std::strerror(text.error())};
    } else {
      toml::parse_result parsed = toml::parse(*text, c.config_path);
      if (!parsed) {
        std::ostringstream msg;
        msg << c.config_path << ":" << parsed.error().source().begin.line << ": "
            << parsed.error().description();
        error = ConfigError{ConfigErrorKind::syntax, msg.str()};
      } else {
        for (auto&& [key, node] : parsed.table()) {
          std::string k(key.str());
          if (!known_key(k)) {
            error = ConfigError{ConfigErrorKind::unknown_key,
                                c.config_path + ": unknown key \"" + k + "\""};
            continue;
          }
          auto text = toml_value_text(node);
          std::string msg = text ? apply(&c, k, *text) : "unsupported TOML value type";
          if (!msg.empty()) {
            error = ConfigError{ConfigErrorKind::bad_value, c.config_path + ": " + k + ": " + msg};
            continue;
          }
          c.sources[k] = ConfigSource::config_file;
        }
      }
    }
  }
  std::string env_error;
  apply_environment(&c, &env_error);
  if (!env_error.empty() && !error) {
    error = ConfigError{ConfigErrorKind::bad_value, env_error};
  }
  if (error) {
    *fallback = c;
    return unexpected(*error);
  }
  return c;
}

expected<void, ConfigError> set_config_value(const std::string& path, const std::string& key,
                                             const std::string& value) {
  if (!known_key(key)) {
    return unexpected(ConfigError{ConfigErrorKind::unknown_key, "unknown key \"" + key + "\""});
  }
  Config probe;
  if (std::string msg = apply(&probe, key, value); !msg.empty()) {
    return unexpected(ConfigError{ConfigErrorKind::bad_value, key + ": " + msg});
  }
  toml::table table;
  if (util::FileStat::of(path).exists()) {
    auto text = util::read_file(path);
    if (!text) {
      return unexpected(ConfigError{ConfigErrorKind::unreadable_file, path + ": cannot read"});
    }
    toml::parse_result parsed = toml::parse(*text, path);
    if (!parsed) {
      return unexpected(ConfigError{ConfigErrorKind::syntax,
                                    path + ": " + std::string(parsed.error().description())});
    }
    table = std::move(parsed.table());
  }
  auto b = parse_bool(value);
  bool is_bool_key = key == "disable" || key == "direct_mode" || key == "depend_mode" ||
                     key == "hash_dir" || key == "read_only" || key == "recache" || key == "stats";
  if (is_bool_key && b) {
    table.insert_or_assign(key, *b);
  } else if (key == "compression_level" || key == "remote_connect_timeout" ||
             key == "remote_request_timeout" || key == "redis_expiration" ||
             key == "remote_backoff") {
    table.insert_or_assign(key, *util::parse_int(value));
  } else {
    table.insert_or_assign(key, value);
  }
  std::ostringstream out;
  out << table << "\n";
  if (auto r = util::make_directories(std::string(util::dir_name(path))); !r) {
    return unexpected(
        ConfigError{ConfigErrorKind::unreadable_file, path + ": cannot create directory"});
  }
  if (auto r = util::write_file_atomic(path, out.str()); !r) {
    return unexpected(ConfigError{ConfigErrorKind::unreadable_file,
                                  path + ": cannot write: " + std::strerror(r.error())});
  }
  return {};
}

}  // namespace kiln::cache
