// The cluster in one process: a scheduler, real workers (TLS, bubblewrap,
// toolchains packaged from the machine's g++), and the client, compiling
// real code. Objects must be byte-identical to local compiles.
#include "kiln/dist/worker/worker_service.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "kiln/dist/client.hpp"
#include "kiln/dist/job_token.hpp"
#include "kiln/dist/scheduler/scheduler_service.hpp"
#include "kiln/dist/toolchain.hpp"
#include "kiln/net/curl_client.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/path.hpp"
#include "kiln/util/process.hpp"
#include "kiln/util/string.hpp"

namespace kiln::dist {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The compiler's environment, here and on the worker alike (the locale
// decides the quotes in messages).
const std::vector<std::string> k_env = {"LANG=C.UTF-8", "PATH=/usr/bin:/bin"};

const Toolchain& gxx_toolchain() {
  static const Toolchain tc = [] {
    auto t = package_toolchain("/usr/bin/g++");
    if (!t) {
      ADD_FAILURE() << t.error();
      return Toolchain{};
    }
    return *t;
  }();
  return tc;
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access("/usr/bin/bwrap", X_OK), 0) << "bubblewrap is required";
    char tmpl[] = "/tmp/kiln-cluster-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
    SchedulerServiceOptions so;
    so.client_token = "ctok";
    so.worker_token = "wtok";
    so.scheduler.heartbeat_interval = 200ms;
    so.scheduler.missed_heartbeats = 50;  // nothing is pruned during a test
    auto s = SchedulerService::start(so, util::Clock::system(), util::Logger());
    ASSERT_TRUE(s) << s.error();
    m_scheduler = std::move(*s);
    m_cwd = m_dir + "/src/build";
    fs::create_directories(m_cwd);
  }
  void TearDown() override {
    m_workers.clear();
    m_scheduler.reset();
    std::error_code ec;
    fs::remove_all(m_dir, ec);
  }

  WorkerService* start_worker(const std::string& id, uint16_t port = 0) {
    WorkerOptions o;
    o.listen_port = port;
    o.server_id = id;
    o.scheduler_url = "http://127.0.0.1:" + std::to_string(m_scheduler->port());
    o.worker_token = "wtok";
    o.cores = 1;
    o.work_dir = m_dir + "/work-" + id + "-" + std::to_string(m_workers.size());
    o.drain_grace = 20s;
    auto w = WorkerService::start(o, util::Logger());
    EXPECT_TRUE(w) << (w ? "" : w.error());
    if (!w) {
      return nullptr;
    }
    m_workers.push_back(std::move(*w));
    return m_workers.back().get();
  }

  void wait_for_workers(size_t n) {
    for (int i = 0; i < 200 && m_scheduler->scheduler().workers() != n; ++i) {
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_EQ(m_scheduler->scheduler().workers(), n);
  }

  // Until the scheduler counts no job on `server_id` (the worker's heartbeat
  // told it the last one ended); 4 s at most, against the 30 s grace.
  void wait_until_idle(const std::string& server_id) {
    auto running = [&] {
      auto status = nlohmann::json::parse(m_scheduler->scheduler().status_json());
      for (const auto& w : status["workers"]) {
        if (w["server_id"] == server_id) {
          return w["running_jobs"].get<int>();
        }
      }
      return -1;
    };
    for (int i = 0; i < 200 && running() != 0; ++i) {
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_EQ(running(), 0) << server_id;
  }

  // The job for compiling `source` (in m_cwd) as `argv` would locally: the
  // source and every header it reads, from the preprocessor's dependency list.
  JobRequest job_for(const std::vector<std::string>& argv, const std::string& source) {
    JobRequest j;
    j.toolchain = gxx_toolchain().id;
    j.argv = argv;
    j.cwd = m_cwd;
    j.env = k_env;
    util::RunOptions ro;
    ro.cwd = m_cwd;
    ro.env = &k_env;
    // The headers this compile reads depend on its options (-O1 makes glibc
    // include its inline helpers): the dependency list of the same command.
    std::vector<std::string> m_argv;
    for (size_t i = 0; i < argv.size(); ++i) {
      if (argv[i] == "-o") {
        ++i;
      } else if (argv[i] != "-c") {
        m_argv.push_back(argv[i]);
      }
    }
    m_argv.insert(m_argv.end(), {"-M", "-MF", "/dev/stdout"});
    (void)source;
    auto deps = util::run_capture(m_argv, ro);
    EXPECT_TRUE(deps && deps->exit_code == 0);
    std::string text = deps ? deps->out : "";
    std::string flat;
    for (char c : text) {
      flat += (c == '\\' || c == '\n') ? ' ' : c;
    }
    for (const auto& word : util::split(flat, ' ')) {
      if (word.empty() || word.back() == ':') {
        continue;
      }
      std::string abs = word.front() == '/' ? word : m_cwd + "/" + word;
      abs = util::real_path(abs);
      auto data = util::read_file(abs);
      EXPECT_TRUE(data) << abs;
      j.inputs.push_back({abs.substr(1), data.value_or("")});
    }
    return j;
  }

  DistClient client(int alloc_wait_ms = 5000) {
    DistClientOptions o;
    o.scheduler_url = "http://127.0.0.1:" + std::to_string(m_scheduler->port());
    o.token = "ctok";
    o.client_id = "test-client";
    o.alloc_wait_ms = alloc_wait_ms;
    return DistClient(o, net::make_curl_client({2000, 60000}), util::Logger());
  }

  DistClient::ArchiveFn archive() {
    return []() -> expected<std::string, std::string> { return gxx_toolchain().archive; };
  }

  std::string compile_locally(const std::vector<std::string>& argv, const std::string& out) {
    util::RunOptions ro;
    ro.cwd = m_cwd;
    ro.env = &k_env;
    auto r = util::run_capture(argv, ro);
    EXPECT_TRUE(r && r->exit_code == 0) << (r ? r->err : "");
    auto bytes = util::read_file(m_cwd + "/" + out);
    EXPECT_TRUE(bytes);
    fs::remove(m_cwd + "/" + out);
    return bytes.value_or("");
  }

  std::string m_dir;
  std::string m_cwd;
  std::unique_ptr<SchedulerService> m_scheduler;
  std::vector<std::unique_ptr<WorkerService>> m_workers;
};

const std::vector<std::string> k_argv = {"/usr/bin/g++", "-g",      "-O1", "-I..", "-DVALUE=7",
                                         "-c",           "../a.cc", "-o",  "a.o"};

void write_sources(const std::string& dir) {
  ASSERT_TRUE(util::write_file(dir + "/h.h", "#include <vector>\nint triple(int);\n"));
  ASSERT_TRUE(util::write_file(dir + "/a.cc",
                               "#include \"h.h\"\n#include <string>\n"
                               "int triple(int x) { std::vector<int> v{x, x, x}; int s = 0;\n"
                               "  for (int i : v) s += i; return s + VALUE; }\n"
                               "std::string name() { return \"kiln\"; }\n"));
}

TEST_F(ClusterTest, CompilesOnAWorkerByteIdenticalToLocal) {
  ASSERT_FALSE(gxx_toolchain().id.empty());
  write_sources(m_dir + "/src");
  ASSERT_TRUE(start_worker("w-a"));
  wait_for_workers(1);
  std::string local = compile_locally(k_argv, "a.o");
  JobRequest job = job_for(k_argv, "../a.cc");
  job.outputs = {"a.o"};
  DistClient c = client();
  auto r = c.run(job, archive());
  ASSERT_TRUE(r) << to_string(r.error());
  EXPECT_EQ(r->exit_code, 0) << r->err;
  ASSERT_EQ(r->outputs.size(), 1u);
  EXPECT_TRUE(r->outputs[0].data == local) << "the worker's object differs from the local one";
  EXPECT_EQ(c.counters().succeeded, 1u);
  EXPECT_GT(c.counters().bytes_sent, gxx_toolchain().archive.size());  // uploaded once

  // A second job on the same worker: no upload.
  uint64_t sent = c.counters().bytes_sent;
  auto again = c.run(job, []() -> expected<std::string, std::string> {
    return unexpected(std::string("must not be asked for"));
  });
  ASSERT_TRUE(again);
  EXPECT_LT(c.counters().bytes_sent - sent, gxx_toolchain().archive.size());

  // Both jobs ended between heartbeats: the worker lists them in `ended`,
  // and the scheduler frees their slots within a heartbeat or two, not
  // after the 30 s grace it gives a job it never hears of again.
  wait_until_idle("w-a");
}

// Inputs outside the working directory are hard links to the worker's input
// store. The sandbox mounts them read-only: a job that writes to one fails,
// and the next job that links the same bytes compiles as locally.
TEST_F(ClusterTest, AJobCannotChangeTheInputStoreForTheNext) {
  write_sources(m_dir + "/src");
  WorkerService* w = start_worker("w-store");
  ASSERT_TRUE(w);
  wait_for_workers(1);
  std::string local = compile_locally(k_argv, "a.o");
  JobRequest job = job_for(k_argv, "../a.cc");
  job.outputs = {"a.o"};
  DistClient c = client();
  auto first = c.run(job, archive());
  ASSERT_TRUE(first) << to_string(first.error());
  ASSERT_EQ(first->exit_code, 0) << first->err;
  EXPECT_EQ(w->input_store().reused(), 0u);

  // The same inputs, and a compile that writes its object over ../h.h.
  JobRequest evil = job;
  evil.argv = {"/usr/bin/g++", "-I..", "-DVALUE=7", "-c", "../a.cc", "-o", m_dir + "/src/h.h"};
  evil.outputs = {};
  auto refused = c.run(evil, archive());
  ASSERT_TRUE(refused) << to_string(refused.error());
  EXPECT_NE(refused->exit_code, 0) << "the input was writable in the sandbox";
  EXPECT_NE(refused->err.find("Read-only file system"), std::string::npos) << refused->err;
  EXPECT_GT(w->input_store().reused(), 0u) << "the second job's inputs came from the store";

  auto again = c.run(job, archive());
  ASSERT_TRUE(again) << to_string(again.error());
  ASSERT_EQ(again->exit_code, 0) << again->err;
  ASSERT_EQ(again->outputs.size(), 1u);
  EXPECT_TRUE(again->outputs[0].data == local) << "the store's bytes changed";
}

TEST_F(ClusterTest, CompileErrorIsTheLocalErrorAndNotRetried) {
  write_sources(m_dir + "/src");
  ASSERT_TRUE(util::write_file(m_dir + "/src/bad.cc", "int f() { return undeclared; }\n"));
  ASSERT_TRUE(start_worker("w-a"));
  wait_for_workers(1);
  std::vector<std::string> argv = {"/usr/bin/g++", "-c", "../bad.cc", "-o", "bad.o"};
  util::RunOptions ro;
  ro.cwd = m_cwd;
  ro.env = &k_env;
  auto local = util::run_capture(argv, ro);
  ASSERT_TRUE(local);
  JobRequest job = job_for({"/usr/bin/g++", "-c", "../a.cc"}, "../a.cc");
  job.argv = argv;
  job.inputs.push_back({(m_dir + "/src/bad.cc").substr(1), "int f() { return undeclared; }\n"});
  job.outputs = {"bad.o"};
  DistClient c = client();
  auto r = c.run(job, archive());
  ASSERT_TRUE(r) << to_string(r.error());
  EXPECT_EQ(r->exit_code, local->exit_code);
  EXPECT_EQ(r->err, local->err);
  EXPECT_TRUE(r->outputs.empty());
  EXPECT_TRUE(c.counters().retries.empty());
}

TEST_F(ClusterTest, DeadWorkerAndANewOneOnItsAddressAreRetriedElsewhere) {
  write_sources(m_dir + "/src");
  WorkerService* a = start_worker("w-a");
  ASSERT_TRUE(a);
  wait_for_workers(1);
  JobRequest job = job_for(k_argv, "../a.cc");
  job.outputs = {"a.o"};
  std::string local = compile_locally(k_argv, "a.o");
  DistClient c = client();
  ASSERT_TRUE(c.run(job, archive()));  // w-a now holds the toolchain: it is preferred
  ASSERT_TRUE(start_worker("w-b"));
  wait_for_workers(2);
  wait_until_idle("w-a");  // the scheduler heard that its job ended
  uint16_t port = a->port();
  std::string old_cert = a->certificate();
  a->stop();  // kill: no drain, no deregistration; the scheduler still lists it

  // A new worker takes w-a's address and port, with a new certificate and a
  // new id, before the scheduler prunes w-a.
  WorkerService* replacement = start_worker("w-c", port);
  ASSERT_TRUE(replacement);
  ASSERT_NE(replacement->certificate(), old_cert);
  wait_for_workers(3);
  for (int i = 0; i < 3; ++i) {
    auto r = c.run(job, archive());
    ASSERT_TRUE(r) << to_string(r.error());
    ASSERT_EQ(r->outputs.size(), 1u);
    EXPECT_TRUE(r->outputs[0].data == local);
  }
  // The first of them went to w-a's address: the certificate the scheduler
  // vouched for did not verify the newcomer, and the client went elsewhere.
  uint64_t retries = 0;
  for (const auto& [reason, n] : c.counters().retries) {
    retries += n;
  }
  EXPECT_GE(retries, 1u);
  EXPECT_EQ(c.counters().retries.count("cannot_connect"), 1u);
  EXPECT_EQ(c.counters().succeeded, 4u);
}

TEST_F(ClusterTest, DrainingWorkerFinishesAndLeaves) {
  write_sources(m_dir + "/src");
  WorkerService* a = start_worker("w-a");
  ASSERT_TRUE(a);
  wait_for_workers(1);
  std::thread drain([a] { a->drain(); });
  drain.join();
  wait_for_workers(0);  // deregistered at once
  DistClient c = client(200);
  JobRequest job = job_for(k_argv, "../a.cc");
  auto r = c.run(job, archive());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), DistFailure::no_capacity);
}

TEST_F(ClusterTest, WorkerRefusesBadJobsAndTokens) {
  write_sources(m_dir + "/src");
  WorkerService* a = start_worker("w-a");
  ASSERT_TRUE(a);
  wait_for_workers(1);
  auto http = net::make_curl_client({2000, 10000});
  net::HttpRequest req;
  req.method = "POST";
  req.url = a->public_url() + "/api/v1/jobs/j1/run";
  req.ca_pem = a->certificate();
  std::string body = encode_job(job_for(k_argv, "../a.cc"));
  req.body = body;
  auto no_token = http->perform(req);
  ASSERT_TRUE(no_token) << no_token.error().message;
  EXPECT_EQ(no_token->status, 401);
  req.headers = {"Authorization: Bearer 99999999999.abcd"};
  auto forged = http->perform(req);
  ASSERT_TRUE(forged);
  EXPECT_EQ(forged->status, 401);
  // A real token for another job does not open this one.
  std::string other =
      make_job_token("wtok", "j2", "w-a", util::Clock::system().wall_seconds() + 60);
  req.headers = {"Authorization: Bearer " + other};
  auto wrong_job = http->perform(req);
  ASSERT_TRUE(wrong_job);
  EXPECT_EQ(wrong_job->status, 401);
  // A valid token with a malformed or unsafe job: 400, nothing run.
  req.headers = {"Authorization: Bearer " +
                 make_job_token("wtok", "j1", "w-a", util::Clock::system().wall_seconds() + 60)};
  req.body = "garbage";
  auto garbage = http->perform(req);
  ASSERT_TRUE(garbage);
  EXPECT_EQ(garbage->status, 400);
  JobRequest evil = job_for(k_argv, "../a.cc");
  evil.inputs.push_back({"../../etc/passwd", "x"});
  std::string evil_body = encode_job(evil);
  req.body = evil_body;
  auto traversal = http->perform(req);
  ASSERT_TRUE(traversal);
  EXPECT_EQ(traversal->status, 400);
  EXPECT_NE(traversal->body.find("refused path"), std::string::npos) << traversal->body;
  // The toolchain is missing: 409, so that the client uploads it.
  req.body = body;
  auto missing = http->perform(req);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 409);
  // A toolchain whose bytes do not hash to its id is refused.
  net::HttpRequest up;
  up.method = "PUT";
  up.url = a->public_url() + "/api/v1/toolchains/" + std::string(64, 'a');
  up.ca_pem = a->certificate();
  up.headers = {"Authorization: Bearer " +
                    make_job_token("wtok", "j3", "w-a", util::Clock::system().wall_seconds() + 60),
                "X-Kiln-Job: j3"};
  up.body = "not a toolchain";
  auto bad_tc = http->perform(up);
  ASSERT_TRUE(bad_tc);
  EXPECT_EQ(bad_tc->status, 400);
  auto health = http->get(a->public_url() + "/healthz");
  ASSERT_FALSE(health);  // no CA given: TLS does not verify
  net::HttpRequest hz;
  hz.url = a->public_url() + "/healthz";
  hz.ca_pem = a->certificate();
  auto ok = http->perform(hz);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

}  // namespace
}  // namespace kiln::dist
