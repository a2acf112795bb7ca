#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace kiln::util {

// Structured debug log: one JSON object a line, appended to a file with
// O_APPEND so concurrent kiln processes interleave whole lines. Disabled (every
// call a no-op) until open() succeeds. Not thread-safe.
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
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  // Returns false if the file cannot be opened (the logger stays disabled).
  bool open(const std::string& path);
  bool enabled() const { return m_fd >= 0; }
  void event(std::string_view name, std::initializer_list<Field> fields);

 private:
  int m_fd = -1;
};

}  // namespace kiln::util
