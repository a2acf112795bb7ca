#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "kiln/util/clock.hpp"

namespace kiln::util {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

std::string_view to_string(LogLevel level);
// "debug", "info", "warn" or "error"; false for anything else.
bool parse_log_level(std::string_view text, LogLevel* out);

// Where finished log lines go. write() is called with one whole line
// (ending in '\n') and must be thread-safe.
class LogSink {
 public:
  virtual ~LogSink() = default;
  virtual void write(std::string_view line) = 0;
};

// A file opened with O_APPEND: each line is one write(2), so the lines of
// concurrent kiln processes and threads interleave whole. nullptr if the file
// cannot be opened.
std::shared_ptr<LogSink> open_log_file(const std::string& path);
// Standard error (daemons), one write(2) per line under a mutex.
std::shared_ptr<LogSink> stderr_log_sink();

// Structured log: one JSON object a line,
//   {"ts":1700000000.123456,"pid":42,"level":"info","event":"hit",
//    <bound fields>..., <fields>...}
// Keys and string values may be any bytes: they are escaped to valid JSON
// (invalid UTF-8 bytes as \u00XX). Disabled (every call a no-op) until it has
// a sink.
//
// A Logger is a cheap handle: bind() returns a copy that adds context fields
// (job_id, server_id, program_id) to every line it writes, sharing the sink.
// Thread-safe: distinct handles may be used from different threads; one
// handle is thread-compatible (bind is const, so a shared handle is fine).
class Logger {
 public:
  struct Field {
    std::string_view key;
    std::variant<std::string_view, int64_t> value;
    Field(std::string_view k, std::string_view v) : key(k), value(v) {}
    Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
    Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
    Field(std::string_view k, int64_t v) : key(k), value(v) {}
    Field(std::string_view k, int v) : key(k), value(int64_t{v}) {}
  };

  Logger() = default;
  explicit Logger(std::shared_ptr<LogSink> sink, LogLevel level = LogLevel::debug,
                  const Clock& clock = Clock::system());

  // Logs to the file at `path` (appending). Returns false if it cannot be
  // opened; the logger then stays as it was.
  bool open(const std::string& path);
  bool enabled() const { return m_sink != nullptr; }
  bool enabled(LogLevel level) const { return m_sink && level >= m_level; }
  void set_level(LogLevel level) { m_level = level; }

  // A logger writing `fields` on every line, after this one's bound fields.
  Logger bind(std::initializer_list<Field> fields) const;

  void log(LogLevel level, std::string_view event, std::initializer_list<Field> fields = {}) const;
  // An info-level event: the pipeline's decisions.
  void event(std::string_view name, std::initializer_list<Field> fields = {}) const {
    log(LogLevel::info, name, fields);
  }
  void debug(std::string_view e, std::initializer_list<Field> f = {}) const {
    log(LogLevel::debug, e, f);
  }
  void warn(std::string_view e, std::initializer_list<Field> f = {}) const {
    log(LogLevel::warn, e, f);
  }
  void error(std::string_view e, std::initializer_list<Field> f = {}) const {
    log(LogLevel::error, e, f);
  }

 private:
  std::shared_ptr<LogSink> m_sink;
  LogLevel m_level = LogLevel::debug;
  const Clock* m_clock = &Clock::system();
  std::string m_bound;  // ,"key":value... already formatted
};

}  // namespace kiln::util
