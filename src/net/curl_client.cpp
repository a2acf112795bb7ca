// The libcurl transport of HttpClient (curl_client.hpp).
#include "kiln/net/curl_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <memory>
#include <mutex>

#include "kiln/util/string.hpp"

namespace kiln::net {

namespace {

// curl_global_init is not thread-safe; this runs it once per process.
void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

bool append(Slist* list, const std::string& line) {
  curl_slist* grown = curl_slist_append(list->get(), line.c_str());
  if (!grown) {
    return false;
  }
  list->release();
  list->reset(grown);
  return true;
}

// The response being received and why the callbacks stopped it, if they did.
struct Receiving {
  const HttpLimits* limits = nullptr;
  HttpResponse response;
  int fields = 0;          // header fields of every response of the exchange
  std::string over_limit;  // set when a callback refused the rest
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* r = static_cast<Receiving*>(user);
  size_t n = size * count;
  if (r->response.body.size() + n > r->limits->max_body_bytes) {
    r->over_limit = "body larger than the client accepts (" +
                    std::to_string(r->limits->max_body_bytes) + " bytes)";
    return 0;  // curl fails the transfer with CURLE_WRITE_ERROR
  }
  r->response.body.append(data, n);
  return n;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* r = static_cast<Receiving*>(user);
  size_t n = size * count;
  std::string_view line(data, n);
  if (line.size() > r->limits->max_header_line) {
    r->over_limit = "header line too long";
    return 0;
  }
  if (line.starts_with("HTTP/")) {
    r->response.headers.clear();  // a new response (after 100 Continue)
    return n;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) {
    return n;  // the empty line that ends the headers
  }
  if (++r->fields > r->limits->max_headers) {
    r->over_limit = "too many header lines";
    return 0;
  }
  r->response.headers.emplace_back(util::lowercase(util::trim(line.substr(0, colon))),
                                   std::string(util::trim(line.substr(colon + 1))));
  const auto& [name, value] = r->response.headers.back();
  if (name == "content-length") {
    // The body then arrives into one buffer instead of a doubling one
    // (CURLOPT_MAXFILESIZE_LARGE has refused a length over the limit).
    auto length = util::parse_int(value);
    if (length && *length > 0 && static_cast<uint64_t>(*length) <= r->limits->max_body_bytes) {
      r->response.body.reserve(static_cast<size_t>(*length));
    }
  }
  return n;
}

TransportError classify(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return TransportError::timeout;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
      return TransportError::cannot_connect;
    case CURLE_FILESIZE_EXCEEDED:
      return TransportError::response_too_large;
    case CURLE_WEIRD_SERVER_REPLY:
      return TransportError::malformed_response;
    default:
      return TransportError::other;
  }
}

class CurlClient final : public HttpClient {
 public:
  CurlClient(HttpTimeouts timeouts, HttpLimits limits) : m_timeouts(timeouts), m_limits(limits) {
    init_curl_once();
    m_curl = curl_easy_init();
  }
  ~CurlClient() override {
    if (m_curl) {
      curl_easy_cleanup(m_curl);
    }
  }
  CurlClient(const CurlClient&) = delete;
  CurlClient& operator=(const CurlClient&) = delete;

  int64_t connections_opened() const override { return m_connections_opened; }

  expected<HttpResponse, HttpError> perform(const HttpRequest& request) override;

 private:
  HttpTimeouts m_timeouts;
  HttpLimits m_limits;
  CURL* m_curl = nullptr;  // owned
  int64_t m_connections_opened = 0;
};

expected<HttpResponse, HttpError> CurlClient::perform(const HttpRequest& request) {
  CURL* curl = m_curl;
  if (!curl) {
    return unexpected(HttpError{TransportError::other, "curl_easy_init failed"});
  }
  // A reset keeps the connection cache, so the next request may reuse a connection.
  curl_easy_reset(curl);

  Receiving receiving;
  receiving.limits = &m_limits;
  char error_buffer[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(m_timeouts.connect_ms));
  curl_easy_setopt(
      curl, CURLOPT_TIMEOUT_MS,
      static_cast<long>(request.total_ms > 0 ? request.total_ms : m_timeouts.total_ms));
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  if (!request.ca_pem.empty()) {
    // Copied by libcurl. Connections are reused only under the same trust,
    // so a connection made under another certificate is never used again.
    curl_blob ca{const_cast<char*>(request.ca_pem.data()), request.ca_pem.size(), CURL_BLOB_COPY};
    curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &ca);
    curl_easy_setopt(curl, CURLOPT_CAPATH, nullptr);
  }
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "kiln");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &receiving);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &receiving);
  // A Content-Length over the limit fails before the body is read.
  curl_easy_setopt(
      curl, CURLOPT_MAXFILESIZE_LARGE,
      static_cast<curl_off_t>(std::min<uint64_t>(m_limits.max_body_bytes, uint64_t{1} << 62)));
  // Results are often megabytes: larger reads than the 16 KiB default mean
  // fewer recv calls and body callbacks.
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 256L * 1024);

  const std::string& method = request.method;
  bool body = sends_body(request);
  if (method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else if (method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (method != "POST") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  if (body) {
    // Sent from memory as is, without a copy.
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.empty() ? "" : request.body.data());
  }

  std::vector<std::string> lines = header_lines_to_send(request);
  if (body) {
    lines.push_back("Expect:");  // no "Expect: 100-continue" round trip
  }
  Slist headers;
  for (const auto& h : lines) {
    if (!append(&headers, h)) {
      return unexpected(HttpError{TransportError::other, "out of memory building the headers"});
    }
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());

  CURLcode code = curl_easy_perform(curl);
  long connects = 0;
  if (curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK) {
    m_connections_opened += connects;
  }
  // The options point into this frame; drop them before it goes away.
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  if (code != CURLE_OK) {
    if (!receiving.over_limit.empty()) {
      return unexpected(HttpError{TransportError::response_too_large, receiving.over_limit});
    }
    std::string message = error_buffer[0] ? error_buffer : curl_easy_strerror(code);
    return unexpected(HttpError{classify(code), std::move(message)});
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &receiving.response.status);
  return std::move(receiving.response);
}

}  // namespace

std::unique_ptr<HttpClient> make_curl_client(HttpTimeouts timeouts, HttpLimits limits) {
  return std::make_unique<CurlClient>(timeouts, limits);
}

}  // namespace kiln::net
