#include "kiln/service/uploader.hpp"

#include <algorithm>
#include <thread>

#include "kiln/net/curl_client.hpp"

namespace kiln::service {

bool upload_status_is_transient(long status, std::string_view body) {
  if (status == 507) {
    return false;
  }
  if (status >= 500 || status == 408 || status == 429) {
    return true;
  }
  return status == 422 && body.find("\"hash_mismatch\"") != std::string_view::npos;
}

UploadResult upload_binary(const std::function<std::string()>& leader_url,
                           std::string_view program_id, int64_t version, std::string_view sha256,
                           std::string_view body, const std::string& token,
                           const UploadPolicy& policy, const std::atomic<bool>* stop,
                           const util::Logger& log, const std::function<void()>& on_retry) {
  UploadResult result;
  net::HttpTimeouts timeouts;
  timeouts.connect_ms = static_cast<int>(std::min<int64_t>(policy.timeout.count(), 5000));
  timeouts.total_ms = static_cast<int>(policy.timeout.count());
  auto client = net::make_curl_client(timeouts);
  std::chrono::milliseconds delay = policy.first_delay;
  for (int attempt = 0; attempt <= policy.retries; ++attempt) {
    if (attempt > 0) {
      if (on_retry) {
        on_retry();
      }
      log.log(util::LogLevel::warn, "upload_retry",
              {{"attempt", attempt},
               {"delay_ms", static_cast<int64_t>(delay.count())},
               {"reason", result.reason}});
      // Sleep in small steps so that a stopping replica does not wait.
      auto until = std::chrono::steady_clock::now() + delay;
      while (std::chrono::steady_clock::now() < until) {
        if (stop && stop->load()) {
          result.reason += " (stopped while waiting to retry)";
          return result;
        }
        std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(
            std::chrono::milliseconds(50), std::chrono::duration_cast<std::chrono::milliseconds>(
                                               until - std::chrono::steady_clock::now()) +
                                               std::chrono::milliseconds(1)));
      }
      delay = std::min(delay * 2, policy.max_delay);
    }
    result.attempts = attempt + 1;
    std::string leader = leader_url();
    if (leader.empty()) {
      result.reason = "the leader's address is not known yet (no heartbeat from replica 0)";
      continue;
    }
    while (leader.ends_with('/')) {
      leader.pop_back();
    }
    result.url =
        leader + "/v0/internal/binaries/" + std::string(program_id) + "/" + std::to_string(version);
    net::HttpRequest request;
    request.method = "PUT";
    request.url = result.url;
    request.body = body;
    request.headers = {"X-Kiln-Sha256: " + std::string(sha256), "Expect:"};
    if (!token.empty()) {
      request.headers.push_back("Authorization: Bearer " + token);
    }
    auto response = client->perform(request);
    if (!response) {
      result.reason = response.error().message;
      continue;
    }
    if (response->status == 200 || response->status == 201 || response->status == 204) {
      result.ok = true;
      result.reason.clear();
      return result;
    }
    std::string excerpt = response->body.substr(0, 300);
    result.reason = "HTTP " + std::to_string(response->status) +
                    (excerpt.empty() ? std::string() : ": " + excerpt);
    if (!upload_status_is_transient(response->status, response->body)) {
      return result;
    }
  }
  return result;
}

}  // namespace kiln::service
