#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/util/environment.hpp"

namespace kiln::cache {

// What the compiler's processes looked at while kiln ran them with
// libkiln-trace.so preloaded (src/trace/kiln_trace.c documents the lines).
// Paths are as the compiler spelled them: relative ones are relative to the
// working directory kiln ran it in.
struct Trace {
  std::vector<std::string> executables;  // E: every process's executable
  std::vector<std::string> absent;       // A: lookups that found nothing
  std::vector<std::string> read;         // R: opened for reading
  std::vector<std::string> written;      // W: opened for writing, renamed to, created
  bool local_time = false;               // T: the local time was asked for

  // Parses the lines of a trace file; each list keeps the first occurrence of
  // a path only. A line cut short (a process killed while writing) is ignored.
  static Trace parse(std::string_view text);
};

// Runs compilers with libkiln-trace.so preloaded, each run appending to one
// trace file under `tmp_dir` (removed by the destructor). Not thread-safe.
class Tracer {
 public:
  // `library`: the absolute path of libkiln-trace.so; `tmp_dir`: where the
  // trace file goes ($TMPDIR of `env` if it cannot be written). usable() is
  // false if neither can be used.
  Tracer(std::string library, const std::string& tmp_dir, const util::Environment& env);
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  bool usable() const { return !m_file.empty(); }
  // The environment to run the compiler with: `env` plus the preload (after
  // any LD_PRELOAD it sets) and the trace file.
  util::Environment environment(const util::Environment& env) const;
  // Everything the runs so far recorded.
  std::optional<Trace> read() const;

 private:
  std::string m_library;
  std::string m_file;
};

// libkiln-trace.so beside the running kiln, or in ../lib/kiln, or else the
// copy kiln carries, written to <cache_dir>/lib/ once; empty if none can be had.
std::string default_trace_library(const std::string& cache_dir);

// The copy of libkiln-trace.so that kiln carries, as a file under
// <cache_dir>/lib/ (written if missing); empty if it cannot be written.
std::string carried_trace_library(const std::string& cache_dir);

}  // namespace kiln::cache
