#include "kiln/dist/worker/sandbox.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "kiln/net/server/http_server.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/process.hpp"

namespace kiln::dist {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// These tests use the machine's own root as the job's root (every top-level
// directory bound read-only, the job directory writable), so they test the
// sandbox, not the toolchain; tests/dist/worker_test.cpp runs packaged
// toolchains.
class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access("/usr/bin/bwrap", X_OK), 0)
        << "bubblewrap is required (apt-get install bubblewrap)";
    char tmpl[] = "/tmp/kiln-sandbox-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
    m_job = m_dir + "/job";
    fs::create_directories(m_job);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(m_dir, ec);
  }
  JobRequest job(std::vector<std::string> argv) {
    JobRequest j;
    j.argv = std::move(argv);
    j.cwd = m_job;  // the host's own root is the job's root here
    j.env = {"LANG=C"};
    return j;
  }
  std::string m_dir;
  std::string m_job;
};

TEST_F(SandboxTest, CompilerErrorsComeBackAsIs) {
  ASSERT_TRUE(util::write_file(m_job + "/bad.cc", "int f() { return x; }\n"));
  auto r = run_in_sandbox("/", job({"/usr/bin/g++", "-c", "bad.cc"}), {});
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->exit_code, 1);
  EXPECT_NE(r->err.find("bad.cc:1:"), std::string::npos) << r->err;
  EXPECT_NE(r->err.find("'x' was not declared"), std::string::npos) << r->err;
}

TEST_F(SandboxTest, NoNetworkAndOnlyTheGivenEnvironment) {
  auto server =
      net::HttpServer::start({}, [](net::ServerRequest&&, net::Reply reply) { reply({}); });
  ASSERT_TRUE(server);
  std::string port = std::to_string((*server)->port());
  auto r =
      run_in_sandbox("/",
                     job({"/usr/bin/python3", "-c",
                          "import socket,os\n"
                          "try:\n socket.create_connection(('127.0.0.1'," +
                              port +
                              "),timeout=2); print('connected')\n"
                              "except OSError as e: print('refused')\n"
                              "print(os.environ.get('HOME','nohome'), os.environ.get('LANG'))\n"}),
                     {});
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->out, "refused\nnohome C\n") << r->err;
  // The same program outside the sandbox connects: the test can fail.
  auto outside = util::run_capture({"/usr/bin/python3", "-c",
                                    "import socket\nsocket.create_connection(('127.0.0.1'," + port +
                                        "),timeout=2)\nprint('connected')"});
  ASSERT_TRUE(outside);
  EXPECT_EQ(outside->out, "connected\n");
}

TEST_F(SandboxTest, WallTimeLimitKillsTheJob) {
  SandboxLimits limits;
  limits.wall = 300ms;
  auto begin = std::chrono::steady_clock::now();
  auto r = run_in_sandbox("/", job({"/bin/sleep", "30"}), limits);
  ASSERT_TRUE(r) << r.error();
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 10s);
}

TEST_F(SandboxTest, CancelKillsTheJob) {
  std::atomic<bool> gone{false};
  std::thread client([&] {
    std::this_thread::sleep_for(300ms);
    gone = true;  // the client's connection closed
  });
  auto begin = std::chrono::steady_clock::now();
  auto r = run_in_sandbox("/", job({"/bin/sleep", "30"}), {}, &gone);
  client.join();
  ASSERT_TRUE(r) << r.error();
  EXPECT_TRUE(r->cancelled);
  EXPECT_FALSE(r->timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 5s);
}

TEST_F(SandboxTest, MemoryLimitApplies) {
  SandboxLimits limits;
  limits.memory_bytes = uint64_t{200} << 20;
  auto r = run_in_sandbox(
      "/", job({"/usr/bin/python3", "-c", "x = bytearray(400 * 1024 * 1024)\nprint('ok')"}),
      limits);
  ASSERT_TRUE(r) << r.error();
  EXPECT_NE(r->exit_code, 0);
  EXPECT_NE(r->err.find("MemoryError"), std::string::npos) << r->err;
}

TEST_F(SandboxTest, OnlyTheJobDirectoryIsWritable) {
  auto r =
      run_in_sandbox("/",
                     job({"/bin/sh", "-c",
                          "echo hi > here.txt && (echo x > /etc/kiln-sandbox-probe) 2>/dev/null; "
                          "echo $?"}),
                     {});
  ASSERT_TRUE(r) << r.error();
  EXPECT_TRUE(r->out == "1\n" || r->out == "2\n") << r->out << r->err;  // the write failed
  EXPECT_TRUE(fs::exists(m_job + "/here.txt"));
  EXPECT_FALSE(fs::exists("/etc/kiln-sandbox-probe"));
}

TEST_F(SandboxTest, JobRootLinksTheToolchainAndRefusesTricks) {
  std::string tc = m_dir + "/tc";
  fs::create_directories(tc + "/usr/bin");
  ASSERT_TRUE(util::write_file(tc + "/usr/bin/cc", "#!/bin/sh\n"));
  fs::create_symlink("usr/bin", tc + "/bin");
  JobRequest j = job({"/usr/bin/cc"});
  j.cwd = "/home/u/proj/build";
  j.inputs = {{"home/u/proj/a.cc", "int a;\n"}, {"usr/include/x.h", "#define X\n"}};
  std::string root = m_dir + "/root";
  auto made = make_job_root(root, tc, j);
  ASSERT_TRUE(made) << made.error();
  EXPECT_EQ(util::read_file(root + "/home/u/proj/a.cc").value_or(""), "int a;\n");
  EXPECT_TRUE(fs::is_directory(root + "/home/u/proj/build"));
  EXPECT_TRUE(fs::is_symlink(root + "/bin"));
  EXPECT_EQ(fs::hard_link_count(root + "/usr/bin/cc"), 2u);  // linked, not copied
  EXPECT_FALSE(make_job_root(root, tc, j)) << "an existing root is refused";

  JobRequest replace = j;
  replace.inputs = {{"usr/bin/cc", "evil"}};
  EXPECT_FALSE(make_job_root(m_dir + "/r2", tc, replace));
  EXPECT_EQ(util::read_file(tc + "/usr/bin/cc").value_or(""), "#!/bin/sh\n");
  // The same bytes as the toolchain's file (the scan read it): no conflict,
  // and the toolchain's file is left as it is.
  JobRequest same = j;
  same.inputs = {{"usr/bin/cc", "#!/bin/sh\n"}, {"home/u/proj/a.cc", "int a;\n"}};
  auto made_same = make_job_root(m_dir + "/r4", tc, same);
  ASSERT_TRUE(made_same) << made_same.error();
  EXPECT_TRUE(fs::equivalent(tc + "/usr/bin/cc", m_dir + "/r4/usr/bin/cc"));  // still a link
  EXPECT_EQ(util::read_file(tc + "/usr/bin/cc").value_or(""), "#!/bin/sh\n");
  JobRequest through_link = j;
  through_link.inputs = {{"bin/x", "evil"}};  // bin -> usr/bin
  EXPECT_FALSE(make_job_root(m_dir + "/r3", tc, through_link));
  EXPECT_FALSE(fs::exists(tc + "/usr/bin/x"));
}

}  // namespace
}  // namespace kiln::dist
