#include "kiln/util/counters_file.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "kiln/util/file.hpp"
#include "temp_dir.hpp"

namespace kiln::util {
namespace {

class CountersFileTest : public kiln::testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    m_path = m_dir + "/stats";
  }

  std::string m_path;
};

TEST_F(CountersFileTest, MissingFileReadsEmpty) {
  EXPECT_TRUE(read_counters(m_path).empty());
  EXPECT_FALSE(FileStat::of(m_path).exists());
}

TEST_F(CountersFileTest, AddCreatesFileAndDirectory) {
  std::string path = m_dir + "/a/b/stats";
  ASSERT_TRUE(add_counters(path, {{"hits", 2}, {"misses", 1}}));
  ASSERT_TRUE(add_counters(path, {{"hits", 3}, {"size", -4096}}));
  Counters c = read_counters(path);
  EXPECT_EQ(c, (Counters{{"hits", 5}, {"misses", 1}, {"size", -4096}}));
  EXPECT_EQ(*read_file(path), "hits 5\nmisses 1\nsize -4096\n");
}

TEST_F(CountersFileTest, WriteReplacesAndShrinksTheFile) {
  ASSERT_TRUE(add_counters(m_path, {{"a_long_counter_name", 123456789}, {"b", 1}}));
  ASSERT_TRUE(write_counters(m_path, {{"b", 0}}));
  EXPECT_EQ(*read_file(m_path), "b 0\n");
  EXPECT_EQ(read_counters(m_path), (Counters{{"b", 0}}));
}

TEST_F(CountersFileTest, UnparsableLinesAreIgnored) {
  ASSERT_TRUE(write_file(m_path, "hits 7\ngarbage\nmisses x\n\nsize 12 13\nfiles 3\n\x01\x02"));
  EXPECT_EQ(read_counters(m_path), (Counters{{"files", 3}, {"hits", 7}}));
  ASSERT_TRUE(add_counters(m_path, {{"hits", 1}}));
  EXPECT_EQ(read_counters(m_path), (Counters{{"files", 3}, {"hits", 8}}));
}

TEST_F(CountersFileTest, NamesThatWouldBreakTheFormatAreDropped) {
  ASSERT_TRUE(add_counters(m_path, {{"ok", 1}, {"two words", 1}, {"", 1}, {"new\nline", 1}}));
  EXPECT_EQ(read_counters(m_path), (Counters{{"ok", 1}}));
}

TEST_F(CountersFileTest, SaturatesInsteadOfOverflowing) {
  ASSERT_TRUE(write_counters(m_path, {{"big", INT64_MAX - 1}}));
  ASSERT_TRUE(add_counters(m_path, {{"big", 10}}));
  EXPECT_EQ(read_counters(m_path).at("big"), INT64_MAX);
}

TEST_F(CountersFileTest, UnwritablePathFails) {
  ASSERT_TRUE(write_file(m_dir + "/file", "x"));
  EXPECT_FALSE(add_counters(m_dir + "/file/stats", {{"a", 1}}));
}

TEST_F(CountersFileTest, ConcurrentProcessesNeverLoseAnUpdate) {
  constexpr int k_processes = 8;
  constexpr int k_rounds = 200;
  std::vector<pid_t> children;
  for (int p = 0; p < k_processes; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      bool ok = true;
      for (int r = 0; r < k_rounds; ++r) {
        ok = add_counters(m_path,
                          {{"hits", 1}, {"size", 4096}, {"process_" + std::to_string(p), 1}}) &&
             ok;
        if (r % 50 == 0) {
          // Readers share the lock with writers.
          ok = read_counters(m_path).count("hits") == 1 && ok;
        }
      }
      ::_exit(ok ? 0 : 1);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  Counters c = read_counters(m_path);
  EXPECT_EQ(c["hits"], k_processes * k_rounds);
  EXPECT_EQ(c["size"], int64_t{k_processes} * k_rounds * 4096);
  for (int p = 0; p < k_processes; ++p) {
    EXPECT_EQ(c["process_" + std::to_string(p)], k_rounds);
  }
}

TEST_F(CountersFileTest, ConcurrentThreadsNeverLoseAnUpdate) {
  constexpr int k_threads = 4;
  constexpr int k_rounds = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&] {
      for (int r = 0; r < k_rounds; ++r) {
        add_counters(m_path, {{"hits", 1}});
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(read_counters(m_path)["hits"], k_threads * k_rounds);
}

}  // namespace
}  // namespace kiln::util
