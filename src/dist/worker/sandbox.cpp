#include "kiln/dist/worker/sandbox.hpp"

#include "kiln/dist/worker/input_store.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <unordered_set>

#include "kiln/util/file.hpp"
#include "kiln/util/process.hpp"
#include "kiln/util/string.hpp"

namespace kiln::dist {

namespace fs = std::filesystem;

namespace {

constexpr const char* k_bwrap = "/usr/bin/bwrap";
constexpr const char* k_prlimit = "/usr/bin/prlimit";
// The job's private $TMPDIR (a tmpfs): the root's own /tmp may be read-only.
constexpr const char* k_private_tmp = "kiln-tmp";

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

std::vector<std::string> sandbox_argv(const std::string& root, const JobRequest& job,
                                      const SandboxLimits& limits) {
  std::vector<std::string> a = {k_prlimit,
                                "--as=" + std::to_string(limits.memory_bytes),
                                k_bwrap,
                                "--unshare-all",
                                "--die-with-parent",
                                "--new-session",
                                "--clearenv"};
  for (const auto& name : top_level(root)) {
    if (name == "proc" || name == "dev" || name == k_private_tmp) {
      continue;
    }
    std::string path = root + "/" + name;
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
  const std::string tmp = std::string("/") + k_private_tmp;
  a.insert(a.end(), {"--tmpfs", tmp, "--proc", "/proc", "--dev", "/dev", "--bind",
                     job.cwd == "/" ? root : root + job.cwd, job.cwd, "--chdir", job.cwd});
  bool has_path = false;
  for (const auto& kv : job.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0 || kv.compare(0, eq, "TMPDIR") == 0) {
      continue;
    }
    has_path = has_path || kv.compare(0, eq, "PATH") == 0;
    a.insert(a.end(), {"--setenv", kv.substr(0, eq), kv.substr(eq + 1)});
  }
  if (!has_path) {
    a.insert(a.end(), {"--setenv", "PATH", "/usr/bin:/bin"});
  }
  a.insert(a.end(), {"--setenv", "TMPDIR", tmp});
  a.push_back("--");
  a.insert(a.end(), job.argv.begin(), job.argv.end());
  return a;
}

expected<SandboxOutcome, std::string> run_in_sandbox(const std::string& root, const JobRequest& job,
                                                     const SandboxLimits& limits,
                                                     const std::atomic<bool>* cancel) {
  if (::access(k_bwrap, X_OK) != 0 || ::access(k_prlimit, X_OK) != 0) {
    return unexpected(std::string("bubblewrap (/usr/bin/bwrap) or prlimit is not installed"));
  }
  util::RunOptions options;
  std::vector<std::string> env = {"PATH=/usr/bin:/bin"};
  options.env = &env;
  options.timeout = limits.wall;
  options.default_signals = true;
  options.cancel = cancel;
  auto r = util::run_capture(sandbox_argv(root, job, limits), options);
  if (!r) {
    return unexpected("cannot start bubblewrap: errno " + std::to_string(r.error()));
  }
  SandboxOutcome o;
  o.exit_code = r->exit_code;
  o.out = std::move(r->out);
  o.err = std::move(r->err);
  o.timed_out = r->timed_out;
  o.cancelled = r->cancelled;
  return o;
}

expected<void, std::string> make_job_root(const std::string& root,
                                          const std::string& toolchain_root, const JobRequest& job,
                                          InputStore* store) {
  std::error_code ec;
  if (fs::exists(fs::symlink_status(root, ec))) {
    return unexpected("job root " + root + " exists already");
  }
  fs::create_directories(root, ec);
  if (ec) {
    return unexpected("cannot create " + root + ": " + ec.message());
  }
  if (!toolchain_root.empty()) {
    const fs::path from(toolchain_root);
    for (auto it = fs::recursive_directory_iterator(from, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      fs::path to = fs::path(root) / it->path().lexically_relative(from);
      auto st = it->symlink_status(ec);
      if (fs::is_symlink(st)) {
        fs::copy_symlink(it->path(), to, ec);
      } else if (fs::is_directory(st)) {
        fs::create_directory(to, ec);
      } else if (fs::is_regular_file(st)) {
        fs::create_hard_link(it->path(), to, ec);
        if (ec) {
          ec.clear();
          fs::copy_file(it->path(), to, ec);
        }
      }
      if (ec) {
        return unexpected("cannot lay out the toolchain: " + ec.message());
      }
    }
    if (ec) {
      return unexpected("cannot read the toolchain: " + ec.message());
    }
  }
  // Every component of an input's path is made here or checked: a link (the
  // toolchain's /lib -> usr/lib, say) is never followed on this host, and a
  // file of the toolchain is never replaced.
  // Directories made or checked already (most inputs share a few dozen):
  // each is looked at once, not once per input below it.
  std::unordered_set<std::string> known;
  auto ensure_dirs = [&](const std::string& rel) -> bool {
    std::string path = root;
    for (const auto& part : util::split(rel, '/')) {
      path += "/" + part;
      if (known.contains(path)) {
        continue;
      }
      known.insert(path);
      struct stat st;
      if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
          return false;
        }
      } else if (::mkdir(path.c_str(), 0755) != 0) {
        return false;
      }
    }
    return true;
  };
  const std::string cwd_rel = job.cwd == "/" ? "" : job.cwd.substr(1) + "/";
  for (const auto& in : job.inputs) {
    auto slash = in.path.rfind('/');
    if (slash != std::string::npos && !ensure_dirs(in.path.substr(0, slash))) {
      return unexpected("input " + in.path + " goes through a link or a file");
    }
    std::string path = root + "/" + in.path;
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) {
      // The compiler read a file of its own toolchain while the client
      // scanned (locale data, say): the same bytes are no conflict.
      if (S_ISREG(st.st_mode) && static_cast<size_t>(st.st_size) == in.data.size()) {
        auto have = util::read_file(path);
        if (have && *have == in.data) {
          continue;
        }
      }
      return unexpected("input " + in.path + " would replace a file of the toolchain");
    }
    // Under the working directory, which the sandbox mounts writable, an
    // input is this job's own copy; elsewhere it is read-only there and may
    // be the store's.
    const bool writable = cwd_rel.empty() || in.path.starts_with(cwd_rel);
    bool placed = store && !writable ? store->place(in.data, path)
                                     : static_cast<bool>(util::write_file(path, in.data));
    if (!placed) {
      return unexpected("cannot write input " + in.path);
    }
  }
  if (job.cwd != "/" && !ensure_dirs(job.cwd.substr(1))) {
    return unexpected("the working directory " + job.cwd + " goes through a link or a file");
  }
  // The outputs' directories exist where the client compiles (a build
  // system made them): so here.
  for (const auto& out : job.outputs) {
    auto slash = out.rfind('/');
    if (slash != std::string::npos && !ensure_dirs(cwd_rel + out.substr(0, slash))) {
      return unexpected("output " + out + " goes through a link or a file");
    }
  }
  return {};
}

}  // namespace kiln::dist
