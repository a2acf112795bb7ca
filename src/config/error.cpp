#include "kiln/config/error.hpp"

namespace kiln::config {

std::string to_string(const Error& e) {
  std::string out = e.source;
  switch (e.kind) {
    case ErrorKind::unreadable_file:
      return out + ": " + e.reason;
    case ErrorKind::syntax:
      return out + ":" + std::to_string(e.line) + ": " + e.reason;
    case ErrorKind::unknown_key:
      return (out.empty() ? "" : out + ": ") + "unknown key \"" + e.key + "\"";
    case ErrorKind::bad_value:
      // A variable names its key already; a file or the command line does not.
      if (e.origin == Origin::environment) {
        return out + ": " + e.reason;
      }
      return (out.empty() ? "" : out + ": ") + e.key + ": " + e.reason;
  }
  return out;
}

}  // namespace kiln::config
