#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "kiln/util/log.hpp"

namespace kiln::service {

// How a replica uploads a binary to the leader (docs/service-api.md,
// "Internal endpoints"): transient failures are retried with exponential
// backoff, so that a leader restarted by an upgrade is ridden out.
struct UploadPolicy {
  int retries = 10;                             // attempts after the first
  std::chrono::milliseconds first_delay{1000};  // doubles after each retry
  std::chrono::milliseconds max_delay{60000};   // cap of one delay
  std::chrono::milliseconds timeout{600000};    // one attempt, connect included
};

struct UploadResult {
  bool ok = false;
  int attempts = 0;
  std::string url;     // the last URL tried
  std::string reason;  // why the last attempt failed
};

// Whether an answer to an upload is worth another attempt: 5xx except 507
// (the leader's disk is full: waiting does not help), 408, 429, and 422 with
// the code "hash_mismatch" (the bytes were damaged on the way). Any other
// 4xx fails at once.
bool upload_status_is_transient(long status, std::string_view body);

// PUTs `body` to <leader>/v0/internal/binaries/<program_id>/<version> with
// its SHA-256 in X-Kiln-Sha256. `leader_url` is asked before each attempt
// (the leader's address can come from the membership table and change);
// an empty answer counts as a transient failure. `stop` ends the retries
// early (the replica is stopping). `on_retry` is called before each retry.
UploadResult upload_binary(const std::function<std::string()>& leader_url,
                           std::string_view program_id, int64_t version, std::string_view sha256,
                           std::string_view body, const std::string& token,
                           const UploadPolicy& policy, const std::atomic<bool>* stop,
                           const util::Logger& log, const std::function<void()>& on_retry);

}  // namespace kiln::service
