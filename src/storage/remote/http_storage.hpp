#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/net/http_client.hpp"
#include "kiln/storage/remote_settings.hpp"
#include "kiln/storage/storage.hpp"

namespace kiln::storage {

// A remote level on a plain HTTP(S) server, e.g. nginx with WebDAV
// (dav_methods PUT DELETE; create_full_put_path on): an entry is the object
// <url>/<k0k1>/<k2k3>/<name>, read with GET, written with PUT, probed with
// HEAD and removed with DELETE.
//
// Statuses: 404 is not_found, 401 and 403 are access_denied, other statuses
// and transport failures are errors (timeouts: timeout). With read_only, put
// and remove fail with error without sending anything. Requests carry
// "Authorization: Bearer <bearer_token>" when a token is set, and the extra
// headers of the settings. Thread-compatible (one HTTP connection, reused).
//
// The transport is the caller's choice (plugin.cpp): libcurl in
// libkiln-remote.so, the socket client in libkiln-http.so.
//
// No leases (supports_leases() is false): a plain HTTP server has no
// create-if-absent, so the lease calls fail with error without sending.
class HttpStorage : public Storage {
 public:
  // `client` (owned, not null) sends the requests; the settings' timeouts
  // are the caller's to give it (see client_timeouts).
  HttpStorage(HttpSettings settings, std::unique_ptr<net::HttpClient> client);

  // The connect and request timeouts of `settings`, for the client.
  static net::HttpTimeouts client_timeouts(const HttpSettings& settings);

  std::string_view name() const override { return "http"; }
  expected<std::string, Failure> get(const Key& key) override;
  expected<void, Failure> put(const Key& key, std::string_view value) override;
  expected<void, Failure> remove(const Key& key) override;
  expected<bool, Failure> exists(const Key& key) override;
  expected<bool, Failure> acquire_lease(const Key& key, std::string_view holder,
                                        std::chrono::milliseconds ttl) override;
  expected<void, Failure> release_lease(const Key& key, std::string_view holder) override;
  expected<bool, Failure> lease_held(const Key& key) override;
  Error last_problem() const override { return m_error; }

  // The URL of a key's object.
  std::string url_of(const Key& key) const;

 private:
  std::vector<std::string> request_headers() const;
  // Sends the request; a transport failure is recorded and returned as a Failure.
  expected<net::HttpResponse, Failure> send(std::string_view method, const Key& key,
                                            std::string_view body = {});
  // Records the failure for a response with an unexpected status.
  Failure status_failure(std::string_view method, const Key& key,
                         const net::HttpResponse& response);
  Failure read_only_failure(std::string_view method);
  Failure no_leases();
  // Records `e` as the last failure; returns its kind.
  Failure fail(Error e);
  // The start of the URL of every key: <url>/, without user info.
  std::string shown_prefix() const;

  HttpSettings m_settings;
  std::string m_base_url;  // without trailing slashes
  std::unique_ptr<net::HttpClient> m_client;
  Error m_error;
};

}  // namespace kiln::storage
