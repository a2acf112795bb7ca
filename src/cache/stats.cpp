#include "kiln/cache/stats.hpp"

#include <unistd.h>

#include <array>

namespace kiln::cache {

namespace {

constexpr std::array<std::string_view, static_cast<size_t>(Counter::count_)> k_names = {
    "direct_hit",
    "preprocessed_hit",
    "miss",
    "inflight_hit",
    "inflight_wait_timeout",
    "called_for_link",
    "called_for_preprocessing",
    "multiple_source_files",
    "no_input_file",
    "stdin_input",
    "output_to_stdout",
    "unsupported_language",
    "precompiled_header",
    "unsupported_option",
    "bad_response_file",
    "no_output",
    "dependency_env",
    "unknown_option",
    "compile_failed",
    "preprocessor_failed",
    "time_macro",
    "modified_during_compile",
    "missing_output",
    "unlisted_input",
    "unknown_output",
    "untraced",
    "local_time",
    "disabled",
    "error_internal",
    "error_compiler_not_found",
    "error_compile_timeout",
    "error_storage_read",
    "error_storage_write",
    "corrupt_entry",
    "files",
    "size",
    "cleanups",
};

std::string shard_path(const std::string& cache_dir, int shard) {
  static const char k_hex[] = "0123456789abcdef";
  return cache_dir + "/stats/" + k_hex[shard & 15];
}

}  // namespace

std::string_view to_string(Counter c) {
  return k_names.at(static_cast<size_t>(c));
}

bool Stats::flush(const std::string& cache_dir) {
  if (m_delta.empty()) {
    return true;
  }
  bool ok = util::add_counters(shard_path(cache_dir, static_cast<int>(::getpid())), m_delta);
  if (ok) {
    m_delta.clear();
  }
  return ok;
}

util::Counters Stats::read_all(const std::string& cache_dir) {
  util::Counters total;
  for (int i = 0; i < 16; ++i) {
    for (const auto& [k, v] : util::read_counters(shard_path(cache_dir, i))) {
      total[k] += v;
    }
  }
  return total;
}

bool Stats::zero(const std::string& cache_dir) {
  bool ok = true;
  for (int i = 0; i < 16; ++i) {
    std::string path = shard_path(cache_dir, i);
    util::Counters c = util::read_counters(path);
    util::Counters delta;
    for (const auto& [k, v] : c) {
      if (k != "files" && k != "size" && v != 0) {
        delta[k] = -v;
      }
    }
    if (!delta.empty()) {
      ok = util::add_counters(path, delta) && ok;
    }
  }
  return ok;
}

}  // namespace kiln::cache
