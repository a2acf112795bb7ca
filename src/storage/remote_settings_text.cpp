#include "kiln/storage/remote_settings_text.hpp"

#include <functional>
#include <map>

#include "kiln/util/string.hpp"

namespace kiln::storage {

namespace {

class Out {
 public:
  void add(std::string_view name, std::string_view value) {
    // Values are single lines: a newline would start a new field.
    std::string v(value);
    for (char& c : v) {
      if (c == '\n' || c == '\r') {
        c = ' ';
      }
    }
    m_text.append(name).append("=").append(v).append("\n");
  }
  void add(std::string_view name, bool value) { add(name, std::string_view(value ? "1" : "0")); }
  void add(std::string_view name, int64_t value) { add(name, std::to_string(value)); }
  void add(std::string_view name, int value) { add(name, std::to_string(value)); }
  void common(const RemoteCommon& c) {
    add("connect_timeout_ms", c.connect_timeout_ms);
    add("request_timeout_ms", c.request_timeout_ms);
    add("read_only", c.read_only);
  }
  std::string& text() { return m_text; }

 private:
  std::string m_text;
};

// Calls `f(name, value)` for every line.
void each_field(std::string_view text,
                const std::function<void(std::string_view, const std::string&)>& f) {
  for (const auto& line : util::split(text, '\n')) {
    auto eq = line.find('=');
    if (eq == std::string::npos) {
      continue;
    }
    f(std::string_view(line).substr(0, eq), line.substr(eq + 1));
  }
}

void set_int(int* field, const std::string& v) {
  if (auto n = util::parse_int(v)) {
    *field = static_cast<int>(*n);
  }
}

bool common_field(RemoteCommon* c, std::string_view name, const std::string& v) {
  if (name == "connect_timeout_ms") {
    set_int(&c->connect_timeout_ms, v);
  } else if (name == "request_timeout_ms") {
    set_int(&c->request_timeout_ms, v);
  } else if (name == "read_only") {
    c->read_only = v == "1";
  } else {
    return false;
  }
  return true;
}

}  // namespace

std::string to_text(const S3Settings& s) {
  Out o;
  o.common(s.common);
  o.add("bucket", s.bucket);
  o.add("endpoint", s.endpoint);
  o.add("region", s.region);
  o.add("key_prefix", s.key_prefix);
  o.add("use_ssl", s.use_ssl);
  o.add("path_style", s.path_style);
  o.add("server_side_encryption", s.server_side_encryption);
  o.add("sse_kms_key_id", s.sse_kms_key_id);
  o.add("no_credentials", s.no_credentials);
  o.add("access_key_id", s.access_key_id);
  o.add("secret_access_key", s.secret_access_key);
  o.add("session_token", s.session_token);
  o.add("profile", s.profile);
  o.add("credentials_file", s.credentials_file);
  o.add("role_arn", s.role_arn);
  o.add("web_identity_token_file", s.web_identity_token_file);
  o.add("role_session_name", s.role_session_name);
  o.add("sts_endpoint", s.sts_endpoint);
  return std::move(o.text());
}

S3Settings s3_settings_from_text(std::string_view text) {
  S3Settings s;
  std::map<std::string_view, std::string*> strings = {
      {"bucket", &s.bucket},
      {"endpoint", &s.endpoint},
      {"region", &s.region},
      {"key_prefix", &s.key_prefix},
      {"server_side_encryption", &s.server_side_encryption},
      {"sse_kms_key_id", &s.sse_kms_key_id},
      {"access_key_id", &s.access_key_id},
      {"secret_access_key", &s.secret_access_key},
      {"session_token", &s.session_token},
      {"profile", &s.profile},
      {"credentials_file", &s.credentials_file},
      {"role_arn", &s.role_arn},
      {"web_identity_token_file", &s.web_identity_token_file},
      {"role_session_name", &s.role_session_name},
      {"sts_endpoint", &s.sts_endpoint},
  };
  std::map<std::string_view, bool*> flags = {
      {"use_ssl", &s.use_ssl},
      {"path_style", &s.path_style},
      {"no_credentials", &s.no_credentials},
  };
  each_field(text, [&](std::string_view name, const std::string& v) {
    if (common_field(&s.common, name, v)) {
      return;
    }
    if (auto it = strings.find(name); it != strings.end()) {
      *it->second = v;
    } else if (auto f = flags.find(name); f != flags.end()) {
      *f->second = v == "1";
    }
  });
  return s;
}

std::string to_text(const RedisSettings& s) {
  Out o;
  o.common(s.common);
  o.add("url", s.url);
  o.add("key_prefix", s.key_prefix);
  o.add("expiration_s", s.expiration_s);
  return std::move(o.text());
}

RedisSettings redis_settings_from_text(std::string_view text) {
  RedisSettings s;
  each_field(text, [&](std::string_view name, const std::string& v) {
    if (common_field(&s.common, name, v)) {
      return;
    }
    if (name == "url") {
      s.url = v;
    } else if (name == "key_prefix") {
      s.key_prefix = v;
    } else if (name == "expiration_s") {
      s.expiration_s = util::parse_int(v).value_or(0);
    }
  });
  return s;
}

std::string to_text(const HttpSettings& s) {
  Out o;
  o.common(s.common);
  o.add("url", s.url);
  o.add("bearer_token", s.bearer_token);
  for (const auto& [name, value] : s.headers) {
    o.add("header", name + ": " + value);
  }
  return std::move(o.text());
}

HttpSettings http_settings_from_text(std::string_view text) {
  HttpSettings s;
  each_field(text, [&](std::string_view name, const std::string& v) {
    if (common_field(&s.common, name, v)) {
      return;
    }
    if (name == "url") {
      s.url = v;
    } else if (name == "bearer_token") {
      s.bearer_token = v;
    } else if (name == "header") {
      auto colon = v.find(':');
      if (colon != std::string::npos) {
        s.headers.emplace_back(std::string(util::trim(v.substr(0, colon))),
                               std::string(util::trim(v.substr(colon + 1))));
      }
    }
  });
  return s;
}

}  // namespace kiln::storage
