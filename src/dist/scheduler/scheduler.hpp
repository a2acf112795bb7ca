#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kiln/dist/protocol.hpp"
#include "kiln/util/clock.hpp"
#include "kiln/util/log.hpp"
#include "kiln/util/thread_annotations.hpp"

namespace kiln::dist {

struct SchedulerOptions {
  std::chrono::milliseconds heartbeat_interval{2000};  // told to workers
  int missed_heartbeats = 3;  // a worker silent this many intervals is pruned
  // A job allocated but not yet reported by its worker counts against the
  // worker's slots for this long (the client is on its way to it).
  std::chrono::milliseconds pending_grace{30000};
  // A worker a client could not use is placed last for this long.
  std::chrono::milliseconds failure_penalty{30000};
  std::chrono::milliseconds max_wait{60000};  // cap on AllocRequest::wait_ms
  size_t max_waiting = 10000;                 // allocations waiting for a slot; 503 beyond
  std::string worker_secret;                  // signs job tokens (the worker token)
  std::chrono::seconds job_token_ttl{3600};
};

// The scheduler's state and decisions, without I/O (scheduler_service.hpp
// puts it on HTTP). Thread-safe; callbacks run outside its lock, on the
// calling thread (alloc, heartbeat, tick).
class Scheduler {
 public:
  using AllocDone = std::function<void(expected<Allocation, ErrorBody>)>;

  Scheduler(SchedulerOptions options, const util::Clock& clock, util::Logger log);

  HeartbeatReply heartbeat(const Heartbeat& h);
  void deregister(const Deregister& d);

  // Picks the best worker with a free slot for the job and calls `done` with
  // the allocation; with none free, waits up to request.wait_ms for one
  // (visible as waiting jobs in metrics) and then answers 503 "no capacity".
  // `done` is called exactly once, maybe before alloc returns.
  void alloc(const AllocRequest& request, AllocDone done);

  // Prunes silent workers and ends expired waits. Call every ~100 ms.
  void tick();

  std::string status_json() const;
  std::string metrics_text() const;
  size_t waiting() const;
  size_t workers() const;

 private:
  struct Worker {
    Heartbeat last;
    util::Clock::SteadyPoint seen;
    std::unordered_set<std::string> toolchains;
    std::unordered_set<std::string> reported;                           // jobs the worker holds
    std::unordered_map<std::string, util::Clock::SteadyPoint> pending;  // allocated, not reported
    util::Clock::SteadyPoint penalised_until{};
    double seconds_per_job = 0;  // learned from jobs_done/busy_seconds; set through set_speed
    size_t row = 0;              // its index in m_rows
    int64_t wall_seen_unix = 0;
  };
  // What placement reads of a worker, kept beside the others' in one vector
  // (sync_row after every change): the scan over 1,000 workers touches 64
  // KB of rows instead of 1,000 map nodes and their sets.
  struct Row {
    Worker* worker = nullptr;
    size_t busy = 0;
    size_t slots = 0;
    int cores = 1;
    bool draining = false;
    double seconds_per_job = 0;
    util::Clock::SteadyPoint penalised_until{};
    uint64_t holder_mark = 0;    // == m_pick_seq: holds the toolchain being placed
    uint64_t excluded_mark = 0;  // == m_pick_seq: excluded by the request being placed
  };
  struct Waiter {
    AllocRequest request;
    AllocDone done;
    util::Clock::SteadyPoint deadline;
    util::Clock::SteadyPoint started;
  };
  struct Completion {
    AllocDone done;
    expected<Allocation, ErrorBody> result;
  };

  static size_t running(const Worker& w);
  static size_t slots(const Worker& w);
  // The best worker for `request` with a free slot, or nullptr.
  Worker* pick(const AllocRequest& request) REQUIRES(m_mutex);
  Allocation assign(Worker* w, const AllocRequest& request) REQUIRES(m_mutex);
  // Copies what placement needs of `w` into its row.
  void sync_row(const Worker& w) REQUIRES(m_mutex);
  // Sets w's seconds per job, keeping the cluster's mean (a running sum).
  void set_speed(Worker* w, double seconds_per_job) REQUIRES(m_mutex);
  void forget(std::map<std::string, struct Worker>::iterator it) REQUIRES(m_mutex);
  void serve_waiters(std::vector<Completion>* out) REQUIRES(m_mutex);
  void observe_alloc(util::Clock::SteadyPoint started) REQUIRES(m_mutex);
  static void complete(std::vector<Completion>* done);

  const SchedulerOptions m_options;
  const util::Clock& m_clock;
  util::Logger m_log;
  const std::string m_id_prefix;

  mutable util::Mutex m_mutex;
  std::map<std::string, Worker> m_workers GUARDED_BY(m_mutex);
  // One row per worker, for the placement's scan (map nodes stay put, so
  // the rows point at them).
  std::vector<Row> m_rows GUARDED_BY(m_mutex);
  // Toolchain id -> the workers holding it (placement looks it up once).
  std::unordered_map<std::string, std::unordered_set<const Worker*>> m_holders GUARDED_BY(m_mutex);
  double m_mean_seconds_per_job GUARDED_BY(m_mutex) = 0;
  double m_speed_sum GUARDED_BY(m_mutex) = 0;
  int m_speed_known GUARDED_BY(m_mutex) = 0;
  uint64_t m_pick_seq GUARDED_BY(m_mutex) = 0;
  std::deque<Waiter> m_waiters GUARDED_BY(m_mutex);
  uint64_t m_next_job GUARDED_BY(m_mutex) = 1;
  // Metrics.
  uint64_t m_allocated GUARDED_BY(m_mutex) = 0;
  uint64_t m_no_capacity GUARDED_BY(m_mutex) = 0;
  uint64_t m_queue_full GUARDED_BY(m_mutex) = 0;
  uint64_t m_restarts GUARDED_BY(m_mutex) = 0;
  uint64_t m_pruned GUARDED_BY(m_mutex) = 0;
  uint64_t m_heartbeats GUARDED_BY(m_mutex) = 0;
  std::map<std::string, uint64_t> m_reported_failures GUARDED_BY(m_mutex);
  std::vector<uint64_t> m_latency_buckets GUARDED_BY(m_mutex);
  uint64_t m_latency_count GUARDED_BY(m_mutex) = 0;
  double m_latency_sum GUARDED_BY(m_mutex) = 0;
};

}  // namespace kiln::dist
