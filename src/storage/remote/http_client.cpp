// The libcurl transport of HttpClient (libkiln-remote.so: http and https);
// http_common.cpp has the parts shared with the socket transport.
#include "kiln/storage/remote/http_client.hpp"

#include <curl/curl.h>

#include <memory>
#include <mutex>

namespace kiln::storage {

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

size_t on_body(char* data, size_t size, size_t count, void* user) {
  static_cast<HttpResponse*>(user)->body.append(data, size * count);
  return size * count;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<HttpResponse*>(user);
  std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) {
    response->headers.clear();  // a new response (after 100 Continue or a redirect)
  } else {
    http_detail::add_response_header(response, line);
  }
  return size * count;
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
    default:
      return TransportError::other;
  }
}

}  // namespace

HttpClient::HttpClient(HttpTimeouts timeouts) : m_timeouts(timeouts) {
  init_curl_once();
  m_transport = curl_easy_init();
}

HttpClient::~HttpClient() {
  if (m_transport) {
    curl_easy_cleanup(static_cast<CURL*>(m_transport));
  }
}

expected<HttpResponse, HttpError> HttpClient::perform(const HttpRequest& request) {
  CURL* curl = static_cast<CURL*>(m_transport);
  if (!curl) {
    return unexpected(HttpError{TransportError::other, "curl_easy_init failed"});
  }
  // A reset keeps the connection cache, so the next request may reuse a connection.
  curl_easy_reset(curl);

  HttpResponse response;
  char error_buffer[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(m_timeouts.connect_ms));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(m_timeouts.total_ms));
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "kiln");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response);
  // Results are often megabytes: larger reads than the 16 KiB default mean
  // fewer recv calls and body callbacks.
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 256L * 1024);

  const std::string& method = request.method;
  bool sends_body = http_detail::sends_body(request);
  if (method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else if (method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (method != "POST") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  if (sends_body) {
    // Sent from memory as is, without a copy.
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.empty() ? "" : request.body.data());
  }

  std::vector<std::string> lines = http_detail::request_header_lines(request);
  if (sends_body) {
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
    std::string message = error_buffer[0] ? error_buffer : curl_easy_strerror(code);
    return unexpected(HttpError{classify(code), std::move(message)});
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

}  // namespace kiln::storage
