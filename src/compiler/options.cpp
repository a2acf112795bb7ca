#include "kiln/compiler/options.hpp"

#include <algorithm>
#include <array>

namespace kiln::compiler {

namespace {

using enum ArgClass;

constexpr unsigned k_dir = k_separate | k_joined | k_path | k_include_dir;
constexpr unsigned k_sj = k_separate | k_joined;
constexpr unsigned k_file_eq = k_joined | k_path | k_input;

// Options that take a value. Names ending in '=' take it joined only.
constexpr OptionSpec k_valued[] = {
    // Include search: every place is traced, the directories are text in the key.
    {"-I", preprocessor, k_dir},
    {"-iquote", preprocessor, k_dir},
    {"-isystem", preprocessor, k_dir},
    {"-idirafter", preprocessor, k_dir},
    {"--include-directory", preprocessor, k_separate | k_path | k_include_dir},
    {"--include-directory=", preprocessor, k_joined | k_path | k_include_dir},
    {"--include-directory-after", preprocessor, k_separate | k_path},
    {"--include-directory-after=", preprocessor, k_joined | k_path},
    {"-iprefix", preprocessor, k_sj | k_path},
    {"--include-prefix", preprocessor, k_separate | k_path},
    {"--include-prefix=", preprocessor, k_joined | k_path},
    {"-iwithprefix", preprocessor, k_sj | k_path},
    {"-iwithprefixbefore", preprocessor, k_sj | k_path},
    {"--include-with-prefix", preprocessor, k_separate | k_path},
    {"--include-with-prefix=", preprocessor, k_joined | k_path},
    {"--include-with-prefix-before", preprocessor, k_separate | k_path},
    {"--include-with-prefix-before=", preprocessor, k_joined | k_path},
    {"--include-with-prefix-after", preprocessor, k_separate | k_path},
    {"--include-with-prefix-after=", preprocessor, k_joined | k_path},
    {"-include", preprocessor, k_sj | k_path},
    {"--include", preprocessor, k_separate | k_path},
    {"--include=", preprocessor, k_joined | k_path},
    {"-imacros", preprocessor, k_sj | k_path},
    {"--imacros", preprocessor, k_separate | k_path},
    {"--imacros=", preprocessor, k_joined | k_path},
    {"-isysroot", preprocessor, k_sj | k_path},
    {"--sysroot", preprocessor, k_separate | k_path},
    {"--sysroot=", preprocessor, k_joined | k_path},
    {"-imultilib", preprocessor, k_sj},
    {"-imultiarch", preprocessor, k_sj},
    {"-D", preprocessor, k_sj},
    {"-U", preprocessor, k_sj},
    {"-A", preprocessor, k_sj},
    {"--define-macro", preprocessor, k_separate},
    {"--define-macro=", preprocessor, k_joined},
    {"--undefine-macro", preprocessor, k_separate},
    {"--undefine-macro=", preprocessor, k_joined},
    {"--assert", preprocessor, k_separate},
    {"--assert=", preprocessor, k_joined},
    {"-x", preprocessor, k_sj},
    {"--language", preprocessor, k_separate},
    {"--language=", preprocessor, k_joined},
    {"-std=", preprocessor, k_joined},
    {"--std", preprocessor, k_separate},
    {"--std=", preprocessor, k_joined},
    // The tools the driver runs, and with gcc its include directories.
    {"-B", preprocessor, k_sj | k_path | k_tools},
    {"--prefix", preprocessor, k_separate | k_path | k_tools},
    {"--prefix=", preprocessor, k_joined | k_path | k_tools},
    // Dependency files.
    {"-MF", dependency, k_sj | k_path},
    {"-MT", dependency, k_sj},
    {"-MQ", dependency, k_sj},
    // The object.
    {"-o", output, k_sj | k_path | k_output},
    {"--output", output, k_separate | k_path | k_output},
    {"--output=", output, k_joined | k_path | k_output},
    // Input files named by options: their content goes into the key.
    {"-fplugin=", compiler, k_file_eq},
    {"-specs=", compiler, k_file_eq},
    {"--specs=", compiler, k_file_eq},
    {"--specs", compiler, k_separate | k_path | k_input},
    {"-fsanitize-ignorelist=", compiler, k_file_eq},
    {"-fsanitize-blacklist=", compiler, k_file_eq},
    {"-fsanitize-coverage-allowlist=", compiler, k_file_eq},
    {"-fsanitize-coverage-ignorelist=", compiler, k_file_eq},
    {"-fsanitize-coverage-blocklist=", compiler, k_file_eq},
    {"-fprofile-list=", compiler, k_file_eq},
    {"-fprofile-remapping-file=", compiler, k_file_eq},
    {"-fprofile-sample-use=", compiler, k_file_eq},
    {"-fauto-profile=", compiler, k_file_eq},
    {"-fxray-always-instrument=", compiler, k_file_eq},
    {"-fxray-never-instrument=", compiler, k_file_eq},
    {"-fxray-attr-list=", compiler, k_file_eq},
    {"-fprofile-use=", compiler, k_joined | k_path | k_profile},
    {"-fprofile-instr-use=", compiler, k_joined | k_path | k_profile},
    // Paths recorded in the object.
    {"-fdebug-prefix-map=", compiler, k_joined | k_prefix_map},
    {"-ffile-prefix-map=", compiler, k_joined | k_prefix_map},
    {"-fmacro-prefix-map=", preprocessor, k_joined},
    {"-fprofile-prefix-map=", compiler, k_joined},
    {"-fcoverage-prefix-map=", compiler, k_joined},
    {"-fdebug-compilation-dir", compiler, k_separate | k_comp_dir},
    {"-fdebug-compilation-dir=", compiler, k_joined | k_comp_dir},
    {"-ffile-compilation-dir=", compiler, k_joined | k_comp_dir},
    {"-fcoverage-compilation-dir=", compiler, k_joined},
    // Code generation, as text.
    {"--param", compiler, k_separate},
    {"--param=", compiler, k_joined},
    {"-mllvm", compiler, k_separate},
    {"-target", compiler, k_separate},
    {"--target=", compiler, k_joined},
    {"--target", compiler, k_separate},
    {"-arch", compiler, k_separate},
    {"--gcc-toolchain=", preprocessor, k_joined | k_path},
    {"--gcc-toolchain", preprocessor, k_separate | k_path},
    {"-resource-dir", preprocessor, k_separate | k_path},
    {"-resource-dir=", preprocessor, k_joined | k_path},
    {"-stdlib=", preprocessor, k_joined},
    {"--stdlib=", preprocessor, k_joined},
    {"-rtlib=", ignored, k_joined},
    {"--rtlib=", ignored, k_joined},
    {"-unwindlib=", ignored, k_joined},
    {"-fuse-ld=", ignored, k_joined},
    {"--ld-path=", ignored, k_joined},
    // Linker options: ignored under -c.
    {"-Xlinker", ignored, k_separate},
    {"-L", ignored, k_sj},
    {"-l", ignored, k_sj},
    {"-T", ignored, k_sj},
    {"-u", ignored, k_separate},
    {"-z", ignored, k_separate},
    // Not cacheable: options that pass arbitrary arguments on, or write files
    // kiln does not know.
    {"-Xpreprocessor", compiler, k_separate | k_too_hard},
    {"-Xclang", compiler, k_separate | k_too_hard},
    {"-Xassembler", compiler, k_separate | k_too_hard},
    {"-aux-info", compiler, k_separate | k_too_hard},
    {"-dumpdir", compiler, k_separate | k_too_hard},
    {"-dumpbase", compiler, k_separate | k_too_hard},
    {"-dumpbase-ext", compiler, k_separate | k_too_hard},
    {"-foptimization-record-file=", compiler, k_joined | k_too_hard},
    {"-fthinlto-index=", compiler, k_joined | k_too_hard},
    {"-fprofile-dir=", compiler, k_joined | k_too_hard},
    {"-fcrash-diagnostics-dir=", compiler, k_joined},
};

const OptionSpec* find_longest(std::string_view arg, bool joined) {
  const OptionSpec* best = nullptr;
  for (const auto& spec : k_valued) {
    bool fits = joined ? (spec.flags & k_joined) && arg.size() > spec.name.size() &&
                             arg.starts_with(spec.name)
                       : (spec.flags & k_separate) && arg == spec.name;
    if (fits && (!best || spec.name.size() > best->name.size())) {
      best = &spec;
    }
  }
  return best;
}

struct FlagRule {
  std::string_view name;  // exact, or a prefix when it ends in '*'
  FlagKind kind;
};

// Flags without a value that are not plain text in the key. Looked up before
// the families below; the first rule that fits wins.
constexpr FlagRule k_flag_rules[] = {
    {"-c", FlagKind::compile},
    {"-S", FlagKind::assemble},
    {"-E", FlagKind::preprocess_only},
    {"-M", FlagKind::preprocess_only},
    {"-MM", FlagKind::preprocess_only},
    {"--dependencies", FlagKind::preprocess_only},
    {"--user-dependencies", FlagKind::preprocess_only},
    {"-MD", FlagKind::md},
    {"--write-dependencies", FlagKind::md},
    {"-MMD", FlagKind::mmd},
    {"--write-user-dependencies", FlagKind::mmd},
    {"-MP", FlagKind::dependency},
    {"-MG", FlagKind::dependency},
    {"--print-missing-file-dependencies", FlagKind::dependency},
    {"-fsyntax-only", FlagKind::syntax_only},
    {"-g0", FlagKind::debug_off},
    {"-gsplit-dwarf", FlagKind::split_dwarf},
    {"-gsplit-dwarf=*", FlagKind::split_dwarf},
    {"-gno-split-dwarf", FlagKind::no_split_dwarf},
    {"-grecord-command-line", FlagKind::record_command_line},
    {"-frecord-command-line", FlagKind::record_command_line},
    {"-frecord-gcc-switches", FlagKind::record_command_line},
    {"-gz", FlagKind::compiler},
    {"-gz=*", FlagKind::compiler},
    {"-gmodules", FlagKind::too_hard},
    {"-g*", FlagKind::debug_on},
    {"--coverage", FlagKind::coverage},
    {"-ftest-coverage", FlagKind::test_coverage},
    {"-fprofile-arcs", FlagKind::profile_arcs},
    {"-fprofile-generate", FlagKind::profile_arcs},
    {"-fprofile-generate=*", FlagKind::profile_arcs},
    {"-fprofile-instr-generate", FlagKind::profile_arcs},
    {"-fprofile-instr-generate=*", FlagKind::profile_arcs},
    {"-fcs-profile-generate", FlagKind::profile_arcs},
    {"-fcs-profile-generate=*", FlagKind::profile_arcs},
    {"-fprofile-use", FlagKind::profile_use},
    {"-fprofile-instr-use", FlagKind::profile_use},
    {"-fauto-profile", FlagKind::too_hard},
    {"-fstack-usage", FlagKind::stack_usage},
    {"-fcallgraph-info", FlagKind::callgraph_info},
    {"-fcallgraph-info=*", FlagKind::callgraph_info},
    {"-march=native", FlagKind::native_cpu},
    {"-mtune=native", FlagKind::native_cpu},
    {"-mcpu=native", FlagKind::native_cpu},
    // Side outputs kiln does not store, and output that differs every run.
    {"-fdump-*", FlagKind::too_hard},
    {"-fsave-optimization-record", FlagKind::too_hard},
    {"-fsave-optimization-record=*", FlagKind::too_hard},
    {"-foptimization-record-passes=*", FlagKind::too_hard},
    {"-ftime-trace", FlagKind::too_hard},
    {"-ftime-trace=*", FlagKind::too_hard},
    {"-ftime-trace-granularity=*", FlagKind::compiler},
    {"-ftime-report", FlagKind::too_hard},
    {"-ftime-report=*", FlagKind::too_hard},
    {"-ftime-report-details", FlagKind::too_hard},
    {"-fmem-report", FlagKind::too_hard},
    {"-fmem-report-wpa", FlagKind::too_hard},
    {"-fstats", FlagKind::too_hard},
    {"-fproc-stat-report", FlagKind::too_hard},
    {"-fproc-stat-report=*", FlagKind::too_hard},
    {"-fcompare-debug", FlagKind::too_hard},
    {"-fcompare-debug=*", FlagKind::too_hard},
    {"-fcompare-debug-second", FlagKind::too_hard},
    {"-fopt-info*=*", FlagKind::too_hard},
    {"-fdiagnostics-format=sarif-file", FlagKind::too_hard},
    {"-fdiagnostics-format=json-file", FlagKind::too_hard},
    {"-fmodules*", FlagKind::too_hard},
    {"-fmodule-*", FlagKind::too_hard},
    {"-fimplicit-module*", FlagKind::too_hard},
    {"-fprebuilt-module*", FlagKind::too_hard},
    {"-fcxx-modules", FlagKind::too_hard},
    {"-fpch-*", FlagKind::too_hard},
    {"-frepo", FlagKind::too_hard},
    {"-save-temps", FlagKind::too_hard},
    {"-save-temps=*", FlagKind::too_hard},
    {"--save-temps", FlagKind::too_hard},
    {"-save-stats*", FlagKind::too_hard},
    {"-v", FlagKind::too_hard},
    {"-###", FlagKind::too_hard},
    {"-H", FlagKind::too_hard},
    {"-time", FlagKind::too_hard},
    {"-Q", FlagKind::too_hard},
    {"-d*", FlagKind::too_hard},
    {"-print-*", FlagKind::too_hard},
    {"--print-*", FlagKind::too_hard},
    {"-f*-report*", FlagKind::too_hard},
    // Preprocessor flags.
    {"-nostdinc", FlagKind::preprocessor},
    {"-nostdinc++", FlagKind::preprocessor},
    {"-nobuiltininc", FlagKind::preprocessor},
    {"-nostdlibinc", FlagKind::preprocessor},
    {"-undef", FlagKind::preprocessor},
    {"-trigraphs", FlagKind::preprocessor},
    {"-pthread", FlagKind::preprocessor},
    {"-ansi", FlagKind::preprocessor},
    {"-traditional", FlagKind::preprocessor},
    {"-traditional-cpp", FlagKind::preprocessor},
    {"-no-integrated-cpp", FlagKind::preprocessor},
    {"-C", FlagKind::preprocessor},
    {"-CC", FlagKind::preprocessor},
    {"-P", FlagKind::preprocessor},
    {"-openmp", FlagKind::preprocessor},
    {"-fopenmp", FlagKind::preprocessor},
    {"-fopenmp=*", FlagKind::preprocessor},
    {"-fopenmp-simd", FlagKind::preprocessor},
    {"-fopenacc", FlagKind::preprocessor},
    {"-fdirectives-only", FlagKind::preprocessor},
    {"-nogpuinc", FlagKind::preprocessor},
    // Compilation flags without a family below.
    {"-w", FlagKind::compiler},
    {"-p", FlagKind::compiler},
    {"-pg", FlagKind::compiler},
    {"-pedantic", FlagKind::compiler},
    {"-pedantic-errors", FlagKind::compiler},
    {"--pedantic", FlagKind::compiler},
    {"--pedantic-errors", FlagKind::compiler},
    {"-integrated-as", FlagKind::compiler},
    {"-no-integrated-as", FlagKind::compiler},
    {"-Qunused-arguments", FlagKind::compiler},
    {"-Qn", FlagKind::compiler},
    {"-Qy", FlagKind::compiler},
    {"-nogpulib", FlagKind::compiler},
    {"-no-canonical-prefixes", FlagKind::compiler},
    {"--no-warnings", FlagKind::compiler},
    {"--all-warnings", FlagKind::compiler},
    {"--extra-warnings", FlagKind::compiler},
    {"--debug", FlagKind::debug_on},
    {"--optimize", FlagKind::compiler},
    {"--no-line-commands", FlagKind::preprocessor},
    // Linker flags: nothing to do under -c.
    {"-pipe", FlagKind::ignored},
    {"-rdynamic", FlagKind::ignored},
    {"-static", FlagKind::ignored},
    {"-static-*", FlagKind::ignored},
    {"-shared", FlagKind::ignored},
    {"-shared-libgcc", FlagKind::ignored},
    {"-pie", FlagKind::ignored},
    {"-no-pie", FlagKind::ignored},
    {"-static-pie", FlagKind::ignored},
    {"-nostdlib", FlagKind::ignored},
    {"-nostdlib++", FlagKind::ignored},
    {"-nostartfiles", FlagKind::ignored},
    {"-nodefaultlibs", FlagKind::ignored},
    {"-nolibc", FlagKind::ignored},
    {"-s", FlagKind::ignored},
    {"-symbolic", FlagKind::ignored},
    {"-Wl,*", FlagKind::ignored},
};

bool rule_fits(std::string_view rule, std::string_view arg) {
  if (!rule.ends_with('*')) {
    return rule == arg;
  }
  // One '*' at the end, or "a*b*" (prefix a, containing b later).
  std::string_view body = rule.substr(0, rule.size() - 1);
  auto star = body.find('*');
  if (star == std::string_view::npos) {
    return arg.starts_with(body);
  }
  std::string_view head = body.substr(0, star);
  std::string_view middle = body.substr(star + 1);
  return arg.starts_with(head) && arg.find(middle, head.size()) != std::string_view::npos;
}

// -f<name>=<value> options whose value names no file.
constexpr std::string_view k_f_with_value[] = {
    "abi-version",
    "align-functions",
    "align-jumps",
    "align-labels",
    "align-loops",
    "asan-shadow-offset",
    "bracket-depth",
    "cf-protection",
    "clang-abi-compat",
    "color-diagnostics",
    "concepts-diagnostics-depth",
    "constexpr-backtrace-limit",
    "constexpr-cache-depth",
    "constexpr-depth",
    "constexpr-loop-limit",
    "constexpr-ops-limit",
    "constexpr-steps",
    "debug-default-version",
    "denormal-fp-math",
    "diagnostics-color",
    "diagnostics-column-origin",
    "diagnostics-column-unit",
    "diagnostics-format",
    "diagnostics-hotness-threshold",
    "diagnostics-minimum-margin-width",
    "diagnostics-path-format",
    "diagnostics-show-category",
    "diagnostics-show-location",
    "diagnostics-urls",
    "embed-bitcode",
    "emit-dwarf-unwind",
    "error-limit",
    "exec-charset",
    "excess-precision",
    "fp-contract",
    "fp-eval-method",
    "fp-model",
    "ffp-exception-behavior",
    "gnuc-version",
    "inline-limit",
    "input-charset",
    "instrument-functions-exclude-file-list",
    "instrument-functions-exclude-function-list",
    "ira-algorithm",
    "ira-region",
    "ira-verbose",
    "live-patching",
    "lto",
    "lto-compression-level",
    "lto-partition",
    "macro-backtrace-limit",
    "max-errors",
    "max-type-align",
    "message-length",
    "min-function-alignment",
    "ms-compatibility-version",
    "no-sanitize",
    "no-sanitize-recover",
    "no-sanitize-trap",
    "no-sanitize-coverage",
    "objc-abi-version",
    "objc-runtime",
    "openmp-version",
    "pack-struct",
    "patchable-function-entry",
    "permitted-flt-eval-methods",
    "profile-exclude-files",
    "profile-filter-files",
    "profile-reproducible",
    "profile-update",
    "random-seed",
    "sanitize",
    "sanitize-address-field-padding",
    "sanitize-address-use-after-return",
    "sanitize-coverage",
    "sanitize-memory-track-origins",
    "sanitize-recover",
    "sanitize-trap",
    "sched-stalled-insns",
    "sched-stalled-insns-dep",
    "simd-cost-model",
    "spell-checking-limit",
    "stack-check",
    "stack-limit-register",
    "stack-limit-symbol",
    "stack-protector-guard",
    "stack-reuse",
    "strict-flex-arrays",
    "symbol-partition",
    "tabstop",
    "template-backtrace-limit",
    "template-depth",
    "tls-model",
    "trapv-handler",
    "trivial-auto-var-init",
    "trivial-auto-var-init-stop-after",
    "vect-cost-model",
    "visibility",
    "wide-exec-charset",
    "xray-function-groups",
    "xray-instruction-threshold",
    "xray-instrumentation-bundle",
    "xray-selected-function-group",
    "zero-call-used-regs",
};

// Assembler options (-Wa,X) that read and write nothing but the object.
constexpr std::string_view k_safe_assembler_options[] = {
    "--noexecstack",
    "--execstack",
    "-mrelax-relocations=yes",
    "-mrelax-relocations=no",
    "--compress-debug-sections",
    "--compress-debug-sections=none",
    "--compress-debug-sections=zlib",
    "--compress-debug-sections=zlib-gnu",
    "--compress-debug-sections=zlib-gabi",
    "--nocompress-debug-sections",
    "-mbranches-within-32B-boundaries",
    "--fatal-warnings",
    "--warn",
    "--no-warn",
    "-W",
    "--64",
    "--32",
    "-g",
    "--gdwarf-2",
    "--gdwarf-3",
    "--gdwarf-4",
    "--gdwarf-5",
    "--generate-missing-build-notes=yes",
    "--generate-missing-build-notes=no",
};

// Every comma-separated part of -Wa,... is in the list above.
bool safe_assembler_flags(std::string_view list) {
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    std::string_view part =
        list.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    // -a[cdghlmns]: a listing on stdout, which kiln stores (-a...=FILE is not).
    bool listing_to_stdout = part.starts_with("-a") && part.find('=') == std::string_view::npos;
    if (!listing_to_stdout &&
        std::find(std::begin(k_safe_assembler_options), std::end(k_safe_assembler_options), part) ==
            std::end(k_safe_assembler_options)) {
      return false;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    pos = comma + 1;
  }
  return true;
}

bool is_word(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '+' || c == '.';
  });
}

}  // namespace

const OptionSpec* find_separate_option(std::string_view arg) {
  return find_longest(arg, false);
}

const OptionSpec* find_joined_option(std::string_view arg) {
  return find_longest(arg, true);
}

std::optional<FlagKind> exact_flag(std::string_view arg) {
  for (const auto& rule : k_flag_rules) {
    if (rule.name == arg) {
      return rule.kind;
    }
  }
  return std::nullopt;
}

FlagKind classify_flag(std::string_view arg) {
  for (const auto& rule : k_flag_rules) {
    if (rule_fits(rule.name, arg)) {
      return rule.kind;
    }
  }
  // Families of flags that name no file and write nothing but the object.
  if (arg.starts_with("-Wa,")) {
    return safe_assembler_flags(arg.substr(4)) ? FlagKind::compiler : FlagKind::unknown;
  }
  if (arg.starts_with("-O")) {
    return is_word(arg.substr(2)) || arg == "-O" ? FlagKind::compiler : FlagKind::unknown;
  }
  if (arg.starts_with("-W") && !arg.starts_with("-Wp,")) {
    // Warnings: -Wname, -Wno-name, -Wname=value (values are numbers and words).
    std::string_view body = arg.substr(2);
    auto eq = body.find('=');
    return is_word(body.substr(0, eq)) ? FlagKind::compiler : FlagKind::unknown;
  }
  if (arg.starts_with("-m")) {
    // Target flags: -mname, -mno-name, -mname=value.
    std::string_view body = arg.substr(2);
    auto eq = body.find('=');
    return is_word(body.substr(0, eq)) ? FlagKind::compiler : FlagKind::unknown;
  }
  if (arg.starts_with("-f")) {
    std::string_view body = arg.substr(2);
    auto eq = body.find('=');
    if (eq == std::string_view::npos) {
      return is_word(body) ? FlagKind::compiler : FlagKind::unknown;
    }
    std::string_view name = body.substr(0, eq);
    if (name.starts_with("no-") && name != "no-sanitize" && !name.starts_with("no-sanitize-")) {
      name = name.substr(3);
    }
    bool known = std::find(std::begin(k_f_with_value), std::end(k_f_with_value), name) !=
                 std::end(k_f_with_value);
    return known ? FlagKind::compiler : FlagKind::unknown;
  }
  return FlagKind::unknown;
}

}  // namespace kiln::compiler
