// Stage: what the trace of the compiler says (docs/direct-mode.md, "What the
// compiler looked at"): the names it looked up and did not find become
// directory records of the manifest, and a compile that read, ran or wrote
// something kiln does not know, or asked for the local time, is not stored.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <span>

#include "kiln/cache/compilation.hpp"
#include "kiln/util/path.hpp"

namespace kiln::cache {

namespace {

using FileId = std::pair<uint64_t, uint64_t>;

// Installed software (the FHS's places for it, not /usr/src): what the
// compiler reads and runs there comes with the compiler or the system, whose
// identity is in the key. clang's driver, for one, reads cuda.h of any CUDA
// installation it finds to learn its version.
constexpr std::string_view k_system_prefixes[] = {
    "/usr/bin/",   "/usr/sbin/",    "/usr/lib/",   "/usr/lib32/", "/usr/lib64/", "/usr/libexec/",
    "/usr/share/", "/usr/include/", "/usr/local/", "/opt/",       "/lib/",       "/lib32/",
    "/lib64/",     "/etc/",         "/proc/",      "/sys/",       "/dev/"};

// Lookups there say nothing about which files the compiler uses.
constexpr std::string_view k_unwatched_prefixes[] = {"/proc/", "/sys/", "/dev/"};

bool has_prefix(std::string_view path, std::span<const std::string_view> prefixes) {
  for (auto prefix : prefixes) {
    if (path.starts_with(prefix)) {
      return true;
    }
  }
  return false;
}

std::vector<std::string> temp_dirs(const util::Environment& env) {
  std::vector<std::string> dirs{"/tmp/", "/var/tmp/"};
  if (auto t = env.get("TMPDIR"); t && t->starts_with('/')) {
    dirs.push_back(util::normalize(*t) + "/");
  }
  return dirs;
}

}  // namespace

std::vector<std::string> Compilation::expected_outputs() const {
  std::vector<std::string> out{m_args.output};
  for (const std::string* p :
       {&m_args.dwo_file, &m_args.gcno_file, &m_args.stack_usage_file, &m_args.callgraph_file}) {
    if (!p->empty()) {
      out.push_back(*p);
    }
  }
  if (m_args.generating_dependencies) {
    out.push_back(m_args.depfile);
  }
  return out;
}

bool Compilation::watch_absent(const Trace& trace, Includes* inc, bool compiled) {
  const int64_t trust_before = m_inv.start_ns - k_trust_age_ns;
  // The preprocessor alone (-E) never looks for precompiled headers, which
  // the compile would use: gcc tries NAME.gch before NAME in every directory
  // it searches, clang NAME.pch and NAME.gch for -include. Without a compile
  // in the trace, those names are watched (and must be absent) as well.
  std::vector<std::string> names = trace.absent;
  std::vector<std::string> pch;
  if (!compiled) {
    for (const auto& path : trace.absent) {
      pch.push_back(path + ".gch");
      pch.push_back(path + ".pch");
    }
    for (const auto& f : inc->files) {
      pch.push_back(f.path + ".gch");
      pch.push_back(f.path + ".pch");
    }
    for (const auto& path : pch) {
      if (util::FileStat::of(util::join_path(m_inv.cwd, path)).exists()) {
        m_log.event("not_stored", {{"reason", "precompiled_header"}, {"path", path}});
        return false;
      }
    }
    names.insert(names.end(), pch.begin(), pch.end());
  }
  std::set<std::string> written(trace.written.begin(), trace.written.end());
  for (const auto& o : expected_outputs()) {
    written.insert(o);
  }
  // For each name that was looked up in vain, the deepest directory above it
  // that exists now: its stat changes when anything is created in it.
  std::map<std::string, std::set<std::string>> absent;
  std::map<std::string, bool> is_dir;  // fresh stats, not the pre-compile ones
  auto directory = [&](const std::string& path) {
    auto it = is_dir.find(path);
    if (it == is_dir.end()) {
      it = is_dir.emplace(path, util::FileStat::of(util::join_path(m_inv.cwd, path)).is_directory())
               .first;
    }
    return it->second;
  };
  for (const auto& path : names) {
    if (has_prefix(path, k_unwatched_prefixes) || written.contains(path)) {
      continue;
    }
    if (util::FileStat::of(util::join_path(m_inv.cwd, path)).exists()) {
      // Created while the compiler ran (or by it, under another name): what
      // the compiler saw is gone already.
      inc->too_new = true;
      m_log.event("appeared_during_compile", {{"path", path}});
      continue;
    }
    std::string dir = path;
    std::string rest;
    while (true) {
      auto slash = dir.find_last_of('/');
      std::string parent = slash == std::string::npos ? "."
                           : slash == 0               ? "/"
                                                      : dir.substr(0, slash);
      std::string name = slash == std::string::npos ? dir : dir.substr(slash + 1);
      rest = rest.empty() ? name : name + "/" + rest;
      dir = parent;
      if (dir == "." || dir == "/" || directory(dir)) {
        break;
      }
    }
    absent[dir].insert(rest);
  }
  for (auto& [dir, watched] : absent) {
    inc->dirs.push_back(Manifest::dir_record(
        dir, std::vector<std::string>(watched.begin(), watched.end()), m_checker, trust_before));
  }
  return true;
}

std::optional<Counter> Compilation::vet_trace(const Trace& trace, const Includes& inc,
                                              bool compiled) {
  auto id_of = [&](const std::string& path) -> std::optional<FileId> {
    util::FileStat st = util::FileStat::of(util::join_path(m_inv.cwd, path));
    if (!st.exists()) {
      return std::nullopt;
    }
    return FileId{st.dev, st.ino};
  };
  // The inputs whose content is in the key.
  std::set<FileId> known;
  auto know = [&](const std::string& path) {
    if (auto id = id_of(path)) {
      known.insert(*id);
    }
  };
  know(m_args.source);
  for (const auto& f : inc.files) {
    know(f.path);
  }
  for (const auto& f : m_args.input_files) {
    know(f);
  }
  for (const auto& f : tool_files(m_args)) {
    know(f);
  }
  know(m_compiler.path);
  std::set<std::string> written(trace.written.begin(), trace.written.end());
  std::set<FileId> written_ids;
  for (const auto& w : trace.written) {
    if (auto id = id_of(w)) {
      written_ids.insert(*id);
    }
  }
  const auto temps = temp_dirs(m_env);
  auto in_temp = [&](const std::string& path) {
    return std::any_of(temps.begin(), temps.end(),
                       [&](const std::string& t) { return path.starts_with(t); });
  };
  std::string prefix = std::string(util::dir_name(util::dir_name(m_compiler.path))) + "/";
  auto installed = [&](const std::string& path) {
    return path.front() == '/' && (has_prefix(path, k_system_prefixes) || path.starts_with(prefix));
  };

  if (!std::any_of(trace.read.begin(), trace.read.end(), [&](const std::string& r) {
        return r == m_args.source || id_of(r) == id_of(m_args.source);
      })) {
    return Counter::untraced;  // the process that read the source was not traced
  }
  if (trace.local_time) {
    return Counter::local_time;
  }
  auto unlisted = [&](const std::string& path, bool executable) {
    if (installed(path) || written.contains(path)) {
      return false;
    }
    auto id = id_of(path);
    if (!id) {
      return !in_temp(path);  // read, then removed: only a temporary file may be
    }
    if (!executable && util::FileStat::of(util::join_path(m_inv.cwd, path)).is_directory()) {
      return false;
    }
    return !known.contains(*id) && !written_ids.contains(*id);
  };
  for (const auto& path : trace.read) {
    if (unlisted(path, false)) {
      m_log.event("not_stored", {{"reason", "unlisted_input"}, {"path", path}});
      return Counter::unlisted_input;
    }
  }
  for (const auto& path : trace.executables) {
    if (unlisted(path, true)) {
      m_log.event("not_stored", {{"reason", "unlisted_input"}, {"path", path}});
      return Counter::unlisted_input;
    }
  }
  if (compiled) {
    std::set<FileId> outputs;
    for (const auto& o : expected_outputs()) {
      if (auto id = id_of(o)) {
        outputs.insert(*id);
      }
    }
    for (const auto& path : trace.written) {
      if (path.starts_with("/dev/") || in_temp(path)) {
        continue;
      }
      auto id = id_of(path);
      if (id && !outputs.contains(*id) &&
          !util::FileStat::of(util::join_path(m_inv.cwd, path)).is_directory()) {
        m_log.event("not_stored", {{"reason", "unknown_output"}, {"path", path}});
        return Counter::unknown_output;
      }
    }
  }
  return std::nullopt;
}

}  // namespace kiln::cache
