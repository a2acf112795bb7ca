#include "kiln/dist/client.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>

#include "kiln/dist/protocol.hpp"

namespace kiln::dist {

std::string_view to_string(DistFailure f) {
  switch (f) {
    case DistFailure::scheduler_unreachable:
      return "scheduler_unreachable";
    case DistFailure::no_capacity:
      return "no_capacity";
    case DistFailure::retries_exhausted:
      return "retries_exhausted";
    case DistFailure::refused:
      return "refused";
    case DistFailure::unauthorised:
      return "unauthorised";
  }
  return "unknown";
}

namespace {

std::string reason_of(const net::HttpError& e) {
  switch (e.kind) {
    case net::TransportError::timeout:
      return "timeout";
    case net::TransportError::cannot_connect:
      // Refused, unresolvable, or a certificate that did not verify: all say
      // this worker is not the one the scheduler vouched for, or is gone.
      return "cannot_connect";
    default:
      return "gone";
  }
}

// Whether an error answer says another worker may do better.
bool retry_elsewhere(const net::HttpResponse& r) {
  if (r.status >= 500) {
    return true;
  }
  auto body = parse_error_body(r.body);
  return body && body->retry_elsewhere;
}

}  // namespace

DistClient::DistClient(DistClientOptions options, std::unique_ptr<net::HttpClient> http,
                       util::Logger log)
    : m_options(std::move(options)), m_http(std::move(http)), m_log(std::move(log)) {}

expected<JobResult, DistFailure> DistClient::run(const JobRequest& job, const ArchiveFn& archive) {
  ++m_counters.jobs;
  const std::string body = encode_job(job);
  AllocRequest alloc;
  alloc.client_id = m_options.client_id;
  alloc.toolchain = job.toolchain;
  alloc.wait_ms = m_options.alloc_wait_ms;
  std::optional<std::string> archive_bytes;

  for (int attempt = 0; attempt <= m_options.retry_limit; ++attempt) {
    // 1. A worker from the scheduler.
    net::HttpRequest ar;
    ar.method = "POST";
    ar.url = m_options.scheduler_url + "/api/v1/jobs/alloc";
    std::string alloc_body = to_json(alloc);
    ar.body = alloc_body;
    ar.headers = {"Authorization: Bearer " + m_options.token, "Content-Type: application/json"};
    ar.ca_pem = m_options.scheduler_ca_pem;
    ar.total_ms = m_options.alloc_wait_ms + 10000;
    // A scheduler that restarts (or a proxy in front of it) is back within
    // seconds: ask again with backoff before giving up on the cluster.
    auto ares = m_http->perform(ar);
    auto backoff = std::chrono::milliseconds(100);
    auto give_up =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(m_options.scheduler_retry_ms);
    while ((!ares || ares->status >= 500) && !(ares && ares->status == 503) &&
           std::chrono::steady_clock::now() + backoff < give_up) {
      ++m_counters.retries["scheduler"];
      m_log.warn("dist_scheduler_retry",
                 {{"error", ares ? "HTTP " + std::to_string(ares->status) : ares.error().message},
                  {"backoff_ms", static_cast<int64_t>(backoff.count())}});
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      ares = m_http->perform(ar);
    }
    if (!ares) {
      m_log.warn("dist_scheduler_unreachable", {{"error", ares.error().message}});
      return unexpected(DistFailure::scheduler_unreachable);
    }
    if (ares->status == 401) {
      m_log.warn("dist_unauthorised");
      return unexpected(DistFailure::unauthorised);
    }
    if (ares->status == 503) {
      m_log.warn("dist_no_capacity");
      return unexpected(DistFailure::no_capacity);
    }
    if (ares->status != 200) {
      m_log.warn("dist_alloc_failed", {{"status", static_cast<int64_t>(ares->status)}});
      return unexpected(ares->status >= 500 ? DistFailure::scheduler_unreachable
                                            : DistFailure::refused);
    }
    auto a = parse_allocation(ares->body);
    if (!a) {
      m_log.warn("dist_alloc_failed", {{"error", a.error()}});
      return unexpected(DistFailure::scheduler_unreachable);
    }
    util::Logger log = m_log.bind({{"job_id", a->job_id}, {"server_id", a->server_id}});
    auto retry = [&](const std::string& reason) {
      ++m_counters.retries[reason];
      log.warn("dist_worker_failed", {{"reason", reason}, {"attempt", attempt + 1}});
      alloc.exclude.push_back(a->server_id);
      alloc.failed = Failure{a->server_id, a->job_id, reason};
    };
    std::vector<std::string> auth = {"Authorization: Bearer " + a->job_token,
                                     "X-Kiln-Job: " + a->job_id};

    // 2. The toolchain, if the worker lacks it (or says so when the job runs).
    bool uploaded = false;
    auto upload = [&]() -> std::optional<std::string> {  // the failure reason
      if (!archive_bytes) {
        auto bytes = archive();
        if (!bytes) {
          log.error("dist_toolchain_failed", {{"error", bytes.error()}});
          return std::string("toolchain");
        }
        archive_bytes = std::move(*bytes);
      }
      net::HttpRequest up;
      up.method = "PUT";
      up.url = a->url + "/api/v1/toolchains/" + job.toolchain;
      up.body = *archive_bytes;
      up.headers = auth;
      up.ca_pem = a->certificate;
      up.total_ms = m_options.job_timeout_ms;
      auto r = m_http->perform(up);
      if (!r) {
        return reason_of(r.error());
      }
      m_counters.bytes_sent += archive_bytes->size();
      if (r->status != 200) {
        return std::string(r->status >= 500 ? "5xx" : "toolchain_refused");
      }
      uploaded = true;
      return std::nullopt;
    };
    if (a->needs_toolchain) {
      if (auto failed = upload()) {
        if (*failed == "toolchain") {
          return unexpected(DistFailure::refused);
        }
        retry(*failed);
        continue;
      }
    }

    // 3. The job.
    std::optional<std::string> failed;
    for (int run = 0; run < 2; ++run) {
      net::HttpRequest jr;
      jr.method = "POST";
      jr.url = a->url + "/api/v1/jobs/" + a->job_id + "/run";
      jr.body = body;
      jr.headers = auth;
      jr.headers.push_back("Content-Type: application/x-kiln-job");
      jr.ca_pem = a->certificate;
      jr.total_ms = m_options.job_timeout_ms;
      auto r = m_http->perform(jr);
      if (!r) {
        failed = reason_of(r.error());
        break;
      }
      m_counters.bytes_sent += body.size();
      m_counters.bytes_received += r->body.size();
      if (r->status == 409 && !uploaded) {
        // The worker lost the toolchain (evicted, or restarted) since its
        // last heartbeat: upload, then run again.
        if (auto up = upload()) {
          failed = *up;
          break;
        }
        continue;
      }
      if (r->status == 200) {
        auto result = decode_result(r->body);
        if (!result) {
          failed = "bad_result";
          break;
        }
        ++m_counters.succeeded;
        log.event("dist_job_done", {{"exit_code", result->exit_code}});
        return std::move(*result);
      }
      if (r->status == 401) {
        // Not the worker the token was made for: a new one behind the old
        // one's address (plain http; over TLS its certificate fails first).
        failed = "wrong_worker";
        break;
      }
      if (retry_elsewhere(*r)) {
        failed = r->status >= 500 ? "5xx" : "retry_elsewhere";
        break;
      }
      log.warn("dist_job_refused",
               {{"status", static_cast<int64_t>(r->status)}, {"body", r->body}});
      return unexpected(DistFailure::refused);
    }
    retry(failed.value_or("gone"));
  }
  return unexpected(DistFailure::retries_exhausted);
}

}  // namespace kiln::dist
