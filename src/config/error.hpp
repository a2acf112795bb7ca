#pragma once

#include <string>

#include "kiln/config/origin.hpp"

namespace kiln::config {

enum class ErrorKind { unreadable_file, syntax, unknown_key, bad_value };

// Why a value, a file or a variable could not be used. Formatted only at the
// edge (to_string), never parsed.
struct Error {
  ErrorKind kind = ErrorKind::bad_value;
  Origin origin = Origin::command_line;
  std::string source;  // the file's path or the variable's name; may be empty
  int line = 0;        // syntax: the line in the file, 1-based
  std::string key;     // unknown_key, bad_value
  std::string reason;  // what was expected and what was given, or the OS's word
};

// One line, e.g. `/home/me/.config/kiln/kiln.toml: max_size: expected a size
// such as 5G or 500M, got "lots"` or `KILN_DIRECT: expected a boolean ...`.
std::string to_string(const Error& e);

}  // namespace kiln::config
