#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "kiln/cache/executor.hpp"
#include "kiln/dist/job.hpp"
#include "kiln/dist/settings.hpp"
#include "kiln/util/log.hpp"

namespace kiln::dist {

// What the client did with its misses, for `kiln -s` (counters "dist_*").
struct DistStats {
  uint64_t jobs = 0;                        // compile steps sent to the cluster
  uint64_t succeeded = 0;                   // of those, compiled there (whatever the compiler said)
  std::map<std::string, uint64_t> retries;  // by reason
  std::map<std::string, uint64_t> local_fallbacks;  // by reason
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
};

// Why a compile step stays on this machine: a reason (a counter's suffix)
// and a detail for the log.
struct NotDistributed {
  std::string reason;
  std::string detail;
};

// The job for the compile step `command` (command.compile must be set): a
// dependency-only run of the same command on `local` (under the command's
// environment, so the pipeline's trace sees the headers), then the exact
// command, the environment that changes the compiler's output (and PATH; no
// other variable leaves this machine), the source and every header at their
// absolute paths, and the outputs relative to the working directory. The
// toolchain id is left to the plugin.
expected<JobRequest, NotDistributed> prepare_job(const cache::Command& command,
                                                 cache::Executor& local);

// The cache pipeline's executor when a scheduler is configured: the compile
// step of a miss goes to the cluster (through libkiln-dist.so, loaded on
// first use); everything else, and a compile the cluster cannot take, runs
// on `local`. A job carries the exact command and the source with every
// header it reads (from a local `-M` run, under the pipeline's trace), so the
// object is the local one. A compile falls back to `local` only when it
// cannot be distributed, the scheduler is unreachable or the retries are
// exhausted, and only if settings.fallback_to_local; each fallback is
// counted by reason and warned about once per reason.
// Thread-compatible.
class DistExecutor final : public cache::Executor {
 public:
  // `plugin_dir`: where libkiln-dist.so is (beside kiln). `warn`: prints a
  // warning once per text (the client's warn_once). `log_file`: kiln's debug
  // log, which the cluster client appends to as well.
  DistExecutor(DistSettings settings, std::string plugin_dir, cache::Executor& local,
               util::Logger log, std::function<void(const std::string&)> warn,
               std::string log_file = "");

  expected<util::RunResult, int> run(const cache::Command& command) override;
  const DistStats& stats() const { return m_stats; }

 private:
  expected<util::RunResult, int> fall_back(const cache::Command& command, const std::string& reason,
                                           const std::string& detail);

  DistSettings m_settings;
  std::string m_plugin_dir;
  std::string m_log_file;
  cache::Executor& m_local;
  util::Logger m_log;
  std::function<void(const std::string&)> m_warn;
  DistStats m_stats;
};

}  // namespace kiln::dist
