#include "kiln/util/log.hpp"

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>

#include "kiln/util/file.hpp"
#include "kiln/util/string.hpp"

namespace kiln::util {

Logger::~Logger() {
  if (m_fd >= 0) {
    ::close(m_fd);
  }
}

bool Logger::open(const std::string& path) {
  m_fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  return m_fd >= 0;
}

void Logger::event(std::string_view name, std::initializer_list<Field> fields) {
  if (m_fd < 0) {
    return;
  }
  struct timeval tv;
  ::gettimeofday(&tv, nullptr);
  char head[128];
  std::snprintf(head, sizeof head, "{\"ts\":%lld.%06lld,\"pid\":%d,\"event\":\"",
                static_cast<long long>(tv.tv_sec), static_cast<long long>(tv.tv_usec),
                static_cast<int>(::getpid()));
  std::string line = head;
  line += json_escape(name);
  line += '"';
  for (const auto& f : fields) {
    line += ",\"";
    line += json_escape(f.key);
    line += "\":";
    if (auto* s = std::get_if<std::string_view>(&f.value)) {
      line += '"';
      line += json_escape(*s);
      line += '"';
    } else {
      line += std::to_string(std::get<int64_t>(f.value));
    }
  }
  line += "}\n";
  write_all(m_fd, line);
}

}  // namespace kiln::util
