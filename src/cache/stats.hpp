#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kiln/util/counters_file.hpp"

namespace kiln::cache {

// Every statistic kiln keeps. Names (to_string) are the keys of the stats files
// and of `kiln -s --json`; docs/statistics.md explains each.
enum class Counter {
  direct_hit,
  preprocessed_hit,
  miss,
  // Misses that waited for another process's compile of the same (inflight_wait_s).
  inflight_hit,           // ... and then hit (also counted as direct_hit)
  inflight_wait_timeout,  // ... and then compiled: the wait passed inflight_wait_s
  // Compilations that ran the compiler without caching, by reason.
  called_for_link,
  called_for_preprocessing,
  multiple_source_files,
  no_input_file,
  stdin_input,
  output_to_stdout,
  unsupported_language,
  precompiled_header,
  unsupported_option,
  bad_response_file,
  no_output,
  dependency_env,
  unknown_option,
  compile_failed,
  preprocessor_failed,
  time_macro,
  modified_during_compile,
  missing_output,
  unlisted_input,
  unknown_output,
  untraced,
  local_time,
  disabled,
  // Failures inside kiln (the build went on).
  error_internal,
  error_compiler_not_found,
  error_compile_timeout,
  error_storage_read,
  error_storage_write,
  corrupt_entry,
  // Cache contents (local level), adjusted by every store and cleanup.
  files,
  size,
  cleanups,
  count_  // not a counter
};

std::string_view to_string(Counter c);

// Counters changed by one invocation, written once at the end (flush) into one
// of 16 shard files <cache_dir>/stats/<n> chosen by pid, so that parallel
// builds rarely wait for the same lock. Not thread-safe.
class Stats {
 public:
  void add(Counter c, int64_t n = 1) { m_delta[std::string(to_string(c))] += n; }
  void add(std::string_view name, int64_t n) { m_delta[std::string(name)] += n; }
  const util::Counters& delta() const { return m_delta; }
  bool empty() const { return m_delta.empty(); }

  // Adds the delta to the shard file; returns false if it cannot be written.
  bool flush(const std::string& cache_dir);

  // The sum of all shards.
  static util::Counters read_all(const std::string& cache_dir);
  // Sets every counter but files and size to zero (`kiln -z`).
  static bool zero(const std::string& cache_dir);

 private:
  util::Counters m_delta;
};

}  // namespace kiln::cache
