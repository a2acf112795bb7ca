#include "kiln/compiler/args.hpp"

#include <algorithm>
#include <array>
#include <optional>

#include "kiln/compiler/options.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/path.hpp"

namespace kiln::compiler {

std::string_view to_string(Uncacheable u) {
  switch (u) {
    case Uncacheable::none:
      return "none";
    case Uncacheable::called_for_link:
      return "called_for_link";
    case Uncacheable::called_for_preprocessing:
      return "called_for_preprocessing";
    case Uncacheable::multiple_source_files:
      return "multiple_source_files";
    case Uncacheable::no_input_file:
      return "no_input_file";
    case Uncacheable::stdin_input:
      return "stdin_input";
    case Uncacheable::output_to_stdout:
      return "output_to_stdout";
    case Uncacheable::unsupported_language:
      return "unsupported_language";
    case Uncacheable::precompiled_header:
      return "precompiled_header";
    case Uncacheable::unsupported_option:
      return "unsupported_option";
    case Uncacheable::bad_response_file:
      return "bad_response_file";
    case Uncacheable::no_output:
      return "no_output";
    case Uncacheable::dependency_env:
      return "dependency_env";
    case Uncacheable::unknown_option:
      return "unknown_option";
  }
  return "unknown";
}

namespace {

// What `path` names: the device and inode of the deepest part of it that
// exists, and the components below that part, which do not exist.
struct FileIdentity {
  uint64_t dev = 0, ino = 0;
  std::string missing;
  bool operator==(const FileIdentity&) const = default;
};

FileIdentity identify(const std::string& path) {
  util::FileStat st = util::FileStat::of(path);
  if (st.exists()) {
    return {st.dev, st.ino, ""};
  }
  std::string parent(util::dir_name(path));
  if (parent == path || path.empty()) {
    return {0, 0, path};
  }
  FileIdentity id = identify(parent);
  id.missing += "/";
  id.missing += util::base_name(path);
  return id;
}

}  // namespace

std::string rewrite_under_base_dir(std::string_view path, const ArgsOptions& options) {
  if (options.base_dir.empty() || path.empty() || path.front() != '/') {
    return std::string(path);
  }
  std::string norm = util::normalize(path);
  if (!util::is_under(norm, options.base_dir)) {
    return std::string(path);
  }
  // A lexical rewrite changes the meaning of ".." after a symlink, and a
  // working directory reached through a symlink changes that of every
  // relative path: keep the path unless both spellings name the same file.
  std::string rewritten = util::relative(norm, options.cwd);
  if (identify(std::string(path)) != identify(util::join_path(options.cwd, rewritten))) {
    return std::string(path);
  }
  return rewritten;
}

namespace {

std::string replace_extension(std::string_view path, std::string_view ext) {
  std::string_view base = util::base_name(path);
  auto dot = base.find_last_of('.');
  std::string out(path);
  if (dot != std::string_view::npos && dot > 0) {
    out.resize(path.size() - base.size() + dot);
  }
  out += ext;
  return out;
}

bool is_supported_language(std::string_view lang) {
  return lang == "c" || lang == "c++" || lang == "objective-c" || lang == "objective-c++" ||
         lang == "assembler-with-cpp";
}

bool is_header_language(std::string_view lang) {
  return lang.ends_with("-header");
}

class Processor {
 public:
  Processor(Family family, const ArgsOptions& options) : m_family(family), m_opt(options) {}

  ProcessedArgs run(const std::vector<std::string>& args);

 private:
  void fail(Uncacheable u, std::string_view detail) {
    if (m_out.uncacheable == Uncacheable::none) {
      m_out.uncacheable = u;
      m_out.detail = detail;
    }
  }
  std::string rewrite_path(std::string_view path) const {
    return rewrite_under_base_dir(path, m_opt);
  }
  void add(std::vector<std::string> tokens, ArgClass cls) {
    m_out.args.push_back(ClassifiedArg{std::move(tokens), cls});
  }
  void handle_valued(const OptionSpec& spec, std::string_view option, std::string value,
                     bool joined);
  void handle_flag(const std::string& arg, FlagKind kind);
  void handle_wp(const std::string& arg);
  void finish_outputs();
  void add_profile_inputs();

  Family m_family;
  const ArgsOptions& m_opt;
  ProcessedArgs m_out;
  std::string m_explicit_language;  // current -x
  bool m_saw_c = false;
  bool m_saw_split_dwarf = false;
  bool m_stack_usage = false;
  bool m_callgraph_info = false;
  int m_arch_count = 0;
  std::string m_output_given;
  bool m_output_seen = false;
  int m_inputs = 0;
  std::string m_second_input;
  // -fprofile-use: nullopt none, "" without a path, else the path given.
  std::optional<std::string> m_profile_use;
};

void Processor::handle_valued(const OptionSpec& spec, std::string_view option, std::string value,
                              bool joined) {
  if (spec.flags & k_path) {
    value = rewrite_path(value);
  }
  if (spec.flags & k_too_hard) {
    fail(Uncacheable::unsupported_option, std::string(option) + value);
  }
  if (spec.flags & k_input) {
    m_out.input_files.push_back(value);
  }
  if (spec.flags & k_tools) {
    m_out.tool_dirs.push_back(value);
  }
  if (spec.flags & k_prefix_map) {
    m_out.prefix_maps.push_back(value);
  }
  if (spec.flags & k_comp_dir) {
    m_out.comp_dir_given = true;
  }
  if (spec.flags & k_profile) {
    m_profile_use = value;
  }
  if (spec.flags & k_output) {
    if (m_output_seen) {
      fail(Uncacheable::unsupported_option, "-o given twice");
    }
    m_output_seen = true;
    m_output_given = value;
    if (value == "-") {
      fail(Uncacheable::output_to_stdout, "-o -");
    }
  } else if (option == "-MF") {
    m_out.depfile = value;
  } else if (option == "-MT" || option == "-MQ") {
    m_out.dep_target_given = true;
  } else if (option == "-x" || option == "--language" || option == "--language=") {
    m_explicit_language = value == "none" ? "" : value;
  } else if (option == "-arch") {
    ++m_arch_count;
  }
  if (joined) {
    add({std::string(option) + value}, spec.cls);
  } else {
    add({std::string(option), value}, spec.cls);
  }
}

// -Wp,a,b,...: options passed to the preprocessor. Known: -D, -U, -I and the
// depfile options -MD,FILE and -MMD,FILE (the Linux kernel's form), whose
// target is derived from the source name, so the depfile is kept verbatim.
void Processor::handle_wp(const std::string& arg) {
  std::vector<std::string> parts;
  size_t pos = 4;
  while (true) {
    size_t comma = arg.find(',', pos);
    parts.push_back(arg.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (comma == std::string::npos) {
      break;
    }
    pos = comma + 1;
  }
  ArgClass cls = ArgClass::preprocessor;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    if ((part == "-MD" || part == "-MMD") && i + 1 < parts.size() && parts.size() == 2) {
      m_out.generating_dependencies = true;
      m_out.system_deps_omitted = part == "-MMD";
      m_out.depfile = parts[++i];
      m_out.dep_target_given = true;
      cls = ArgClass::dependency;
    } else if (!(part.size() > 2 &&
                 (part.starts_with("-D") || part.starts_with("-U") || part.starts_with("-I")))) {
      fail(Uncacheable::unknown_option, arg);
    }
  }
  add({arg}, cls);
}

void Processor::handle_flag(const std::string& arg, FlagKind kind) {
  ArgClass cls = ArgClass::compiler;
  switch (kind) {
    case FlagKind::unknown:
      fail(Uncacheable::unknown_option, arg);
      break;
    case FlagKind::compiler:
      break;
    case FlagKind::preprocessor:
      cls = ArgClass::preprocessor;
      break;
    case FlagKind::ignored:
      cls = ArgClass::ignored;
      break;
    case FlagKind::too_hard:
      fail(Uncacheable::unsupported_option, arg);
      break;
    case FlagKind::compile:
      m_saw_c = true;
      cls = ArgClass::ignored;
      break;
    case FlagKind::assemble:
      m_out.assemble_only = true;
      break;
    case FlagKind::preprocess_only:
      fail(Uncacheable::called_for_preprocessing, arg);
      break;
    case FlagKind::syntax_only:
      fail(Uncacheable::no_output, arg);
      break;
    case FlagKind::md:
    case FlagKind::mmd:
      m_out.generating_dependencies = true;
      m_out.system_deps_omitted = kind == FlagKind::mmd;
      cls = ArgClass::dependency;
      break;
    case FlagKind::dependency:
      cls = ArgClass::dependency;
      break;
    case FlagKind::debug_on:
      m_out.debug_info = true;
      break;
    case FlagKind::debug_off:
      m_out.debug_info = false;
      break;
    case FlagKind::split_dwarf:
      m_saw_split_dwarf = true;
      break;
    case FlagKind::no_split_dwarf:
      m_saw_split_dwarf = false;
      break;
    case FlagKind::coverage:
      m_out.coverage = true;
      m_out.profile_arcs = true;
      break;
    case FlagKind::test_coverage:
      m_out.coverage = true;
      break;
    case FlagKind::profile_arcs:
      m_out.profile_arcs = true;
      break;
    case FlagKind::profile_use:
      m_profile_use = "";
      break;
    case FlagKind::record_command_line:
      m_out.records_command_line = true;
      break;
    case FlagKind::stack_usage:
      m_stack_usage = true;
      break;
    case FlagKind::callgraph_info:
      m_callgraph_info = true;
      break;
    case FlagKind::native_cpu:
      m_out.uses_native_cpu = true;
      break;
  }
  add({arg}, cls);
}

ProcessedArgs Processor::run(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() > 1 && arg[0] == '-') {
      if (const OptionSpec* spec = find_separate_option(arg)) {
        if (i + 1 >= args.size()) {
          fail(Uncacheable::unsupported_option, arg + " without a value");
          add({arg}, spec->cls);
          continue;
        }
        handle_valued(*spec, arg, args[++i], false);
        continue;
      }
      if (auto kind = exact_flag(arg)) {
        handle_flag(arg, *kind);
        continue;
      }
      if (const OptionSpec* spec = find_joined_option(arg)) {
        handle_valued(*spec, spec->name, arg.substr(spec->name.size()), true);
        continue;
      }
      if (arg.starts_with("-Wp,")) {
        handle_wp(arg);
        continue;
      }
      handle_flag(arg, classify_flag(arg));
      continue;
    }
    // An input.
    ++m_inputs;
    if (arg == "-") {
      fail(Uncacheable::stdin_input, arg);
      add({arg}, ArgClass::input);
      continue;
    }
    if (m_inputs == 2) {
      m_second_input = arg;  // reported after the loop: linking takes precedence
    }
    std::string lang =
        m_explicit_language.empty() ? language_for_extension(arg) : m_explicit_language;
    m_out.source = rewrite_path(arg);
    m_out.language = lang;
    add({m_out.source}, ArgClass::input);
  }

  if (m_inputs == 0) {
    fail(Uncacheable::no_input_file, "");
  }
  if (!m_saw_c && !m_out.assemble_only) {
    fail(Uncacheable::called_for_link, "");
  }
  if (m_inputs > 1) {
    fail(Uncacheable::multiple_source_files, m_second_input);
  }
  if (m_arch_count > 1) {
    fail(Uncacheable::unsupported_option, "several -arch");
  }
  if (m_inputs == 1 && m_out.uncacheable == Uncacheable::none) {
    if (is_header_language(m_out.language) ||
        (m_explicit_language.empty() &&
         (m_out.source.ends_with(".h") || m_out.source.ends_with(".hpp") ||
          m_out.source.ends_with(".hh")))) {
      fail(Uncacheable::precompiled_header, m_out.source);
    } else if (!is_supported_language(m_out.language)) {
      fail(Uncacheable::unsupported_language, m_out.source);
    }
  }
  finish_outputs();
  return std::move(m_out);
}

void Processor::finish_outputs() {
  const std::string& source = m_out.source;
  if (m_output_seen) {
    m_out.output = m_output_given;
  } else {
    m_out.output = replace_extension(util::base_name(source), m_out.assemble_only ? ".s" : ".o");
  }
  if (m_out.generating_dependencies && m_out.depfile.empty()) {
    m_out.depfile = m_output_seen ? replace_extension(m_out.output, ".d")
                                  : replace_extension(util::base_name(source), ".d");
  }
  m_out.split_dwarf =
      m_saw_split_dwarf && !m_out.assemble_only && (m_family == Family::gcc || m_out.debug_info);
  if (m_out.split_dwarf) {
    m_out.dwo_file = replace_extension(m_out.output, ".dwo");
  }
  if (m_out.coverage) {
    m_out.gcno_file = replace_extension(m_out.output, ".gcno");
  }
  // gcc and clang name these after the object, without its extension.
  if (m_stack_usage && !m_out.assemble_only) {
    m_out.stack_usage_file = replace_extension(m_out.output, ".su");
  }
  if (m_callgraph_info && !m_out.assemble_only) {
    m_out.callgraph_file = replace_extension(m_out.output, ".ci");
  }
  add_profile_inputs();
  for (const auto& a : m_out.args) {
    for (std::string_view style :
         {"-fdiagnostics-color", "-fno-diagnostics-color", "-fcolor-diagnostics",
          "-fno-color-diagnostics", "-fdiagnostics-urls", "-fno-diagnostics-urls",
          "-fdiagnostics-plain-output", "-fdiagnostics-format", "-fansi-escape-codes"}) {
      if (a.tokens[0].starts_with(style)) {
        m_out.diagnostics_style_given = true;
      }
    }
  }
}

// The profile that -fprofile-use reads. gcc: <object without extension>.gcda,
// or with a directory, that path made absolute with '/' spelled '#' inside
// the directory; clang: a .profdata file, or default.profdata in a directory.
// The trace checks the guess: a profile read under another name makes the
// call not cached.
void Processor::add_profile_inputs() {
  if (!m_profile_use) {
    return;
  }
  const std::string& given = *m_profile_use;
  bool is_dir =
      !given.empty() && util::FileStat::of(util::join_path(m_opt.cwd, given)).is_directory();
  if (m_family == Family::clang) {
    m_out.input_files.push_back(given.empty() ? "default.profdata"
                                : is_dir      ? util::join_path(given, "default.profdata")
                                              : given);
    return;
  }
  std::string gcda = replace_extension(m_out.output, ".gcda");
  if (!given.empty()) {
    std::string mangled = util::absolute(gcda, m_opt.cwd);
    std::replace(mangled.begin(), mangled.end(), '/', '#');
    gcda = util::join_path(given, mangled);
  }
  m_out.input_files.push_back(gcda);
}

}  // namespace

std::vector<std::string> ProcessedArgs::compile_argv(const std::string& compiler) const {
  std::vector<std::string> argv{compiler};
  for (const auto& a : args) {
    argv.insert(argv.end(), a.tokens.begin(), a.tokens.end());
  }
  return argv;
}

std::vector<std::string> ProcessedArgs::preprocess_argv(const std::string& compiler) const {
  std::vector<std::string> argv{compiler};
  for (const auto& a : args) {
    if (a.cls == ArgClass::output || a.cls == ArgClass::dependency || a.cls == ArgClass::ignored) {
      continue;
    }
    if (a.tokens.size() == 1 && a.tokens[0] == "-S") {
      continue;
    }
    argv.insert(argv.end(), a.tokens.begin(), a.tokens.end());
  }
  argv.push_back("-E");
  return argv;
}

std::string language_for_extension(std::string_view path) {
  std::string_view base = util::base_name(path);
  auto dot = base.find_last_of('.');
  if (dot == std::string_view::npos) {
    return "";
  }
  std::string_view ext = base.substr(dot + 1);
  if (ext == "c") {
    return "c";
  }
  if (ext == "cc" || ext == "cpp" || ext == "cxx" || ext == "c++" || ext == "C" || ext == "cp" ||
      ext == "CPP") {
    return "c++";
  }
  if (ext == "m") {
    return "objective-c";
  }
  if (ext == "mm" || ext == "M") {
    return "objective-c++";
  }
  if (ext == "S" || ext == "sx") {
    return "assembler-with-cpp";
  }
  if (ext == "s") {
    return "assembler";
  }
  if (ext == "i") {
    return "cpp-output";
  }
  if (ext == "ii") {
    return "c++-cpp-output";
  }
  if (ext == "h") {
    return "c-header";
  }
  if (ext == "hh" || ext == "hpp" || ext == "hxx" || ext == "H") {
    return "c++-header";
  }
  return "";
}

std::vector<std::string> split_response_file(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  bool in_token = false;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      cur += text[++i];
      in_token = true;
    } else if (quote) {
      if (c == quote) {
        quote = 0;
      } else {
        cur += c;
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_token = true;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      if (in_token) {
        out.push_back(std::move(cur));
        cur.clear();
        in_token = false;
      }
    } else {
      cur += c;
      in_token = true;
    }
  }
  if (in_token) {
    out.push_back(std::move(cur));
  }
  return out;
}

bool expand_response_files(std::vector<std::string>* args, const std::string& cwd) {
  int expansions = 0;
  for (size_t i = 0; i < args->size();) {
    const std::string& arg = (*args)[i];
    if (arg.size() < 2 || arg[0] != '@') {
      ++i;
      continue;
    }
    if (++expansions > 1000) {
      return false;  // a response file including itself
    }
    auto text = util::read_file(util::join_path(cwd, std::string_view(arg).substr(1)));
    if (!text) {
      return false;
    }
    auto words = split_response_file(*text);
    args->erase(args->begin() + static_cast<std::ptrdiff_t>(i));
    args->insert(args->begin() + static_cast<std::ptrdiff_t>(i), words.begin(), words.end());
  }
  return true;
}

ProcessedArgs process_args(const std::vector<std::string>& args, Family family,
                           const ArgsOptions& options) {
  return Processor(family, options).run(args);
}

}  // namespace kiln::compiler
