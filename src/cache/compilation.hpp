#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kiln/cache/config.hpp"
#include "kiln/cache/executor.hpp"
#include "kiln/cache/file_checker.hpp"
#include "kiln/cache/key.hpp"
#include "kiln/cache/manifest.hpp"
#include "kiln/cache/output_sink.hpp"
#include "kiln/cache/result.hpp"
#include "kiln/cache/stats.hpp"
#include "kiln/cache/trace.hpp"
#include "kiln/compiler/args.hpp"
#include "kiln/compiler/compiler_info.hpp"
#include "kiln/storage/chain.hpp"
#include "kiln/storage/local/local_storage.hpp"
#include "kiln/util/environment.hpp"
#include "kiln/util/log.hpp"
#include "kiln/util/process.hpp"

namespace kiln::cache {

// One call of the compiler as kiln received it, and the seams through which
// the pipeline reaches the world: a daemon fills them for its client. Not
// owned; each must outlive the Compilation. Null seams get the client's
// defaults (this process's environment, fds 1 and 2, a LocalExecutor).
struct Invocation {
  const Config* config = nullptr;
  util::Logger* log = nullptr;
  std::string cwd;                         // absolute
  std::string compiler_path;               // absolute, never kiln itself
  std::vector<std::string> args;           // after the compiler name
  int64_t start_ns = 0;                    // wall clock when kiln started
  const util::Environment* env = nullptr;  // the client's environment
  OutputSink* output = nullptr;            // the compiler's stdout and stderr
  Executor* executor = nullptr;            // where the compiler runs
};

// What main() should do once the pipeline is done.
struct Outcome {
  // fall_back: run the compiler with the original arguments as if kiln were
  // not there (exec). done: exit with exit_code, outputs are in place.
  enum class Kind { done, fall_back } kind = Kind::fall_back;
  int exit_code = 0;
};

// The compile pipeline of docs/architecture.md, one stage per file:
//   compilation.cpp   run(): the order of the stages
//   key.cpp           hash_common_info, manifest and result keys
//   lookup.cpp        from_cache: manifest and result look-ups
//   to_cache.cpp      run_compiler, collect_includes, to_cache
//   trace_check.cpp   what the compiler looked at: watched names, refusals
//   replay.cpp        writing a result's files and output
// Never throws: internal failures become Outcome::fall_back and a counter.
class Compilation {
 public:
  Compilation(const Invocation& inv, Stats& stats);
  ~Compilation();

  Outcome run();

  // The stores this compilation used (for the caller's statistics).
  const storage::LocalStorage* local() const { return m_local.get(); }
  // Storage levels that failed, one sentence each (for a warning; formatted
  // from the chain's storage::Problem values here, at the edge).
  std::vector<std::string> storage_problems() const;

 private:
  Outcome run_pipeline();
  Outcome fall_back(Counter reason, std::string_view detail = {});
  // The end of every miss, in depend and preprocessor mode alike: count the
  // run (failed compile or miss), store its result unless `refused` or the
  // refusal the compile's trace gives, and pass its output on.
  // `includes`: what the key was computed from; `result_key`: its key.
  Outcome finish_miss(const expected<util::RunResult, int>& run, const util::Digest& result_key,
                      Includes includes, std::optional<Counter> refused);

  // key.hpp, for this compilation
  KeyInputs key_inputs() const;
  int64_t today() const { return local_date(m_inv.start_ns); }

  // lookup.cpp
  void open_storage();
  std::string backoff_marker(const std::string& level) const;
  // decode: the entry's payload (manifests); otherwise the checked entry
  // itself (results, decoded by replay).
  std::optional<std::string> get_entry(const storage::Key& key, bool decode);
  bool put_entry(const storage::Key& key, std::string_view entry);
  void merge_storage_counters();
  std::optional<Manifest> load_manifest();
  // The stored result entry, checked but not decoded.
  std::optional<std::string> load_result(const util::Digest& result_key);
  // The result entry and its key.
  std::optional<std::pair<std::string, util::Digest>> from_cache_direct();
  // After a direct-mode miss, with inflight_wait_s: takes the lease on the
  // manifest key (this process compiles), or, if another process holds it,
  // waits for that lease to end and looks up again. The hit, if one came.
  std::optional<std::pair<std::string, util::Digest>> wait_for_inflight();
  void release_inflight();
  void refresh_manifest(Manifest& manifest, const std::vector<uint32_t>& files,
                        const std::vector<uint32_t>& dirs);

  // to_cache.cpp
  // Runs `argv` traced when kiln can trace it (m_tracer).
  // `step`: set for the compile of a miss (an executor may run it elsewhere).
  expected<util::RunResult, int> run_traced(const std::vector<std::string>& argv,
                                            const CompileStep* step = nullptr);
  expected<util::RunResult, int> run_compiler();
  Includes collect_includes(const std::vector<std::string>& paths);
  // Why the result of this compilation (or, with compiled false, of its
  // preprocessing) must not be stored: the includes' flags, then the trace
  // (watched names are added to *includes). nullopt: it may be stored.
  std::optional<Counter> refusal(Includes* includes, bool compiled);
  // Stores the result of a successful compile; returns false if it was not stored.
  bool to_cache(const util::Digest& result_key, const util::RunResult& run,
                const Includes* includes);
  void update_manifest(const util::Digest& result_key, const Includes& includes);

  // trace_check.cpp
  std::vector<std::string> expected_outputs() const;
  // Adds the names the compiler looked up in vain to inc->dirs. False if a
  // precompiled header the compile would read exists (with compiled false:
  // only the preprocessor ran, which ignores them).
  bool watch_absent(const Trace& trace, Includes* inc, bool compiled);
  std::optional<Counter> vet_trace(const Trace& trace, const Includes& inc, bool compiled);

  // replay.cpp
  // Decodes a result entry into the outputs; false (nothing put in place)
  // if it cannot, and then the compiler runs.
  bool replay(std::string_view entry, const util::Digest& result_key);
  util::LinkMode link_mode() const;
  // Writes the compiler's stdout and stderr, with colours where the compiler
  // writing to this stderr itself would have shown them (diagnostics.hpp).
  void write_output(std::string_view out, std::string_view err) const;
  void write_output(const util::RunResult& run) const { write_output(run.out, run.err); }
  // Whether compile runs colour their diagnostics for kiln (the command line
  // does not choose how they look, and it is not recorded in the object).
  bool restyles_diagnostics() const;

  const Invocation& m_inv;
  const Config& m_cfg;
  Stats& m_stats;
  util::Logger& m_log;
  // The seams (Invocation's, or the defaults below when it left them null).
  std::optional<util::Environment> m_own_env;
  StandardOutputSink m_own_output;
  LocalExecutor m_own_executor;
  const util::Environment& m_env;
  OutputSink& m_output;
  Executor& m_executor;
  compiler::CompilerInfo m_compiler;
  compiler::ProcessedArgs m_args;
  mutable FileChecker m_checker;  // a memo of stats and hashes
  std::unique_ptr<Tracer> m_tracer;
  std::unique_ptr<storage::LocalStorage> m_local;
  std::unique_ptr<storage::StorageChain> m_chain;
  std::optional<Manifest> m_manifest;  // as loaded by the direct-mode look-up
  bool m_manifest_looked_up = false;   // m_manifest empty: none is stored
  std::optional<util::Digest> m_manifest_key;
  std::string m_lease_holder;  // set while this process holds the manifest key's lease
  bool m_source_has_date = false;
  bool m_time_macros_ok = false;  // SOURCE_DATE_EPOCH set
};

// A header's stat is trusted for later look-ups only if the header is older
// than this (docs/direct-mode.md).
inline constexpr int64_t k_trust_age_ns = 2'000'000'000;

// Manifests are read on every direct-mode look-up and are small: a fast zstd
// level keeps them compact while decoding stays cheap (docs/benchmarks.md).
inline constexpr int k_manifest_compression_level = -1;

// Maps a reason from argument processing to its counter.
Counter counter_for(compiler::Uncacheable u);

}  // namespace kiln::cache
