#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "kiln/dist/job.hpp"
#include "kiln/net/http_client.hpp"
#include "kiln/util/log.hpp"

namespace kiln::dist {

struct DistClientOptions {
  std::string scheduler_url;     // http(s)://host:port, no trailing slash
  std::string token;             // the client token
  std::string scheduler_ca_pem;  // trust for an https scheduler; empty: the system store
  std::string client_id;         // in the scheduler's and workers' logs
  int retry_limit = 3;           // new workers tried after the first fails
  int alloc_wait_ms = 30000;     // how long the scheduler may hold an allocation
  int job_timeout_ms = 600000;   // one job on one worker, upload included
  // How long to keep asking a scheduler that does not answer (or answers
  // 5xx), with backoff from 100 ms to 2 s, before the job falls back.
  int scheduler_retry_ms = 10000;
};

// Why the cluster did not produce a result (the caller then compiles
// locally, if allowed, and counts the reason).
enum class DistFailure {
  scheduler_unreachable,  // no answer, or 5xx, from the scheduler
  no_capacity,            // the scheduler had no worker for the job in time
  retries_exhausted,      // every worker tried failed
  refused,                // a 4xx: the job itself is at fault (too big, bad path)
  unauthorised,           // 401 from the scheduler: a wrong client token
};
std::string_view to_string(DistFailure f);

// Counters of one client, for `kiln -s` (the dist object of --json).
struct DistCounters {
  uint64_t jobs = 0;
  uint64_t succeeded = 0;
  std::map<std::string, uint64_t> retries;  // by reason: refused, timeout, tls, 5xx, gone, ...
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
};

// The cluster's client side: allocates a worker for a job, uploads the
// toolchain if the worker lacks it, runs the job, and when the worker fails
// (cannot connect, TLS does not verify against the certificate the scheduler
// vouches for, times out, answers 5xx or says retry elsewhere) asks the
// scheduler for another, excluding the failed ones, up to retry_limit more.
// The compiler's own errors are results, never retried. Thread-compatible.
class DistClient {
 public:
  // `archive` is called only when a worker needs the toolchain.
  using ArchiveFn = std::function<expected<std::string, std::string>()>;

  DistClient(DistClientOptions options, std::unique_ptr<net::HttpClient> http, util::Logger log);

  expected<JobResult, DistFailure> run(const JobRequest& job, const ArchiveFn& archive);
  const DistCounters& counters() const { return m_counters; }

 private:
  DistClientOptions m_options;
  std::unique_ptr<net::HttpClient> m_http;
  util::Logger m_log;
  DistCounters m_counters;
};

}  // namespace kiln::dist
