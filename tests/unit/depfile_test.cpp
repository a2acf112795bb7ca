#include "kiln/cache/depfile.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kiln::cache {
namespace {

using Strings = std::vector<std::string>;

TEST(DepfileTest, SimpleRule) {
  Depfile d = parse_depfile("obj/a.o: src/a.c include/a.h /usr/include/stdio.h\n");
  EXPECT_EQ(d.targets, (Strings{"obj/a.o"}));
  EXPECT_EQ(d.prerequisites, (Strings{"src/a.c", "include/a.h", "/usr/include/stdio.h"}));
}

TEST(DepfileTest, LineContinuations) {
  Depfile d = parse_depfile(
      "a.o: a.c \\\n"
      "  b.h \\\n"
      " c.h\\\n"
      "d.h\n");
  EXPECT_EQ(d.targets, (Strings{"a.o"}));
  EXPECT_EQ(d.prerequisites, (Strings{"a.c", "b.h", "c.h", "d.h"}));
}

TEST(DepfileTest, CrLfContinuations) {
  Depfile d = parse_depfile("a.o: a.c \\\r\n  b.h\r\n");
  EXPECT_EQ(d.targets, (Strings{"a.o"}));
  EXPECT_EQ(d.prerequisites, (Strings{"a.c", "b.h"}));
}

TEST(DepfileTest, EscapedSpacesHashesAndDollars) {
  Depfile d = parse_depfile(
      "my\\ obj.o: dir\\ with\\ spaces/a.c x\\#y.h cost$$.h back\\\\\\ slash.h plain\\path.h\n");
  EXPECT_EQ(d.targets, (Strings{"my obj.o"}));
  EXPECT_EQ(d.prerequisites, (Strings{"dir with spaces/a.c", "x#y.h", "cost$.h", "back\\ slash.h",
                                      "plain\\path.h"}));
}

TEST(DepfileTest, MultipleTargets) {
  Depfile d = parse_depfile("a.o a.d: a.c a.h\n");
  EXPECT_EQ(d.targets, (Strings{"a.o", "a.d"}));
  EXPECT_EQ(d.prerequisites, (Strings{"a.c", "a.h"}));
}

TEST(DepfileTest, SpaceBeforeColon) {
  Depfile d = parse_depfile("a.o : a.c\n");
  EXPECT_EQ(d.targets, (Strings{"a.o"}));
  EXPECT_EQ(d.prerequisites, (Strings{"a.c"}));
}

TEST(DepfileTest, PhonyRulesFromMPAddNothing) {
  Depfile d = parse_depfile(
      "obj/a.o: a.c a.h \\\n"
      " b.h\n"
      "\n"
      "a.h:\n"
      "\n"
      "b.h:\n");
  EXPECT_EQ(d.targets, (Strings{"obj/a.o"}));
  EXPECT_EQ(d.prerequisites, (Strings{"a.c", "a.h", "b.h"}));
}

TEST(DepfileTest, LaterRulesAddPrerequisitesButNotTargets) {
  Depfile d = parse_depfile("a.o: a.c a.h\nother.o: a.h extra.h\n");
  EXPECT_EQ(d.targets, (Strings{"a.o"}));
  EXPECT_EQ(d.prerequisites, (Strings{"a.c", "a.h", "extra.h"}));
}

TEST(DepfileTest, DuplicatesAreReportedOnce) {
  Depfile d = parse_depfile("a.o: a.c a.h a.h \\\n a.c\n");
  EXPECT_EQ(d.prerequisites, (Strings{"a.c", "a.h"}));
}

TEST(DepfileTest, NoTrailingNewlineAndTabs) {
  Depfile d = parse_depfile("a.o:\ta.c\ta.h");
  EXPECT_EQ(d.targets, (Strings{"a.o"}));
  EXPECT_EQ(d.prerequisites, (Strings{"a.c", "a.h"}));
}

TEST(DepfileTest, GarbageNeverFails) {
  EXPECT_TRUE(parse_depfile("").targets.empty());
  EXPECT_TRUE(parse_depfile("").prerequisites.empty());
  Depfile no_colon = parse_depfile("just some words\n");
  EXPECT_TRUE(no_colon.prerequisites.empty());
  Depfile trailing_backslash = parse_depfile("a.o: a.c\\");
  EXPECT_EQ(trailing_backslash.targets, (Strings{"a.o"}));
  EXPECT_EQ(trailing_backslash.prerequisites, (Strings{"a.c\\"}));
  for (std::string s : {":", "::::", "\\", "$", "$$", "\n\n\n", "a:\\\n"}) {
    Depfile d = parse_depfile(s);
    EXPECT_LE(d.prerequisites.size(), 1u) << s;
  }
}

TEST(DepfileTest, EscapeTargetRoundTrips) {
  EXPECT_EQ(escape_target("obj/a.o"), "obj/a.o");
  EXPECT_EQ(escape_target("my obj.o"), "my\\ obj.o");
  EXPECT_EQ(escape_target("a\tb.o"), "a\\\tb.o");
  EXPECT_EQ(escape_target("cost$.o"), "cost$$.o");
  EXPECT_EQ(escape_target("x#y.o"), "x\\#y.o");
  // Backslashes before a space are doubled, others left alone.
  EXPECT_EQ(escape_target("a\\ b.o"), "a\\\\\\ b.o");
  EXPECT_EQ(escape_target("a\\b.o"), "a\\b.o");
  for (std::string target : {"obj/a.o", "my obj.o", "cost$.o", "x#y.o", "a\\ b.o"}) {
    Depfile d = parse_depfile(escape_target(target) + ": a.c\n");
    EXPECT_EQ(d.targets, (Strings{target})) << target;
    EXPECT_EQ(d.prerequisites, (Strings{"a.c"})) << target;
  }
}

// gcc (libcpp/mkdeps.cc, munge) escapes a tab like a space, with a backslash.
TEST(DepfileTest, ParsesAnEscapedTab) {
  Depfile d = parse_depfile("a.o: " + escape_target("tab\there.h") + " b.h\n");
  EXPECT_EQ(d.prerequisites, (Strings{"tab\there.h", "b.h"}));
}

// gcc doubles only the backslashes that precede a space or tab; two
// backslashes elsewhere are two characters of the name.
TEST(DepfileTest, KeepsBackslashesNotBeforeWhitespace) {
  Depfile d = parse_depfile("a.o: two\\\\slashes.h\n");
  EXPECT_EQ(d.prerequisites, (Strings{"two\\\\slashes.h"}));
}

TEST(DepfileTest, IncludesFromLinemarkers) {
  const std::string out =
      "# 0 \"src/a.c\"\n"
      "# 0 \"<built-in>\"\n"
      "# 0 \"<command-line>\"\n"
      "# 1 \"/usr/include/stdc-predef.h\" 1 3 4\n"
      "# 0 \"<command-line>\" 2\n"
      "# 1 \"src/a.c\"\n"
      "# 1 \"include/a.h\" 1\n"
      "int a;\n"
      "# 2 \"src/a.c\" 2\n"
      "#line 5 \"gen/x.h\"\n"
      "# 1 \"dir with spaces/b.h\" 1\n"
      "# 1 \"quote\\\"d.h\" 1\n"
      "int main() { return 0; }\n";
  EXPECT_EQ(includes_from_cpp_output(out),
            (Strings{"src/a.c", "/usr/include/stdc-predef.h", "include/a.h", "gen/x.h",
                     "dir with spaces/b.h", "quote\"d.h"}));
}

TEST(DepfileTest, PragmasAndOtherDirectivesAreNotIncludes) {
  const std::string out =
      "#pragma GCC diagnostic ignored \"-Wfoo\"\n"
      "#pragma once\n"
      "# pragma message \"hello\"\n"
      "#ident \"v1\"\n"
      "#define X \"y\"\n"
      "#1 \"glued.h\"\n"
      "# 12\n"
      "# 12 \"\"\n"
      "# 12 unquoted.h\n"
      "  # 1 \"indented.h\"\n"
      "x = \"# 1 \\\"inside.h\\\"\";\n"
      "# 3 \"real.h\" 2\n";
  EXPECT_EQ(includes_from_cpp_output(out), (Strings{"real.h"}));
}

TEST(DepfileTest, IncludesWithoutTrailingNewline) {
  EXPECT_EQ(includes_from_cpp_output("# 1 \"a.h\""), (Strings{"a.h"}));
  EXPECT_TRUE(includes_from_cpp_output("").empty());
  EXPECT_TRUE(includes_from_cpp_output("#").empty());
  EXPECT_TRUE(includes_from_cpp_output("# 1 \"unterminated").size() <= 1);
}

}  // namespace
}  // namespace kiln::cache
