#include "kiln/compiler/args.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "kiln/util/file.hpp"

namespace kiln::compiler {
namespace {

using Args = std::vector<std::string>;

const ArgsOptions k_no_base{"/home/u/proj/build", ""};
const ArgsOptions k_with_base{"/home/u/proj/build", "/home/u/proj"};

ProcessedArgs run(const Args& args, Family family = Family::gcc,
                  const ArgsOptions& options = k_no_base) {
  return process_args(args, family, options);
}

// The classified argument whose first token is `first`, or nullptr.
const ClassifiedArg* find_arg(const ProcessedArgs& p, std::string_view first) {
  for (const auto& a : p.args) {
    if (!a.tokens.empty() && a.tokens[0] == first) {
      return &a;
    }
  }
  return nullptr;
}

// --- Cacheable calls and uncacheable reasons ---

TEST(ArgsTest, PlainCompileIsCacheable) {
  ProcessedArgs p = run({"-c", "src/a.c", "-o", "obj/a.o", "-O2"});
  EXPECT_EQ(p.uncacheable, Uncacheable::none) << p.detail;
  EXPECT_EQ(p.source, "src/a.c");
  EXPECT_EQ(p.output, "obj/a.o");
  EXPECT_EQ(p.language, "c");
  EXPECT_FALSE(p.assemble_only);
  EXPECT_FALSE(p.generating_dependencies);
  EXPECT_TRUE(p.depfile.empty());
  EXPECT_TRUE(p.dwo_file.empty());
  EXPECT_TRUE(p.gcno_file.empty());
}

TEST(ArgsTest, DefaultOutputIsBaseNameOfSource) {
  ProcessedArgs p = run({"-c", "src/dir.v2/a.cpp"});
  EXPECT_EQ(p.uncacheable, Uncacheable::none) << p.detail;
  EXPECT_EQ(p.output, "a.o");
  EXPECT_EQ(p.language, "c++");
}

TEST(ArgsTest, WithoutDashCIsALink) {
  ProcessedArgs p = run({"a.c", "-o", "a"});
  EXPECT_EQ(p.uncacheable, Uncacheable::called_for_link);
}

TEST(ArgsTest, DashSWithoutDashCIsCacheableAndWritesAssembly) {
  ProcessedArgs p = run({"-S", "src/a.c"});
  EXPECT_EQ(p.uncacheable, Uncacheable::none) << p.detail;
  EXPECT_TRUE(p.assemble_only);
  EXPECT_EQ(p.output, "a.s");
}

TEST(ArgsTest, DashEIsPreprocessing) {
  ProcessedArgs p = run({"-c", "-E", "a.c"});
  EXPECT_EQ(p.uncacheable, Uncacheable::called_for_preprocessing);
  EXPECT_EQ(p.detail, "-E");
}

TEST(ArgsTest, DashMWithoutDashMDIsPreprocessing) {
  EXPECT_EQ(run({"-c", "-M", "a.c"}).uncacheable, Uncacheable::called_for_preprocessing);
  EXPECT_EQ(run({"-c", "-MM", "a.c"}).uncacheable, Uncacheable::called_for_preprocessing);
  ProcessedArgs md = run({"-c", "-MD", "a.c"});
  EXPECT_EQ(md.uncacheable, Uncacheable::none) << md.detail;
  EXPECT_TRUE(md.generating_dependencies);
  EXPECT_FALSE(md.system_deps_omitted);
  ProcessedArgs mmd = run({"-c", "-MMD", "a.c"});
  EXPECT_EQ(mmd.uncacheable, Uncacheable::none) << mmd.detail;
  EXPECT_TRUE(mmd.generating_dependencies);
  EXPECT_TRUE(mmd.system_deps_omitted);
}

TEST(ArgsTest, MultipleSourcesAreUncacheable) {
  ProcessedArgs p = run({"-c", "a.c", "b.c"});
  EXPECT_EQ(p.uncacheable, Uncacheable::multiple_source_files);
  EXPECT_EQ(p.detail, "b.c");
}

TEST(ArgsTest, LinkingTakesPrecedenceOverMultipleSources) {
  EXPECT_EQ(run({"a.c", "b.c", "-o", "prog"}).uncacheable, Uncacheable::called_for_link);
}

TEST(ArgsTest, NoInputFile) {
  EXPECT_EQ(run({"-c", "-O2"}).uncacheable, Uncacheable::no_input_file);
  EXPECT_EQ(run({}).uncacheable, Uncacheable::no_input_file);
}

TEST(ArgsTest, StdinInputIsUncacheable) {
  EXPECT_EQ(run({"-c", "-x", "c", "-", "-o", "a.o"}).uncacheable, Uncacheable::stdin_input);
  EXPECT_EQ(run({"-c", "-"}).uncacheable, Uncacheable::stdin_input);
}

TEST(ArgsTest, OutputToStdoutIsUncacheable) {
  ProcessedArgs p = run({"-c", "a.c", "-o", "-"});
  EXPECT_EQ(p.uncacheable, Uncacheable::output_to_stdout);
}

TEST(ArgsTest, OutputGivenTwiceIsUncacheable) {
  EXPECT_EQ(run({"-c", "a.c", "-o", "a.o", "-ob.o"}).uncacheable, Uncacheable::unsupported_option);
}

TEST(ArgsTest, SeparateOptionWithoutValueIsUncacheable) {
  ProcessedArgs p = run({"-c", "a.c", "-I"});
  EXPECT_EQ(p.uncacheable, Uncacheable::unsupported_option);
  EXPECT_EQ(p.detail, "-I without a value");
}

TEST(ArgsTest, UnknownLanguageIsUncacheable) {
  EXPECT_EQ(run({"-c", "-x", "fortran", "a.f"}).uncacheable, Uncacheable::unsupported_language);
  EXPECT_EQ(run({"-c", "-xada", "a.adb"}).uncacheable, Uncacheable::unsupported_language);
  EXPECT_EQ(run({"-c", "a.f90"}).uncacheable, Uncacheable::unsupported_language);
  EXPECT_EQ(run({"-c", "noextension"}).uncacheable, Uncacheable::unsupported_language);
}

TEST(ArgsTest, ExplicitLanguageOverridesExtension) {
  ProcessedArgs p = run({"-c", "-x", "c++", "a.weird"});
  EXPECT_EQ(p.uncacheable, Uncacheable::none) << p.detail;
  EXPECT_EQ(p.language, "c++");
  // -x none goes back to the extension.
  ProcessedArgs q = run({"-c", "-x", "c++", "-x", "none", "a.c"});
  EXPECT_EQ(q.uncacheable, Uncacheable::none) << q.detail;
  EXPECT_EQ(q.language, "c");
}

TEST(ArgsTest, AssemblerWithoutPreprocessingIsUnsupported) {
  EXPECT_EQ(run({"-c", "a.s"}).uncacheable, Uncacheable::unsupported_language);
  EXPECT_EQ(run({"-c", "-x", "assembler", "a.asm"}).uncacheable, Uncacheable::unsupported_language);
  ProcessedArgs cpp_asm = run({"-c", "a.S"});
  EXPECT_EQ(cpp_asm.uncacheable, Uncacheable::none) << cpp_asm.detail;
  EXPECT_EQ(cpp_asm.language, "assembler-with-cpp");
}

TEST(ArgsTest, PreprocessedInputIsUnsupported) {
  EXPECT_EQ(run({"-c", "a.i"}).uncacheable, Uncacheable::unsupported_language);
  EXPECT_EQ(run({"-c", "a.ii"}).uncacheable, Uncacheable::unsupported_language);
}

TEST(ArgsTest, CompilingAHeaderIsAPrecompiledHeader) {
  EXPECT_EQ(run({"-c", "a.h"}).uncacheable, Uncacheable::precompiled_header);
  EXPECT_EQ(run({"-c", "inc/a.hpp", "-o", "a.hpp.gch"}).uncacheable,
            Uncacheable::precompiled_header);
  EXPECT_EQ(run({"-c", "a.hxx"}).uncacheable, Uncacheable::precompiled_header);
  EXPECT_EQ(run({"-c", "-x", "c++-header", "a.inl"}).uncacheable, Uncacheable::precompiled_header);
  // A header compiled as a source file with an explicit -x is an ordinary compile.
  ProcessedArgs p = run({"-c", "-x", "c++", "a.h", "-o", "a.o"});
  EXPECT_EQ(p.uncacheable, Uncacheable::none) << p.detail;
}

TEST(ArgsTest, TooHardOptionsAreUnsupported) {
  for (const char* opt :
       {"-save-temps", "-save-temps=obj", "--save-temps", "-fmodules", "-fmodule-map-file=x",
        "-frepo", "-fauto-profile", "-fdump-tree-all", "-ftime-trace", "-fsave-optimization-record",
        "-v", "-H", "-ftime-report", "-dA", "-fcompare-debug"}) {
    ProcessedArgs p = run({"-c", opt, "a.c"});
    EXPECT_EQ(p.uncacheable, Uncacheable::unsupported_option) << opt;
    EXPECT_EQ(p.detail, opt);
  }
  EXPECT_EQ(run({"-c", "-Xpreprocessor", "-foo", "a.c"}).uncacheable,
            Uncacheable::unsupported_option);
}

TEST(ArgsTest, DependencyOptionsPassedToThePreprocessor) {
  ProcessedArgs md = run({"-c", "-Wp,-MD,dir/a.d", "a.c", "-o", "o/a.o"});
  EXPECT_EQ(md.uncacheable, Uncacheable::none) << md.detail;
  EXPECT_TRUE(md.generating_dependencies);
  EXPECT_FALSE(md.system_deps_omitted);
  EXPECT_EQ(md.depfile, "dir/a.d");
  EXPECT_TRUE(md.dep_target_given);  // the target is the source's, kept verbatim
  ProcessedArgs mmd = run({"-c", "-Wp,-MMD,a.d", "a.c"});
  EXPECT_TRUE(mmd.system_deps_omitted);
  ProcessedArgs p = run({"-c", "-Wp,-DX", "a.c"});
  EXPECT_EQ(p.uncacheable, Uncacheable::none) << p.detail;
  ASSERT_NE(find_arg(p, "-Wp,-DX"), nullptr);
  EXPECT_EQ(find_arg(p, "-Wp,-DX")->cls, ArgClass::preprocessor);
  EXPECT_EQ(run({"-c", "-Wp,-fdump-x", "a.c"}).uncacheable, Uncacheable::unknown_option);
}

// --- The option table: an allow-list ---

TEST(ArgsTest, UnknownOptionsAreNotCached) {
  for (const char* opt : {"-fnew-thing=/some/file", "-Zfoo", "-fplugin-arg-x-y=z", "--frobnicate",
                          "-Wa,-adhln=list.txt", "-Wa,--MD,x.d", "-O2x/y", "-Xclang"}) {
    ProcessedArgs p = run({"-c", opt, "x", "a.c"});
    EXPECT_NE(p.uncacheable, Uncacheable::none) << opt;
  }
  ProcessedArgs p = run({"-c", "-fnew-thing=/some/file", "a.c"});
  EXPECT_EQ(p.uncacheable, Uncacheable::unknown_option);
  EXPECT_EQ(p.detail, "-fnew-thing=/some/file");
}

TEST(ArgsTest, FamiliesWithoutFilesAreKnown) {
  for (const char* opt : {"-fno-exceptions",
                          "-ffunction-sections",
                          "-fvisibility=hidden",
                          "-fsanitize=address",
                          "-Wno-unused",
                          "-Wframe-larger-than=1000",
                          "-mavx2",
                          "-mno-red-zone",
                          "-mtune=generic",
                          "-O3",
                          "-Os",
                          "-Og",
                          "-ggdb3",
                          "-gdwarf-4",
                          "-Wa,--noexecstack",
                          "-fdiagnostics-color=always",
                          "-fmessage-length=0",
                          "-fno-sanitize-recover=all",
                          "-openmp",
                          "-undef",
                          "-fopenmp"}) {
    ProcessedArgs p = run({"-c", opt, "a.c"});
    EXPECT_EQ(p.uncacheable, Uncacheable::none) << opt << ": " << p.detail;
  }
  // -openmp is a flag, not "-o penmp"; -undef is not "-u ndef".
  EXPECT_EQ(run({"-c", "-openmp", "a.c"}).output, "a.o");
  EXPECT_EQ(run({"-c", "-undef", "a.c"}).args[1].cls, ArgClass::preprocessor);
}

TEST(ArgsTest, OptionsNamingInputFilesPutThemInTheKey) {
  ProcessedArgs p = run({"-c", "-fplugin=./p.so", "-specs=x.specs", "--specs", "y.specs",
                         "-fsanitize-ignorelist=ign.txt", "-fsanitize-blacklist=bl.txt",
                         "-fprofile-sample-use=s.prof", "a.c"});
  EXPECT_EQ(p.uncacheable, Uncacheable::none) << p.detail;
  EXPECT_EQ(p.input_files, (Args{"./p.so", "x.specs", "y.specs", "ign.txt", "bl.txt", "s.prof"}));
  ProcessedArgs b = run({"-c", "-B", "tools/", "-Bmore", "a.c"});
  EXPECT_EQ(b.tool_dirs, (Args{"tools/", "more"}));
}

TEST(ArgsTest, ProfileUseNamesTheProfile) {
  EXPECT_EQ(run({"-c", "-fprofile-use", "a.c", "-o", "o/x.o"}).input_files, (Args{"o/x.gcda"}));
  EXPECT_EQ(run({"-c", "-fprofile-use=/p", "a.c", "-o", "/b/o/x.o"}).input_files,
            (Args{"/p/#b#o#x.gcda"}));
  EXPECT_EQ(run({"-c", "-fprofile-use=f.profdata", "a.c"}, Family::clang).input_files,
            (Args{"f.profdata"}));
  EXPECT_EQ(run({"-c", "-fprofile-instr-use", "a.c"}, Family::clang).input_files,
            (Args{"default.profdata"}));
}

TEST(ArgsTest, OutputsByEveryName) {
  EXPECT_EQ(run({"-c", "a.c", "--output=o/y.o"}).output, "o/y.o");
  EXPECT_EQ(run({"-c", "a.c", "--output", "o/z.o"}).output, "o/z.o");
  ProcessedArgs side = run({"-c", "a.c", "-o", "o/a.obj", "-fstack-usage", "-fcallgraph-info"});
  EXPECT_EQ(side.stack_usage_file, "o/a.su");
  EXPECT_EQ(side.callgraph_file, "o/a.ci");
  ProcessedArgs deps = run({"-c", "a.c", "-o", "o/a.o", "--write-dependencies"});
  EXPECT_TRUE(deps.generating_dependencies);
  EXPECT_EQ(deps.depfile, "o/a.d");
  EXPECT_TRUE(run({"-c", "a.c", "--write-user-dependencies"}).system_deps_omitted);
}

TEST(ArgsTest, CommandLineRecorders) {
  for (const char* opt :
       {"-frecord-command-line", "-grecord-command-line", "-frecord-gcc-switches"}) {
    EXPECT_TRUE(run({"-c", opt, "a.c"}).records_command_line) << opt;
  }
  EXPECT_FALSE(run({"-c", "-g", "a.c"}).records_command_line);
}

TEST(ArgsTest, SyntaxOnlyHasNoOutput) {
  EXPECT_EQ(run({"-c", "-fsyntax-only", "a.c"}).uncacheable, Uncacheable::no_output);
}

TEST(ArgsTest, SeveralArchesAreUnsupported) {
  EXPECT_EQ(run({"-c", "-arch", "x86_64", "a.c"}, Family::clang).uncacheable, Uncacheable::none);
  EXPECT_EQ(run({"-c", "-arch", "x86_64", "-arch", "arm64", "a.c"}, Family::clang).uncacheable,
            Uncacheable::unsupported_option);
}

TEST(ArgsTest, FirstReasonWins) {
  // -E comes before the missing -c.
  ProcessedArgs p = run({"-E", "a.c", "b.c"});
  EXPECT_EQ(p.uncacheable, Uncacheable::called_for_preprocessing);
}

TEST(ArgsTest, UncacheableNames) {
  EXPECT_EQ(to_string(Uncacheable::none), "none");
  EXPECT_EQ(to_string(Uncacheable::called_for_link), "called_for_link");
  EXPECT_EQ(to_string(Uncacheable::stdin_input), "stdin_input");
  EXPECT_EQ(to_string(Uncacheable::dependency_env), "dependency_env");
  EXPECT_EQ(to_string(Uncacheable::bad_response_file), "bad_response_file");
}

// --- Dependency files ---

TEST(ArgsTest, DepfileDefaultsToOutputWithDotD) {
  ProcessedArgs p = run({"-c", "-MD", "src/x.c", "-o", "obj/x.o"});
  EXPECT_EQ(p.uncacheable, Uncacheable::none) << p.detail;
  EXPECT_TRUE(p.generating_dependencies);
  EXPECT_EQ(p.depfile, "obj/x.d");
  EXPECT_FALSE(p.dep_target_given);
}

TEST(ArgsTest, DepfileDefaultsToSourceBaseNameWithoutOutput) {
  ProcessedArgs p = run({"-c", "-MMD", "src/x.cpp"});
  EXPECT_EQ(p.depfile, "x.d");
  EXPECT_EQ(p.output, "x.o");
}

TEST(ArgsTest, DepfileOfOutputWithoutExtension) {
  EXPECT_EQ(run({"-c", "-MD", "x.c", "-o", "obj/x"}).depfile, "obj/x.d");
  // A dot in a directory name is not an extension.
  EXPECT_EQ(run({"-c", "-MD", "x.c", "-o", "obj.dir/x"}).depfile, "obj.dir/x.d");
}

TEST(ArgsTest, DepfileFromSeparateMF) {
  ProcessedArgs p = run({"-c", "-MD", "-MF", "deps/x.dep", "x.c", "-o", "obj/x.o"});
  EXPECT_EQ(p.depfile, "deps/x.dep");
  const ClassifiedArg* mf = find_arg(p, "-MF");
  ASSERT_NE(mf, nullptr);
  EXPECT_EQ(mf->tokens, (std::vector<std::string>{"-MF", "deps/x.dep"}));
  EXPECT_EQ(mf->cls, ArgClass::dependency);
}

TEST(ArgsTest, DepfileFromJoinedMF) {
  ProcessedArgs p = run({"-c", "-MMD", "-MFdeps/x.dep", "x.c"});
  EXPECT_EQ(p.depfile, "deps/x.dep");
  const ClassifiedArg* mf = find_arg(p, "-MFdeps/x.dep");
  ASSERT_NE(mf, nullptr);
  EXPECT_EQ(mf->tokens.size(), 1u);
  EXPECT_EQ(mf->cls, ArgClass::dependency);
}

TEST(ArgsTest, MTAndMQSetDepTargetGiven) {
  EXPECT_TRUE(run({"-c", "-MD", "-MT", "tgt", "x.c"}).dep_target_given);
  EXPECT_TRUE(run({"-c", "-MD", "-MTtgt", "x.c"}).dep_target_given);
  EXPECT_TRUE(run({"-c", "-MD", "-MQ", "tgt", "x.c"}).dep_target_given);
  EXPECT_TRUE(run({"-c", "-MD", "-MQ$tgt", "x.c"}).dep_target_given);
  EXPECT_FALSE(run({"-c", "-MD", "-MP", "x.c"}).dep_target_given);
}

// --- Split DWARF and coverage ---

TEST(ArgsTest, SplitDwarfNamesTheDwoAfterTheOutput) {
  ProcessedArgs p = run({"-c", "-g", "-gsplit-dwarf", "src/x.c", "-o", "obj/x.o"});
  EXPECT_TRUE(p.debug_info);
  EXPECT_TRUE(p.split_dwarf);
  EXPECT_EQ(p.dwo_file, "obj/x.dwo");
  EXPECT_EQ(run({"-c", "-g", "-gsplit-dwarf", "src/x.c"}).dwo_file, "x.dwo");
}

TEST(ArgsTest, SplitDwarfNeedsDebugInfoForClangOnly) {
  // gcc 12 writes a .dwo for -gsplit-dwarf alone; clang needs -g as well.
  ProcessedArgs gcc = run({"-c", "-gsplit-dwarf", "x.c", "-o", "x.o"}, Family::gcc);
  EXPECT_TRUE(gcc.split_dwarf);
  EXPECT_EQ(gcc.dwo_file, "x.dwo");
  ProcessedArgs clang = run({"-c", "-gsplit-dwarf", "x.c", "-o", "x.o"}, Family::clang);
  EXPECT_FALSE(clang.split_dwarf);
  EXPECT_TRUE(clang.dwo_file.empty());
  ProcessedArgs clang_g = run({"-c", "-gsplit-dwarf", "-g", "x.c", "-o", "x.o"}, Family::clang);
  EXPECT_TRUE(clang_g.split_dwarf);
  EXPECT_EQ(clang_g.dwo_file, "x.dwo");
  // -g0 turns debug info off again.
  EXPECT_FALSE(run({"-c", "-gsplit-dwarf", "-g", "-g0", "x.c"}, Family::clang).split_dwarf);
  // No .dwo when only assembling.
  EXPECT_FALSE(run({"-S", "-g", "-gsplit-dwarf", "x.c"}, Family::gcc).split_dwarf);
}

// gcc 12 and clang 14 write no .dwo for "-g -gsplit-dwarf -gno-split-dwarf".
TEST(ArgsTest, NoSplitDwarfCancelsSplitDwarf) {
  ProcessedArgs p = run({"-c", "-g", "-gsplit-dwarf", "-gno-split-dwarf", "x.c"});
  EXPECT_TRUE(p.debug_info);
  EXPECT_TRUE(p.dwo_file.empty());
}

TEST(ArgsTest, DebugInfoFlags) {
  EXPECT_TRUE(run({"-c", "-g", "x.c"}).debug_info);
  EXPECT_TRUE(run({"-c", "-ggdb3", "x.c"}).debug_info);
  EXPECT_FALSE(run({"-c", "-g", "-g0", "x.c"}).debug_info);
  EXPECT_FALSE(run({"-c", "-gz", "x.c"}).debug_info);
  EXPECT_FALSE(run({"-c", "-gz=zlib", "x.c"}).debug_info);
  EXPECT_FALSE(run({"-c", "x.c"}).debug_info);
}

TEST(ArgsTest, CoverageNamesTheGcnoAfterTheOutput) {
  ProcessedArgs p = run({"-c", "--coverage", "src/x.c", "-o", "obj/x.o"});
  EXPECT_TRUE(p.coverage);
  EXPECT_TRUE(p.profile_arcs);
  EXPECT_EQ(p.gcno_file, "obj/x.gcno");
  ProcessedArgs t = run({"-c", "-ftest-coverage", "x.c"});
  EXPECT_TRUE(t.coverage);
  EXPECT_FALSE(t.profile_arcs);
  EXPECT_EQ(t.gcno_file, "x.gcno");
  ProcessedArgs a = run({"-c", "-fprofile-arcs", "x.c"});
  EXPECT_FALSE(a.coverage);
  EXPECT_TRUE(a.profile_arcs);
  EXPECT_TRUE(a.gcno_file.empty());
  EXPECT_TRUE(run({"-c", "-fprofile-generate=dir", "x.c"}).profile_arcs);
}

TEST(ArgsTest, NativeCpuAndPrefixMaps) {
  EXPECT_TRUE(run({"-c", "-march=native", "x.c"}).uses_native_cpu);
  EXPECT_TRUE(run({"-c", "-mtune=native", "x.c"}).uses_native_cpu);
  EXPECT_TRUE(run({"-c", "-mcpu=native", "x.c"}).uses_native_cpu);
  EXPECT_FALSE(run({"-c", "-march=x86-64-v2", "x.c"}).uses_native_cpu);
  EXPECT_EQ(run({"-c", "-fdebug-prefix-map=/a=/b", "x.c"}).prefix_maps, (Args{"/a=/b"}));
  EXPECT_EQ(run({"-c", "-ffile-prefix-map=/a=.", "x.c"}).prefix_maps, (Args{"/a=."}));
  EXPECT_TRUE(run({"-c", "x.c"}).prefix_maps.empty());
}

// --- Include directories ---

TEST(ArgsTest, EveryIncludeDirFormIsCacheable) {
  ProcessedArgs p =
      run({"-c", "-isystem", "sys1", "-Ia", "-idirafter", "after", "-iquote", "quote1", "-I", "b",
           "-isystemsys2", "-iquotequote2", "-idirafterafter2", "-I/abs/../inc", "x.c"},
          Family::gcc, {"/p", ""});
  EXPECT_EQ(p.uncacheable, Uncacheable::none) << p.detail;
}

TEST(ArgsTest, IncludeDirTokensKeepTheirSpelling) {
  ProcessedArgs p = run({"-c", "-Ia", "-I", "b", "x.c"});
  ASSERT_NE(find_arg(p, "-Ia"), nullptr);
  EXPECT_EQ(find_arg(p, "-Ia")->tokens.size(), 1u);
  EXPECT_EQ(find_arg(p, "-Ia")->cls, ArgClass::preprocessor);
  const ClassifiedArg* sep = find_arg(p, "-I");
  ASSERT_NE(sep, nullptr);
  EXPECT_EQ(sep->tokens, (std::vector<std::string>{"-I", "b"}));
  EXPECT_EQ(sep->cls, ArgClass::preprocessor);
}

TEST(ArgsTest, OtherIOptionsAreNotIncludeDirs) {
  ProcessedArgs p =
      run({"-c", "-include", "pre.h", "-imacros", "m.h", "x.c"}, Family::gcc, {"/p", ""});
  ASSERT_NE(find_arg(p, "-include"), nullptr);
  EXPECT_EQ(find_arg(p, "-include")->tokens, (std::vector<std::string>{"-include", "pre.h"}));
  EXPECT_EQ(find_arg(p, "-include")->cls, ArgClass::preprocessor);
}

// --- base_dir ---

// base_dir rewriting looks at the file system (a rewritten path must name the
// same file): these tests lay out a real tree.
class BaseDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-basedir-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    m_root = tmpl;
    for (const char* d : {"proj/src", "proj/include", "proj/build/gen", "proj/build/obj",
                          "proj/sysroot", "other", "real/d1/d2", "real/d1/inc", "proj/inc"}) {
      std::filesystem::create_directories(m_root + "/" + d);
    }
    std::filesystem::create_directory_symlink(m_root + "/real/d1/d2", m_root + "/proj/L");
    m_opt = {m_root + "/proj/build", m_root + "/proj"};
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(m_root, ec);
  }
  std::string m_root;
  ArgsOptions m_opt;
};

TEST_F(BaseDirTest, RewritesAbsolutePathsUnderIt) {
  const std::string p_ = m_root + "/proj";
  ProcessedArgs p = run({"-c", p_ + "/src/a.c", "-I" + p_ + "/include", "-I", p_ + "/build/gen",
                         "-o", p_ + "/build/obj/a.o", "-MD", "-MF", p_ + "/build/a.d", "-include",
                         p_ + "/src/pre.h", "--sysroot=" + p_ + "/sysroot"},
                        Family::gcc, m_opt);
  EXPECT_EQ(p.uncacheable, Uncacheable::none) << p.detail;
  EXPECT_EQ(p.source, "../src/a.c");
  EXPECT_EQ(p.output, "obj/a.o");
  EXPECT_EQ(p.depfile, "a.d");
  EXPECT_NE(find_arg(p, "-I../include"), nullptr);
  ASSERT_NE(find_arg(p, "-I"), nullptr);
  EXPECT_EQ(find_arg(p, "-I")->tokens[1], "gen");
  ASSERT_NE(find_arg(p, "-include"), nullptr);
  EXPECT_EQ(find_arg(p, "-include")->tokens[1], "../src/pre.h");
  EXPECT_NE(find_arg(p, "--sysroot=../sysroot"), nullptr);
  EXPECT_EQ(p.compile_argv("cc"),
            (std::vector<std::string>{"cc", "-c", "../src/a.c", "-I../include", "-I", "gen", "-o",
                                      "obj/a.o", "-MD", "-MF", "a.d", "-include", "../src/pre.h",
                                      "--sysroot=../sysroot"}));
}

TEST_F(BaseDirTest, LeavesPathsOutsideItAbsolute) {
  ProcessedArgs p = run({"-c", m_root + "/other/a.c", "-I/usr/include/foo", "-o", "/tmp/a.o"},
                        Family::gcc, m_opt);
  EXPECT_EQ(p.source, m_root + "/other/a.c");
  EXPECT_EQ(p.output, "/tmp/a.o");
  EXPECT_NE(find_arg(p, "-I/usr/include/foo"), nullptr);
}

TEST_F(BaseDirTest, NormalizesBeforeComparing) {
  ProcessedArgs p = run({"-c", m_root + "/other/../proj/src/a.c"}, Family::gcc, m_opt);
  EXPECT_EQ(p.source, "../src/a.c");
}

TEST_F(BaseDirTest, KeepsAPathWhoseRewriteNamesAnotherFile) {
  // proj/L/../inc is real/d1/inc, while the lexical proj/inc is another directory.
  std::string through_link = m_root + "/proj/L/../inc";
  ProcessedArgs p = run({"-c", "x.c", "-I" + through_link}, Family::gcc, m_opt);
  EXPECT_NE(find_arg(p, "-I" + through_link), nullptr);
  // A path that does not exist yet is compared through its deepest existing parent.
  ProcessedArgs q = run({"-c", "x.c", "-o", m_root + "/proj/L/../new/x.o"}, Family::gcc, m_opt);
  EXPECT_EQ(q.output, m_root + "/proj/L/../new/x.o");
  ProcessedArgs r = run({"-c", "x.c", "-o", m_root + "/proj/build/new/x.o"}, Family::gcc, m_opt);
  EXPECT_EQ(r.output, "new/x.o");
}

TEST(ArgsTest, BaseDirDoesNotTouchRelativePathsOrNonPathValues) {
  ProcessedArgs p =
      run({"-c", "src/a.c", "-DDIR=/home/u/proj/x", "-I../inc"}, Family::gcc, k_with_base);
  EXPECT_EQ(p.source, "src/a.c");
  EXPECT_NE(find_arg(p, "-DDIR=/home/u/proj/x"), nullptr);
  EXPECT_NE(find_arg(p, "-I../inc"), nullptr);
}

TEST(ArgsTest, NoBaseDirMeansNoRewriting) {
  ProcessedArgs p = run({"-c", "/home/u/proj/src/a.c", "-o", "/home/u/proj/build/a.o"});
  EXPECT_EQ(p.source, "/home/u/proj/src/a.c");
  EXPECT_EQ(p.output, "/home/u/proj/build/a.o");
}

// --- Classification ---

TEST(ArgsTest, ClassifiesTypicalOptions) {
  ProcessedArgs p =
      run({"-c",  "-DX=1",      "-UY",    "-std=c++20", "-nostdinc", "-pthread",
           "-O2", "-Wall",      "-fPIC",  "-g",         "-pipe",     "-Wl,-rpath,/x",
           "-lm", "-L/usr/lib", "-o",     "a.o",        "-MD",       "-MP",
           "-MT", "t",          "-mllvm", "-x-opt=1",   "--param",   "max-inline-insns=10",
           "-x",  "c++",        "a.cc"});
  EXPECT_EQ(p.uncacheable, Uncacheable::none) << p.detail;
  struct Expect {
    const char* first;
    ArgClass cls;
    size_t tokens;
  };
  const Expect expected[] = {
      {"-c", ArgClass::ignored, 1},
      {"-DX=1", ArgClass::preprocessor, 1},
      {"-UY", ArgClass::preprocessor, 1},
      {"-std=c++20", ArgClass::preprocessor, 1},
      {"-nostdinc", ArgClass::preprocessor, 1},
      {"-pthread", ArgClass::preprocessor, 1},
      {"-O2", ArgClass::compiler, 1},
      {"-Wall", ArgClass::compiler, 1},
      {"-fPIC", ArgClass::compiler, 1},
      {"-g", ArgClass::compiler, 1},
      {"-pipe", ArgClass::ignored, 1},
      {"-Wl,-rpath,/x", ArgClass::ignored, 1},
      {"-lm", ArgClass::ignored, 1},
      {"-L/usr/lib", ArgClass::ignored, 1},
      {"-o", ArgClass::output, 2},
      {"-MD", ArgClass::dependency, 1},
      {"-MP", ArgClass::dependency, 1},
      {"-MT", ArgClass::dependency, 2},
      {"-mllvm", ArgClass::compiler, 2},
      {"--param", ArgClass::compiler, 2},
      {"-x", ArgClass::preprocessor, 2},
      {"a.cc", ArgClass::input, 1},
  };
  ASSERT_EQ(p.args.size(), std::size(expected));
  for (size_t i = 0; i < std::size(expected); ++i) {
    EXPECT_EQ(p.args[i].tokens[0], expected[i].first) << i;
    EXPECT_EQ(p.args[i].cls, expected[i].cls) << expected[i].first;
    EXPECT_EQ(p.args[i].tokens.size(), expected[i].tokens) << expected[i].first;
  }
}

TEST(ArgsTest, CompileArgvIsTheCommandLine) {
  Args args{"-c", "-DX", "-I", "inc", "a.c", "-o", "a.o", "-MD", "-MFa.d"};
  ProcessedArgs p = run(args);
  Args expected{"/usr/bin/gcc"};
  expected.insert(expected.end(), args.begin(), args.end());
  EXPECT_EQ(p.compile_argv("/usr/bin/gcc"), expected);
}

TEST(ArgsTest, PreprocessArgvDropsOutputsAndDependencyOptions) {
  ProcessedArgs p = run({"-c", "-MD", "-MF", "a.d", "-MT", "t", "-MP", "-o", "a.o", "-O2", "-DX",
                         "-I", "inc", "a.c", "-Wl,-z,now", "-MQa"});
  EXPECT_EQ(p.preprocess_argv("cc"), (Args{"cc", "-O2", "-DX", "-I", "inc", "a.c", "-E"}));
  ProcessedArgs s = run({"-S", "a.c", "-oa.s", "-std=c11"});
  EXPECT_EQ(s.preprocess_argv("cc"), (Args{"cc", "a.c", "-std=c11", "-E"}));
}

TEST(ArgsTest, LanguageForExtension) {
  EXPECT_EQ(language_for_extension("a.c"), "c");
  EXPECT_EQ(language_for_extension("dir.x/a.cpp"), "c++");
  for (const char* f : {"a.cc", "a.cxx", "a.c++", "a.C", "a.cp", "a.CPP"}) {
    EXPECT_EQ(language_for_extension(f), "c++") << f;
  }
  EXPECT_EQ(language_for_extension("a.m"), "objective-c");
  EXPECT_EQ(language_for_extension("a.mm"), "objective-c++");
  EXPECT_EQ(language_for_extension("a.M"), "objective-c++");
  EXPECT_EQ(language_for_extension("a.S"), "assembler-with-cpp");
  EXPECT_EQ(language_for_extension("a.sx"), "assembler-with-cpp");
  EXPECT_EQ(language_for_extension("a.s"), "assembler");
  EXPECT_EQ(language_for_extension("a.i"), "cpp-output");
  EXPECT_EQ(language_for_extension("a.ii"), "c++-cpp-output");
  EXPECT_EQ(language_for_extension("a.h"), "c-header");
  EXPECT_EQ(language_for_extension("a.hpp"), "c++-header");
  EXPECT_EQ(language_for_extension("a.f90"), "");
  EXPECT_EQ(language_for_extension("dir.c/noext"), "");
}

// --- Response files ---

TEST(ArgsTest, SplitResponseFileQuoting) {
  EXPECT_EQ(split_response_file("  -c\ta.c\n-o  a.o \r\n"), (Args{"-c", "a.c", "-o", "a.o"}));
  EXPECT_EQ(split_response_file(R"(-DA="x y" 'single "q"' back\ slash "" -c)"),
            (Args{"-DA=x y", "single \"q\"", "back slash", "", "-c"}));
  EXPECT_EQ(split_response_file(R"("a\"b" 'c\'d')"), (Args{"a\"b", "c'd"}));
  EXPECT_EQ(split_response_file("ab\"cd ef\"gh"), (Args{"abcd efgh"}));
  EXPECT_TRUE(split_response_file("").empty());
  EXPECT_TRUE(split_response_file(" \n\t ").empty());
}

class ResponseFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-args-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(m_dir, ec);
  }
  void write(const std::string& name, const std::string& text) {
    ASSERT_TRUE(util::write_file(m_dir + "/" + name, text));
  }

  std::string m_dir;
};

TEST_F(ResponseFileTest, ExpandsInPlace) {
  write("args.rsp", "-DNAME=\"a b\" -I 'inc dir'\n-O2\n");
  Args args{"-c", "@args.rsp", "x.c"};
  ASSERT_TRUE(expand_response_files(&args, m_dir));
  EXPECT_EQ(args, (Args{"-c", "-DNAME=a b", "-I", "inc dir", "-O2", "x.c"}));
  ProcessedArgs p = run(args, Family::gcc, {m_dir, ""});
  EXPECT_EQ(p.uncacheable, Uncacheable::none) << p.detail;
}

TEST_F(ResponseFileTest, ExpandsNestedFiles) {
  write("outer.rsp", "-DOUTER @inner.rsp -DAFTER");
  write("inner.rsp", "-DINNER1 \"@" + m_dir + "/innermost.rsp\" -DINNER2");
  write("innermost.rsp", "-DDEEPEST");
  Args args{"@" + m_dir + "/outer.rsp", "-c"};
  ASSERT_TRUE(expand_response_files(&args, m_dir));
  EXPECT_EQ(args, (Args{"-DOUTER", "-DINNER1", "-DDEEPEST", "-DINNER2", "-DAFTER", "-c"}));
}

TEST_F(ResponseFileTest, EmptyResponseFileExpandsToNothing) {
  write("empty.rsp", "");
  Args args{"-c", "@empty.rsp", "x.c"};
  ASSERT_TRUE(expand_response_files(&args, m_dir));
  EXPECT_EQ(args, (Args{"-c", "x.c"}));
}

TEST_F(ResponseFileTest, UnreadableFileFails) {
  Args args{"-c", "@missing.rsp", "x.c"};
  EXPECT_FALSE(expand_response_files(&args, m_dir));
  write("nested.rsp", "@missing.rsp");
  Args nested{"@nested.rsp"};
  EXPECT_FALSE(expand_response_files(&nested, m_dir));
  // A directory cannot be read, even by root.
  ASSERT_EQ(::mkdir((m_dir + "/dir.rsp").c_str(), 0755), 0);
  Args dir{"@dir.rsp"};
  EXPECT_FALSE(expand_response_files(&dir, m_dir));
  if (::geteuid() != 0) {
    write("secret.rsp", "-O2");
    ASSERT_EQ(::chmod((m_dir + "/secret.rsp").c_str(), 0), 0);
    Args unreadable{"@secret.rsp"};
    EXPECT_FALSE(expand_response_files(&unreadable, m_dir));
  }
}

TEST_F(ResponseFileTest, SelfIncludingFileFailsInsteadOfLooping) {
  write("loop.rsp", "-DX @loop.rsp");
  Args args{"@loop.rsp"};
  EXPECT_FALSE(expand_response_files(&args, m_dir));
}

TEST_F(ResponseFileTest, LoneAtSignIsAnOrdinaryArgument) {
  Args args{"-c", "@", "x.c"};
  ASSERT_TRUE(expand_response_files(&args, m_dir));
  EXPECT_EQ(args, (Args{"-c", "@", "x.c"}));
}

}  // namespace
}  // namespace kiln::compiler
