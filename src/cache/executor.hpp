#pragma once

#include <string>
#include <vector>

#include "kiln/compiler/family.hpp"
#include "kiln/util/expected.hpp"
#include "kiln/util/process.hpp"

namespace kiln::cache {

// What the pipeline knows of a compile step, for an executor that runs it
// elsewhere (the build cluster's client): set only on the compile of a miss.
struct CompileStep {
  std::string source;  // as in argv
  // Files the compile writes, as in argv (relative to cwd or absolute): the
  // object first, then the depfile, .dwo, ... that it produces.
  std::vector<std::string> outputs;
  std::string compiler_identity;  // hex digest of the compiler (CompilerInfo::identity)
  compiler::Family family = compiler::Family::unknown;
  std::string cache_dir;  // where an executor may keep its own files
};

// One run of the compiler (or its preprocessor) as the pipeline asks for it.
struct Command {
  std::vector<std::string> argv;         // argv[0] is the compiler's absolute path
  std::vector<std::string> env;          // the whole environment, "NAME=value"
  std::string cwd;                       // where relative paths in argv are resolved
  const CompileStep* compile = nullptr;  // set on a miss's compile step
};

// Where the pipeline's compiler runs go. The client runs them here
// (LocalExecutor); the build cluster's client (src/dist, next issue) sends a
// miss's compile to a worker. Implementations document their thread safety.
class Executor {
 public:
  virtual ~Executor() = default;
  // Runs `command` to its end and returns its status and output; the errno
  // of a run that could not start.
  virtual expected<util::RunResult, int> run(const Command& command) = 0;
};

// Runs commands as child processes of this one. Thread-safe.
class LocalExecutor final : public Executor {
 public:
  // `timeout`: zero for none (util::RunOptions::timeout). `daemon`: children
  // start with default signal handling (util::RunOptions::default_signals).
  explicit LocalExecutor(std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                         bool daemon = false)
      : m_timeout(timeout), m_daemon(daemon) {}
  expected<util::RunResult, int> run(const Command& command) override;

 private:
  std::chrono::milliseconds m_timeout;
  bool m_daemon;
};

}  // namespace kiln::cache
