#include "kiln/cache/stats.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

#include "kiln/util/counters_file.hpp"
#include "kiln/util/file.hpp"
#include "temp_dir.hpp"

namespace kiln::cache {
namespace {

int64_t get(const util::Counters& c, const std::string& name) {
  auto it = c.find(name);
  return it == c.end() ? 0 : it->second;
}

class StatsTest : public kiln::testing::TempDirTest {
 protected:
  std::string shard(int n) const { return m_dir + "/stats/" + "0123456789abcdef"[n]; }
};

TEST_F(StatsTest, CounterNamesAreDistinctSnakeCase) {
  std::set<std::string> names;
  for (int i = 0; i < static_cast<int>(Counter::count_); ++i) {
    std::string name(to_string(static_cast<Counter>(i)));
    EXPECT_FALSE(name.empty());
    for (char c : name) {
      EXPECT_TRUE((c >= 'a' && c <= 'z') || c == '_') << name;
    }
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(Counter::count_));
  EXPECT_EQ(to_string(Counter::direct_hit), "direct_hit");
  EXPECT_EQ(to_string(Counter::miss), "miss");
  EXPECT_EQ(to_string(Counter::bad_response_file), "bad_response_file");
  EXPECT_EQ(to_string(Counter::cleanups), "cleanups");
}

TEST_F(StatsTest, AddAccumulatesTheDelta) {
  Stats s;
  EXPECT_TRUE(s.empty());
  s.add(Counter::miss);
  s.add(Counter::miss);
  s.add(Counter::size, 4096);
  s.add("files", 1);
  EXPECT_FALSE(s.empty());
  EXPECT_EQ(s.delta(), (util::Counters{{"miss", 2}, {"size", 4096}, {"files", 1}}));
}

TEST_F(StatsTest, FlushWritesThePidShardAndClearsTheDelta) {
  Stats s;
  s.add(Counter::direct_hit, 3);
  s.add(Counter::miss);
  ASSERT_TRUE(s.flush(m_dir));
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(util::read_counters(shard(static_cast<int>(::getpid()) & 15)),
            (util::Counters{{"direct_hit", 3}, {"miss", 1}}));

  s.add(Counter::direct_hit, 2);
  ASSERT_TRUE(s.flush(m_dir));
  util::Counters all = Stats::read_all(m_dir);
  EXPECT_EQ(get(all, "direct_hit"), 5);
  EXPECT_EQ(get(all, "miss"), 1);
}

TEST_F(StatsTest, EmptyFlushWritesNothing) {
  Stats s;
  ASSERT_TRUE(s.flush(m_dir));
  EXPECT_FALSE(util::FileStat::of(m_dir + "/stats").exists());
}

TEST_F(StatsTest, ReadAllSumsEveryShard) {
  ASSERT_TRUE(util::add_counters(shard(0), {{"miss", 1}, {"size", 100}}));
  ASSERT_TRUE(util::add_counters(shard(7), {{"miss", 2}}));
  ASSERT_TRUE(util::add_counters(shard(15), {{"miss", 4}, {"size", -30}, {"custom", 9}}));
  // Not a shard: ignored.
  ASSERT_TRUE(util::add_counters(m_dir + "/stats/x", {{"miss", 1000}}));
  util::Counters all = Stats::read_all(m_dir);
  EXPECT_EQ(get(all, "miss"), 7);
  EXPECT_EQ(get(all, "size"), 70);
  EXPECT_EQ(get(all, "custom"), 9);
  EXPECT_TRUE(Stats::read_all(m_dir + "/nonexistent").empty());
}

TEST_F(StatsTest, ZeroKeepsFilesAndSize) {
  ASSERT_TRUE(util::add_counters(shard(1), {{"miss", 5}, {"files", 10}, {"size", 4096}}));
  ASSERT_TRUE(util::add_counters(shard(9), {{"direct_hit", 2}, {"files", 1}, {"cleanups", 3}}));
  ASSERT_TRUE(Stats::zero(m_dir));
  util::Counters all = Stats::read_all(m_dir);
  EXPECT_EQ(get(all, "miss"), 0);
  EXPECT_EQ(get(all, "direct_hit"), 0);
  EXPECT_EQ(get(all, "cleanups"), 0);
  EXPECT_EQ(get(all, "files"), 11);
  EXPECT_EQ(get(all, "size"), 4096);
  // Counting goes on after zeroing.
  Stats s;
  s.add(Counter::miss);
  ASSERT_TRUE(s.flush(m_dir));
  EXPECT_EQ(get(Stats::read_all(m_dir), "miss"), 1);
  EXPECT_TRUE(Stats::zero(m_dir + "/nonexistent"));
}

TEST_F(StatsTest, FailedFlushKeepsTheDelta) {
  // A file where the stats directory should be: no shard can be created, even
  // by root.
  ASSERT_TRUE(util::write_file(m_dir + "/stats", "not a directory"));
  Stats s;
  s.add(Counter::miss);
  EXPECT_FALSE(s.flush(m_dir));
  EXPECT_EQ(s.delta(), (util::Counters{{"miss", 1}}));
}

}  // namespace
}  // namespace kiln::cache
