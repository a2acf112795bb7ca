#include "kiln/storage/storage_settings.hpp"

#include "kiln/util/string.hpp"

namespace kiln::storage {

namespace {

using config::KeyDecl;
using config::Type;
using config::Value;

std::string default_cache_dir(const config::Getenv& getenv) {
  const char* xdg = getenv("XDG_CACHE_HOME");
  if (xdg && *xdg) {
    return std::string(xdg) + "/kiln";
  }
  const char* home = getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.cache/kiln";
}

std::optional<std::string> not_empty(Value& v) {
  if (std::get<std::string>(v).empty()) {
    return "must not be empty";
  }
  return std::nullopt;
}

// sccache's boolean form means SSE-S3.
std::optional<std::string> server_side_encryption(Value& v) {
  auto& s = std::get<std::string>(v);
  if (s == "true" || s == "1" || s == "AES256") {
    s = "AES256";
  } else if (s == "false" || s == "0" || s.empty()) {
    s.clear();
  } else if (s != "aws:kms") {
    return "expected AES256, aws:kms, true or false";
  }
  return std::nullopt;
}

// Documentation order, table "general": the local store.
void add_general_keys(config::Registry& r) {
  auto add = [&r](KeyDecl&& decl) {
    r.add(std::move(decl).in_section("general").owned_by("storage"));
  };
  add(KeyDecl("cache_dir", "KILN_DIR", Type::string, "",
              "where the local store, statistics and compiler probes live")
          .doc_default_is("`$XDG_CACHE_HOME/kiln` or `~/.cache/kiln`")
          .computed_by(default_cache_dir)
          .checked_by(not_empty));
  add(KeyDecl("max_size", "KILN_MAXSIZE", Type::size, "5G",
              "size limit of the local store (`K`, `M`, `G`, `T` are powers of 1024; `0` = no "
              "limit). Exceeding it starts a background cleanup that trims the store to 90 % of "
              "the limit, least recently used entries first")
          .at_least(0));
}

// Documentation order, table "remote": the levels of docs/remote-storage.md.
void add_remote_keys(config::Registry& r) {
  auto add = [&r](KeyDecl&& decl) {
    r.add(std::move(decl).in_section("remote").owned_by("storage"));
  };
  add(KeyDecl("storage", "KILN_STORAGE", Type::list, "",
              "order of the chain, e.g. `local,redis,s3`; empty: `local`, then `redis`, `s3`, "
              "`http` as configured. A level named here but not configured is reported")
          .one_of({"local", "redis", "s3", "http"}));
  add(KeyDecl("remote_connect_timeout", "KILN_REMOTE_CONNECT_TIMEOUT", Type::integer, "1000",
              "connect timeout of every remote request, milliseconds")
          .between(1, 600000)
          .counting("milliseconds"));
  add(KeyDecl("remote_request_timeout", "KILN_REMOTE_REQUEST_TIMEOUT", Type::integer, "5000",
              "timeout of one remote request, milliseconds")
          .between(1, 600000)
          .counting("milliseconds"));
  add(KeyDecl("remote_backoff", "KILN_REMOTE_BACKOFF", Type::integer, "30",
              "after a level times out, every kiln process skips it for this many seconds "
              "(counter `<level>_skipped`); 0 = never skip")
          .between(0, 86400)
          .counting("seconds"));
  add(KeyDecl("remote_plugin", "KILN_REMOTE_PLUGIN", Type::string, "",
              "directory of the plugins: `libkiln-remote.so` (S3, HTTPS; libcurl), "
              "`libkiln-http.so` (HTTP on `http://`; no libcurl) and `libkiln-redis.so` (Redis; "
              "hiredis only)")
          .doc_default_is("next to `kiln`"));
  add(KeyDecl("s3_bucket", "KILN_S3_BUCKET", Type::string, "",
              "S3 bucket; setting it enables the S3 level"));
  add(KeyDecl("s3_endpoint", "KILN_S3_ENDPOINT", Type::string, "",
              "`host[:port]` of an S3-compatible store (MinIO); a leading `http://` or "
              "`https://` also sets `s3_use_ssl`")
          .doc_default_is("`s3.<region>.amazonaws.com`"));
  add(KeyDecl("s3_region", "KILN_S3_REGION", Type::string, "us-east-1",
              "region used for signing (AWS Signature V4)"));
  add(KeyDecl("s3_key_prefix", "KILN_S3_KEY_PREFIX", Type::string, "",
              "objects are `<prefix>/<k0k1>/<k2k3>/<key>`"));
  add(KeyDecl("s3_use_ssl", "KILN_S3_USE_SSL", Type::boolean, "true", "HTTPS to the endpoint"));
  add(KeyDecl("s3_virtual_host_style", "KILN_S3_ENABLE_VIRTUAL_HOST_STYLE", Type::boolean, "false",
              "`bucket.endpoint/key` instead of `endpoint/bucket/key`"));
  add(KeyDecl("s3_server_side_encryption", "KILN_S3_SERVER_SIDE_ENCRYPTION", Type::string, "",
              "`AES256` (SSE-S3; `true` as in sccache) or `aws:kms` (SSE-KMS)")
          .checked_by(server_side_encryption));
  add(KeyDecl("s3_sse_kms_key_id", "KILN_S3_SSE_KMS_KEY_ID", Type::string, "",
              "KMS key id for `aws:kms`"));
  add(KeyDecl("s3_no_credentials", "KILN_S3_NO_CREDENTIALS", Type::boolean, "false",
              "anonymous access (reads only)"));
  add(KeyDecl("s3_rw_mode", "KILN_S3_RW_MODE", Type::choice, "READ_WRITE",
              "`READ_ONLY`: use hits, never write")
          .one_of({"READ_ONLY", "READ_WRITE"}));
  add(KeyDecl("redis_endpoint", "KILN_REDIS_ENDPOINT", Type::string, "",
              "`redis://[[user]:password@]host[:port][/db]` or `unix:///path`; enables the Redis "
              "level")
          .redacted(config::Redact::url_password));
  add(KeyDecl("redis_key_prefix", "KILN_REDIS_KEY_PREFIX", Type::string, "",
              "keys are `<prefix><key>`"));
  add(KeyDecl("redis_expiration", "KILN_REDIS_EXPIRATION", Type::integer, "0",
              "seconds a key lives (refreshed on a hit); 0 = no expiry")
          .at_least(0)
          .counting("seconds"));
  add(KeyDecl("redis_rw_mode", "KILN_REDIS_RW_MODE", Type::choice, "READ_WRITE",
              "`READ_ONLY` or `READ_WRITE`")
          .one_of({"READ_ONLY", "READ_WRITE"}));
  add(KeyDecl("http_endpoint", "KILN_HTTP_ENDPOINT", Type::string, "",
              "base URL; objects are `<url>/<k0k1>/<k2k3>/<key>` (GET/PUT/HEAD/DELETE; nginx "
              "WebDAV works)"));
  add(KeyDecl("http_bearer_token", "KILN_HTTP_BEARER_TOKEN", Type::string, "",
              "sent as `Authorization: Bearer …`")
          .redacted(config::Redact::secret));
  add(KeyDecl("http_headers", "KILN_HTTP_HEADERS", Type::string, "",
              "extra headers, `Name: value` pairs separated by `;`"));
  add(KeyDecl("http_rw_mode", "KILN_HTTP_RW_MODE", Type::choice, "READ_WRITE",
              "`READ_ONLY` or `READ_WRITE`")
          .one_of({"READ_ONLY", "READ_WRITE"}));
}

RemoteCommon common(const config::Values& v, const char* rw_mode_key) {
  RemoteCommon r;
  r.connect_timeout_ms = static_cast<int>(v.get_int("remote_connect_timeout"));
  r.request_timeout_ms = static_cast<int>(v.get_int("remote_request_timeout"));
  r.read_only = v.get_string(rw_mode_key) == "READ_ONLY";
  return r;
}

std::string without_trailing_slashes(std::string s) {
  while (!s.empty() && s.back() == '/') {
    s.pop_back();
  }
  return s;
}

S3Settings s3_settings(const config::Values& v) {
  S3Settings s;
  s.common = common(v, "s3_rw_mode");
  s.bucket = v.get_string("s3_bucket");
  s.endpoint = v.get_string("s3_endpoint");
  s.use_ssl = v.get_bool("s3_use_ssl");
  // sccache accepts an endpoint with a scheme; the scheme then decides SSL.
  if (s.endpoint.starts_with("http://")) {
    s.endpoint = s.endpoint.substr(7);
    s.use_ssl = false;
  } else if (s.endpoint.starts_with("https://")) {
    s.endpoint = s.endpoint.substr(8);
    s.use_ssl = true;
  }
  s.endpoint = without_trailing_slashes(std::move(s.endpoint));
  s.region = v.get_string("s3_region");
  s.key_prefix = v.get_string("s3_key_prefix");
  s.path_style = !v.get_bool("s3_virtual_host_style");
  s.server_side_encryption = v.get_string("s3_server_side_encryption");
  s.sse_kms_key_id = v.get_string("s3_sse_kms_key_id");
  s.no_credentials = v.get_bool("s3_no_credentials");
  return s;
}

RedisSettings redis_settings(const config::Values& v) {
  RedisSettings s;
  s.common = common(v, "redis_rw_mode");
  s.url = v.get_string("redis_endpoint");
  s.key_prefix = v.get_string("redis_key_prefix");
  s.expiration_s = v.get_int("redis_expiration");
  return s;
}

HttpSettings http_settings(const config::Values& v) {
  HttpSettings s;
  s.common = common(v, "http_rw_mode");
  s.url = without_trailing_slashes(v.get_string("http_endpoint"));
  s.bearer_token = v.get_string("http_bearer_token");
  for (const auto& pair : util::split(v.get_string("http_headers"), ';')) {
    auto colon = pair.find(':');
    if (colon != std::string::npos) {
      s.headers.emplace_back(std::string(util::trim(pair.substr(0, colon))),
                             std::string(util::trim(pair.substr(colon + 1))));
    }
  }
  return s;
}

}  // namespace

bool StorageSettings::configured(std::string_view level) const {
  if (level == "s3") {
    return !s3.bucket.empty();
  }
  if (level == "redis") {
    return !redis.url.empty();
  }
  if (level == "http") {
    return !http.url.empty();
  }
  return level == "local";
}

bool StorageSettings::has_remote() const {
  return configured("s3") || configured("redis") || configured("http");
}

void register_settings(config::Registry& registry) {
  add_general_keys(registry);
  add_remote_keys(registry);
}

StorageSettings storage_settings(const config::Values& v) {
  StorageSettings s;
  s.cache_dir = v.get_string("cache_dir");
  s.max_size = v.get_int("max_size");
  s.order = v.get_list("storage");
  s.remote_backoff_s = static_cast<int>(v.get_int("remote_backoff"));
  s.plugin_dir = v.get_string("remote_plugin");
  s.s3 = s3_settings(v);
  s.redis = redis_settings(v);
  s.http = http_settings(v);
  return s;
}

}  // namespace kiln::storage
