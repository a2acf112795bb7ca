#include "kiln/util/path.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

namespace kiln::util {
namespace {

TEST(PathTest, DirAndBaseName) {
  EXPECT_EQ(dir_name("a/b/c.h"), "a/b");
  EXPECT_EQ(dir_name("c.h"), ".");
  EXPECT_EQ(dir_name("/c.h"), "/");
  EXPECT_EQ(base_name("a/b/c.h"), "c.h");
  EXPECT_EQ(base_name("c.h"), "c.h");
  EXPECT_EQ(base_name("a/"), "");
}

TEST(PathTest, JoinPath) {
  EXPECT_EQ(join_path("a", "b"), "a/b");
  EXPECT_EQ(join_path("a/", "b"), "a/b");
  EXPECT_EQ(join_path("", "b"), "b");
  EXPECT_EQ(join_path("a", "/abs"), "/abs");
  EXPECT_EQ(join_path("/", "b"), "/b");
}

TEST(PathTest, PathComponentsLeaveOutEmptyNames) {
  EXPECT_EQ(path_components("/usr//lib/"), (std::vector<std::string>{"usr", "lib"}));
  EXPECT_EQ(path_components("a/b"), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(path_components("/").empty());
  EXPECT_TRUE(path_components("").empty());
}

TEST(PathTest, Normalize) {
  EXPECT_EQ(normalize("/a//b/./c/"), "/a/b/c");
  EXPECT_EQ(normalize("/a/b/../c"), "/a/c");
  EXPECT_EQ(normalize("/.."), "/");
  EXPECT_EQ(normalize("/../a"), "/a");
  EXPECT_EQ(normalize("/"), "/");
  EXPECT_EQ(normalize("//"), "/");
  EXPECT_EQ(normalize(""), ".");
  EXPECT_EQ(normalize("."), ".");
  EXPECT_EQ(normalize("./a"), "a");
  EXPECT_EQ(normalize("a/.."), ".");
  EXPECT_EQ(normalize("a/../.."), "..");
  EXPECT_EQ(normalize("../../a/./b"), "../../a/b");
  EXPECT_EQ(normalize("a/b/../../../c"), "../c");
  EXPECT_EQ(normalize("/usr/lib/gcc/x86_64-linux-gnu/12/../../../../include/c++/12"),
            "/usr/include/c++/12");
}

TEST(PathTest, Absolute) {
  EXPECT_EQ(absolute("x.c", "/home/u"), "/home/u/x.c");
  EXPECT_EQ(absolute("../x.c", "/home/u/"), "/home/x.c");
  EXPECT_EQ(absolute("/abs/./x.c", "/home/u"), "/abs/x.c");
  EXPECT_EQ(absolute(".", "/home/u"), "/home/u");
  EXPECT_EQ(absolute("", "/home/u"), "/home/u");
}

TEST(PathTest, Relative) {
  EXPECT_EQ(relative("/a/b/c", "/a/d"), "../b/c");
  EXPECT_EQ(relative("/a/b/c", "/a/b"), "c");
  EXPECT_EQ(relative("/a/b", "/a/b"), ".");
  EXPECT_EQ(relative("/a", "/a/b/c"), "../..");
  EXPECT_EQ(relative("/x/y", "/"), "x/y");
  EXPECT_EQ(relative("/", "/a/b"), "../..");
  EXPECT_EQ(relative("/ab/c", "/a"), "../ab/c");
  for (auto [to, from] :
       {std::pair{"/a/b/c", "/a/d/e"}, std::pair{"/x", "/y/z"}, std::pair{"/a/b", "/a/b/c/d"}}) {
    EXPECT_EQ(absolute(relative(to, from), from), to) << to << " from " << from;
  }
}

TEST(PathTest, IsUnder) {
  EXPECT_TRUE(is_under("/a/b", "/a"));
  EXPECT_TRUE(is_under("/a", "/a"));
  EXPECT_TRUE(is_under("/a/b/c", "/a/b"));
  EXPECT_FALSE(is_under("/ab", "/a"));
  EXPECT_FALSE(is_under("/a", "/a/b"));
  EXPECT_FALSE(is_under("/b/a", "/a"));
  EXPECT_TRUE(is_under("/anything", "/"));
  EXPECT_TRUE(is_under("/", "/"));
  EXPECT_FALSE(is_under("relative", "/"));
}

class PathFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-path-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
    m_old_cwd = std::filesystem::current_path().string();
    const char* pwd = std::getenv("PWD");
    if (pwd) {
      m_old_pwd = pwd;
    }
  }
  void TearDown() override {
    ASSERT_EQ(::chdir(m_old_cwd.c_str()), 0);
    if (m_old_pwd) {
      ::setenv("PWD", m_old_pwd->c_str(), 1);
    } else {
      ::unsetenv("PWD");
    }
    std::error_code ec;
    std::filesystem::remove_all(m_dir, ec);
  }
  std::string m_dir;
  std::string m_old_cwd;
  std::optional<std::string> m_old_pwd;
};

TEST_F(PathFsTest, RealPathResolvesLinks) {
  std::filesystem::create_directories(m_dir + "/real/sub");
  std::filesystem::create_directory_symlink(m_dir + "/real", m_dir + "/link");
  std::string resolved = real_path(m_dir + "/link/sub/../sub");
  EXPECT_EQ(resolved, real_path(m_dir) + "/real/sub");
  EXPECT_EQ(real_path(m_dir + "/missing"), "");
}

TEST_F(PathFsTest, CurrentDirPrefersPwdSpelling) {
  std::filesystem::create_directories(m_dir + "/real");
  std::filesystem::create_directory_symlink(m_dir + "/real", m_dir + "/link");
  ASSERT_EQ(::chdir((m_dir + "/real").c_str()), 0);
  ::setenv("PWD", (m_dir + "/link").c_str(), 1);
  EXPECT_EQ(current_dir(), m_dir + "/link");
  ::setenv("PWD", (m_dir + "/link/.").c_str(), 1);
  EXPECT_EQ(current_dir(), m_dir + "/link");
  // A PWD naming another directory is ignored.
  ::setenv("PWD", m_dir.c_str(), 1);
  EXPECT_EQ(current_dir(), real_path(m_dir + "/real"));
  ::unsetenv("PWD");
  EXPECT_EQ(current_dir(), real_path(m_dir + "/real"));
}

}  // namespace
}  // namespace kiln::util
