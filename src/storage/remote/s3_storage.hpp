#pragma once

#include <memory>
#include <string>
#include <string_view>

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
  Error last_problem() const override { return m_error; }

  // The object key of `key` in the bucket.
  std::string object_key(const Key& key) const;
  // The URL of `key`'s object.
  std::string object_url(const Key& key) const;

 private:
  // Signs and sends a request for `key`'s object; a failure before any HTTP
  // status (credentials, transport) is recorded and returned as a Failure.
  expected<net::HttpResponse, Failure> send(std::string_view method, const Key& key,
                                            std::string_view body = {});
  // Records and classifies a response with an unexpected status.
  Failure status_failure(std::string_view method, const Key& key,
                         const net::HttpResponse& response);
  // Records a failure that names no entry; returns `failure`.
  Failure fail(Failure failure, std::string message);
  // Records a failure whose message names `key`'s object: before +
  // "s3://<bucket>/<prefix>/" + the key's path + after.
  Failure fail(Failure failure, std::string_view before, const Key& key, std::string_view after);

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
