#include "kiln/cache/storage_levels.hpp"

#include "kiln/storage/plugin_storage.hpp"
#include "kiln/storage/remote/settings_text.hpp"
#include "kiln/util/string.hpp"

namespace kiln::cache {

namespace {

storage::RemoteCommon common(const Config& c, bool read_only) {
  storage::RemoteCommon r;
  r.connect_timeout_ms = c.remote_connect_timeout_ms;
  r.request_timeout_ms = c.remote_request_timeout_ms;
  r.read_only = read_only || c.read_only;
  return r;
}

bool configured(const Config& c, std::string_view name) {
  if (name == "s3") {
    return !c.s3_bucket.empty();
  }
  if (name == "redis") {
    return !c.redis_endpoint.empty();
  }
  if (name == "http") {
    return !c.http_endpoint.empty();
  }
  return name == "local";
}

std::string missing_setting(std::string_view name) {
  if (name == "s3") {
    return "KILN_S3_BUCKET (s3_bucket)";
  }
  if (name == "redis") {
    return "KILN_REDIS_ENDPOINT (redis_endpoint)";
  }
  return "KILN_HTTP_ENDPOINT (http_endpoint)";
}

}  // namespace

storage::S3Settings s3_settings(const Config& c) {
  storage::S3Settings s;
  s.common = common(c, c.s3_read_only);
  s.bucket = c.s3_bucket;
  s.endpoint = c.s3_endpoint;
  s.use_ssl = c.s3_use_ssl;
  // sccache accepts an endpoint with a scheme; the scheme then decides SSL.
  if (s.endpoint.starts_with("http://")) {
    s.endpoint = s.endpoint.substr(7);
    s.use_ssl = false;
  } else if (s.endpoint.starts_with("https://")) {
    s.endpoint = s.endpoint.substr(8);
    s.use_ssl = true;
  }
  while (!s.endpoint.empty() && s.endpoint.back() == '/') {
    s.endpoint.pop_back();
  }
  s.region = c.s3_region;
  s.key_prefix = c.s3_key_prefix;
  s.path_style = !c.s3_virtual_host_style;
  s.server_side_encryption = c.s3_server_side_encryption;
  s.sse_kms_key_id = c.s3_sse_kms_key_id;
  s.no_credentials = c.s3_no_credentials;
  return s;
}

storage::RedisSettings redis_settings(const Config& c) {
  storage::RedisSettings s;
  s.common = common(c, c.redis_read_only);
  s.url = c.redis_endpoint;
  s.key_prefix = c.redis_key_prefix;
  s.expiration_s = c.redis_expiration;
  return s;
}

storage::HttpSettings http_settings(const Config& c) {
  storage::HttpSettings s;
  s.common = common(c, c.http_read_only);
  s.url = c.http_endpoint;
  while (!s.url.empty() && s.url.back() == '/') {
    s.url.pop_back();
  }
  s.bearer_token = c.http_bearer_token;
  for (const auto& pair : util::split(c.http_headers, ';')) {
    auto colon = pair.find(':');
    if (colon != std::string::npos) {
      s.headers.emplace_back(std::string(util::trim(pair.substr(0, colon))),
                             std::string(util::trim(pair.substr(colon + 1))));
    }
  }
  return s;
}

bool has_remote_storage(const Config& c) {
  return configured(c, "s3") || configured(c, "redis") || configured(c, "http");
}

std::vector<storage::StorageChain::LevelSpec> storage_levels(const Config& c,
                                                             storage::Storage* local) {
  std::vector<std::string> order;
  if (c.storage_order.empty()) {
    order = {"local", "redis", "s3", "http"};
  } else {
    for (const auto& name : util::split(c.storage_order, ',')) {
      order.emplace_back(util::trim(name));
    }
  }
  const std::string plugin_dir = c.remote_plugin;  // empty: found when first opened
  std::vector<storage::StorageChain::LevelSpec> levels;
  for (const auto& name : order) {
    storage::StorageChain::LevelSpec spec;
    spec.name = name;
    if (name == "local") {
      if (!local) {
        continue;
      }
      spec.storage = local;
      spec.read_only = c.read_only;
      levels.push_back(std::move(spec));
      continue;
    }
    if (!configured(c, name)) {
      if (!c.storage_order.empty()) {
        // Named in the order but not configured: say so once, when used.
        spec.open = [name]() -> expected<std::unique_ptr<storage::Storage>, std::string> {
          return unexpected(name + " is listed in KILN_STORAGE but " + missing_setting(name) +
                            " is not set");
        };
        levels.push_back(std::move(spec));
      }
      continue;
    }
    std::string settings;
    if (name == "s3") {
      auto s3 = s3_settings(c);
      spec.read_only = s3.common.read_only;
      settings = storage::to_text(s3);
    } else if (name == "redis") {
      auto redis = redis_settings(c);
      spec.read_only = redis.common.read_only;
      settings = storage::to_text(redis);
    } else {
      auto http = http_settings(c);
      spec.read_only = http.common.read_only;
      settings = storage::to_text(http);
    }
    spec.open = [name, settings, plugin_dir]() {
      return storage::open_remote_storage(
          name, settings, plugin_dir.empty() ? storage::default_plugin_dir() : plugin_dir);
    };
    levels.push_back(std::move(spec));
  }
  return levels;
}

}  // namespace kiln::cache
