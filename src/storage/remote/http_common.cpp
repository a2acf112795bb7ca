// The parts of HttpClient that do not depend on the transport: the response
// header lookup, the convenience wrappers around perform(), url_encode and
// AWS SigV4 signing. Linked by both kiln_remote (libcurl, http_client.cpp) and
// kiln_remote_plain (sockets, http_client_plain.cpp).
#include "kiln/storage/remote/http_client.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>

#include "kiln/util/hash.hpp"
#include "kiln/util/string.hpp"

namespace kiln::storage {

namespace {

// Whether the header line "Name: value" is named `name` (lowercase).
bool is_header(std::string_view line, std::string_view name) {
  auto colon = line.find(':');
  return colon != std::string_view::npos && util::lowercase(util::trim(line.substr(0, colon))) == name;
}

std::string_view header_value(std::string_view line) {
  return util::trim(line.substr(line.find(':') + 1));
}

// The most a Content-Length may make add_response_header reserve for the body.
constexpr uint64_t k_max_reserve = uint64_t{1} << 30;

// HMAC-SHA256 (RFC 2104) over util::Hasher.
std::string hmac_sha256(std::string_view key, std::string_view data) {
  constexpr size_t k_block = 64;
  std::array<unsigned char, k_block> block{};
  if (key.size() > k_block) {
    util::Digest d = util::Hasher().update(key).finish();
    std::memcpy(block.data(), d.bytes.data(), d.bytes.size());
  } else {
    std::memcpy(block.data(), key.data(), key.size());
  }
  std::array<unsigned char, k_block> inner_pad;
  std::array<unsigned char, k_block> outer_pad;
  for (size_t i = 0; i < k_block; ++i) {
    inner_pad[i] = block[i] ^ 0x36;
    outer_pad[i] = block[i] ^ 0x5c;
  }
  util::Digest inner = util::Hasher().update(inner_pad.data(), k_block).update(data).finish();
  util::Digest outer = util::Hasher()
                           .update(outer_pad.data(), k_block)
                           .update(inner.bytes.data(), inner.bytes.size())
                           .finish();
  return std::string(reinterpret_cast<const char*>(outer.bytes.data()), outer.bytes.size());
}

std::string to_hex(std::string_view bytes) {
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    auto u = static_cast<unsigned char>(c);
    out += k_hex[u >> 4];
    out += k_hex[u & 0xf];
  }
  return out;
}

// A header value as SigV4 canonicalizes it: trimmed, inner runs of spaces collapsed.
std::string canonical_value(std::string_view value) {
  std::string out;
  for (char c : util::trim(value)) {
    if (c == ' ' && !out.empty() && out.back() == ' ') {
      continue;
    }
    out += c;
  }
  return out;
}

// The query string with its parameters sorted (they are encoded already).
std::string canonical_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  for (const auto& part : util::split(query, '&')) {
    if (part.empty()) {
      continue;
    }
    auto eq = part.find('=');
    params.emplace_back(part.substr(0, eq), eq == std::string::npos ? "" : part.substr(eq + 1));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) {
    out += (out.empty() ? "" : "&") + k + "=" + v;
  }
  return out;
}

}  // namespace

namespace http_detail {

bool sends_body(const HttpRequest& request) {
  return request.method == "PUT" || request.method == "POST" || !request.body.empty();
}

bool has_header(const std::vector<std::string>& headers, std::string_view name) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const std::string& h) { return is_header(h, name); });
}

std::vector<std::string> request_header_lines(const HttpRequest& request) {
  std::vector<std::string> lines = request.headers;
  if (sends_body(request) && !has_header(lines, "content-type")) {
    lines.push_back("Content-Type: application/octet-stream");  // not curl's form default
  }
  if (request.aws) {
    std::string payload_hash;
    for (const auto& h : lines) {
      if (is_header(h, "x-amz-content-sha256")) {
        payload_hash = header_value(h);
      }
    }
    if (payload_hash.empty()) {
      payload_hash = util::Hasher().update(request.body).finish().to_hex();
    }
    auto now = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    auto signature =
        sign_aws_v4(*request.aws, request.method, request.url, lines, payload_hash, now);
    std::erase_if(lines, [](const std::string& h) { return is_header(h, "x-amz-content-sha256"); });
    lines.insert(lines.end(), signature.begin(), signature.end());
  }
  return lines;
}

bool add_response_header(HttpResponse* response, std::string_view line) {
  auto colon = line.find(':');
  if (colon == std::string_view::npos) {
    return false;
  }
  response->headers.emplace_back(util::lowercase(util::trim(line.substr(0, colon))),
                                 std::string(util::trim(line.substr(colon + 1))));
  const auto& [name, value] = response->headers.back();
  if (name == "content-length") {
    // The body then arrives into one buffer instead of a doubling one.
    auto length = util::parse_int(value);
    if (length && *length > 0 && static_cast<uint64_t>(*length) <= k_max_reserve) {
      response->body.reserve(static_cast<size_t>(*length));
    }
  }
  return true;
}

}  // namespace http_detail

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) {
      return v;
    }
  }
  return std::nullopt;
}

expected<HttpResponse, HttpError> HttpClient::get(const std::string& url,
                                                  std::vector<std::string> headers) {
  return perform(HttpRequest{"GET", url, std::move(headers), {}, nullptr});
}

expected<HttpResponse, HttpError> HttpClient::head(const std::string& url,
                                                   std::vector<std::string> headers) {
  return perform(HttpRequest{"HEAD", url, std::move(headers), {}, nullptr});
}

expected<HttpResponse, HttpError> HttpClient::put(const std::string& url, std::string_view body,
                                                  std::vector<std::string> headers) {
  return perform(HttpRequest{"PUT", url, std::move(headers), body, nullptr});
}

expected<HttpResponse, HttpError> HttpClient::post(const std::string& url, std::string_view body,
                                                   std::vector<std::string> headers) {
  return perform(HttpRequest{"POST", url, std::move(headers), body, nullptr});
}

expected<HttpResponse, HttpError> HttpClient::del(const std::string& url,
                                                  std::vector<std::string> headers) {
  return perform(HttpRequest{"DELETE", url, std::move(headers), {}, nullptr});
}

std::string HttpClient::url_encode(std::string_view s) {
  static constexpr char k_hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += c;
    } else {
      out += '%';
      out += k_hex[u >> 4];
      out += k_hex[u & 0xf];
    }
  }
  return out;
}

std::vector<std::string> sign_aws_v4(const AwsSigning& aws, std::string_view method,
                                     std::string_view url, const std::vector<std::string>& headers,
                                     std::string_view payload_hash, int64_t unix_time) {
  // scheme://[user@]host[:port]/path?query#fragment
  std::string_view rest = url;
  if (auto scheme_end = rest.find("://"); scheme_end != std::string_view::npos) {
    rest.remove_prefix(scheme_end + 3);
  }
  rest = rest.substr(0, rest.find('#'));
  size_t path_start = std::min(rest.find('/'), rest.find('?'));
  std::string_view authority = rest.substr(0, path_start);
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string_view target = path_start == std::string_view::npos ? "" : rest.substr(path_start);
  auto question = target.find('?');
  std::string path(target.substr(0, question));
  if (path.empty()) {
    path = "/";
  }
  std::string query =
      question == std::string_view::npos ? "" : canonical_query(target.substr(question + 1));

  std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char amz_date[32];
  std::strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
  std::string date(amz_date, 8);

  std::vector<std::string> out = {"Host: " + std::string(authority),
                                  std::string("x-amz-date: ") + amz_date,
                                  "x-amz-content-sha256: " + std::string(payload_hash)};
  if (!aws.session_token.empty()) {
    out.push_back("x-amz-security-token: " + aws.session_token);
  }
  // Sorted by lowercase name; repeated names join their values with commas.
  std::map<std::string, std::string> signed_headers;
  auto add = [&](const std::string& line) {
    auto colon = line.find(':');
    if (colon == std::string::npos) {
      return;
    }
    std::string value = canonical_value(header_value(line));
    if (value.empty()) {
      return;  // "Name:" removes a header in curl: nothing is sent
    }
    std::string& slot =
        signed_headers[util::lowercase(util::trim(std::string_view(line).substr(0, colon)))];
    slot += (slot.empty() ? "" : ",") + value;
  };
  for (const auto& h : headers) {
    if (!is_header(h, "host") && !is_header(h, "x-amz-content-sha256")) {
      add(h);
    }
  }
  for (const auto& h : out) {
    add(h);
  }

  std::string canonical_headers;
  std::string names;
  for (const auto& [name, value] : signed_headers) {
    canonical_headers += name + ":" + value + "\n";
    names += (names.empty() ? "" : ";") + name;
  }
  std::string canonical_request = std::string(method) + "\n" + path + "\n" + query + "\n" +
                                  canonical_headers + "\n" + names + "\n" +
                                  std::string(payload_hash);
  std::string scope = date + "/" + aws.region + "/" + aws.service + "/aws4_request";
  std::string string_to_sign = std::string("AWS4-HMAC-SHA256\n") + amz_date + "\n" + scope + "\n" +
                               util::Hasher().update(canonical_request).finish().to_hex();
  std::string key = hmac_sha256("AWS4" + aws.secret_access_key, date);
  key = hmac_sha256(key, aws.region);
  key = hmac_sha256(key, aws.service);
  key = hmac_sha256(key, "aws4_request");
  out.push_back("Authorization: AWS4-HMAC-SHA256 Credential=" + aws.access_key_id + "/" + scope +
                ", SignedHeaders=" + names +
                ", Signature=" + to_hex(hmac_sha256(key, string_to_sign)));
  return out;
}

}  // namespace kiln::storage
