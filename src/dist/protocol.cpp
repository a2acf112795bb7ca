#include "kiln/dist/protocol.hpp"

#include <nlohmann/json.hpp>

namespace kiln::dist {

using nlohmann::json;

namespace {

constexpr size_t k_max_list = 10000;  // job or toolchain ids in one message
constexpr size_t k_max_url = 2048;
constexpr size_t k_max_certificate = 64 * 1024;

// Reads fields out of one JSON object, remembering the first error.
class Reader {
 public:
  explicit Reader(std::string_view text) {
    m_doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (m_doc.is_discarded()) {
      m_error = "malformed JSON";
    } else if (!m_doc.is_object()) {
      m_error = "expected a JSON object";
    }
  }
  bool ok() const { return m_error.empty(); }
  const std::string& error() const { return m_error; }

  std::string id(const char* key, bool required = true) {
    std::string s = string(key, 128, required);
    if (ok() && (required || !s.empty()) && !is_valid_id(s)) {
      fail(std::string(key) + ": not a valid id");
    }
    return s;
  }
  std::string string(const char* key, size_t max, bool required = true) {
    const json* v = find(key, required);
    if (!v) {
      return {};
    }
    if (!v->is_string()) {
      fail(std::string(key) + ": expected a string");
      return {};
    }
    const auto& s = v->get_ref<const std::string&>();
    if (s.size() > max) {
      fail(std::string(key) + ": longer than " + std::to_string(max) + " bytes");
      return {};
    }
    return s;
  }
  int64_t integer(const char* key, int64_t lo, int64_t hi, int64_t fallback, bool required) {
    const json* v = find(key, required);
    if (!v) {
      return fallback;
    }
    if (!v->is_number_integer()) {
      fail(std::string(key) + ": expected an integer");
      return fallback;
    }
    int64_t n = v->get<int64_t>();
    if (n < lo || n > hi) {
      fail(std::string(key) + ": out of range " + std::to_string(lo) + " ... " +
           std::to_string(hi));
      return fallback;
    }
    return n;
  }
  double number(const char* key) {
    const json* v = find(key, false);
    if (!v) {
      return 0;
    }
    if (!v->is_number() || v->get<double>() < 0) {
      fail(std::string(key) + ": expected a non-negative number");
      return 0;
    }
    return v->get<double>();
  }
  bool boolean(const char* key) {
    const json* v = find(key, false);
    if (!v) {
      return false;
    }
    if (!v->is_boolean()) {
      fail(std::string(key) + ": expected true or false");
      return false;
    }
    return v->get<bool>();
  }
  std::vector<std::string> ids(const char* key) {
    std::vector<std::string> out;
    const json* v = find(key, false);
    if (!v) {
      return out;
    }
    if (!v->is_array() || v->size() > k_max_list) {
      fail(std::string(key) + ": expected an array of at most " + std::to_string(k_max_list) +
           " ids");
      return out;
    }
    for (const auto& item : *v) {
      if (!item.is_string() || !is_valid_id(item.get_ref<const std::string&>())) {
        fail(std::string(key) + ": not a valid id");
        return {};
      }
      out.push_back(item.get<std::string>());
    }
    return out;
  }
  const json* object(const char* key) {
    const json* v = find(key, false);
    if (v && !v->is_object()) {
      fail(std::string(key) + ": expected an object");
      return nullptr;
    }
    return v;
  }
  void fail(std::string message) {
    if (m_error.empty()) {
      m_error = std::move(message);
    }
  }

 private:
  const json* find(const char* key, bool required) {
    if (!ok()) {
      return nullptr;
    }
    auto it = m_doc.find(key);
    if (it == m_doc.end() || it->is_null()) {
      if (required) {
        fail(std::string("missing ") + key);
      }
      return nullptr;
    }
    return &*it;
  }

  json m_doc;
  std::string m_error;
};

bool is_url(std::string_view s) {
  return s.starts_with("http://") || s.starts_with("https://");
}

}  // namespace

bool is_valid_id(std::string_view id) {
  if (id.empty() || id.size() > 128) {
    return false;
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string to_json(const ErrorBody& e) {
  return json{{"error", e.error}, {"retry_elsewhere", e.retry_elsewhere}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

expected<ErrorBody, std::string> parse_error_body(std::string_view text) {
  Reader r(text);
  ErrorBody e;
  e.error = r.string("error", 4096);
  e.retry_elsewhere = r.boolean("retry_elsewhere");
  if (!r.ok()) {
    return unexpected(r.error());
  }
  return e;
}

std::string to_json(const Heartbeat& h) {
  return json{{"server_id", h.server_id},
              {"nonce", h.nonce},
              {"public_url", h.public_url},
              {"cores", h.cores},
              {"jobs", h.jobs},
              {"ended", h.ended},
              {"toolchains", h.toolchains},
              {"draining", h.draining},
              {"certificate", h.certificate},
              {"jobs_done", h.jobs_done},
              {"busy_seconds", h.busy_seconds}}
      .dump();
}

expected<Heartbeat, std::string> parse_heartbeat(std::string_view text) {
  Reader r(text);
  Heartbeat h;
  h.server_id = r.id("server_id");
  h.nonce = r.id("nonce");
  h.public_url = r.string("public_url", k_max_url);
  h.cores = static_cast<int>(r.integer("cores", 1, 4096, 0, true));
  h.jobs = r.ids("jobs");
  h.ended = r.ids("ended");
  h.toolchains = r.ids("toolchains");
  h.draining = r.boolean("draining");
  h.certificate = r.string("certificate", k_max_certificate, false);
  h.jobs_done = static_cast<uint64_t>(r.integer("jobs_done", 0, INT64_MAX, 0, false));
  h.busy_seconds = r.number("busy_seconds");
  if (r.ok() && !is_url(h.public_url)) {
    r.fail("public_url: expected an http:// or https:// URL");
  }
  if (r.ok() && h.public_url.starts_with("https://") && h.certificate.empty()) {
    r.fail("certificate: required for an https:// public_url");
  }
  if (!r.ok()) {
    return unexpected(r.error());
  }
  return h;
}

std::string to_json(const HeartbeatReply& reply) {
  return json{{"heartbeat_interval_ms", reply.heartbeat_interval_ms},
              {"restarted", reply.restarted}}
      .dump();
}

expected<HeartbeatReply, std::string> parse_heartbeat_reply(std::string_view text) {
  Reader r(text);
  HeartbeatReply reply;
  reply.heartbeat_interval_ms =
      static_cast<int>(r.integer("heartbeat_interval_ms", 10, 3600000, 2000, true));
  reply.restarted = r.boolean("restarted");
  if (!r.ok()) {
    return unexpected(r.error());
  }
  return reply;
}

std::string to_json(const Deregister& d) {
  return json{{"server_id", d.server_id}, {"nonce", d.nonce}}.dump();
}

expected<Deregister, std::string> parse_deregister(std::string_view text) {
  Reader r(text);
  Deregister d;
  d.server_id = r.id("server_id");
  d.nonce = r.id("nonce");
  if (!r.ok()) {
    return unexpected(r.error());
  }
  return d;
}

std::string to_json(const AllocRequest& a) {
  json j{{"client_id", a.client_id},
         {"toolchain", a.toolchain},
         {"exclude", a.exclude},
         {"wait_ms", a.wait_ms}};
  if (a.failed) {
    j["failed"] = json{{"server_id", a.failed->server_id},
                       {"job_id", a.failed->job_id},
                       {"reason", a.failed->reason}};
  }
  return j.dump();
}

expected<AllocRequest, std::string> parse_alloc_request(std::string_view text) {
  Reader r(text);
  AllocRequest a;
  a.client_id = r.id("client_id");
  a.toolchain = r.id("toolchain");
  a.exclude = r.ids("exclude");
  a.wait_ms = static_cast<int>(r.integer("wait_ms", 0, 3600000, 10000, false));
  if (const json* f = r.object("failed")) {
    Reader fr(f->dump());
    Failure failure;
    failure.server_id = fr.id("server_id");
    failure.job_id = fr.id("job_id", false);
    failure.reason = fr.id("reason");
    if (!fr.ok()) {
      r.fail("failed." + fr.error());
    }
    a.failed = std::move(failure);
  }
  if (!r.ok()) {
    return unexpected(r.error());
  }
  return a;
}

std::string to_json(const Allocation& a) {
  return json{{"job_id", a.job_id},
              {"server_id", a.server_id},
              {"url", a.url},
              {"certificate", a.certificate},
              {"job_token", a.job_token},
              {"needs_toolchain", a.needs_toolchain}}
      .dump();
}

expected<Allocation, std::string> parse_allocation(std::string_view text) {
  Reader r(text);
  Allocation a;
  a.job_id = r.id("job_id");
  a.server_id = r.id("server_id");
  a.url = r.string("url", k_max_url);
  a.certificate = r.string("certificate", k_max_certificate, false);
  a.job_token = r.string("job_token", 512);
  a.needs_toolchain = r.boolean("needs_toolchain");
  if (r.ok() && !is_url(a.url)) {
    r.fail("url: expected an http:// or https:// URL");
  }
  if (!r.ok()) {
    return unexpected(r.error());
  }
  return a;
}

}  // namespace kiln::dist
