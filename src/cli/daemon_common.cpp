#include "kiln/cli/daemon_common.hpp"

#include <csignal>
#include <cstdint>

#include "kiln/util/file.hpp"
#include "kiln/util/string.hpp"

namespace kiln::cli {

expected<std::string, std::string> token_value(const std::string& value_or_path) {
  if (value_or_path.starts_with("/") || value_or_path.starts_with("./")) {
    auto text = util::read_file(value_or_path);
    if (!text) {
      return unexpected("cannot read the token file " + value_or_path);
    }
    return std::string(util::trim(*text));
  }
  return value_or_path;
}

bool split_listen(const std::string& listen, std::string* host, uint16_t* port) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size()) {
    return false;
  }
  std::string h = listen.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  }
  unsigned long p = 0;
  for (char c : listen.substr(colon + 1)) {
    if (c < '0' || c > '9' || p > 65535) {
      return false;
    }
    p = p * 10 + static_cast<unsigned long>(c - '0');
  }
  if (p > 65535) {
    return false;
  }
  *host = h;
  *port = static_cast<uint16_t>(p);
  return true;
}

void block_termination_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_termination() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

expected<util::Logger, std::string> open_daemon_log(const std::string& file,
                                                    const std::string& level,
                                                    const std::string& component) {
  util::LogLevel parsed;
  if (!util::parse_log_level(level, &parsed)) {
    return unexpected(std::string("--log-level: expected debug, info, warn or error"));
  }
  auto sink = file.empty() ? util::stderr_log_sink() : util::open_log_file(file);
  if (!sink) {
    return unexpected("cannot open the log file " + file);
  }
  return util::Logger(sink, parsed).bind({{"component", component}});
}

}  // namespace kiln::cli
