#include "kiln/storage/levels.hpp"

#include "kiln/storage/plugin_storage.hpp"
#include "kiln/storage/remote/settings_text.hpp"

namespace kiln::storage {

namespace {

std::string missing_setting(std::string_view name) {
  if (name == "s3") {
    return "KILN_S3_BUCKET (s3_bucket)";
  }
  if (name == "redis") {
    return "KILN_REDIS_ENDPOINT (redis_endpoint)";
  }
  return "KILN_HTTP_ENDPOINT (http_endpoint)";
}

// The level's settings as plugin text, and whether it is read-only.
std::pair<std::string, bool> remote_text(const StorageSettings& s, std::string_view name,
                                         bool read_only) {
  if (name == "s3") {
    S3Settings s3 = s.s3;
    s3.common.read_only = s3.common.read_only || read_only;
    return {to_text(s3), s3.common.read_only};
  }
  if (name == "redis") {
    RedisSettings redis = s.redis;
    redis.common.read_only = redis.common.read_only || read_only;
    return {to_text(redis), redis.common.read_only};
  }
  HttpSettings http = s.http;
  http.common.read_only = http.common.read_only || read_only;
  return {to_text(http), http.common.read_only};
}

}  // namespace

std::vector<StorageChain::LevelSpec> storage_levels(const StorageSettings& s, Storage* local,
                                                    bool read_only) {
  std::vector<std::string> order = s.order;
  if (order.empty()) {
    order = {"local", "redis", "s3", "http"};
  }
  const std::string plugin_dir = s.plugin_dir;  // empty: found when first opened
  std::vector<StorageChain::LevelSpec> levels;
  for (const auto& name : order) {
    StorageChain::LevelSpec spec;
    spec.name = name;
    if (name == "local") {
      if (!local) {
        continue;
      }
      spec.storage = local;
      spec.read_only = read_only;
      levels.push_back(std::move(spec));
      continue;
    }
    if (!s.configured(name)) {
      if (!s.order.empty()) {
        // Named in the order but not configured: say so once, when used.
        spec.open = [name]() -> expected<std::unique_ptr<Storage>, std::string> {
          return unexpected(name + " is listed in KILN_STORAGE but " + missing_setting(name) +
                            " is not set");
        };
        levels.push_back(std::move(spec));
      }
      continue;
    }
    // Not a structured binding: clang 14 cannot capture one in a lambda.
    auto text = remote_text(s, name, read_only);
    spec.read_only = text.second;
    spec.open = [name, settings = std::move(text.first), plugin_dir]() {
      return open_remote_storage(name, settings,
                                 plugin_dir.empty() ? default_plugin_dir() : plugin_dir);
    };
    levels.push_back(std::move(spec));
  }
  return levels;
}

}  // namespace kiln::storage
