#include "kiln/cache/compilation.hpp"

#include <exception>

#include "kiln/cache/depfile.hpp"
#include "kiln/storage/levels.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/path.hpp"

namespace kiln::cache {

Counter counter_for(compiler::Uncacheable u) {
  using compiler::Uncacheable;
  switch (u) {
    case Uncacheable::none:
      break;
    case Uncacheable::called_for_link:
      return Counter::called_for_link;
    case Uncacheable::called_for_preprocessing:
      return Counter::called_for_preprocessing;
    case Uncacheable::multiple_source_files:
      return Counter::multiple_source_files;
    case Uncacheable::no_input_file:
      return Counter::no_input_file;
    case Uncacheable::stdin_input:
      return Counter::stdin_input;
    case Uncacheable::output_to_stdout:
      return Counter::output_to_stdout;
    case Uncacheable::unsupported_language:
      return Counter::unsupported_language;
    case Uncacheable::precompiled_header:
      return Counter::precompiled_header;
    case Uncacheable::unsupported_option:
      return Counter::unsupported_option;
    case Uncacheable::bad_response_file:
      return Counter::bad_response_file;
    case Uncacheable::no_output:
      return Counter::no_output;
    case Uncacheable::dependency_env:
      return Counter::dependency_env;
    case Uncacheable::unknown_option:
      return Counter::unknown_option;
  }
  return Counter::error_internal;
}

Compilation::Compilation(const Invocation& inv, Stats& stats)
    : m_inv(inv),
      m_cfg(*inv.config),
      m_stats(stats),
      m_log(*inv.log),
      m_own_env(inv.env ? std::nullopt : std::optional(util::Environment::of_process())),
      m_env(inv.env ? *inv.env : *m_own_env),
      m_output(inv.output ? *inv.output : m_own_output),
      m_executor(inv.executor ? *inv.executor : m_own_executor),
      m_checker(inv.cwd) {}

KeyInputs Compilation::key_inputs() const {
  return KeyInputs{m_compiler, m_args, m_env, m_inv.cwd, m_cfg.hash_dir, m_checker};
}

Compilation::~Compilation() = default;

Outcome Compilation::fall_back(Counter reason, std::string_view detail) {
  m_stats.add(reason);
  m_log.event("fall_back", {{"reason", to_string(reason)}, {"detail", detail}});
  return Outcome{Outcome::Kind::fall_back, 0};
}

Outcome Compilation::run() {
  Outcome outcome;
  try {
    outcome = run_pipeline();
  } catch (const std::exception& e) {
    outcome = fall_back(Counter::error_internal, e.what());
  } catch (...) {
    outcome = fall_back(Counter::error_internal, "unknown exception");
  }
  release_inflight();
  merge_storage_counters();
  m_tracer.reset();  // removes the trace file before main() may exec the compiler
  return outcome;
}

std::vector<std::string> Compilation::storage_problems() const {
  return m_chain ? m_chain->problems() : std::vector<std::string>{};
}

void Compilation::merge_storage_counters() {
  if (!m_chain) {
    return;
  }
  if (m_cfg.storage.remote_backoff_s > 0) {
    for (const auto& level : m_chain->timed_out()) {
      std::string marker = backoff_marker(level);
      if (util::make_directories(std::string(util::dir_name(marker)))) {
        (void)util::write_file(marker, "");
        util::touch(marker);
      }
    }
  }
  for (const auto& [counter, value] : m_chain->counters()) {
    m_stats.add(counter.name(), value);
    if (storage::is_read_failure(counter.event)) {
      m_stats.add(Counter::error_storage_read, value);
    } else if (storage::is_write_failure(counter.event)) {
      m_stats.add(Counter::error_storage_write, value);
    }
  }
}

std::string Compilation::backoff_marker(const std::string& level) const {
  return m_cfg.cache_dir + "/remote-down/" + level;
}

void Compilation::open_storage() {
  m_local = std::make_unique<storage::LocalStorage>(m_cfg.cache_dir);
  auto levels = storage::storage_levels(m_cfg.storage, m_local.get(), m_cfg.read_only);
  // A level that timed out recently, in any kiln process, is skipped for a
  // while: a dead server must not cost every compilation of a build its
  // timeout (docs/remote-storage.md).
  if (m_cfg.storage.remote_backoff_s > 0) {
    const int64_t since = m_inv.start_ns - int64_t{m_cfg.storage.remote_backoff_s} * 1000000000;
    for (auto& level : levels) {
      if (level.storage == nullptr &&
          util::FileStat::of(backoff_marker(level.name)).mtime_ns > since) {
        level.skip = true;
      }
    }
  }
  m_chain = std::make_unique<storage::StorageChain>(std::move(levels));
}

Outcome Compilation::run_pipeline() {
  auto info = compiler::probe_compiler(m_inv.compiler_path, m_cfg.cache_dir);
  if (!info) {
    return fall_back(Counter::error_compiler_not_found, m_inv.compiler_path);
  }
  m_compiler = std::move(*info);

  std::vector<std::string> args = m_inv.args;
  if (!compiler::expand_response_files(&args, m_inv.cwd)) {
    return fall_back(Counter::bad_response_file);
  }
  if (m_env.has("DEPENDENCIES_OUTPUT") || m_env.has("SUNPRO_DEPENDENCIES")) {
    return fall_back(Counter::dependency_env);
  }
  m_args = compiler::process_args(args, m_compiler.family, {m_inv.cwd, m_cfg.base_dir});
  if (m_args.uncacheable != compiler::Uncacheable::none) {
    return fall_back(counter_for(m_args.uncacheable), m_args.detail);
  }
  m_time_macros_ok = time_macros_fixed(m_env);
  open_storage();

  // Direct mode: the manifest names the result without running the preprocessor.
  if (m_cfg.direct_mode) {
    auto key = manifest_key(key_inputs(), today());
    if (!key) {
      return fall_back(Counter::time_macro, m_args.source);
    }
    m_manifest_key = key->digest;
    m_source_has_date = key->source_has_date;
    // No key for a source that cannot be read: no look-up, the compiler says why.
    if (m_manifest_key && !m_cfg.recache) {
      if (auto found = from_cache_direct()) {
        if (replay(found->first, found->second)) {
          m_stats.add(Counter::direct_hit);
          m_log.event("hit", {{"mode", "direct"}});
          return Outcome{Outcome::Kind::done, 0};
        }
      } else if (m_cfg.inflight_wait_s > 0 && !m_cfg.read_only) {
        if (auto waited = wait_for_inflight()) {
          if (replay(waited->first, waited->second)) {
            m_stats.add(Counter::direct_hit);
            m_stats.add(Counter::inflight_hit);
            m_log.event("hit", {{"mode", "direct"}, {"after", "inflight_wait"}});
            return Outcome{Outcome::Kind::done, 0};
          }
        }
      }
    }
  }

  // Depend mode: compile, then learn the includes from the depfile. Not with
  // -MMD, whose depfile leaves out system headers that the key must cover.
  if (m_cfg.direct_mode && m_manifest_key && m_cfg.depend_mode && m_args.generating_dependencies &&
      !m_args.system_deps_omitted) {
    auto run = run_compiler();
    if (!run || run->exit_code != 0) {
      return finish_miss(run, {}, {}, std::nullopt);
    }
    auto depfile = util::read_file(util::join_path(m_inv.cwd, m_args.depfile));
    if (!depfile) {
      return finish_miss(run, {}, {}, Counter::missing_output);
    }
    Includes includes = collect_includes(parse_depfile(*depfile).prerequisites);
    const bool dated = includes.has_date && !m_time_macros_ok;
    util::Digest key = depend_result_key(*m_manifest_key, includes, dated ? today() : 0);
    return finish_miss(run, key, std::move(includes), std::nullopt);
  }

  // Preprocessor mode: the key is the hash of the preprocessed source and of
  // the files it was made from.
  auto cpp = run_traced(m_args.preprocess_argv(m_compiler.path));
  if (cpp && cpp->timed_out) {
    return fall_back(Counter::error_compile_timeout, "preprocessor");
  }
  if (!cpp || cpp->exit_code != 0) {
    return fall_back(Counter::preprocessor_failed);
  }
  Includes includes = collect_includes(includes_from_cpp_output(cpp->out));
  util::Digest result_key = cpp_result_key(key_inputs(), cpp->out, cpp->err, includes);
  // What the preprocessor read or asked for decides whether its output can
  // name a result at all: if not, the compiler runs and nothing is stored.
  std::optional<Counter> refused = refusal(&includes, false);
  if (!m_cfg.recache && !refused) {
    if (auto result = load_result(result_key)) {
      if (replay(*result, result_key)) {
        update_manifest(result_key, includes);
        m_stats.add(Counter::preprocessed_hit);
        m_log.event("hit", {{"mode", "preprocessed"}});
        return Outcome{Outcome::Kind::done, 0};
      }
    }
  }
  // The compile's trace adds to the preprocessor's; directories watched by
  // name were found by the preprocessor's run.
  includes.dirs.clear();
  return finish_miss(run_compiler(), result_key, std::move(includes), refused);
}

Outcome Compilation::finish_miss(const expected<util::RunResult, int>& run,
                                 const util::Digest& result_key, Includes includes,
                                 std::optional<Counter> refused) {
  if (!run) {
    return fall_back(Counter::error_internal, "cannot run the compiler");
  }
  if (run->timed_out) {
    m_stats.add(Counter::error_compile_timeout);
    m_log.warn("compile_timeout", {{"source", m_args.source}});
    write_output(*run);
    return Outcome{Outcome::Kind::done, run->exit_code != 0 ? run->exit_code : 128 + 9};
  }
  if (run->exit_code != 0) {
    m_stats.add(Counter::compile_failed);
    write_output(*run);
    return Outcome{Outcome::Kind::done, run->exit_code};
  }
  m_stats.add(Counter::miss);
  if (!refused) {
    refused = refusal(&includes, true);
  }
  if (refused) {
    m_stats.add(*refused);
  } else {
    to_cache(result_key, *run, &includes);
  }
  write_output(*run);
  return Outcome{Outcome::Kind::done, 0};
}

}  // namespace kiln::cache
