#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/config/registry.hpp"
#include "kiln/config/values.hpp"
#include "kiln/storage/remote/settings.hpp"

namespace kiln::storage {

// Everything storage's configuration keys say: where the local store is and
// how large it may grow, and which remote levels there are.
struct StorageSettings {
  std::string cache_dir;  // the local store (and everything else kiln keeps)
  int64_t max_size = 0;   // bytes; 0: no limit
  // Level names in chain order ("local", "redis", "s3", "http"); empty:
  // local, then every configured remote level.
  std::vector<std::string> order;
  int remote_backoff_s = 30;  // skip a level this long after it timed out; 0: never
  std::string plugin_dir;     // empty: next to kiln (default_plugin_dir)
  S3Settings s3;              // used when s3.bucket is set
  RedisSettings redis;        // used when redis.url is set
  HttpSettings http;          // used when http.url is set

  // True if the named level is configured ("local" always is).
  bool configured(std::string_view level) const;
  bool has_remote() const;
};

// Declares storage's keys in `registry`: cache_dir and max_size (section
// "general") and the remote levels' (section "remote"); docs/configuration.md
// lists them.
void register_settings(config::Registry& registry);

// Storage's settings from `values`, which must hold the keys of
// register_settings. The S3 endpoint's scheme decides use_ssl; trailing
// slashes of URLs are dropped; http_headers is split into pairs.
StorageSettings storage_settings(const config::Values& values);

}  // namespace kiln::storage
