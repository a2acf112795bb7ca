#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/net/http_client.hpp"
#include "kiln/storage/remote/s3_credentials.hpp"
#include "kiln/storage/remote_settings.hpp"
#include "kiln/storage/storage.hpp"
#include "kiln/util/clock.hpp"

namespace kiln::storage {

// A remote level in an S3 bucket (AWS, MinIO, moto, ...): an entry is the
// object "<key_prefix>/<k0k1>/<k2k3>/<name>" (just the relative path when the
// prefix is empty; slashes at the ends of the prefix are dropped), so the aws
// CLI or boto3 can list and inspect it. Requests are signed with SigV4 using
// the credentials of CredentialsProvider (resolved on the first request);
// anonymous credentials send unsigned requests and allow reads only.
//
// URLs: path style http(s)://<endpoint>/<bucket>/<object>, else virtual-host
// style http(s)://<bucket>.<endpoint>/<object>; the endpoint defaults to
// s3.<region>.amazonaws.com and may carry its own http:// or https://,
// otherwise use_ssl picks the scheme. Writes carry
// x-amz-server-side-encryption (and the KMS key ID) when configured.
//
// Failures: NoSuchKey (and 404 on HEAD) is not_found; a missing bucket, a
// connection failure and unexpected statuses are errors; 401/403 is
// access_denied; timeouts are timeout. last_error() names the bucket,
// endpoint or credential source and the likely fix. With read_only, put and
// remove fail with error without sending; anonymous put and remove fail with
// access_denied without sending. Requests go through libcurl
// (net::make_curl_client) and are signed at clock.wall(). Thread-compatible.
//
// In-flight leases are the objects "<key_prefix>/leases/<name>" holding
// "<expiry, unix epoch ms> <holder>". acquire_lease creates one with a
// conditional PUT (If-None-Match: *, which AWS S3, MinIO and moto honour):
// 200 takes it; 412 PreconditionFailed or 409 ConditionalRequestConflict
// means it exists, and a GET tells whether it is live (held, unless this
// holder holds it) or gone or expired (unparsable counts as expired: it is
// DELETEd), in which case the conditional PUT is tried once more.
// release_lease GETs it and DELETEs it when the holder is ours; lease_held
// GETs it (a HEAD does not show the expiry). Expiry is judged by the wall
// clocks of the machines sharing the bucket, so they should agree to well
// under the TTL. Two takers of the same expired lease can both hold it (the
// one's DELETE can end the other's new lease): that costs a compilation
// twice, never a wrong entry. With read_only no lease is taken or ended.
class S3Storage : public Storage {
 public:
  // `env` supplies the AWS_* variables (see CredentialsProvider); `clock`
  // must outlive the storage.
  explicit S3Storage(S3Settings settings, EnvLookup env = process_environment(),
                     const util::Clock& clock = util::Clock::system());
  ~S3Storage() override;

  std::string_view name() const override { return "s3"; }
  expected<std::string, Failure> get(const Key& key) override;
  expected<void, Failure> put(const Key& key, std::string_view value) override;
  expected<void, Failure> remove(const Key& key) override;
  expected<bool, Failure> exists(const Key& key) override;
  expected<bool, Failure> acquire_lease(const Key& key, std::string_view holder,
                                        std::chrono::milliseconds ttl) override;
  expected<void, Failure> release_lease(const Key& key, std::string_view holder) override;
  expected<bool, Failure> lease_held(const Key& key) override;
  bool supports_leases() const override { return true; }
  Error last_problem() const override { return m_error; }

  // The object key of `key` in the bucket.
  std::string object_key(const Key& key) const;
  // The URL of `key`'s object.
  std::string object_url(const Key& key) const;
  // The object key of the lease on `key`: "<key_prefix>/leases/<name>".
  std::string lease_object_key(const Key& key) const;

 private:
  // A lease object as read: its body, or nullopt when there is none.
  using LeaseBody = std::optional<std::string>;

  // The object key and URL of the object at `path` under the prefix (an
  // entry's "<k0k1>/<k2k3>/<name>", a lease's "leases/<name>").
  std::string object_key_at(std::string_view path) const;
  std::string object_url_at(std::string_view path) const;
  // Signs and sends a request for the object at `path` under the prefix, with
  // `headers` ("Name: value", signed too) added; a failure before any HTTP
  // status (credentials, transport) is recorded and returned as a Failure.
  expected<net::HttpResponse, Failure> send(std::string_view method, std::string_view path,
                                            std::string_view body = {},
                                            std::vector<std::string> headers = {});
  // Records and classifies a response with an unexpected status.
  Failure status_failure(std::string_view method, std::string_view path,
                         const net::HttpResponse& response);
  // Records a failure that names no entry; returns `failure`.
  Failure fail(Failure failure, std::string message);
  // Records a failure whose message names the object at `path`: before +
  // "s3://<bucket>/<prefix>/" + path + after.
  Failure fail(Failure failure, std::string_view before, std::string_view path,
               std::string_view after);
  // Fails a write without sending it, with read_only.
  Failure read_only(std::string_view method);

  // Requests on the lease object at `path` ("leases/<name>").
  expected<LeaseBody, Failure> get_lease(std::string_view path);
  // The conditional PUT: true when created, false when the object exists.
  expected<bool, Failure> create_lease(std::string_view path, std::string_view holder,
                                       std::chrono::milliseconds ttl);
  // DELETE; a lease already gone is not a failure.
  expected<void, Failure> delete_lease(std::string_view path);
  // DELETE of the object at `path` under the prefix; not_found if S3 had none.
  expected<void, Failure> delete_object(std::string_view path);
  int64_t now_ms() const;

  S3Settings m_settings;
  const util::Clock& m_clock;
  std::string m_scheme;    // "http" or "https"
  std::string m_endpoint;  // host[:port]
  std::string m_prefix;    // key_prefix without slashes at its ends
  CredentialsProvider m_credentials;
  AwsCredentials m_used;  // the credentials of the last request sent
  std::unique_ptr<net::HttpClient> m_client;
  Error m_error;
};

}  // namespace kiln::storage
