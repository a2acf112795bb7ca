#include "kiln/cache/file_checker.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "kiln/util/file.hpp"
#include "kiln/util/hash.hpp"
#include "temp_dir.hpp"

namespace kiln::cache {
namespace {

ContentInfo scan(std::string_view data) {
  ContentInfo info;
  scan_time_macros(data, &info);
  return info;
}

TEST(FileCheckerTest, ScanFindsDate) {
  ContentInfo info = scan("const char* d = __DATE__;");
  EXPECT_TRUE(info.has_date);
  EXPECT_FALSE(info.has_time);
}

TEST(FileCheckerTest, ScanFindsTimeAndTimestamp) {
  ContentInfo time = scan("const char* t = __TIME__;");
  EXPECT_FALSE(time.has_date);
  EXPECT_TRUE(time.has_time);
  ContentInfo stamp = scan("__TIMESTAMP__");
  EXPECT_FALSE(stamp.has_date);
  EXPECT_TRUE(stamp.has_time);
  ContentInfo both = scan("__TIME__ x __DATE__");
  EXPECT_TRUE(both.has_date);
  EXPECT_TRUE(both.has_time);
}

TEST(FileCheckerTest, ScanIgnoresLookAlikes) {
  for (std::string_view text : {"", "_", "__", "__DATE_", "_DATE__", "__TIME", "DATE__ TIME__",
                                "__DATA__", "__TIMES__", "__date__", "__ DATE__"}) {
    ContentInfo info = scan(text);
    EXPECT_FALSE(info.has_date) << text;
    EXPECT_FALSE(info.has_time) << text;
  }
}

TEST(FileCheckerTest, ScanFindsMacrosAfterOtherUnderscores) {
  EXPECT_TRUE(scan("__x__ __DATE__").has_date);
  EXPECT_TRUE(scan("____DATE__").has_date);
  EXPECT_TRUE(scan("__FILE__ __LINE__ __TIME__").has_time);
  // At the very end of the data.
  EXPECT_TRUE(scan(std::string(1000, 'x') + "__DATE__").has_date);
}

TEST(FileCheckerTest, ScanOnlyAddsFlags) {
  ContentInfo info;
  info.has_date = true;
  scan_time_macros("nothing here", &info);
  EXPECT_TRUE(info.has_date);
}

class FileCheckerFsTest : public kiln::testing::TempDirTest {
 protected:
};

TEST_F(FileCheckerFsTest, HashesContentOnceAndFindsMacros) {
  ASSERT_TRUE(util::write_file(m_dir + "/a.h", "const char* d = __DATE__;\n"));
  FileChecker checker(m_dir);
  const auto& first = checker.content("a.h");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->digest, util::Hasher().update("const char* d = __DATE__;\n").finish());
  EXPECT_TRUE(first->has_date);
  EXPECT_FALSE(first->has_time);
  EXPECT_EQ(checker.files_hashed(), 1);
  // Memoized: a change on disk is not seen by the same checker.
  ASSERT_TRUE(util::write_file(m_dir + "/a.h", "changed"));
  const auto& second = checker.content("a.h");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->digest, first->digest);
  EXPECT_EQ(checker.files_hashed(), 1);
  // The absolute spelling is a different key.
  const auto& absolute = checker.content(m_dir + "/a.h");
  ASSERT_TRUE(absolute);
  EXPECT_EQ(absolute->digest, util::Hasher().update("changed").finish());
  EXPECT_EQ(checker.files_hashed(), 2);
}

TEST_F(FileCheckerFsTest, UnreadableContentIsNullopt) {
  FileChecker checker(m_dir);
  EXPECT_FALSE(checker.content("missing.h"));
  EXPECT_EQ(checker.files_hashed(), 0);
}

TEST_F(FileCheckerFsTest, StatIsRelativeToCwdAndMemoized) {
  ASSERT_TRUE(util::write_file(m_dir + "/a.h", "12345"));
  FileChecker checker(m_dir);
  const util::FileStat& st = checker.stat("a.h");
  EXPECT_TRUE(st.is_regular());
  EXPECT_EQ(st.size, 5);
  EXPECT_FALSE(checker.stat("missing.h").exists());
  ASSERT_EQ(::unlink((m_dir + "/a.h").c_str()), 0);
  EXPECT_TRUE(checker.stat("a.h").exists());
  EXPECT_FALSE(FileChecker(m_dir).stat("a.h").exists());
}

TEST_F(FileCheckerFsTest, Absolute) {
  FileChecker checker("/work/dir");
  EXPECT_EQ(checker.absolute("a/b.h"), "/work/dir/a/b.h");
  EXPECT_EQ(checker.absolute("/usr/include/x.h"), "/usr/include/x.h");
  EXPECT_EQ(checker.absolute(""), "");
}

}  // namespace
}  // namespace kiln::cache
