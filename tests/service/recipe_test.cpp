#include "kiln/service/recipe.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "kiln/util/file.hpp"
#include "kiln/util/process.hpp"
#include "kiln/util/string.hpp"
#include "postgres_server.hpp"

namespace kiln::service {
namespace {

const char* const k_full = R"(
sources = ["main.cc", "src/util.cc", "src/add.c"]
include_dirs = ["include"]
defines = ["NDEBUG", "LEVEL=2"]
flags = ["-O2", "-Wall"]
link_flags = ["-static-libstdc++"]
libraries = ["m", "pthread"]
cxx_standard = 17
c_standard = 11
)";

std::string generate(std::string_view toml, std::string_view target = "app") {
  auto text = cmakelists_from_recipe(toml, target);
  EXPECT_TRUE(text) << (text ? "" : text.error());
  return text.value_or("");
}

std::string error_of(std::string_view toml, std::string_view target = "app") {
  auto text = cmakelists_from_recipe(toml, target);
  EXPECT_FALSE(text) << toml;
  return text ? "(accepted)\n" + *text : text.error();
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

TEST(Recipe, FullRecipe) {
  const std::string text = generate(k_full);
  for (const char* expected : {
           "cmake_minimum_required(VERSION 3.16)\n",
           "project(kiln_program LANGUAGES C CXX)\n",
           "add_executable(\"app\"\n  \"main.cc\"\n  \"src/util.cc\"\n  \"src/add.c\"\n)\n",
           "set_target_properties(\"app\" PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON "
           "CXX_EXTENSIONS OFF C_STANDARD 11 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)\n",
           "target_include_directories(\"app\" PRIVATE\n  "
           "\"${CMAKE_CURRENT_SOURCE_DIR}/include\"\n)\n",
           "target_compile_definitions(\"app\" PRIVATE\n  \"NDEBUG\"\n  \"LEVEL=2\"\n)\n",
           "target_compile_options(\"app\" PRIVATE\n  \"-O2\"\n  \"-Wall\"\n)\n",
           "target_link_options(\"app\" PRIVATE\n  \"-static-libstdc++\"\n)\n",
           "target_link_libraries(\"app\" PRIVATE\n  \"-lm\"\n  \"-lpthread\"\n)\n",
       }) {
    EXPECT_TRUE(contains(text, expected)) << "missing:\n" << expected << "\nin:\n" << text;
  }
}

TEST(Recipe, OnlySources) {
  const std::string text = generate("sources = [\"a.cpp\", \"b.cxx\", \"c.C\"]");
  EXPECT_TRUE(contains(text, "project(kiln_program LANGUAGES CXX)\n")) << text;
  EXPECT_TRUE(contains(text, "add_executable(\"app\"\n  \"a.cpp\"\n  \"b.cxx\"\n  \"c.C\"\n)"))
      << text;
  for (const char* absent :
       {"set_target_properties", "target_include_directories", "target_compile_definitions",
        "target_compile_options", "target_link_options", "target_link_libraries"}) {
    EXPECT_FALSE(contains(text, absent)) << text;
  }
  EXPECT_TRUE(contains(generate("sources = [\"x.c\"]"), "LANGUAGES C)\n"));
}

TEST(Recipe, SourcesAreRequired) {
  EXPECT_EQ(error_of(""), "'sources' is required");
  EXPECT_EQ(error_of("flags = [\"-O2\"]"), "'sources' is required");
  EXPECT_EQ(error_of("sources = []"), "'sources' must name at least one file");
}

TEST(Recipe, PathsAreRelativeWithoutDotDot) {
  EXPECT_EQ(error_of("sources = [\"../x.cc\"]"), "sources[0] \"../x.cc\" must not contain '..'");
  EXPECT_EQ(error_of("sources = [\"a.cc\", \"src/../../x.cc\"]"),
            "sources[1] \"src/../../x.cc\" must not contain '..'");
  EXPECT_EQ(error_of("sources = [\"/etc/x.cc\"]"),
            "sources[0] \"/etc/x.cc\" must be a relative path");
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\ninclude_dirs = [\"/usr/include\"]"),
            "include_dirs[0] \"/usr/include\" must be a relative path");
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\ninclude_dirs = [\"..\"]"),
            "include_dirs[0] \"..\" must not contain '..'");
  EXPECT_EQ(error_of("sources = [\"\"]"), "sources[0] is empty");
}

TEST(Recipe, SourcesAreCOrCxx) {
  EXPECT_EQ(error_of("sources = [\"a.cc\", \"a.h\"]"),
            "sources[1] \"a.h\" is not a C or C++ source (.c .cc .cpp .cxx .C)");
  EXPECT_EQ(error_of("sources = [\"Makefile\"]"),
            "sources[0] \"Makefile\" is not a C or C++ source (.c .cc .cpp .cxx .C)");
}

TEST(Recipe, BadTypes) {
  EXPECT_EQ(error_of("sources = \"main.cc\""), "'sources' must be an array of strings");
  EXPECT_EQ(error_of("sources = [\"a.cc\", 3]"), "sources[1] must be a string");
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\nflags = [[\"-O2\"]]"), "flags[0] must be a string");
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\ncxx_standard = \"17\""),
            "'cxx_standard' must be an integer");
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\ncxx_standard = 18"),
            "'cxx_standard' must be one of 11, 14, 17, 20, 23");
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\nc_standard = 23"),
            "'c_standard' must be one of 99, 11, 17");
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\nsource = [\"b.cc\"]"),
            "unknown key 'source' (known: sources, include_dirs, defines, flags, link_flags, "
            "libraries, cxx_standard, c_standard)");
  EXPECT_TRUE(contains(error_of("sources = [\"a.cc\""), "kiln-program.toml, line "));
}

TEST(Recipe, LibrariesAndDefines) {
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\nlibraries = [\"m; rm -rf /\"]"),
            "libraries[0] \"m; rm -rf /\" must be a library name of [A-Za-z0-9_.+-]");
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\nlibraries = [\"/usr/lib/libx.so\"]"),
            "libraries[0] \"/usr/lib/libx.so\" must be a library name of [A-Za-z0-9_.+-]");
  EXPECT_TRUE(
      contains(generate("sources = [\"a.cc\"]\nlibraries = [\"stdc++fs\", \"boost_x-1.8\"]"),
               "\"-lstdc++fs\"\n  \"-lboost_x-1.8\""));
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\ndefines = [\"1X\"]"),
            "defines[0] \"1X\" must be NAME or NAME=value");
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\ndefines = [\"=1\"]"),
            "defines[0] \"=1\" must be NAME or NAME=value");
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\ndefines = [\"X=#y\"]"),
            "defines[0] must not contain '#'");
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\ndefines = [\"X=$(y)\"]"),
            "defines[0] must not contain \"$(\"");
}

TEST(Recipe, InjectionAttempts) {
  // A newline would end the argument and the command: refused outright.
  EXPECT_EQ(error_of(R"(sources = ["a.cc\")\nexecute_process(COMMAND touch /tmp/pwned)\n#"])"),
            "sources[0] contains a newline or another control character");
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\nflags = [\"-O2\\r\"]"),
            "flags[0] contains a newline or another control character");
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\nflags = [\"\\u0000\"]"),
            "flags[0] contains a newline or another control character");
  EXPECT_EQ(error_of("sources = [\"a.cc\"]\nflags = [\"$<TARGET_FILE:app>\"]"),
            "flags[0] contains \"$<\": generator expressions are not allowed");

  // On one line, quotes, variable references and list separators are
  // escaped: they reach the value as characters.
  const std::string text = generate(R"(
sources = ["a.cc\") execute_process(COMMAND touch /tmp/pwned) #.cc"]
defines = ["X=${CMAKE_COMMAND}", "Y=$ENV{HOME}", "Z=a;b", "W=\\"]
flags = ["-DQ=\"q\""]
)");
  EXPECT_TRUE(contains(text, "  \"a.cc\\\") execute_process(COMMAND touch /tmp/pwned) #.cc\"\n"))
      << text;
  EXPECT_TRUE(contains(text, "  \"X=\\${CMAKE_COMMAND}\"\n")) << text;
  EXPECT_TRUE(contains(text, "  \"Y=\\$ENV{HOME}\"\n")) << text;
  EXPECT_TRUE(contains(text, "  \"Z=a\\;b\"\n")) << text;
  EXPECT_TRUE(contains(text, "  \"W=\\\\\"\n")) << text;
  EXPECT_TRUE(contains(text, "  \"-DQ=\\\"q\\\"\"\n")) << text;
}

TEST(Recipe, TargetNames) {
  for (const std::string& good : {std::string("app"), std::string("a"), std::string("my_app-2.0+x"),
                                  std::string("A1"), std::string(128, 'x')}) {
    EXPECT_TRUE(valid_target_name(good)) << good;
  }
  for (const std::string& bad :
       {std::string(), std::string(129, 'x'), std::string(".app"), std::string("-app"),
        std::string("a b"), std::string("a/b"), std::string("a\"b"), std::string("a;b"),
        std::string("a$b"), std::string("all"), std::string("clean"), std::string("help"),
        std::string("install"), std::string("test"), std::string("build.ninja"),
        std::string("CMakeCache.txt")}) {
    EXPECT_FALSE(valid_target_name(bad)) << bad;
  }
  EXPECT_EQ(error_of("sources = [\"a.cc\"]", "a b"), "invalid target name \"a b\"");
}

// The program's path in PATH (run_capture does not search it); empty when
// there is none.
std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (const std::string& dir : util::split(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return {};
}

// The generated CMakeLists.txt, built for real: C and C++ mixed, an include
// directory, a library, and defines with the characters CMake treats
// specially, which must reach the program unchanged.
TEST(Recipe, BuildsWithCMake) {
  const std::string cmake = find_program("cmake");
  ASSERT_FALSE(cmake.empty()) << "cmake is not in PATH";
  ASSERT_FALSE(find_program("ninja").empty()) << "ninja is not in PATH";
  const std::string dir = test::make_temp_dir("kiln-recipe");
  ASSERT_FALSE(dir.empty());
  const std::string src = dir + "/src dir";
  ASSERT_TRUE(util::make_directories(src + "/include"));
  ASSERT_TRUE(util::make_directories(src + "/lib"));
  ASSERT_TRUE(util::write_file(src + "/include/add.h",
                               "#pragma once\n"
                               "#ifdef __cplusplus\nextern \"C\"\n#endif\n"
                               "int add(int a, int b);\n"));
  ASSERT_TRUE(util::write_file(src + "/lib/add.c",
                               "#include \"add.h\"\n"
                               "#if __STDC_VERSION__ != 201112L\n#error not C11\n#endif\n"
                               "int add(int a, int b) { return a + b; }\n"));
  ASSERT_TRUE(util::write_file(src + "/main.cc",
                               "#include <cmath>\n#include <cstdio>\n#include \"add.h\"\n"
                               "#if __cplusplus != 201703L\n#error not C++17\n#endif\n"
                               "int main() {\n"
                               "  std::printf(\"%d %s %d %.0f\\n\", add(LEVEL, 40), GREETING,\n"
                               "              FLAG, std::sqrt(16.0));\n"
                               "}\n"));
  const std::string toml = R"(
sources = ["main.cc", "lib/add.c"]
include_dirs = ["include"]
defines = ["LEVEL=2", 'GREETING="hi; ${USER} $HOME \\ \"q\" `x`"']
flags = ["-O1", "-DFLAG=7"]
libraries = ["m"]
cxx_standard = 17
c_standard = 11
)";
  auto text = cmakelists_from_recipe(toml, "hello");
  ASSERT_TRUE(text) << text.error();
  ASSERT_TRUE(util::write_file(src + "/CMakeLists.txt", *text));

  const std::string build = dir + "/build";
  auto configure = util::run_capture({cmake, "-S", src, "-B", build, "-G", "Ninja"});
  ASSERT_TRUE(configure);
  ASSERT_EQ(configure->exit_code, 0) << configure->out << configure->err << *text;
  EXPECT_EQ(configure->err, "") << *text;  // no warning either (CMake warns of dropped defines)
  auto built = util::run_capture({cmake, "--build", build});
  ASSERT_TRUE(built);
  ASSERT_EQ(built->exit_code, 0) << built->out << built->err;
  auto ran = util::run_capture({build + "/hello"});
  ASSERT_TRUE(ran);
  EXPECT_EQ(ran->exit_code, 0);
  EXPECT_EQ(ran->out, "42 hi; ${USER} $HOME \\ \"q\" `x` 7 4\n");

  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

}  // namespace
}  // namespace kiln::service
