#include "kiln/cache/diagnostics.hpp"

#include <gtest/gtest.h>

namespace kiln::cache {
namespace {

TEST(DiagnosticsTest, StripsColoursOnlyWhenNotShown) {
  const std::string gcc =
      "\x1b[01m\x1b[Kw.c:1:17:\x1b[m\x1b[K \x1b[01;35m\x1b[Kwarning: \x1b[m\x1b[Kunused\n";
  EXPECT_EQ(restyle_diagnostics(gcc, false), "w.c:1:17: warning: unused\n");
  EXPECT_EQ(restyle_diagnostics(gcc, true), gcc);
  const std::string clang = "\x1b[1mw.c:1:17: \x1b[0m\x1b[0;1;35mwarning: \x1b[0m\n";
  EXPECT_EQ(restyle_diagnostics(clang, false), "w.c:1:17: warning: \n");
}

TEST(DiagnosticsTest, KeepsOtherEscapesAndCutSequences) {
  // Not colour sequences: kept byte for byte.
  EXPECT_EQ(restyle_diagnostics("a\x1b]8;;x\x1b\\b", false), "a\x1b]8;;x\x1b\\b");
  EXPECT_EQ(restyle_diagnostics("a\x1b[2Jb", false), "a\x1b[2Jb");
  EXPECT_EQ(restyle_diagnostics("a\x1b[01", false), "a\x1b[01");
  EXPECT_EQ(restyle_diagnostics("\x1b", false), "\x1b");
  EXPECT_EQ(restyle_diagnostics("", false), "");
}

TEST(DiagnosticsTest, ColourOptionsPerFamily) {
  EXPECT_EQ(colour_options(compiler::Family::gcc),
            (std::vector<std::string>{"-fdiagnostics-color=always"}));
  EXPECT_EQ(colour_options(compiler::Family::clang),
            (std::vector<std::string>{"-fcolor-diagnostics"}));
  EXPECT_TRUE(colour_options(compiler::Family::unknown).empty());
}

}  // namespace
}  // namespace kiln::cache
