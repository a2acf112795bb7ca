// The scheduler alone (issue 9 part 12 (b), docs/benchmarks.md): N simulated
// workers heartbeating over HTTP and C client threads allocating over HTTP
// (kept-alive connections), on this machine, for D seconds. A job a client
// is allocated runs on its worker's simulation for --job-ms; the worker then
// reports it in `ended`, as a real worker does: at its next heartbeat, sent
// at once but no sooner than --gap-ms after its previous one (jobs ending
// together share it), and every 2 s in any case. Prints allocations and
// heartbeats per second and latency percentiles as the clients saw them,
// and one JSON line.
//
//   kiln-scheduler-bench [--workers 1000] [--cores 16] [--clients 4] [--seconds 10]
//                        [--job-ms 1000] [--gap-ms 250]
//                        [--threads 1]   (the scheduler's I/O threads)
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "kiln/dist/protocol.hpp"
#include "kiln/dist/scheduler/scheduler_service.hpp"
#include "kiln/net/plain_client.hpp"

using namespace kiln;
using Clock = std::chrono::steady_clock;

namespace {

struct SimWorker {
  std::vector<std::pair<std::string, Clock::time_point>> jobs;  // running, with their ends
  std::vector<std::string> ended;                               // not acknowledged yet
  Clock::time_point last{};                                     // last heartbeat sent
  bool flush_due = false;  // a heartbeat for ended jobs is scheduled
};

// What the worker simulation does next, in time order.
struct Event {
  Clock::time_point at;
  int worker;
  enum Kind { periodic, job_end, flush } kind;
  bool operator>(const Event& o) const { return at > o.at; }
};

int arg(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) {
      return std::atoi(argv[i + 1]);
    }
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const int n_workers = arg(argc, argv, "--workers", 1000);
  const int cores = arg(argc, argv, "--cores", 16);
  const int n_clients = arg(argc, argv, "--clients", 4);
  const int seconds = arg(argc, argv, "--seconds", 10);
  const int heartbeat_ms = 2000;
  const int threads = arg(argc, argv, "--threads", 1);  // kiln-scheduler's default
  const auto job = std::chrono::milliseconds(arg(argc, argv, "--job-ms", 1000));
  const auto gap = std::chrono::milliseconds(arg(argc, argv, "--gap-ms", 250));

  dist::SchedulerServiceOptions o;
  o.client_token = "c";
  o.worker_token = "w";
  o.server.threads = threads;
  o.scheduler.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);
  o.scheduler.missed_heartbeats = 10;
  auto started = dist::SchedulerService::start(o, util::Clock::system(), util::Logger());
  if (!started) {
    std::fprintf(stderr, "cannot start the scheduler: %s\n", started.error().c_str());
    return 1;
  }
  auto& service = *started;
  const std::string base = "http://127.0.0.1:" + std::to_string(service->port());

  std::vector<SimWorker> workers(static_cast<size_t>(n_workers));
  std::mutex mutex;  // workers and events
  std::condition_variable wake;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  std::atomic<uint64_t> heartbeats_sent{0};
  auto heartbeat = [&](net::HttpClient& http, int i) {
    dist::Heartbeat h;
    h.server_id = "sim-" + std::to_string(i);
    h.nonce = "n";
    h.public_url = "http://127.0.0.1:1/" + h.server_id;
    h.cores = cores;
    h.toolchains = {"tc"};
    auto now = Clock::now();
    {
      std::lock_guard lock(mutex);
      auto& w = workers[static_cast<size_t>(i)];
      std::erase_if(w.jobs, [&](const auto& j) {
        if (j.second <= now) {
          w.ended.push_back(j.first);
          return true;
        }
        return false;
      });
      for (const auto& j : w.jobs) {
        h.jobs.push_back(j.first);
      }
      h.ended = w.ended;
      w.last = now;
    }
    auto r = http.post(base + "/api/v1/workers/heartbeat", dist::to_json(h),
                       {"Authorization: Bearer w", "Content-Type: application/json"});
    ++heartbeats_sent;
    if (r && r->status == 200) {
      std::lock_guard lock(mutex);
      auto& e = workers[static_cast<size_t>(i)].ended;
      e.erase(e.begin(), e.begin() + static_cast<std::ptrdiff_t>(h.ended.size()));
    }
    return r && r->status == 200;
  };
  // Every worker joins, then heartbeats every interval, spread evenly.
  auto hb_http = net::make_plain_client({2000, 5000});
  for (int i = 0; i < n_workers; ++i) {
    if (!heartbeat(*hb_http, i)) {
      std::fprintf(stderr, "heartbeat failed\n");
      return 1;
    }
    events.push({Clock::now() + std::chrono::milliseconds(heartbeat_ms * (i + 1) / n_workers), i,
                 Event::periodic});
  }
  std::atomic<bool> stop{false};
  std::thread simulation([&] {
    pthread_setname_np(pthread_self(), "bench-workers");
    auto http = net::make_plain_client({2000, 5000});
    std::unique_lock lock(mutex);
    while (!stop) {
      if (events.empty() || events.top().at > Clock::now()) {
        if (events.empty()) {
          wake.wait_for(lock, std::chrono::milliseconds(10));
        } else {
          wake.wait_until(lock, events.top().at);
        }
        continue;
      }
      Event e = events.top();
      events.pop();
      auto& w = workers[static_cast<size_t>(e.worker)];
      bool send = false;
      if (e.kind == Event::periodic) {
        events.push({e.at + std::chrono::milliseconds(heartbeat_ms), e.worker, Event::periodic});
        send = true;
      } else if (e.kind == Event::flush) {
        w.flush_due = false;
        send = true;
      } else if (!w.flush_due) {  // a job ended: tell soon, sharing a heartbeat
        w.flush_due = true;
        events.push({std::max(Clock::now(), w.last + gap), e.worker, Event::flush});
      }
      if (send) {
        lock.unlock();
        heartbeat(*http, e.worker);
        lock.lock();
      }
    }
  });

  std::vector<std::vector<double>> latencies(static_cast<size_t>(n_clients));
  std::atomic<uint64_t> failures{0};
  auto begin = Clock::now();
  auto end = begin + std::chrono::seconds(seconds);
  std::vector<std::thread> clients;
  for (int c = 0; c < n_clients; ++c) {
    clients.emplace_back([&, c] {
      pthread_setname_np(pthread_self(), "bench-client");
      auto http = net::make_plain_client({2000, 10000});
      dist::AllocRequest a;
      a.client_id = "bench-" + std::to_string(c);
      a.toolchain = "tc";
      a.wait_ms = 5000;
      const std::string body = dist::to_json(a);
      auto& lat = latencies[static_cast<size_t>(c)];
      while (Clock::now() < end) {
        auto t0 = Clock::now();
        auto r = http->post(base + "/api/v1/jobs/alloc", body,
                            {"Authorization: Bearer c", "Content-Type: application/json"});
        auto t1 = Clock::now();
        if (!r || r->status != 200) {
          ++failures;
          continue;
        }
        lat.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        auto alloc = dist::parse_allocation(r->body);
        if (alloc) {
          int i = std::atoi(alloc->server_id.c_str() + 4);
          auto ends = Clock::now() + job;
          std::lock_guard lock(mutex);
          workers[static_cast<size_t>(i)].jobs.emplace_back(alloc->job_id, ends);
          events.push({ends, i, Event::job_end});
          wake.notify_one();
        }
      }
    });
  }
  for (auto& t : clients) {
    t.join();
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - begin).count();
  stop = true;
  wake.notify_all();
  simulation.join();
  std::vector<double> all;
  for (auto& l : latencies) {
    all.insert(all.end(), l.begin(), l.end());
  }
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))];
  };
  double rate = static_cast<double>(all.size()) / elapsed;
  std::printf(
      "workers %d (cores %d, jobs of %lld ms), clients %d, %.1f s: %zu allocations, %.0f per "
      "second, %llu failed; %.0f heartbeats per second\n",
      n_workers, cores, static_cast<long long>(job.count()), n_clients, elapsed, all.size(), rate,
      static_cast<unsigned long long>(failures.load()),
      static_cast<double>(heartbeats_sent.load()) / elapsed);
  std::printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", pct(0.5), pct(0.9), pct(0.99),
              all.empty() ? 0.0 : all.back());
  std::printf(
      "{\"workers\": %d, \"clients\": %d, \"seconds\": %.2f, \"allocations\": %zu, "
      "\"per_second\": %.0f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"failed\": %llu, "
      "\"heartbeats_per_second\": %.0f}\n",
      n_workers, n_clients, elapsed, all.size(), rate, pct(0.5), pct(0.99),
      static_cast<unsigned long long>(failures.load()),
      static_cast<double>(heartbeats_sent.load()) / elapsed);
  service->stop();
  return 0;
}
