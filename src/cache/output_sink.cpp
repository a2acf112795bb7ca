#include "kiln/cache/output_sink.hpp"

#include <unistd.h>

#include "kiln/util/file.hpp"

namespace kiln::cache {

void StandardOutputSink::out(std::string_view data) {
  (void)util::write_all(STDOUT_FILENO, data);
}

void StandardOutputSink::err(std::string_view data) {
  (void)util::write_all(STDERR_FILENO, data);
}

bool StandardOutputSink::err_is_terminal() const {
  return ::isatty(STDERR_FILENO) == 1;
}

}  // namespace kiln::cache
