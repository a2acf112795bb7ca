#include "kiln/dist/worker/sandbox.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "kiln/util/process.hpp"

namespace kiln::dist {

namespace {

constexpr const char* k_bwrap = "/usr/bin/bwrap";
constexpr const char* k_prlimit = "/usr/bin/prlimit";

std::vector<std::string> top_level(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") {
        names.push_back(n);
      }
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

std::vector<std::string> sandbox_argv(const std::string& toolchain_root, const std::string& job_dir,
                                      const JobRequest& job, const SandboxLimits& limits) {
  std::vector<std::string> a = {k_prlimit,
                                "--as=" + std::to_string(limits.memory_bytes),
                                k_bwrap,
                                "--unshare-all",
                                "--die-with-parent",
                                "--new-session",
                                "--clearenv"};
  for (const auto& name : top_level(toolchain_root)) {
    if (name == "tmp" || name == "proc" || name == "dev") {
      continue;
    }
    std::string path = toolchain_root + "/" + name;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      continue;
    }
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(path.c_str(), target, sizeof(target) - 1);
      if (n > 0) {
        a.insert(a.end(), {"--symlink", std::string(target, static_cast<size_t>(n)), "/" + name});
      }
    } else if (S_ISDIR(st.st_mode)) {
      a.insert(a.end(), {"--ro-bind", path, "/" + name});
    }
  }
  a.insert(a.end(), {"--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev", "--bind", job_dir,
                     job.cwd, "--chdir", job.cwd});
  bool has_path = false;
  for (const auto& kv : job.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      continue;
    }
    has_path = has_path || kv.compare(0, eq, "PATH") == 0;
    a.insert(a.end(), {"--setenv", kv.substr(0, eq), kv.substr(eq + 1)});
  }
  if (!has_path) {
    a.insert(a.end(), {"--setenv", "PATH", "/usr/bin:/bin"});
  }
  a.push_back("--");
  a.insert(a.end(), job.argv.begin(), job.argv.end());
  return a;
}

expected<SandboxOutcome, std::string> run_in_sandbox(const std::string& toolchain_root,
                                                     const std::string& job_dir,
                                                     const JobRequest& job,
                                                     const SandboxLimits& limits) {
  if (::access(k_bwrap, X_OK) != 0 || ::access(k_prlimit, X_OK) != 0) {
    return unexpected(std::string("bubblewrap (/usr/bin/bwrap) or prlimit is not installed"));
  }
  util::RunOptions options;
  std::vector<std::string> env = {"PATH=/usr/bin:/bin"};
  options.env = &env;
  options.timeout = limits.wall;
  options.default_signals = true;
  auto r = util::run_capture(sandbox_argv(toolchain_root, job_dir, job, limits), options);
  if (!r) {
    return unexpected("cannot start bubblewrap: errno " + std::to_string(r.error()));
  }
  SandboxOutcome o;
  o.exit_code = r->exit_code;
  o.out = std::move(r->out);
  o.err = std::move(r->err);
  o.timed_out = r->timed_out;
  return o;
}

}  // namespace kiln::dist
