#include "kiln/cache/executor.hpp"

namespace kiln::cache {

expected<util::RunResult, int> LocalExecutor::run(const Command& command) {
  util::RunOptions options;
  options.env = &command.env;
  options.cwd = command.cwd;
  options.timeout = m_timeout;
  options.default_signals = m_daemon;
  return util::run_capture(command.argv, options);
}

}  // namespace kiln::cache
