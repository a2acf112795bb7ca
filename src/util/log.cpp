#include "kiln/util/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "kiln/util/file.hpp"
#include "kiln/util/string.hpp"
#include "kiln/util/thread_annotations.hpp"

namespace kiln::util {

namespace {

class FdSink final : public LogSink {
 public:
  FdSink(int fd, bool owned) : m_fd(fd), m_owned(owned) {}
  ~FdSink() override {
    if (m_owned) {
      ::close(m_fd);
    }
  }
  void write(std::string_view line) override {
    // One write(2) a line: O_APPEND files interleave whole lines across
    // processes; the mutex keeps a short write's remainder together.
    MutexLock lock(m_mutex);
    (void)write_all(m_fd, line);
  }

 private:
  const int m_fd;
  const bool m_owned;
  Mutex m_mutex;
};

void append_field(std::string* out, const Logger::Field& f) {
  *out += ",\"";
  *out += json_escape(f.key);
  *out += "\":";
  if (auto* s = std::get_if<std::string_view>(&f.value)) {
    *out += '"';
    *out += json_escape(*s);
    *out += '"';
  } else {
    *out += std::to_string(std::get<int64_t>(f.value));
  }
}

}  // namespace

std::string_view to_string(LogLevel level) {
  switch (level) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warn:
      return "warn";
    case LogLevel::error:
      return "error";
  }
  return "info";
}

bool parse_log_level(std::string_view text, LogLevel* out) {
  for (LogLevel l : {LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error}) {
    if (text == to_string(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

std::shared_ptr<LogSink> open_log_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (fd < 0) {
    return nullptr;
  }
  return std::make_shared<FdSink>(fd, true);
}

std::shared_ptr<LogSink> stderr_log_sink() {
  static const std::shared_ptr<LogSink> sink = std::make_shared<FdSink>(2, false);
  return sink;
}

Logger::Logger(std::shared_ptr<LogSink> sink, LogLevel level, const Clock& clock)
    : m_sink(std::move(sink)), m_level(level), m_clock(&clock) {}

bool Logger::open(const std::string& path) {
  auto sink = open_log_file(path);
  if (!sink) {
    return false;
  }
  m_sink = std::move(sink);
  return true;
}

Logger Logger::bind(std::initializer_list<Field> fields) const {
  Logger child = *this;
  for (const auto& f : fields) {
    append_field(&child.m_bound, f);
  }
  return child;
}

void Logger::log(LogLevel level, std::string_view event,
                 std::initializer_list<Field> fields) const {
  if (!enabled(level)) {
    return;
  }
  const int64_t us =
      std::chrono::duration_cast<std::chrono::microseconds>(m_clock->wall().time_since_epoch())
          .count();
  char head[160];
  std::snprintf(head, sizeof head, "{\"ts\":%lld.%06lld,\"pid\":%d,\"level\":\"%s\",\"event\":\"",
                static_cast<long long>(us / 1000000), static_cast<long long>(us % 1000000),
                static_cast<int>(::getpid()), to_string(level).data());
  std::string line = head;
  line += json_escape(event);
  line += '"';
  line += m_bound;
  for (const auto& f : fields) {
    append_field(&line, f);
  }
  line += "}\n";
  m_sink->write(line);
}

}  // namespace kiln::util
