#pragma once

#include <string>
#include <string_view>

#include "kiln/util/expected.hpp"

namespace kiln::service {

// Programs without CMake: a program may carry kiln-program.toml at its top
// instead of CMakeLists.txt, and kiln-server builds it from the CMakeLists.txt
// that cmakelists_from_recipe writes:
//
//   sources = ["main.cc", "src/util.cc"]  # required: relative, no '..'; C (.c) or C++
//                                         # (.cc .cpp .cxx .C) by extension
//   include_dirs = ["include"]            # optional: relative, no '..'
//   defines = ["NDEBUG", "LEVEL=2"]       # optional: NAME or NAME=value
//   flags = ["-O2", "-Wall"]              # optional compile flags
//   link_flags = ["-static-libstdc++"]    # optional
//   libraries = ["m", "pthread"]          # optional, linked as -l<name> ([A-Za-z0-9_.+-]+)
//   cxx_standard = 17                     # optional: 11, 14, 17, 20 or 23
//   c_standard = 11                       # optional: 99, 11 or 17
//
// Any other key is an error, so that a misspelt key is not silently ignored.

// The CMakeLists.txt text that builds the executable `target` from the TOML
// recipe, or what is wrong with the recipe (for a 400 answer), naming the
// key. Every string of the recipe reaches CMake inside a quoted argument
// with \ " $ and ; escaped, and strings with a control character (a newline
// above all) are refused, so a recipe cannot add CMake code. Refused too,
// because CMake would not pass them through as written: "$<" (a generator
// expression) anywhere, and in defines '#' (which CMake drops) and "$("
// (which it takes for a make variable).
//
// The recipe's flags reach the compiler as given: a recipe can do whatever
// a CMakeLists.txt can, and the builds run sandboxed either way.
expected<std::string, std::string> cmakelists_from_recipe(std::string_view toml_text,
                                                          std::string_view target);

// Whether `target` is a valid executable target name for the API: 1 to 128
// characters of [A-Za-z0-9_.+-], not starting with '.' or '-', and not one
// of the names CMake reserves for its own targets ("all", "clean", "help",
// "install", "test", ...).
bool valid_target_name(std::string_view target);

}  // namespace kiln::service
