#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kiln::cache {

// A parsed Makefile dependency file as written by -MD/-MMD.
struct Depfile {
  std::vector<std::string> targets;        // of the first rule
  std::vector<std::string> prerequisites;  // of all rules, unescaped, first seen first
};

// Parses gcc/clang depfile syntax: line continuations, "\ " and "\#" escapes,
// "$$". Never fails; garbage yields fewer entries.
Depfile parse_depfile(std::string_view text);

// Escapes a path as gcc writes a default target or a -MQ target.
std::string escape_target(std::string_view path);

// Include files named by a preprocessor's output (linemarkers `# N "file"`),
// without pseudo files like <built-in>, first seen first.
std::vector<std::string> includes_from_cpp_output(std::string_view text);

}  // namespace kiln::cache
