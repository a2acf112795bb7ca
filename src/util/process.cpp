#include "kiln/util/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>

#include "kiln/util/clock.hpp"

extern char** environ;

namespace kiln::util {

namespace {

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  out.reserve(argv.size() + 1);
  for (const auto& a : argv) {
    out.push_back(const_cast<char*>(a.c_str()));
  }
  out.push_back(nullptr);
  return out;
}

}  // namespace

expected<RunResult, int> run_capture(const std::vector<std::string>& argv) {
  return run_capture(argv, RunOptions{});
}

expected<RunResult, int> run_capture(const std::vector<std::string>& argv,
                                     const std::vector<std::string>& env) {
  RunOptions options;
  options.env = &env;
  return run_capture(argv, options);
}

expected<RunResult, int> run_capture(const std::vector<std::string>& argv,
                                     const RunOptions& options) {
  const bool use_env = options.env != nullptr;
  const bool limited = options.timeout.count() > 0;
  const Clock::SteadyPoint deadline = Clock::system().steady() + options.timeout;
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return unexpected(errno);
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return unexpected(e);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  if (!options.cwd.empty()) {
    posix_spawn_file_actions_addchdir_np(&actions, options.cwd.c_str());
  }
  if (options.default_signals) {
    // A daemon's listening socket and connections must not live on in a
    // child: a build orphaned by a killed server would keep its port bound.
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  }
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  short flags = 0;
  if (limited) {
    // A group of its own: the timeout kills the compiler's children too.
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attributes, 0);
  }
  sigset_t no_signals;
  sigset_t defaults;
  if (options.default_signals) {
    sigemptyset(&no_signals);
    posix_spawnattr_setsigmask(&attributes, &no_signals);
    sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2}) {
      sigaddset(&defaults, sig);
    }
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    flags |= POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  }
  posix_spawnattr_setflags(&attributes, flags);
  auto args = c_argv(argv);
  pid_t pid = 0;
  std::vector<char*> envp;
  if (use_env) {
    envp = c_argv(*options.env);
  }
  int rc = ::posix_spawn(&pid, args[0], &actions, &attributes, args.data(),
                         use_env ? envp.data() : environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return unexpected(rc);
  }

  RunResult result;
  int status = 0;
  bool reaped = false;  // the child itself has exited and been waited for
  struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  char buf[65536];
  // After the kill, a descendant that left the group may still hold a pipe:
  // its output is not waited for longer than this.
  const auto k_drain = std::chrono::milliseconds(500);
  Clock::SteadyPoint drain_deadline = deadline + k_drain;
  const std::atomic<bool>* cancel = limited ? options.cancel : nullptr;
  while (open_fds > 0) {
    int wait_ms = -1;
    if (limited) {
      const bool draining = result.timed_out || result.cancelled || reaped;
      auto left = std::chrono::ceil<std::chrono::milliseconds>(
          (draining ? drain_deadline : deadline) - Clock::system().steady());
      if (left.count() <= 0) {
        if (draining) {
          break;
        }
        // The child may have finished in time while a descendant keeps the
        // pipe open: that is not a timeout, but the straggler goes.
        reaped = ::waitpid(pid, &status, WNOHANG) == pid;
        result.timed_out = !reaped;
        ::kill(-pid, SIGKILL);
        continue;
      }
      wait_ms = static_cast<int>(std::min<int64_t>(left.count(), cancel ? 100 : 60000));
    }
    int n = ::poll(fds, 2, wait_ms);
    if (cancel && !result.cancelled && !result.timed_out && !reaped && cancel->load()) {
      result.cancelled = true;
      ::kill(-pid, SIGKILL);
      drain_deadline = std::min(drain_deadline, Clock::system().steady() + k_drain);
    }
    if (n == 0) {
      continue;
    }
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) {
        continue;
      }
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) {
      ::close(f.fd);
    }
  }
  // With a timeout, a child that closed its output but runs on is polled
  // until the deadline; without one, waited for.
  while (limited && !result.timed_out && !result.cancelled && !reaped) {
    pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      reaped = true;
      break;
    }
    if (done < 0 && errno != EINTR) {
      int e = errno;
      ::kill(-pid, SIGKILL);
      return unexpected(e);
    }
    if (Clock::system().steady() >= deadline) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
      break;
    }
    struct timespec pause = {0, 5 * 1000 * 1000};
    ::nanosleep(&pause, nullptr);
  }
  if (!reaped) {
    while (::waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) {
        int e = errno;
        if (limited) {
          ::kill(-pid, SIGKILL);
        }
        return unexpected(e);
      }
    }
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  return result;
}

void exec_replace(const std::vector<std::string>& argv) {
  auto args = c_argv(argv);
  ::execv(args[0], args.data());
}

}  // namespace kiln::util
