#include "kiln/dist/scheduler/scheduler.hpp"

#include <gtest/gtest.h>

#include <optional>

#include "kiln/dist/job_token.hpp"
#include "kiln/dist/scheduler/scheduler_service.hpp"
#include "kiln/net/curl_client.hpp"

namespace kiln::dist {
namespace {

using namespace std::chrono_literals;

Heartbeat worker(const std::string& id, int cores, const std::string& nonce = "n1") {
  Heartbeat h;
  h.server_id = id;
  h.nonce = nonce;
  h.public_url = "http://127.0.0.1:9/" + id;
  h.cores = cores;
  return h;
}

AllocRequest request(const std::string& toolchain = "tc1") {
  AllocRequest a;
  a.client_id = "client-1";
  a.toolchain = toolchain;
  a.wait_ms = 0;
  return a;
}

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest() : m_scheduler(options(), m_clock, util::Logger()) {}
  static SchedulerOptions options() {
    SchedulerOptions o;
    o.worker_secret = "secret";
    o.heartbeat_interval = 1000ms;
    o.missed_heartbeats = 3;
    return o;
  }
  expected<Allocation, ErrorBody> alloc(const AllocRequest& r) {
    std::optional<expected<Allocation, ErrorBody>> out;
    m_scheduler.alloc(r, [&](expected<Allocation, ErrorBody> result) { out = std::move(result); });
    EXPECT_TRUE(out.has_value());
    return out ? std::move(*out) : unexpected(ErrorBody{"pending", false});
  }

  util::ManualClock m_clock{util::Clock::WallPoint(std::chrono::seconds(1800000000))};
  Scheduler m_scheduler;
};

TEST_F(SchedulerTest, NewWorkerIsAllocatableFromItsFirstHeartbeat) {
  EXPECT_FALSE(alloc(request()));
  m_scheduler.heartbeat(worker("w1", 2));
  auto a = alloc(request());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->server_id, "w1");
  EXPECT_EQ(a->url, "http://127.0.0.1:9/w1");
  EXPECT_TRUE(a->needs_toolchain);
  EXPECT_TRUE(check_job_token("secret", a->job_token, a->job_id, "w1", m_clock.wall_seconds()));
  EXPECT_FALSE(check_job_token("secret", a->job_token, a->job_id, "w2", m_clock.wall_seconds()));
  EXPECT_FALSE(check_job_token("secret", a->job_token, "other-job", "w1", m_clock.wall_seconds()));
  EXPECT_FALSE(check_job_token("other", a->job_token, a->job_id, "w1", m_clock.wall_seconds()));
  EXPECT_FALSE(
      check_job_token("secret", a->job_token, a->job_id, "w1", m_clock.wall_seconds() + 7200));
}

TEST_F(SchedulerTest, LoadSpreadsAndSlotsAreBounded) {
  m_scheduler.heartbeat(worker("a", 1));
  m_scheduler.heartbeat(worker("b", 1));
  // One core: 1 + 1 + 0 = 2 slots each.
  std::map<std::string, int> per;
  for (int i = 0; i < 4; ++i) {
    auto a = alloc(request());
    ASSERT_TRUE(a) << i;
    ++per[a->server_id];
  }
  EXPECT_EQ(per["a"], 2);
  EXPECT_EQ(per["b"], 2);
  auto full = alloc(request());
  ASSERT_FALSE(full);
  EXPECT_TRUE(full.error().retry_elsewhere);
  EXPECT_EQ(full.error().error, "no capacity");
}

TEST_F(SchedulerTest, ToolchainAffinityAndFailurePenalty) {
  auto a = worker("a", 4);
  auto b = worker("b", 4);
  b.toolchains = {"tc1"};
  m_scheduler.heartbeat(a);
  m_scheduler.heartbeat(b);
  auto first = alloc(request("tc1"));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->server_id, "b");
  EXPECT_FALSE(first->needs_toolchain);
  // The client could not reach b: b goes last for a while, and the failed
  // attempt's exclusion is honoured.
  AllocRequest retry = request("tc1");
  retry.failed = Failure{"b", first->job_id, "refused"};
  retry.exclude = {"b"};
  auto second = alloc(retry);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->server_id, "a");
  auto third = alloc(request("tc1"));
  ASSERT_TRUE(third);
  EXPECT_EQ(third->server_id, "a");  // b penalised
  m_clock.advance(31s);
  m_scheduler.heartbeat(a);
  m_scheduler.heartbeat(b);
  auto fourth = alloc(request("tc1"));
  ASSERT_TRUE(fourth);
  EXPECT_EQ(fourth->server_id, "b");
  EXPECT_NE(m_scheduler.metrics_text().find(
                "kiln_scheduler_client_reported_failures_total{reason=\"refused\"} 1"),
            std::string::npos);
}

TEST_F(SchedulerTest, DrainingWorkerGetsNothing) {
  auto a = worker("a", 8);
  a.draining = true;
  m_scheduler.heartbeat(a);
  EXPECT_FALSE(alloc(request()));
  a.draining = false;
  m_scheduler.heartbeat(a);
  EXPECT_TRUE(alloc(request()));
}

TEST_F(SchedulerTest, SilentWorkerIsPrunedAndRestartIsSeen) {
  auto a = worker("a", 1, "first");
  a.certificate = "CERT-1";
  m_scheduler.heartbeat(a);
  auto job = alloc(request());
  ASSERT_TRUE(job);
  EXPECT_EQ(job->certificate, "CERT-1");
  // The same id from a new process, with a new certificate: a restart; the
  // old certificate is never handed out again.
  auto again = worker("a", 1, "second");
  again.certificate = "CERT-2";
  EXPECT_TRUE(m_scheduler.heartbeat(again).restarted);
  auto after = alloc(request());
  ASSERT_TRUE(after);
  EXPECT_EQ(after->certificate, "CERT-2");
  EXPECT_FALSE(m_scheduler.heartbeat(again).restarted);
  m_clock.advance(2500ms);
  m_scheduler.tick();
  EXPECT_EQ(m_scheduler.workers(), 1u);
  m_clock.advance(1000ms);
  m_scheduler.tick();
  EXPECT_EQ(m_scheduler.workers(), 0u);
  EXPECT_FALSE(alloc(request()));
}

// Placement reads one row per worker; a pruned worker's row is taken by the
// last one: the others keep their state and stay allocatable and excludable.
TEST_F(SchedulerTest, PruningAWorkerKeepsTheOthersPlaceable) {
  auto a = worker("a", 4);
  auto b = worker("b", 1);
  auto c = worker("c", 1);
  for (const auto& w : {a, b, c}) {
    m_scheduler.heartbeat(w);
  }
  auto on_a = alloc(request());  // a is the least loaded per core
  ASSERT_TRUE(on_a);
  EXPECT_EQ(on_a->server_id, "a");
  m_clock.advance(2500ms);
  m_scheduler.heartbeat(b);
  m_scheduler.heartbeat(c);
  m_clock.advance(1000ms);
  m_scheduler.tick();
  ASSERT_EQ(m_scheduler.workers(), 2u);
  auto r = request();
  r.exclude = {"b"};
  auto j1 = alloc(r);
  ASSERT_TRUE(j1);
  EXPECT_EQ(j1->server_id, "c");
  r.exclude = {"c"};
  auto j2 = alloc(r);
  ASSERT_TRUE(j2);
  EXPECT_EQ(j2->server_id, "b");
  // Each holds one job of its two slots now: one more each, then none.
  r.exclude.clear();
  auto j3 = alloc(r);
  auto j4 = alloc(r);
  ASSERT_TRUE(j3 && j4);
  EXPECT_NE(j3->server_id, j4->server_id);
  EXPECT_FALSE(alloc(r));
}

TEST_F(SchedulerTest, ReportedJobsFreeSlotsWhenTheyEnd) {
  auto a = worker("a", 1);
  m_scheduler.heartbeat(a);
  auto j1 = alloc(request());
  auto j2 = alloc(request());
  ASSERT_TRUE(j1 && j2);
  EXPECT_FALSE(alloc(request()));
  a.jobs = {j1->job_id, j2->job_id};
  m_scheduler.heartbeat(a);
  EXPECT_FALSE(alloc(request()));
  a.jobs = {j2->job_id};  // j1 ended
  m_scheduler.heartbeat(a);
  EXPECT_TRUE(alloc(request()));
}

// A job that starts and ends between two heartbeats is never reported
// running: the worker's `ended` list frees its slot at once, not after the
// pending grace (30 s) that covers a client which never reached the worker.
TEST_F(SchedulerTest, JobsEndedBetweenHeartbeatsFreeTheirSlots) {
  auto a = worker("a", 1);
  m_scheduler.heartbeat(a);
  auto j1 = alloc(request());
  auto j2 = alloc(request());
  ASSERT_TRUE(j1 && j2);
  EXPECT_FALSE(alloc(request()));
  m_scheduler.heartbeat(a);  // neither reported: both still hold their slots
  EXPECT_FALSE(alloc(request()));
  a.ended = {j1->job_id};
  m_scheduler.heartbeat(a);
  auto j3 = alloc(request());
  ASSERT_TRUE(j3);
  EXPECT_FALSE(alloc(request()));
  // Unacknowledged, the same ids come again: nothing is freed twice.
  m_scheduler.heartbeat(a);
  EXPECT_FALSE(alloc(request()));
  // Without word from the worker, the grace frees the slots in the end.
  a.ended.clear();
  m_clock.advance(31s);
  m_scheduler.heartbeat(a);
  EXPECT_TRUE(alloc(request()));
}

TEST_F(SchedulerTest, AllocationWaitsForASlotThenTimesOut) {
  auto a = worker("a", 1);
  m_scheduler.heartbeat(a);
  auto j1 = alloc(request());
  auto j2 = alloc(request());
  ASSERT_TRUE(j1 && j2);
  a.jobs = {j1->job_id, j2->job_id};  // the clients reached the worker
  m_scheduler.heartbeat(a);
  AllocRequest waiting = request();
  waiting.wait_ms = 5000;
  std::optional<expected<Allocation, ErrorBody>> got;
  m_scheduler.alloc(waiting, [&](expected<Allocation, ErrorBody> r) { got = std::move(r); });
  EXPECT_FALSE(got);
  EXPECT_EQ(m_scheduler.waiting(), 1u);
  EXPECT_NE(m_scheduler.metrics_text().find("kiln_scheduler_jobs_waiting 1"), std::string::npos);
  a.jobs = {j2->job_id};
  m_scheduler.heartbeat(a);  // j1 ended: the waiter gets the slot
  ASSERT_TRUE(got);
  ASSERT_TRUE(*got);
  EXPECT_EQ((*got)->server_id, "a");

  got.reset();
  m_scheduler.alloc(waiting, [&](expected<Allocation, ErrorBody> r) { got = std::move(r); });
  EXPECT_FALSE(got);
  m_clock.advance(5001ms);
  m_scheduler.heartbeat(a);  // keeps a alive, frees nothing
  m_scheduler.tick();
  ASSERT_TRUE(got);
  ASSERT_FALSE(*got);
  EXPECT_TRUE(got->error().retry_elsewhere);
}

TEST_F(SchedulerTest, FasterWorkerIsPreferredAtEqualLoad) {
  auto slow = worker("slow", 4);
  auto fast = worker("fast", 4);
  m_scheduler.heartbeat(slow);
  m_scheduler.heartbeat(fast);
  slow.jobs_done = 10;
  slow.busy_seconds = 40;
  fast.jobs_done = 10;
  fast.busy_seconds = 10;
  m_scheduler.heartbeat(slow);
  m_scheduler.heartbeat(fast);
  auto a = alloc(request());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->server_id, "fast");
}

TEST(ProtocolTest, BadMessagesAreRefusedWithAReason) {
  EXPECT_FALSE(parse_heartbeat("{"));
  EXPECT_FALSE(parse_heartbeat("[]"));
  EXPECT_EQ(
      parse_heartbeat(R"({"server_id":"a","nonce":"n","public_url":"http://x","cores":0})").error(),
      "cores: out of range 1 ... 4096");
  EXPECT_EQ(parse_heartbeat(R"({"server_id":"../x","nonce":"n","public_url":"http://x","cores":1})")
                .error(),
            "server_id: not a valid id");
  EXPECT_EQ(parse_heartbeat(R"({"server_id":"a","nonce":"n","public_url":"https://x","cores":1})")
                .error(),
            "certificate: required for an https:// public_url");
  EXPECT_EQ(parse_alloc_request(R"({"client_id":"c"})").error(), "missing toolchain");
  EXPECT_EQ(parse_alloc_request(R"({"client_id":"c","toolchain":"t","failed":{"server_id":"s"}})")
                .error(),
            "failed.missing reason");
  Heartbeat h = worker("w", 3);
  h.jobs = {"j1"};
  auto round = parse_heartbeat(to_json(h));
  ASSERT_TRUE(round);
  EXPECT_EQ(round->jobs, h.jobs);
  EXPECT_EQ(round->cores, 3);
}

// The service over real HTTP on a loopback port.
class SchedulerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SchedulerServiceOptions o;
    o.client_token = "client-secret";
    o.worker_token = "worker-secret";
    auto s = SchedulerService::start(o, util::Clock::system(), util::Logger());
    ASSERT_TRUE(s) << s.error();
    m_service = std::move(*s);
    m_base = "http://127.0.0.1:" + std::to_string(m_service->port());
  }
  std::unique_ptr<SchedulerService> m_service;
  std::string m_base;
  std::unique_ptr<net::HttpClient> m_http = net::make_curl_client();
};

TEST_F(SchedulerServiceTest, HeartbeatThenAllocOverHttp) {
  auto r = m_http->post(m_base + "/api/v1/workers/heartbeat", to_json(worker("w1", 2)),
                        {"Authorization: Bearer worker-secret"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  auto a = m_http->post(m_base + "/api/v1/jobs/alloc", to_json(request()),
                        {"Authorization: Bearer client-secret"});
  ASSERT_TRUE(a);
  ASSERT_EQ(a->status, 200) << a->body;
  auto alloc = parse_allocation(a->body);
  ASSERT_TRUE(alloc) << alloc.error();
  EXPECT_EQ(alloc->server_id, "w1");
  auto status = m_http->get(m_base + "/status");
  ASSERT_TRUE(status);
  EXPECT_NE(status->body.find("\"server_id\":\"w1\""), std::string::npos);
  auto metrics = m_http->get(m_base + "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("kiln_scheduler_jobs_allocated_total 1"), std::string::npos);
  EXPECT_NE(metrics->body.find("kiln_scheduler_alloc_seconds_count 1"), std::string::npos);
}

TEST_F(SchedulerServiceTest, BadRequestsGet4xxAndTheServiceGoesOn) {
  struct Case {
    std::string path, body, auth;
    long status;
  };
  std::vector<Case> cases = {
      {"/api/v1/jobs/alloc", to_json(request()), "", 401},
      {"/api/v1/jobs/alloc", to_json(request()), "Authorization: Bearer worker-secret", 401},
      {"/api/v1/jobs/alloc", to_json(request()), "Authorization: Bearer client-secre", 401},
      {"/api/v1/workers/heartbeat", to_json(worker("w", 1)), "Authorization: Bearer client-secret",
       401},
      {"/api/v1/jobs/alloc", "{not json", "Authorization: Bearer client-secret", 400},
      {"/api/v1/workers/heartbeat", R"({"server_id":"w"})", "Authorization: Bearer worker-secret",
       400},
      {"/api/v1/nothing", "{}", "Authorization: Bearer client-secret", 404},
  };
  for (const auto& c : cases) {
    std::vector<std::string> headers;
    if (!c.auth.empty()) {
      headers.push_back(c.auth);
    }
    auto r = m_http->post(m_base + c.path, c.body, headers);
    ASSERT_TRUE(r) << c.path;
    EXPECT_EQ(r->status, c.status) << c.path << " " << c.body << " -> " << r->body;
    auto e = parse_error_body(r->body);
    ASSERT_TRUE(e) << r->body;
    EXPECT_FALSE(e->retry_elsewhere);
  }
  auto get = m_http->get(m_base + "/api/v1/jobs/alloc");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);
  auto health = m_http->get(m_base + "/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(SchedulerServiceTest, NoCapacityIs503WithRetryElsewhere) {
  auto a = m_http->post(m_base + "/api/v1/jobs/alloc", to_json(request()),
                        {"Authorization: Bearer client-secret"});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->status, 503);
  EXPECT_EQ(a->header("retry-after").value_or(""), "1");
  auto e = parse_error_body(a->body);
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->retry_elsewhere);
}

}  // namespace
}  // namespace kiln::dist
