#pragma once

#include <optional>
#include <string_view>

#include "kiln/compiler/args.hpp"

namespace kiln::compiler {

// kiln's table of compiler options: an allow-list. An option that is not in
// it (by name, or by one of the families of flags without a value listed in
// docs/direct-mode.md) makes the call not cacheable (`unknown_option`), so a
// file that an unknown option names can never be left out of the key.

// Properties of an option that takes a value.
enum OptionFlag : unsigned {
  k_separate = 1u << 0,     // the value may be the next argument ("-I dir")
  k_joined = 1u << 1,       // the value may be joined ("-Idir", "-fplugin=x.so")
  k_path = 1u << 2,         // the value is a path: subject to base_dir rewriting
  k_include_dir = 1u << 3,  // an include search directory
  k_input = 1u << 4,        // names an input file, whose content goes into the key
  k_tools = 1u << 5,        // a directory of compiler tools (-B): the tools go into the key
  k_too_hard = 1u << 6,     // not cacheable (unsupported_option)
  k_prefix_map = 1u << 7,   // OLD=NEW, rewrites paths in debug info
  k_comp_dir = 1u << 8,     // sets the compilation directory recorded in debug info
  k_profile = 1u << 9,      // a profile to use: a file, or a directory holding it
  k_output = 1u << 10,      // names the object (-o, --output=)
};

struct OptionSpec {
  std::string_view name;
  ArgClass cls;
  unsigned flags;
};

// The option taking a separate value whose name is exactly `arg`.
const OptionSpec* find_separate_option(std::string_view arg);
// The longest option allowing a joined value that `arg` starts with.
const OptionSpec* find_joined_option(std::string_view arg);

// What a flag without a value does.
enum class FlagKind {
  unknown,              // not in the table: not cacheable (unknown_option)
  compiler,             // changes the compilation only; hashed as text
  preprocessor,         // changes the preprocessed output; hashed as text
  ignored,              // changes nothing under -c (linker options, -pipe)
  too_hard,             // not cacheable (unsupported_option)
  compile,              // -c
  assemble,             // -S
  preprocess_only,      // -E, -M, -MM
  syntax_only,          // -fsyntax-only
  md,                   // -MD, --write-dependencies
  mmd,                  // -MMD, --write-user-dependencies
  dependency,           // -MP, -MG
  debug_on,             // -g, -ggdb, -gdwarf-5, ...
  debug_off,            // -g0
  split_dwarf,          // -gsplit-dwarf
  no_split_dwarf,       // -gno-split-dwarf
  coverage,             // --coverage: .gcno and profile arcs
  test_coverage,        // -ftest-coverage: .gcno
  profile_arcs,         // -fprofile-arcs, -fprofile-generate...
  profile_use,          // -fprofile-use without a path (gcc: .gcda beside the object)
  record_command_line,  // the object records the whole command line
  stack_usage,          // -fstack-usage: writes <output>.su
  callgraph_info,       // -fcallgraph-info: writes <output>.ci
  native_cpu,           // -march=native, -mtune=native, -mcpu=native
};

// The kind of a flag listed by its exact name (checked before joined valued
// options, so that "-openmp" is not "-o penmp"), or nullopt.
std::optional<FlagKind> exact_flag(std::string_view arg);

// Classifies an argument that starts with '-' and is not a valued option.
FlagKind classify_flag(std::string_view arg);

}  // namespace kiln::compiler
