#include "kiln/storage/remote/aws_sigv4.hpp"

#include <algorithm>
#include <ctime>
#include <map>
#include <utility>

#include "kiln/net/url.hpp"
#include "kiln/util/hash.hpp"
#include "kiln/util/hex.hpp"
#include "kiln/util/hmac.hpp"
#include "kiln/util/string.hpp"

namespace kiln::storage {

namespace {

// The lowercase name of the header line "Name: value", "" without a colon.
std::string header_name(std::string_view line) {
  auto colon = line.find(':');
  return colon == std::string_view::npos ? "" : util::lowercase(util::trim(line.substr(0, colon)));
}

// A header value as SigV4 canonicalizes it: trimmed, inner runs of spaces collapsed.
std::string canonical_value(std::string_view line) {
  std::string out;
  for (char c : util::trim(line.substr(line.find(':') + 1))) {
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

std::string sha256_hex(std::string_view data) {
  return util::Hasher().update(data).finish().to_hex();
}

}  // namespace

std::vector<std::string> sign_aws_v4(const AwsSigning& aws, std::string_view method,
                                     std::string_view url, const std::vector<std::string>& headers,
                                     std::string_view payload_hash, int64_t unix_time) {
  auto parsed = net::Url::parse(url);
  std::string authority;
  std::string path = "/";
  std::string query;
  if (parsed) {
    authority = parsed->port != 0 ? parsed->host_port(0) : parsed->host_for_uri();
    path = parsed->path.empty() ? "/" : parsed->path;
    query = canonical_query(parsed->query);
  }

  std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char amz_date[32];
  std::strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
  std::string date(amz_date, 8);

  std::vector<std::string> out = {"Host: " + authority, std::string("x-amz-date: ") + amz_date};
  if (aws.content_sha256_header) {
    out.push_back("x-amz-content-sha256: " + std::string(payload_hash));
  }
  if (!aws.session_token.empty()) {
    out.push_back("x-amz-security-token: " + aws.session_token);
  }
  // Sorted by lowercase name; repeated names join their values with commas.
  std::map<std::string, std::string> signed_headers;
  auto add = [&](const std::string& line) {
    std::string name = header_name(line);
    std::string value = canonical_value(line);
    if (name.empty() || value.empty()) {
      return;  // "Name:" removes a header in curl: nothing is sent
    }
    std::string& slot = signed_headers[name];
    slot += (slot.empty() ? "" : ",") + value;
  };
  for (const auto& h : headers) {
    std::string name = header_name(h);
    if (name != "host" && name != "x-amz-content-sha256") {
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
                               sha256_hex(canonical_request);
  util::Digest key = util::hmac_sha256("AWS4" + aws.secret_access_key, date);
  key = util::hmac_sha256(util::digest_bytes(key), aws.region);
  key = util::hmac_sha256(util::digest_bytes(key), aws.service);
  key = util::hmac_sha256(util::digest_bytes(key), "aws4_request");
  out.push_back("Authorization: AWS4-HMAC-SHA256 Credential=" + aws.access_key_id + "/" + scope +
                ", SignedHeaders=" + names + ", Signature=" +
                util::hmac_sha256(util::digest_bytes(key), string_to_sign).to_hex());
  return out;
}

void sign_request(net::HttpRequest* request, const AwsSigning& aws, const util::Clock& clock) {
  std::vector<std::string> lines = net::header_lines_to_send(*request);
  std::string payload_hash;
  for (const auto& h : lines) {
    if (header_name(h) == "x-amz-content-sha256") {
      payload_hash = canonical_value(h);
    }
  }
  if (payload_hash.empty()) {
    payload_hash = sha256_hex(request->body);
  }
  auto signature =
      sign_aws_v4(aws, request->method, request->url, lines, payload_hash, clock.wall_seconds());
  std::erase_if(lines, [](const std::string& h) {
    std::string name = header_name(h);
    return name == "x-amz-content-sha256" || name == "host";
  });
  lines.insert(lines.end(), signature.begin(), signature.end());
  request->headers = std::move(lines);
}

}  // namespace kiln::storage
