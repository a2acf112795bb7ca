#include "kiln/compiler/args.hpp"

#include <algorithm>
#include <array>

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
  }
  return "unknown";
}

namespace {

// Properties of an option that takes a value.
enum : unsigned {
  k_separate = 1u << 0,  // value may be the next argument ("-I dir")
  k_joined = 1u << 1,    // value may be joined ("-Idir", "-std=c++20" uses k_prefix)
  k_path = 1u << 2,      // value is a path: subject to base_dir rewriting
  k_include_dir = 1u << 3,
};

struct OptionSpec {
  std::string_view name;
  ArgClass cls;
  unsigned flags;
};

// Options whose value may be separate from the option. Looked up by exact name
// (separate value) or by prefix (joined value).
constexpr std::array<OptionSpec, 30> k_valued_options = {{
    {"-I", ArgClass::preprocessor, k_separate | k_joined | k_path | k_include_dir},
    {"-iquote", ArgClass::preprocessor, k_separate | k_joined | k_path | k_include_dir},
    {"-isystem", ArgClass::preprocessor, k_separate | k_joined | k_path | k_include_dir},
    {"-idirafter", ArgClass::preprocessor, k_separate | k_joined | k_path | k_include_dir},
    {"-include", ArgClass::preprocessor, k_separate | k_joined | k_path},
    {"-imacros", ArgClass::preprocessor, k_separate | k_joined | k_path},
    {"-iprefix", ArgClass::preprocessor, k_separate | k_joined | k_path},
    {"-iwithprefix", ArgClass::preprocessor, k_separate | k_joined | k_path},
    {"-iwithprefixbefore", ArgClass::preprocessor, k_separate | k_joined | k_path},
    {"-isysroot", ArgClass::preprocessor, k_separate | k_joined | k_path},
    {"--sysroot", ArgClass::preprocessor, k_separate | k_path},
    {"-imultilib", ArgClass::preprocessor, k_separate | k_joined},
    {"-D", ArgClass::preprocessor, k_separate | k_joined},
    {"-U", ArgClass::preprocessor, k_separate | k_joined},
    {"-A", ArgClass::preprocessor, k_separate | k_joined},
    {"-MF", ArgClass::dependency, k_separate | k_joined | k_path},
    {"-MT", ArgClass::dependency, k_separate | k_joined},
    {"-MQ", ArgClass::dependency, k_separate | k_joined},
    {"-o", ArgClass::output, k_separate | k_joined | k_path},
    {"-x", ArgClass::preprocessor, k_separate | k_joined},
    {"--param", ArgClass::compiler, k_separate},
    {"-Xassembler", ArgClass::compiler, k_separate},
    {"-Xclang", ArgClass::compiler, k_separate},
    {"-mllvm", ArgClass::compiler, k_separate},
    {"-target", ArgClass::compiler, k_separate},
    {"--target", ArgClass::compiler, k_separate},
    {"-arch", ArgClass::compiler, k_separate},
    {"-Xlinker", ArgClass::ignored, k_separate},
    {"-L", ArgClass::ignored, k_separate | k_joined},
    {"-l", ArgClass::ignored, k_separate | k_joined},
}};

// Prefixes of options that make a call not cacheable.
constexpr std::array<std::string_view, 14> k_too_hard_prefixes = {
    "-save-temps",
    "--save-temps",
    "-Xpreprocessor",
    "-fprofile-use",
    "-fauto-profile",
    "-fprofile-sample-use",
    "-fmodules",
    "-fmodule-",
    "-specs=",
    "--specs",
    "-aux-info",
    "-fsanitize-blacklist=",
    "-fsanitize-ignorelist=",
    "-frepo",
};

const OptionSpec* find_exact(std::string_view arg) {
  for (const auto& spec : k_valued_options) {
    if (spec.name == arg) {
      return &spec;
    }
  }
  return nullptr;
}

// The longest option that `arg` starts with and that allows a joined value.
const OptionSpec* find_joined(std::string_view arg) {
  const OptionSpec* best = nullptr;
  for (const auto& spec : k_valued_options) {
    if ((spec.flags & k_joined) && arg.size() > spec.name.size() && arg.starts_with(spec.name) &&
        (!best || spec.name.size() > best->name.size())) {
      best = &spec;
    }
  }
  return best;
}

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
  std::string rewrite_path(std::string_view path) const;
  void add(std::vector<std::string> tokens, ArgClass cls) {
    m_out.args.push_back(ClassifiedArg{std::move(tokens), cls});
  }
  void handle_valued(const OptionSpec& spec, std::string_view option, std::string value,
                     bool joined);
  void handle_flag(const std::string& arg);

  Family m_family;
  const ArgsOptions& m_opt;
  ProcessedArgs m_out;
  std::string m_explicit_language;  // current -x
  std::vector<std::string> m_iquote, m_i, m_isystem, m_idirafter;
  bool m_saw_c = false;
  bool m_saw_split_dwarf = false;
  int m_arch_count = 0;
  std::string m_output_given;
  bool m_output_seen = false;
  int m_inputs = 0;
  std::string m_second_input;
};

std::string Processor::rewrite_path(std::string_view path) const {
  if (m_opt.base_dir.empty() || path.empty() || path.front() != '/') {
    return std::string(path);
  }
  std::string norm = util::normalize(path);
  if (!util::is_under(norm, m_opt.base_dir)) {
    return std::string(path);
  }
  return util::relative(norm, m_opt.cwd);
}

void Processor::handle_valued(const OptionSpec& spec, std::string_view option, std::string value,
                              bool joined) {
  if (spec.flags & k_path) {
    value = rewrite_path(value);
  }
  if (spec.flags & k_include_dir) {
    std::string abs = util::absolute(value, m_opt.cwd);
    if (option == "-iquote") {
      m_iquote.push_back(abs);
    } else if (option == "-I") {
      m_i.push_back(abs);
    } else if (option == "-isystem") {
      m_isystem.push_back(abs);
    } else {
      m_idirafter.push_back(abs);
    }
  }
  if (option == "-o") {
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
  } else if (option == "-x") {
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

void Processor::handle_flag(const std::string& arg) {
  for (auto prefix : k_too_hard_prefixes) {
    if (arg.starts_with(prefix)) {
      fail(Uncacheable::unsupported_option, arg);
    }
  }
  ArgClass cls = ArgClass::compiler;
  if (arg == "-c") {
    m_saw_c = true;
    cls = ArgClass::ignored;
  } else if (arg == "-S") {
    m_out.assemble_only = true;
  } else if (arg == "-E") {
    fail(Uncacheable::called_for_preprocessing, arg);
  } else if (arg == "-M" || arg == "-MM") {
    fail(Uncacheable::called_for_preprocessing, arg);
  } else if (arg == "-MD" || arg == "-MMD") {
    m_out.generating_dependencies = true;
    m_out.system_deps_omitted = arg == "-MMD";
    cls = ArgClass::dependency;
  } else if (arg == "-MP" || arg == "-MG") {
    cls = ArgClass::dependency;
  } else if (arg.starts_with("-Wp,")) {
    if (arg.find("-MD") != std::string::npos || arg.find("-MMD") != std::string::npos ||
        arg.find("-MF") != std::string::npos) {
      fail(Uncacheable::unsupported_option, arg);
    }
    cls = ArgClass::preprocessor;
  } else if (arg == "-fsyntax-only") {
    fail(Uncacheable::no_output, arg);
  } else if (arg == "-g0") {
    m_out.debug_info = false;
  } else if (arg == "-gsplit-dwarf") {
    m_saw_split_dwarf = true;
  } else if (arg == "-gno-split-dwarf") {
    m_saw_split_dwarf = false;
  } else if (arg.starts_with("-g") && arg != "-gz" && !arg.starts_with("-gz=") &&
             arg != "-gno-split-dwarf") {
    m_out.debug_info = true;
  } else if (arg == "--coverage") {
    m_out.coverage = true;
    m_out.profile_arcs = true;
  } else if (arg == "-ftest-coverage") {
    m_out.coverage = true;
  } else if (arg == "-fprofile-arcs" || arg.starts_with("-fprofile-generate") ||
             arg.starts_with("-fprofile-instr-generate")) {
    m_out.profile_arcs = true;
  } else if (arg.starts_with("-fdebug-prefix-map=") || arg.starts_with("-ffile-prefix-map=")) {
    m_out.debug_prefix_map = true;
  } else if (arg.ends_with("=native")) {
    m_out.uses_native_cpu = true;
  } else if (arg.starts_with("-std=") || arg.starts_with("--std=") || arg == "-nostdinc" ||
             arg == "-nostdinc++" || arg == "-undef" || arg == "-trigraphs" || arg == "-pthread" ||
             arg == "-ansi" || arg.starts_with("-stdlib=")) {
    cls = ArgClass::preprocessor;
  } else if (arg == "-pipe" || arg.starts_with("-Wl,") || arg == "-rdynamic" || arg == "-static" ||
             arg == "-shared" || arg.starts_with("-static-lib")) {
    cls = ArgClass::ignored;
  }
  add({arg}, cls);
}

ProcessedArgs Processor::run(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() > 1 && arg[0] == '-') {
      if (const OptionSpec* spec = find_exact(arg); spec && (spec->flags & k_separate)) {
        if (i + 1 >= args.size()) {
          fail(Uncacheable::unsupported_option, arg + " without a value");
          add({arg}, spec->cls);
          continue;
        }
        handle_valued(*spec, arg, args[++i], false);
        continue;
      }
      if (arg.starts_with("--sysroot=")) {
        add({"--sysroot=" + rewrite_path(std::string_view(arg).substr(10))},
            ArgClass::preprocessor);
        continue;
      }
      if (const OptionSpec* spec = find_joined(arg)) {
        handle_valued(*spec, spec->name, arg.substr(spec->name.size()), true);
        continue;
      }
      handle_flag(arg);
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
  for (auto* list : {&m_iquote, &m_i, &m_isystem, &m_idirafter}) {
    m_out.include_dirs.insert(m_out.include_dirs.end(), list->begin(), list->end());
  }
  return std::move(m_out);
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
    auto text = util::read_file(util::absolute(std::string_view(arg).substr(1), cwd));
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
