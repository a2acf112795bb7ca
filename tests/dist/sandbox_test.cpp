#include "kiln/dist/worker/sandbox.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "kiln/net/server/http_server.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/process.hpp"

namespace kiln::dist {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// These tests use the machine's own root as the "toolchain" (every top-level
// directory bound read-only), so they test the sandbox, not the packaging.
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
    j.cwd = m_dir + "/client-cwd";  // not the job directory: bound there
    j.env = {"LANG=C"};
    return j;
  }
  std::string m_dir;
  std::string m_job;
};

TEST_F(SandboxTest, CompileInTheClientsDirectoryGivesTheLocalObject) {
  const std::string src = "int f(int x) { return x * 3; }\nint main() { return f(2); }\n";
  // Locally, in the client's directory.
  std::string cwd = m_dir + "/client-cwd";
  fs::create_directories(cwd);
  ASSERT_TRUE(util::write_file(cwd + "/a.cc", src));
  util::RunOptions local;
  local.cwd = cwd;
  auto l = util::run_capture({"/usr/bin/g++", "-g", "-O1", "-c", "a.cc", "-o", "a.o"}, local);
  ASSERT_TRUE(l);
  ASSERT_EQ(l->exit_code, 0) << l->err;
  auto local_obj = util::read_file(cwd + "/a.o");
  ASSERT_TRUE(local_obj);
  fs::remove_all(cwd);  // the sandbox must not see it

  ASSERT_TRUE(util::write_file(m_job + "/a.cc", src));
  auto r =
      run_in_sandbox("/", m_job, job({"/usr/bin/g++", "-g", "-O1", "-c", "a.cc", "-o", "a.o"}), {});
  ASSERT_TRUE(r) << r.error();
  ASSERT_EQ(r->exit_code, 0) << r->err;
  auto remote_obj = util::read_file(m_job + "/a.o");
  ASSERT_TRUE(remote_obj);
  EXPECT_TRUE(*remote_obj == *local_obj) << "the object differs from the local one";
  EXPECT_FALSE(fs::exists(cwd)) << "the sandbox created the client's directory on the host";
}

TEST_F(SandboxTest, CompilerErrorsComeBackAsIs) {
  ASSERT_TRUE(util::write_file(m_job + "/bad.cc", "int f() { return x; }\n"));
  auto r = run_in_sandbox("/", m_job, job({"/usr/bin/g++", "-c", "bad.cc"}), {});
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
      run_in_sandbox("/", m_job,
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
  auto r = run_in_sandbox("/", m_job, job({"/bin/sleep", "30"}), limits);
  ASSERT_TRUE(r) << r.error();
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 10s);
}

TEST_F(SandboxTest, MemoryLimitApplies) {
  SandboxLimits limits;
  limits.memory_bytes = uint64_t{200} << 20;
  auto r = run_in_sandbox(
      "/", m_job, job({"/usr/bin/python3", "-c", "x = bytearray(400 * 1024 * 1024)\nprint('ok')"}),
      limits);
  ASSERT_TRUE(r) << r.error();
  EXPECT_NE(r->exit_code, 0);
  EXPECT_NE(r->err.find("MemoryError"), std::string::npos) << r->err;
}

TEST_F(SandboxTest, OnlyTheJobDirectoryIsWritable) {
  auto r =
      run_in_sandbox("/", m_job,
                     job({"/bin/sh", "-c",
                          "echo hi > here.txt && (echo x > /etc/kiln-sandbox-probe) 2>/dev/null; "
                          "echo $?"}),
                     {});
  ASSERT_TRUE(r) << r.error();
  EXPECT_TRUE(r->out == "1\n" || r->out == "2\n") << r->out << r->err;  // the write failed
  EXPECT_TRUE(fs::exists(m_job + "/here.txt"));
  EXPECT_FALSE(fs::exists("/etc/kiln-sandbox-probe"));
}

}  // namespace
}  // namespace kiln::dist
