#pragma once

#include <string_view>

namespace kiln::compiler {

// The family of a compiler, as found by probing it (compiler_info.hpp).
enum class Family { gcc, clang, unknown };

inline std::string_view to_string(Family f) {
  switch (f) {
    case Family::gcc:
      return "gcc";
    case Family::clang:
      return "clang";
    case Family::unknown:
      break;
  }
  return "unknown";
}

}  // namespace kiln::compiler
