#include "kiln/storage/remote/http_storage.hpp"

#include <utility>

namespace kiln::storage {

namespace {

// The URL without "user:password@", for messages.
std::string redacted(const std::string& url) {
  auto scheme_end = url.find("://");
  size_t host_start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  auto at = url.find('@', host_start);
  auto slash = url.find('/', host_start);
  if (at == std::string::npos || (slash != std::string::npos && at > slash)) {
    return url;
  }
  return url.substr(0, host_start) + url.substr(at + 1);
}

std::string hint_for(long status) {
  switch (status) {
    case 401:
    case 403:
      return "; check the bearer token and the server's access rules";
    case 405:
    case 501:
      return "; the server does not accept this method (nginx: dav_methods PUT DELETE)";
    case 409:
      return "; the server cannot create the directories (nginx: create_full_put_path on)";
    case 413:
      return "; the entry is larger than the server accepts (nginx: client_max_body_size)";
    default:
      return "";
  }
}

}  // namespace

HttpStorage::HttpStorage(HttpSettings settings, std::unique_ptr<net::HttpClient> client)
    : m_settings(std::move(settings)), m_client(std::move(client)) {
  m_base_url = m_settings.url;
  while (!m_base_url.empty() && m_base_url.back() == '/') {
    m_base_url.pop_back();
  }
}

net::HttpTimeouts HttpStorage::client_timeouts(const HttpSettings& settings) {
  return net::HttpTimeouts{settings.common.connect_timeout_ms, settings.common.request_timeout_ms};
}

std::string HttpStorage::url_of(const Key& key) const {
  return m_base_url + "/" + key.relative_path();
}

Failure HttpStorage::fail(Error e) {
  m_error = std::move(e);
  return m_error.failure;
}

std::string HttpStorage::shown_prefix() const {
  return redacted(m_base_url) + "/";
}

std::vector<std::string> HttpStorage::request_headers() const {
  std::vector<std::string> headers;
  if (!m_settings.bearer_token.empty()) {
    headers.push_back("Authorization: Bearer " + m_settings.bearer_token);
  }
  for (const auto& [name, value] : m_settings.headers) {
    headers.push_back(name + ": " + value);
  }
  return headers;
}

expected<net::HttpResponse, Failure> HttpStorage::send(std::string_view method, const Key& key,
                                                       std::string_view body) {
  net::HttpRequest request;
  request.method = std::string(method);
  request.url = url_of(key);
  request.headers = request_headers();
  request.body = body;
  auto response = m_client->perform(request);
  if (response) {
    return std::move(*response);
  }
  const net::HttpError& e = response.error();
  std::string where = "HTTP storage: " + std::string(method) + " " + shown_prefix();
  switch (e.kind) {
    case net::TransportError::timeout:
      return unexpected(
          fail(Error::naming(Failure::timeout, where, key.relative_path(),
                             " timed out (" + e.message + "); the server is slow or unreachable")));
    case net::TransportError::cannot_connect:
      return unexpected(fail(Error::plain(
          Failure::error, "HTTP storage: cannot connect to " + redacted(m_base_url) + " (" +
                              e.message + "); check the URL and that the server is running")));
    case net::TransportError::response_too_large:
    case net::TransportError::malformed_response:
    case net::TransportError::other:
      break;
  }
  return unexpected(
      fail(Error::naming(Failure::error, where, key.relative_path(), " failed: " + e.message)));
}

Failure HttpStorage::status_failure(std::string_view method, const Key& key,
                                    const net::HttpResponse& response) {
  const bool denied = response.status == 401 || response.status == 403;
  return fail(Error::naming(
      denied ? Failure::access_denied : Failure::error,
      "HTTP storage: " + std::string(method) + " " + shown_prefix(), key.relative_path(),
      " returned HTTP " + std::to_string(response.status) + hint_for(response.status)));
}

Failure HttpStorage::read_only_failure(std::string_view method) {
  return fail(Error::plain(Failure::error, "HTTP storage at " + redacted(m_base_url) +
                                               " is read-only; " + std::string(method) +
                                               " not sent"));
}

Failure HttpStorage::no_leases() {
  return fail(Error::plain(Failure::error, "leases are not supported by the HTTP level"));
}

expected<bool, Failure> HttpStorage::acquire_lease(const Key&, std::string_view,
                                                   std::chrono::milliseconds) {
  return unexpected(no_leases());
}

expected<void, Failure> HttpStorage::release_lease(const Key&, std::string_view) {
  return unexpected(no_leases());
}

expected<bool, Failure> HttpStorage::lease_held(const Key&) {
  return unexpected(no_leases());
}

expected<std::string, Failure> HttpStorage::get(const Key& key) {
  auto response = send("GET", key);
  if (!response) {
    return unexpected(response.error());
  }
  if (response->status == 200) {
    return std::move(response->body);
  }
  if (response->status == 404 || response->status == 410) {
    return unexpected(Failure::not_found);
  }
  return unexpected(status_failure("GET", key, *response));
}

expected<void, Failure> HttpStorage::put(const Key& key, std::string_view value) {
  if (m_settings.common.read_only) {
    return unexpected(read_only_failure("PUT"));
  }
  auto response = send("PUT", key, value);
  if (!response) {
    return unexpected(response.error());
  }
  if (response->status >= 200 && response->status < 300) {
    return {};
  }
  return unexpected(status_failure("PUT", key, *response));
}

expected<void, Failure> HttpStorage::remove(const Key& key) {
  if (m_settings.common.read_only) {
    return unexpected(read_only_failure("DELETE"));
  }
  auto response = send("DELETE", key);
  if (!response) {
    return unexpected(response.error());
  }
  if (response->status >= 200 && response->status < 300) {
    return {};
  }
  if (response->status == 404 || response->status == 410) {
    return unexpected(Failure::not_found);
  }
  return unexpected(status_failure("DELETE", key, *response));
}

expected<bool, Failure> HttpStorage::exists(const Key& key) {
  auto response = send("HEAD", key);
  if (!response) {
    return unexpected(response.error());
  }
  if (response->status == 200) {
    return true;
  }
  if (response->status == 404 || response->status == 410) {
    return false;
  }
  return unexpected(status_failure("HEAD", key, *response));
}

}  // namespace kiln::storage
