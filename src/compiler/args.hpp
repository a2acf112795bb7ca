#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kiln/compiler/family.hpp"

namespace kiln::compiler {

// Why a call is not a single cacheable compilation. Each value is a statistic
// counter (see to_string); `none` means cacheable.
enum class Uncacheable {
  none,
  called_for_link,           // no -c (linking, or a compile-and-link)
  called_for_preprocessing,  // -E, or -M/-MM without -MD/-MMD
  multiple_source_files,
  no_input_file,
  stdin_input,           // "-" or -x with stdin
  output_to_stdout,      // -o -
  unsupported_language,  // unknown -x or extension, assembler, .i/.ii
  precompiled_header,    // compiling a header
  unsupported_option,    // -save-temps, -Xpreprocessor, -fprofile-use, modules...
  bad_response_file,     // unreadable @file
  no_output,             // -fsyntax-only
  dependency_env,        // DEPENDENCIES_OUTPUT / SUNPRO_DEPENDENCIES set
  unknown_option,        // an option not in kiln's table (docs/direct-mode.md)
};

std::string_view to_string(Uncacheable u);

// How an argument matters, which decides how it is hashed and where it goes.
enum class ArgClass {
  preprocessor,  // changes the preprocessed output (-D, -I, -include, -std, ...)
  compiler,      // changes only the compilation (-O2, -g, -W..., -f...)
  output,        // names an output (-o)
  dependency,    // depfile generation (-MD, -MF, -MT, ...)
  ignored,       // affects neither (-c, -pipe, linker-only options under -c)
  input,         // the source file
};

struct ClassifiedArg {
  std::vector<std::string> tokens;  // the option and its separate value, if any
  ArgClass cls = ArgClass::compiler;
};

struct ArgsOptions {
  std::string cwd;       // absolute working directory
  std::string base_dir;  // absolute, or empty: no path rewriting
};

// `path` rewritten relative to `cwd` when it lies under `base_dir` and the
// relative spelling names the same file (docs/direct-mode.md, base_dir);
// otherwise `path` unchanged.
std::string rewrite_under_base_dir(std::string_view path, const ArgsOptions& options);

// The result of processing a compiler command line.
struct ProcessedArgs {
  Uncacheable uncacheable = Uncacheable::none;
  std::string detail;  // the offending argument, for the log

  std::string source;    // as passed to the compiler (after base_dir rewriting)
  std::string output;    // object (or assembly with -S) as passed
  std::string language;  // gcc -x name: c, c++, objective-c, objective-c++, assembler-with-cpp
  bool assemble_only = false;    // -S
  bool debug_info = false;       // some -g other than -g0
  bool split_dwarf = false;      // -gsplit-dwarf with debug info
  bool coverage = false;         // --coverage / -ftest-coverage: writes a .gcno
  bool profile_arcs = false;     // --coverage / -fprofile-arcs: embeds .gcda paths
  bool uses_native_cpu = false;  // -march=native and friends
  // -fdebug-prefix-map= and -ffile-prefix-map= values (OLD=NEW), in order.
  std::vector<std::string> prefix_maps;
  bool comp_dir_given = false;        // clang's -fdebug-compilation-dir
  bool records_command_line = false;  // the object records the whole command line
  // Files named by options (-fplugin=, -specs=, sanitizer lists, profiles),
  // as the compiler will open them: their content goes into the key.
  std::vector<std::string> input_files;
  // Directories of compiler tools (-B): the tools there go into the key.
  std::vector<std::string> tool_dirs;
  // The command line chooses how diagnostics look (colours, links, format):
  // kiln then leaves them as they are (docs/direct-mode.md, "Colours").
  bool diagnostics_style_given = false;
  std::string stack_usage_file;  // with -fstack-usage
  std::string callgraph_file;    // with -fcallgraph-info

  bool generating_dependencies = false;  // -MD or -MMD
  bool system_deps_omitted = false;      // -MMD: the depfile leaves out system headers
  std::string depfile;                   // -MF, or derived from the output
  bool dep_target_given = false;         // -MT or -MQ given

  std::string dwo_file;   // when split_dwarf
  std::string gcno_file;  // when coverage

  // Every argument after the compiler, in order, after @file expansion and
  // base_dir rewriting, with its class.
  std::vector<ClassifiedArg> args;

  // Argv to compile (compiler path first), equal to the user's command apart from
  // base_dir rewriting.
  std::vector<std::string> compile_argv(const std::string& compiler) const;
  // Argv to preprocess to stdout: every argument but outputs, dependency
  // options and -c, plus -E.
  std::vector<std::string> preprocess_argv(const std::string& compiler) const;
};

// Classifies and checks `args` (the command line without the compiler itself).
// Never throws; problems end up in `uncacheable`.
ProcessedArgs process_args(const std::vector<std::string>& args, Family family,
                           const ArgsOptions& options);

// Expands @file arguments in place (recursively, gcc's quoting rules). Returns
// false if a response file cannot be read.
bool expand_response_files(std::vector<std::string>* args, const std::string& cwd);

// Splits the text of a response file into arguments (gcc's rules: whitespace
// separates, single and double quotes group, backslash escapes).
std::vector<std::string> split_response_file(std::string_view text);

// Language for a source file name, or "" if not a known source.
std::string language_for_extension(std::string_view path);

}  // namespace kiln::compiler
