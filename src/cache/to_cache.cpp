// Stage: running the compiler and storing what it produced.
#include <unistd.h>

#include <map>
#include <set>

#include "kiln/cache/compilation.hpp"
#include "kiln/cache/depfile.hpp"
#include "kiln/cache/diagnostics.hpp"
#include "kiln/storage/entry.hpp"
#include "kiln/util/path.hpp"

namespace kiln::cache {

namespace {

// File system timestamps come from a coarse clock (a few ms); anything stamped
// this close to the start of kiln may have been written during the compile.
constexpr int64_t k_too_new_slack_ns = 50'000'000;

}  // namespace

expected<util::RunResult, int> Compilation::run_traced(const std::vector<std::string>& argv,
                                                       const CompileStep* step) {
  if (!m_tracer) {
    m_tracer = std::make_unique<Tracer>(default_trace_library(m_cfg.cache_dir),
                                        m_cfg.cache_dir + "/tmp", m_env);
  }
  Command command;
  command.argv = argv;
  command.env = m_tracer->usable() ? m_tracer->environment(m_env).entries() : m_env.entries();
  command.cwd = m_inv.cwd;
  command.compile = step;
  return m_executor.run(command);
}

expected<util::RunResult, int> Compilation::run_compiler() {
  m_log.event("compile", {{"compiler", m_compiler.path}, {"source", m_args.source}});
  if (link_mode() == util::LinkMode::hardlink) {
    // The output may be a hard link to a cached file left by an earlier hit,
    // and some compilers write their output in place (gcc -S, clang on
    // assembler sources): that would change the cached copy.
    ::unlink(util::join_path(m_inv.cwd, m_args.output).c_str());
  }
  std::vector<std::string> argv = m_args.compile_argv(m_compiler.path);
  if (restyles_diagnostics()) {
    // Stored in colour; write_output takes the colours away where this
    // stderr would not show them. Not in the key: the same for every call.
    for (auto& option : colour_options(m_compiler.family)) {
      argv.push_back(std::move(option));
    }
  }
  CompileStep step;
  step.source = m_args.source;
  step.outputs.push_back(m_args.output);
  for (const std::string* extra : {&m_args.depfile, &m_args.dwo_file, &m_args.gcno_file,
                                   &m_args.stack_usage_file, &m_args.callgraph_file}) {
    if (!extra->empty() && (extra != &m_args.depfile || m_args.generating_dependencies)) {
      step.outputs.push_back(*extra);
    }
  }
  step.compiler_identity = m_compiler.identity.to_hex();
  step.family = m_compiler.family;
  step.cache_dir = m_cfg.cache_dir;
  return run_traced(argv, &step);
}

std::optional<Counter> Compilation::refusal(Includes* includes, bool compiled) {
  if (includes->has_time && !m_time_macros_ok) {
    return Counter::local_time;
  }
  std::optional<Trace> trace = m_tracer ? m_tracer->read() : std::nullopt;
  if (!trace) {
    m_log.event("not_stored", {{"reason", "untraced"}});
    return Counter::untraced;
  }
  if (!watch_absent(*trace, includes, compiled)) {
    return Counter::unlisted_input;
  }
  if (includes->too_new) {
    m_log.event("not_stored", {{"reason", "modified_during_compile"}});
    return Counter::modified_during_compile;
  }
  if (includes->unreadable) {
    m_log.event("not_stored", {{"reason", "unreadable_include"}});
    return Counter::missing_output;
  }
  return vet_trace(*trace, *includes, compiled);
}

Includes Compilation::collect_includes(const std::vector<std::string>& paths) {
  Includes inc;
  const int64_t too_new = m_inv.start_ns - k_too_new_slack_ns;
  const int64_t trusted = m_inv.start_ns - k_trust_age_ns;

  const util::FileStat& source_st = m_checker.stat(m_args.source);
  if (source_st.mtime_ns >= too_new || source_st.ctime_ns >= too_new) {
    inc.too_new = true;
  }
  const util::FileStat source_id = source_st;
  for (const auto& p : paths) {
    if (p.empty() || p.back() == '/' || p == m_args.source) {
      continue;
    }
    const util::FileStat& st = m_checker.stat(p);
    if (st.is_directory() || (st.exists() && st.dev == source_id.dev && st.ino == source_id.ino)) {
      continue;
    }
    const auto& content = st.is_regular() ? m_checker.content(p) : std::nullopt;
    if (!content) {
      inc.unreadable = true;
      m_log.event("unreadable_include", {{"path", p}});
      continue;
    }
    inc.has_date |= content->has_date;
    inc.has_time |= content->has_time;
    if (st.mtime_ns >= too_new || st.ctime_ns >= too_new) {
      inc.too_new = true;
    }
    // Paths are kept as the compiler spelled them: a relative one is looked
    // up again relative to the working directory of the next compilation,
    // in whatever checkout that is.
    Manifest::FileRecord f;
    f.path = p;
    f.digest = content->digest;
    f.has_stat = st.mtime_ns < trusted && st.ctime_ns < trusted;
    f.dev = st.dev;
    f.ino = st.ino;
    f.size = st.size;
    f.mtime_ns = st.mtime_ns;
    f.ctime_ns = st.ctime_ns;
    inc.files.push_back(std::move(f));
    inc.digests.push_back(content->digest);
  }
  return inc;
}

bool Compilation::to_cache(const util::Digest& result_key, const util::RunResult& run,
                           const Includes* includes) {
  if (m_cfg.read_only) {
    return false;
  }

  Result result;
  auto read_output = [&](const std::string& path, FileType type, bool required) {
    if (path.empty()) {
      return !required;
    }
    std::string abs = util::join_path(m_inv.cwd, path);
    const util::FileStat st = util::FileStat::of(abs);
    // A file left over from an earlier build is not this compile's output.
    if (!st.exists() || st.mtime_ns < m_inv.start_ns - k_too_new_slack_ns) {
      return !required;
    }
    auto data = util::read_file(abs);
    if (!data) {
      return !required;
    }
    result.files.push_back({type, std::move(*data)});
    return true;
  };
  storage::Key key{result_key, storage::EntryKind::result};
  // A plain-file object lives on the local level only: with remote levels the
  // object stays inside the entry so that every level can serve it.
  bool external = link_mode() != util::LinkMode::copy && m_chain->size() == 1;
  if (external) {
    std::string obj = util::join_path(m_inv.cwd, m_args.output);
    util::FileStat st = util::FileStat::of(obj);
    if (!st.is_regular() || st.size == 0 || st.mtime_ns < m_inv.start_ns - k_too_new_slack_ns) {
      m_stats.add(Counter::missing_output);
      return false;
    }
    if (auto r = m_local->put_file(key, "o", obj, link_mode()); !r) {
      m_stats.add(Counter::error_storage_write);
      m_log.event("storage_error",
                  {{"op", "put_file"}, {"failure", storage::to_string(r.error())}});
      return false;
    }
    result.external_object_size = static_cast<uint64_t>(st.size);
    result.files.push_back({FileType::object, {}});
  }
  if ((!external && !read_output(m_args.output, FileType::object, true)) ||
      !read_output(m_args.generating_dependencies ? m_args.depfile : "", FileType::depfile,
                   m_args.generating_dependencies)) {
    m_stats.add(Counter::missing_output);
    m_log.event("not_stored", {{"reason", "missing_output"}});
    return false;
  }
  if (m_args.split_dwarf) {
    read_output(m_args.dwo_file, FileType::dwo, false);
  }
  if (m_args.coverage) {
    read_output(m_args.gcno_file, FileType::gcno, false);
  }
  if (!m_args.stack_usage_file.empty() &&
      !read_output(m_args.stack_usage_file, FileType::stack_usage, true)) {
    m_stats.add(Counter::missing_output);
    return false;
  }
  if (!m_args.callgraph_file.empty() &&
      !read_output(m_args.callgraph_file, FileType::callgraph, true)) {
    m_stats.add(Counter::missing_output);
    return false;
  }
  if (const Result::File* dep = result.find(FileType::depfile); dep && !m_args.dep_target_given) {
    std::string target = escape_target(m_args.output);
    if (!dep->data.starts_with(target + ":")) {
      m_stats.add(Counter::missing_output);
      m_log.event("not_stored", {{"reason", "unexpected_depfile_target"}});
      return false;
    }
    result.depfile_target_length = target.size();
  }
  if (!run.out.empty()) {
    result.files.push_back({FileType::out, run.out});
  }
  if (!run.err.empty()) {
    result.files.push_back({FileType::err, run.err});
  }

  std::string entry = storage::encode_entry(key.kind, result.serialize(), m_cfg.compression_level);
  if (!put_entry(key, entry)) {
    return false;
  }
  m_log.event("stored", {{"key", key.name()}, {"bytes", static_cast<int64_t>(entry.size())}});
  if (includes && m_manifest_key) {
    update_manifest(result_key, *includes);
  }
  return true;
}

void Compilation::update_manifest(const util::Digest& result_key, const Includes& includes) {
  if (m_cfg.read_only || !m_manifest_key) {
    return;
  }
  storage::Key key{*m_manifest_key, storage::EntryKind::manifest};
  // The direct-mode look-up already read it (or found none): no second read.
  Manifest manifest = m_manifest             ? std::move(*m_manifest)
                      : m_manifest_looked_up ? Manifest{}
                                             : load_manifest().value_or(Manifest{});
  m_manifest.reset();
  bool dated = (includes.has_date || m_source_has_date) && !m_time_macros_ok;
  manifest.add(includes.files, includes.dirs, result_key, dated ? today() : 0);
  std::string entry =
      storage::encode_entry(key.kind, manifest.serialize(), k_manifest_compression_level);
  put_entry(key, entry);
}

}  // namespace kiln::cache
