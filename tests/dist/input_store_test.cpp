#include "kiln/dist/worker/input_store.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <thread>
#include <vector>

#include "kiln/util/file.hpp"

namespace kiln::dist {
namespace {

namespace fs = std::filesystem;

class InputStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-input-store-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
    fs::create_directories(m_dir + "/job");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(m_dir, ec);
  }
  std::string dest(const std::string& name) { return m_dir + "/job/" + name; }
  static ino_t inode(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_ino;
  }
  std::string m_dir;
};

TEST_F(InputStoreTest, TheSameBytesAreStoredOnceAndLinked) {
  InputStore store(m_dir + "/store", 1 << 20);
  ASSERT_TRUE(store.place("#pragma once\nint x;\n", dest("a.h")));
  ASSERT_TRUE(store.place("#pragma once\nint x;\n", dest("b.h")));
  ASSERT_TRUE(store.place("int y;\n", dest("c.h")));
  EXPECT_EQ(util::read_file(dest("a.h")).value_or(""), "#pragma once\nint x;\n");
  EXPECT_EQ(util::read_file(dest("c.h")).value_or(""), "int y;\n");
  EXPECT_EQ(inode(dest("a.h")), inode(dest("b.h"))) << "the second is a link to the first's bytes";
  EXPECT_NE(inode(dest("a.h")), inode(dest("c.h")));
  EXPECT_EQ(fs::hard_link_count(dest("a.h")), 3u);  // the store's and two jobs'
  EXPECT_EQ(store.files(), 2u);
  EXPECT_EQ(store.reused(), 1u);
  EXPECT_EQ(store.bytes(), 20u + 7u);
  struct stat st {};
  ASSERT_EQ(::stat(dest("a.h").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u) << "the store's files are read-only";
  EXPECT_FALSE(store.place("again", dest("a.h"))) << "an existing destination is an error";
  EXPECT_EQ(util::read_file(dest("b.h")).value_or(""), "#pragma once\nint x;\n")
      << "and never written through";
}

TEST_F(InputStoreTest, TheLeastRecentlyUsedGoFirstAndPlacedFilesStay) {
  InputStore store(m_dir + "/store", 100);
  const std::string a(20, 'a'), b(20, 'b'), c(20, 'c'), d(20, 'd'), e(20, 'e');
  ASSERT_TRUE(store.place(a, dest("1")));
  ASSERT_TRUE(store.place(b, dest("2")));
  ASSERT_TRUE(store.place(c, dest("3")));
  ASSERT_TRUE(store.place(d, dest("4")));
  ASSERT_TRUE(store.place(a, dest("5")));  // a is now the most recent
  ASSERT_TRUE(store.place(e, dest("6")));  // 100 bytes: nothing evicted yet
  EXPECT_EQ(store.files(), 5u);
  const std::string f(20, 'f');
  ASSERT_TRUE(store.place(f, dest("7")));  // b, the least recently used, goes
  EXPECT_EQ(store.files(), 5u);
  EXPECT_LE(store.bytes(), 100u);
  EXPECT_EQ(fs::hard_link_count(dest("2")), 1u) << "b left the store";
  EXPECT_EQ(util::read_file(dest("2")).value_or(""), b) << "and the job's file is whole";
  EXPECT_EQ(fs::hard_link_count(dest("1")), 3u) << "a stayed";
  ASSERT_TRUE(store.place(b, dest("8")));  // stored again
  EXPECT_EQ(util::read_file(dest("8")).value_or(""), b);
  // Too large for the store (over a quarter of it): written, not stored.
  const std::string big(40, 'g');
  ASSERT_TRUE(store.place(big, dest("9")));
  EXPECT_EQ(fs::hard_link_count(dest("9")), 1u);
}

TEST_F(InputStoreTest, OffItWritesCopies) {
  InputStore store(m_dir + "/store", 0);
  ASSERT_TRUE(store.place("x", dest("a")));
  ASSERT_TRUE(store.place("x", dest("b")));
  EXPECT_NE(inode(dest("a")), inode(dest("b")));
  EXPECT_EQ(store.files(), 0u);
  EXPECT_FALSE(fs::exists(m_dir + "/store"));
}

TEST_F(InputStoreTest, OpeningEmptiesWhatAnEarlierProcessLeft) {
  {
    InputStore store(m_dir + "/store", 1 << 20);
    ASSERT_TRUE(store.place("old", dest("a")));
  }
  ASSERT_TRUE(util::write_file(m_dir + "/store/stray", "?"));
  InputStore store(m_dir + "/store", 1 << 20);
  EXPECT_EQ(store.files(), 0u);
  EXPECT_FALSE(fs::exists(m_dir + "/store/stray"));
  ASSERT_TRUE(store.place("old", dest("b")));
  EXPECT_EQ(fs::hard_link_count(dest("b")), 2u);
  EXPECT_EQ(util::read_file(dest("a")).value_or(""), "old");
}

TEST_F(InputStoreTest, ThreadsPlacingTheSameBytesAllGetThem) {
  InputStore store(m_dir + "/store", 300);  // small: eviction races placement
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        std::string data(40, static_cast<char>('a' + (i * 7 + t) % 20));
        std::string path = dest(std::to_string(t) + "-" + std::to_string(i));
        ASSERT_TRUE(store.place(data, path)) << path;
        ASSERT_EQ(util::read_file(path).value_or(""), data) << path;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_LE(store.bytes(), 300u);
  EXPECT_GT(store.reused(), 0u);
}

}  // namespace
}  // namespace kiln::dist
