#include "kiln/dist/scheduler/scheduler.hpp"

#include <algorithm>
#include <sstream>

#include <nlohmann/json.hpp>

#include "kiln/dist/job_token.hpp"
#include "kiln/util/hex.hpp"

namespace kiln::dist {

namespace {

// Upper bounds (seconds) of the allocation-latency histogram.
constexpr double k_latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                       0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                       1,      2.5,     5,      10,    30,     60};
constexpr size_t k_latency_buckets = sizeof(k_latency_bounds) / sizeof(k_latency_bounds[0]);

double seconds(util::Clock::SteadyPoint::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

Scheduler::Scheduler(SchedulerOptions options, const util::Clock& clock, util::Logger log)
    : m_options(std::move(options)),
      m_clock(clock),
      m_log(std::move(log)),
      m_id_prefix(util::random_hex(4)) {
  util::MutexLock lock(m_mutex);
  m_latency_buckets.assign(k_latency_buckets, 0);
}

// Pending jobs never overlap the reported ones (a heartbeat moves every job
// it reports out of `pending`), and expired ones are dropped by tick() and
// heartbeats, so this is a sum: placement runs it for every worker.
size_t Scheduler::running(const Worker& w) {
  return w.reported.size() + w.pending.size();
}

// Slight oversubscription, as icecream and sccache-dist do: a slot frees
// while the client is still uploading the next job.
size_t Scheduler::slots(const Worker& w) {
  size_t cores = static_cast<size_t>(w.last.cores);
  return cores + 1 + cores / 8;
}

HeartbeatReply Scheduler::heartbeat(const Heartbeat& h) {
  std::vector<Completion> done;
  HeartbeatReply reply;
  reply.heartbeat_interval_ms = static_cast<int>(m_options.heartbeat_interval.count());
  {
    util::MutexLock lock(m_mutex);
    ++m_heartbeats;
    auto now = m_clock.steady();
    auto [it, inserted] = m_workers.try_emplace(h.server_id);
    Worker& w = it->second;
    if (!inserted && w.last.nonce != h.nonce) {
      // The same id from a new process (a restart, or a new pod behind the
      // same address): the old one's jobs are lost and its certificate must
      // never verify a connection again.
      reply.restarted = true;
      ++m_restarts;
      m_log.bind({{"server_id", h.server_id}})
          .warn("worker_restarted", {{"lost_jobs", static_cast<int64_t>(running(w))}});
      for (const auto& t : w.toolchains) {
        if (auto hit = m_holders.find(t); hit != m_holders.end()) {
          hit->second.erase(&w);
        }
      }
      set_speed(&w, 0);
      size_t row = w.row;
      w = Worker{};
      w.row = row;
    }
    if (inserted) {
      w.row = m_rows.size();
      m_rows.push_back(Row{&w});
      m_log.bind({{"server_id", h.server_id}})
          .event("worker_joined", {{"url", h.public_url}, {"cores", h.cores}});
    }
    // Learn the worker's speed from what it did since the last heartbeat.
    if (!inserted && !reply.restarted && h.jobs_done > w.last.jobs_done &&
        h.busy_seconds >= w.last.busy_seconds) {
      double per_job = (h.busy_seconds - w.last.busy_seconds) /
                       static_cast<double>(h.jobs_done - w.last.jobs_done);
      set_speed(&w, w.seconds_per_job == 0 ? per_job : 0.7 * w.seconds_per_job + 0.3 * per_job);
    }
    w.last = h;
    w.seen = now;
    // The holders' index changes only when the worker's toolchains do (most
    // heartbeats repeat the last list).
    std::unordered_set<std::string> toolchains(h.toolchains.begin(), h.toolchains.end());
    if (toolchains != w.toolchains) {
      for (const auto& t : w.toolchains) {
        if (auto it = m_holders.find(t); it != m_holders.end()) {
          it->second.erase(&w);
          if (it->second.empty()) {
            m_holders.erase(it);
          }
        }
      }
      w.toolchains = std::move(toolchains);
      for (const auto& t : w.toolchains) {
        m_holders[t].insert(&w);
      }
    }
    w.reported = {h.jobs.begin(), h.jobs.end()};
    for (const auto& id : h.ended) {
      w.pending.erase(id);
    }
    std::erase_if(w.pending, [&](const auto& p) {
      return w.reported.contains(p.first) || now - p.second >= m_options.pending_grace;
    });
    sync_row(w);
    serve_waiters(&done);
  }
  complete(&done);
  return reply;
}

void Scheduler::deregister(const Deregister& d) {
  std::vector<Completion> done;
  {
    util::MutexLock lock(m_mutex);
    auto it = m_workers.find(d.server_id);
    if (it != m_workers.end() && it->second.last.nonce == d.nonce) {
      m_log.bind({{"server_id", d.server_id}}).event("worker_left");
      forget(it);
    }
    serve_waiters(&done);
  }
  complete(&done);
}

Scheduler::Worker* Scheduler::pick(const AllocRequest& request) {
  auto now = m_clock.steady();
  // The holders of the toolchain and the excluded workers are marked in
  // their rows for this placement, so the scan reads nothing but the rows.
  const uint64_t mark = ++m_pick_seq;
  if (auto held = m_holders.find(request.toolchain); held != m_holders.end()) {
    for (const Worker* h : held->second) {
      m_rows[h->row].holder_mark = mark;
    }
  }
  for (const auto& id : request.exclude) {
    if (auto it = m_workers.find(id); it != m_workers.end()) {
      m_rows[it->second.row].excluded_mark = mark;
    }
  }
  const Row* best = nullptr;
  double best_score = 0;
  for (const Row& r : m_rows) {
    if (r.draining || r.busy >= r.slots || r.excluded_mark == mark) {
      continue;
    }
    // Lower is better: jobs per core after this one, scaled by how slow the
    // worker has been against the cluster's mean; a worker holding the
    // toolchain saves an upload; one that just failed a client goes last.
    double score = static_cast<double>(r.busy + 1) / r.cores;
    if (m_mean_seconds_per_job > 0 && r.seconds_per_job > 0) {
      score *= r.seconds_per_job / m_mean_seconds_per_job;
    }
    if (r.holder_mark != mark) {
      score += 0.25;
    }
    if (now < r.penalised_until) {
      score += 1000;
    }
    if (!best || score < best_score) {
      best = &r;
      best_score = score;
    }
  }
  return best ? best->worker : nullptr;
}

void Scheduler::sync_row(const Worker& w) {
  Row& r = m_rows[w.row];
  r.busy = running(w);
  r.slots = slots(w);
  r.cores = std::max(1, w.last.cores);
  r.draining = w.last.draining;
  r.seconds_per_job = w.seconds_per_job;
  r.penalised_until = w.penalised_until;
}

void Scheduler::set_speed(Worker* w, double seconds_per_job) {
  if (w->seconds_per_job > 0) {
    m_speed_sum -= w->seconds_per_job;
    --m_speed_known;
  }
  w->seconds_per_job = seconds_per_job;
  if (seconds_per_job > 0) {
    m_speed_sum += seconds_per_job;
    ++m_speed_known;
  }
  if (m_speed_known == 0) {
    m_speed_sum = 0;  // no rounding left over from the sums
  }
  m_mean_seconds_per_job = m_speed_known > 0 ? m_speed_sum / m_speed_known : 0;
}

void Scheduler::forget(std::map<std::string, Worker>::iterator it) {
  for (const auto& t : it->second.toolchains) {
    if (auto h = m_holders.find(t); h != m_holders.end()) {
      h->second.erase(&it->second);
      if (h->second.empty()) {
        m_holders.erase(h);
      }
    }
  }
  set_speed(&it->second, 0);
  // The last row takes the forgotten one's place.
  size_t row = it->second.row;
  if (row + 1 != m_rows.size()) {
    m_rows[row] = m_rows.back();
    m_rows[row].worker->row = row;
  }
  m_rows.pop_back();
  m_workers.erase(it);
}

Allocation Scheduler::assign(Worker* w, const AllocRequest& request) {
  Allocation a;
  a.job_id = m_id_prefix + "-" + std::to_string(m_next_job++);
  a.server_id = w->last.server_id;
  a.url = w->last.public_url;
  a.certificate = w->last.certificate;
  a.needs_toolchain = !w->toolchains.contains(request.toolchain);
  a.job_token = make_job_token(m_options.worker_secret, a.job_id, a.server_id,
                               m_clock.wall_seconds() + m_options.job_token_ttl.count());
  w->pending[a.job_id] = m_clock.steady();
  sync_row(*w);
  ++m_allocated;
  m_log.bind({{"job_id", a.job_id}, {"server_id", a.server_id}, {"client_id", request.client_id}})
      .event("job_allocated", {{"needs_toolchain", a.needs_toolchain ? "yes" : "no"}});
  return a;
}

void Scheduler::observe_alloc(util::Clock::SteadyPoint started) {
  double s = seconds(m_clock.steady() - started);
  ++m_latency_count;
  m_latency_sum += s;
  for (size_t i = 0; i < k_latency_buckets; ++i) {
    if (s <= k_latency_bounds[i]) {
      ++m_latency_buckets[i];
      break;
    }
  }
}

void Scheduler::alloc(const AllocRequest& request, AllocDone done) {
  std::vector<Completion> out;
  {
    util::MutexLock lock(m_mutex);
    auto now = m_clock.steady();
    if (request.failed) {
      const Failure& f = *request.failed;
      ++m_reported_failures[f.reason];
      if (auto it = m_workers.find(f.server_id); it != m_workers.end()) {
        it->second.penalised_until = now + m_options.failure_penalty;
        it->second.pending.erase(f.job_id);
        sync_row(it->second);
      }
      m_log
          .bind(
              {{"job_id", f.job_id}, {"server_id", f.server_id}, {"client_id", request.client_id}})
          .warn("client_reported_failure", {{"reason", f.reason}});
    }
    if (Worker* w = pick(request)) {
      out.push_back({std::move(done), assign(w, request)});
      observe_alloc(now);
    } else if (request.wait_ms <= 0) {
      ++m_no_capacity;
      out.push_back({std::move(done), unexpected(ErrorBody{"no capacity", true})});
    } else if (m_waiters.size() >= m_options.max_waiting) {
      ++m_queue_full;
      out.push_back({std::move(done), unexpected(ErrorBody{"too many jobs waiting", true})});
    } else {
      auto wait = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(request.wait_ms),
                                                      m_options.max_wait);
      m_waiters.push_back({request, std::move(done), now + wait, now});
    }
  }
  complete(&out);
}

void Scheduler::serve_waiters(std::vector<Completion>* out) {
  while (!m_waiters.empty()) {
    Waiter& front = m_waiters.front();
    Worker* w = pick(front.request);
    if (!w && front.request.exclude.empty()) {
      return;  // no worker has a free slot: no other waiter fits either
    }
    if (!w) {
      // FIFO: a later waiter with other exclusions could fit, but serving in
      // order keeps waiting fair; the slot goes to the oldest that fits at
      // the next event.
      auto it = m_waiters.begin();
      Worker* other = nullptr;
      for (; it != m_waiters.end(); ++it) {
        if ((other = pick(it->request)) != nullptr) {
          break;
        }
        if (it->request.exclude.empty()) {
          return;  // not even a waiter that excludes nobody fits
        }
      }
      if (it == m_waiters.end()) {
        return;
      }
      out->push_back({std::move(it->done), assign(other, it->request)});
      observe_alloc(it->started);
      m_waiters.erase(it);
      continue;
    }
    out->push_back({std::move(front.done), assign(w, front.request)});
    observe_alloc(front.started);
    m_waiters.pop_front();
  }
}

void Scheduler::tick() {
  std::vector<Completion> out;
  {
    util::MutexLock lock(m_mutex);
    auto now = m_clock.steady();
    auto silence = m_options.heartbeat_interval * m_options.missed_heartbeats;
    for (auto it = m_workers.begin(); it != m_workers.end();) {
      auto next = std::next(it);
      if (now - it->second.seen > silence) {
        ++m_pruned;
        m_log.bind({{"server_id", it->first}})
            .warn("worker_pruned", {{"lost_jobs", static_cast<int64_t>(running(it->second))}});
        forget(it);
      } else {
        std::erase_if(it->second.pending,
                      [&](const auto& p) { return now - p.second >= m_options.pending_grace; });
        sync_row(it->second);
      }
      it = next;
    }
    serve_waiters(&out);
    for (auto it = m_waiters.begin(); it != m_waiters.end();) {
      if (now >= it->deadline) {
        ++m_no_capacity;
        out.push_back({std::move(it->done), unexpected(ErrorBody{"no capacity", true})});
        it = m_waiters.erase(it);
      } else {
        ++it;
      }
    }
  }
  complete(&out);
}

void Scheduler::complete(std::vector<Completion>* done) {
  for (auto& c : *done) {
    c.done(std::move(c.result));
  }
  done->clear();
}

size_t Scheduler::waiting() const {
  util::MutexLock lock(m_mutex);
  return m_waiters.size();
}

size_t Scheduler::workers() const {
  util::MutexLock lock(m_mutex);
  return m_workers.size();
}

std::string Scheduler::status_json() const {
  util::MutexLock lock(m_mutex);
  auto now = m_clock.steady();
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& [id, w] : m_workers) {
    workers.push_back(
        {{"server_id", id},
         {"url", w.last.public_url},
         {"cores", w.last.cores},
         {"slots", slots(w)},
         {"running_jobs", running(w)},
         {"draining", w.last.draining},
         {"toolchains", w.toolchains.size()},
         {"seconds_per_job", w.seconds_per_job},
         {"penalised", now < w.penalised_until},
         {"last_heartbeat_ms_ago",
          std::chrono::duration_cast<std::chrono::milliseconds>(now - w.seen).count()}});
  }
  return nlohmann::json{
      {"workers", workers}, {"waiting_jobs", m_waiters.size()}, {"jobs_allocated", m_allocated}}
      .dump();
}

std::string Scheduler::metrics_text() const {
  util::MutexLock lock(m_mutex);
  size_t cores = 0, running_jobs = 0, draining = 0;
  for (const auto& [id, w] : m_workers) {
    cores += static_cast<size_t>(w.last.cores);
    running_jobs += running(w);
    draining += w.last.draining ? 1 : 0;
  }
  std::ostringstream o;
  auto gauge = [&](const char* name, const char* help, double v) {
    o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " gauge\n"
      << name << ' ' << v << '\n';
  };
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " counter\n"
      << name << ' ' << v << '\n';
  };
  gauge("kiln_scheduler_workers", "Workers that heartbeat.", static_cast<double>(m_workers.size()));
  gauge("kiln_scheduler_workers_draining", "Workers draining (taking no new job).",
        static_cast<double>(draining));
  gauge("kiln_scheduler_cores", "Cores of all workers.", static_cast<double>(cores));
  gauge("kiln_scheduler_jobs_running", "Jobs allocated or running on workers.",
        static_cast<double>(running_jobs));
  gauge("kiln_scheduler_jobs_waiting", "Allocations waiting for a free slot.",
        static_cast<double>(m_waiters.size()));
  counter("kiln_scheduler_jobs_allocated_total", "Jobs allocated to a worker.", m_allocated);
  counter("kiln_scheduler_alloc_no_capacity_total",
          "Allocations answered 503 after waiting for a slot.", m_no_capacity);
  counter("kiln_scheduler_alloc_queue_full_total",
          "Allocations refused because too many were waiting.", m_queue_full);
  counter("kiln_scheduler_worker_restarts_total", "Known worker ids seen with a new nonce.",
          m_restarts);
  counter("kiln_scheduler_workers_pruned_total", "Workers dropped after missed heartbeats.",
          m_pruned);
  counter("kiln_scheduler_heartbeats_total", "Heartbeats received.", m_heartbeats);
  o << "# HELP kiln_scheduler_client_reported_failures_total Workers clients could not use, by "
       "reason.\n# TYPE kiln_scheduler_client_reported_failures_total counter\n";
  for (const auto& [reason, n] : m_reported_failures) {
    o << "kiln_scheduler_client_reported_failures_total{reason=\"" << reason << "\"} " << n << '\n';
  }
  o << "# HELP kiln_scheduler_alloc_seconds Time from an allocation request to its answer.\n"
       "# TYPE kiln_scheduler_alloc_seconds histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < k_latency_buckets; ++i) {
    cumulative += m_latency_buckets[i];
    o << "kiln_scheduler_alloc_seconds_bucket{le=\"" << k_latency_bounds[i] << "\"} " << cumulative
      << '\n';
  }
  o << "kiln_scheduler_alloc_seconds_bucket{le=\"+Inf\"} " << m_latency_count << '\n'
    << "kiln_scheduler_alloc_seconds_sum " << m_latency_sum << '\n'
    << "kiln_scheduler_alloc_seconds_count " << m_latency_count << '\n';
  return o.str();
}

}  // namespace kiln::dist
