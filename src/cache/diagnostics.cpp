#include "kiln/cache/diagnostics.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace kiln::cache {

namespace {

// gcc's should_colorize(): a terminal that is not "dumb".
bool colour_terminal(const util::Environment& env, bool err_is_terminal) {
  auto term = env.get("TERM");
  return term && *term != "dumb" && err_is_terminal;
}

// The length of the colour escape sequence at data[i] (which is ESC), or 0.
size_t sgr_length(std::string_view data, size_t i) {
  // CSI ... m (colour) and CSI K (erase to end of line), as gcc and clang write.
  if (i + 1 >= data.size() || data[i + 1] != '[') {
    return 0;
  }
  size_t j = i + 2;
  while (j < data.size() && ((data[j] >= '0' && data[j] <= '9') || data[j] == ';')) {
    ++j;
  }
  return j < data.size() && (data[j] == 'm' || data[j] == 'K') ? j + 1 - i : 0;
}

}  // namespace

bool would_colour(compiler::Family family, const util::Environment& env, bool err_is_terminal) {
  // GCC_COLORS set to nothing turns gcc's colours off in auto mode.
  return colour_terminal(env, err_is_terminal) &&
         !(family == compiler::Family::gcc && env.get("GCC_COLORS") == std::string_view());
}

std::vector<std::string> colour_options(compiler::Family family) {
  // Not -fdiagnostics-urls=always: gcc 12 records it in DW_AT_producer.
  if (family == compiler::Family::gcc) {
    return {"-fdiagnostics-color=always"};
  }
  if (family == compiler::Family::clang) {
    return {"-fcolor-diagnostics"};
  }
  return {};
}

std::string restyle_diagnostics(std::string_view stored, bool colours) {
  if (colours) {
    return std::string(stored);
  }
  std::string out;
  out.reserve(stored.size());
  for (size_t i = 0; i < stored.size();) {
    if (size_t n = stored[i] == '\x1b' ? sgr_length(stored, i) : 0; n > 0) {
      i += n;
      continue;
    }
    out += stored[i++];
  }
  return out;
}

}  // namespace kiln::cache
