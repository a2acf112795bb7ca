#include "kiln/util/process.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace kiln::util {
namespace {

using namespace std::chrono_literals;

// Whether `pid` is still a running process (a zombie counts as gone).
bool running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) {
    return false;
  }
  auto close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] != 'Z';
}

TEST(ProcessTest, CapturesOutputAndStatus) {
  auto r = run_capture({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->timed_out);
}

TEST(ProcessTest, ATimeoutThatDoesNotExpireChangesNothing) {
  RunOptions options;
  options.timeout = 10s;
  auto r = run_capture({"/bin/sh", "-c", "echo fine; exit 0"}, options);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "fine\n");
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_FALSE(r->timed_out);
}

TEST(ProcessTest, AnExpiredTimeoutKillsTheWholeProcessGroup) {
  // A hung "compiler" with a child of its own (as gcc has cc1 and as).
  RunOptions options;
  options.timeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  auto r = run_capture({"/bin/sh", "-c", "sleep 100 & echo $!; wait"}, options);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->exit_code, 128 + SIGKILL);
  EXPECT_LT(took, 30s);
  pid_t grandchild = std::stoi(r->out);
  for (int i = 0; i < 200 && running(grandchild); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_FALSE(running(grandchild)) << "the compiler's child outlived the timeout";
}

TEST(ProcessTest, CancelKillsTheWholeProcessGroup) {
  std::atomic<bool> cancel{false};
  RunOptions options;
  options.timeout = 60s;
  options.cancel = &cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(200ms);
    cancel = true;
  });
  auto start = std::chrono::steady_clock::now();
  auto r = run_capture({"/bin/sh", "-c", "sleep 100 & echo $!; wait"}, options);
  canceller.join();
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->cancelled);
  EXPECT_FALSE(r->timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  pid_t grandchild = std::stoi(r->out);
  for (int i = 0; i < 200 && running(grandchild); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_FALSE(running(grandchild));

  // Not set: nothing happens.
  std::atomic<bool> never{false};
  options.cancel = &never;
  auto fine = run_capture({"/bin/sh", "-c", "sleep 0.3; echo done"}, options);
  ASSERT_TRUE(fine);
  EXPECT_FALSE(fine->cancelled);
  EXPECT_EQ(fine->out, "done\n");
}

TEST(ProcessTest, ATimeoutAppliesWhenTheChildClosedItsOutput) {
  RunOptions options;
  options.timeout = 300ms;
  auto r = run_capture({"/bin/sh", "-c", "exec >&- 2>&-; sleep 100"}, options);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->timed_out);
}

TEST(ProcessTest, AChildThatExitedInTimeIsNoTimeoutThoughItsChildHoldsThePipe) {
  // The compiler exits at once; a background job it left keeps stdout open
  // past the deadline. The run is not a timeout, and the straggler is killed.
  RunOptions options;
  options.timeout = 300ms;
  auto r = run_capture({"/bin/sh", "-c", "sleep 100 & echo $!; exit 0"}, options);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->exit_code, 0);
  pid_t straggler = std::stoi(r->out);
  for (int i = 0; i < 200 && running(straggler); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_FALSE(running(straggler));
}

TEST(ProcessTest, DefaultSignalsUnblockAndUnignoreForTheChild) {
  // A daemon thread blocks SIGTERM and ignores SIGPIPE; its compilers must not.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &block, &old), 0);
  struct sigaction ignore {
  }, old_pipe{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGPIPE, &ignore, &old_pipe), 0);
  // /proc/self/status: SigBlk and SigIgn as hex masks; bit 14 is SIGTERM (15),
  // bit 12 SIGPIPE (13).
  const std::vector<std::string> argv{"/bin/grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"};
  auto inherited = run_capture(argv);
  RunOptions options;
  options.default_signals = true;
  auto reset = run_capture(argv, options);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  ASSERT_TRUE(inherited && reset);
  auto mask = [](const std::string& text, const char* name) {
    auto at = text.find(name);
    return std::stoull(text.substr(at + std::string(name).size()), nullptr, 16);
  };
  EXPECT_NE(mask(inherited->out, "SigBlk:") & (1ull << 14), 0u) << inherited->out;
  EXPECT_NE(mask(inherited->out, "SigIgn:") & (1ull << 12), 0u) << inherited->out;
  EXPECT_EQ(mask(reset->out, "SigBlk:") & (1ull << 14), 0u) << reset->out;
  EXPECT_EQ(mask(reset->out, "SigIgn:") & (1ull << 12), 0u) << reset->out;
}

TEST(ProcessTest, DaemonChildrenInheritNoOtherDescriptor) {
  int fd = ::open("/dev/null", O_RDONLY);  // inheritable: no O_CLOEXEC
  ASSERT_GE(fd, 3);
  std::vector<std::string> argv = {"/bin/sh", "-c", "test -e /proc/self/fd/" + std::to_string(fd)};
  auto client = run_capture(argv, RunOptions{});
  RunOptions daemon;
  daemon.default_signals = true;
  auto daemon_child = run_capture(argv, daemon);
  ::close(fd);
  ASSERT_TRUE(client && daemon_child);
  EXPECT_EQ(client->exit_code, 0);        // the client passes descriptors on (make's jobserver)
  EXPECT_EQ(daemon_child->exit_code, 1);  // a daemon's sockets stay with the daemon
}

TEST(ProcessTest, EnvironmentIsTheWholeEnvironment) {
  std::vector<std::string> env{"ONLY=this"};
  RunOptions options;
  options.env = &env;
  auto r = run_capture({"/usr/bin/env"}, options);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "ONLY=this\n");
}

TEST(ProcessTest, ASpawnFailureIsAnErrno) {
  auto r = run_capture({"/nonexistent/compiler"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), ENOENT);
}

}  // namespace
}  // namespace kiln::util
