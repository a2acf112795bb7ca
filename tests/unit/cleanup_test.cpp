#include "kiln/storage/local/cleanup.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "kiln/util/file.hpp"
#include "temp_dir.hpp"

namespace kiln::storage {
namespace {

constexpr int64_t k_second = 1000000000;
constexpr int64_t k_now = int64_t{1700000000} * k_second;

class CleanupTest : public kiln::testing::TempDirTest {
 protected:
  // A 64-hex-digit name made from `n`.
  static std::string hex_of(int n) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx",
                  static_cast<unsigned long long>(n + 1) * 0x9e3779b97f4a7c15ull);
    std::string h = buf;
    return h + h + h + h;
  }

  // Creates <dir>/<relative> with `size` bytes and the given mtime; returns its
  // disk size.
  int64_t create(const std::string& relative, size_t size, int64_t mtime_ns) {
    std::string path = m_dir + "/" + relative;
    EXPECT_TRUE(util::make_directories(path.substr(0, path.find_last_of('/'))));
    EXPECT_TRUE(util::write_file(path, std::string(size, 'x')));
    struct timespec times[2] = {{mtime_ns / k_second, mtime_ns % k_second},
                                {mtime_ns / k_second, mtime_ns % k_second}};
    EXPECT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
    return util::FileStat::of(path).disk_size();
  }

  // Creates the entry file for `n` (kind R) in its fan-out directory.
  std::string entry_path(int n, const std::string& suffix = "") {
    std::string h = hex_of(n);
    return h.substr(0, 2) + "/" + h.substr(2, 2) + "/" + h + "R" + suffix;
  }

  bool exists(const std::string& relative) {
    return util::FileStat::lof(m_dir + "/" + relative).exists();
  }
};

TEST_F(CleanupTest, MissingDirectoryIsEmpty) {
  CleanupStats s = cleanup_local(m_dir + "/none", 1, 0.9, k_now);
  EXPECT_FALSE(s.skipped_locked);
  EXPECT_EQ(s.files_before, 0);
  EXPECT_EQ(s.size_before, 0);
  EXPECT_EQ(measure_local(m_dir + "/none").files_after, 0);
  EXPECT_EQ(wipe_local(m_dir + "/none"), 0);
  EXPECT_FALSE(util::FileStat::of(m_dir + "/none").exists());
}

TEST_F(CleanupTest, RemovesLeastRecentlyUsedFirstDownToTheTarget) {
  constexpr int k_entries = 10;
  int64_t one = 0;
  for (int i = 0; i < k_entries; ++i) {
    // Creation order differs from mtime order, and the names sort differently.
    int n = (i * 7) % k_entries;
    one = create(entry_path(n), 5000, k_now - (100 - n) * k_second);
  }
  ASSERT_GT(one, 0);

  // Under the limit: nothing happens.
  CleanupStats s = cleanup_local(m_dir, one * k_entries, 0.5, k_now);
  EXPECT_EQ(s.files_before, k_entries);
  EXPECT_EQ(s.size_before, one * k_entries);
  EXPECT_EQ(s.files_removed, 0);
  EXPECT_EQ(s.files_after, k_entries);

  // Over the limit of 8 entries, target 0.5 of it: 4 entries remain.
  s = cleanup_local(m_dir, one * 8, 0.5, k_now);
  EXPECT_EQ(s.files_before, k_entries);
  EXPECT_EQ(s.files_removed, 6);
  EXPECT_EQ(s.size_removed, one * 6);
  EXPECT_EQ(s.files_after, 4);
  EXPECT_EQ(s.size_after, one * 4);
  EXPECT_LE(s.size_after, one * 4);
  for (int n = 0; n < k_entries; ++n) {
    EXPECT_EQ(exists(entry_path(n)), n >= 6) << n;
  }

  CleanupStats m = measure_local(m_dir);
  EXPECT_EQ(m.files_before, 4);
  EXPECT_EQ(m.size_before, one * 4);
  EXPECT_EQ(m.files_after, 4);
}

TEST_F(CleanupTest, UnlimitedSizeRemovesNothing) {
  for (int n = 0; n < 5; ++n) {
    create(entry_path(n), 100000, k_now - n * k_second);
  }
  CleanupStats s = cleanup_local(m_dir, 0, 0.9, k_now);
  EXPECT_EQ(s.files_before, 5);
  EXPECT_EQ(s.files_removed, 0);
  EXPECT_EQ(s.files_after, 5);
}

TEST_F(CleanupTest, FilesOfOneEntryGoTogetherAndUseTheNewestMtime) {
  // Entry 1: main file old, but its .o recently written: newest of the two counts.
  int64_t size = create(entry_path(1), 5000, k_now - 100 * k_second);
  size += create(entry_path(1, ".o"), 5000, k_now - 1 * k_second);
  // Entry 2: both files moderately old: the LRU victim.
  size += create(entry_path(2), 5000, k_now - 50 * k_second);
  size += create(entry_path(2, ".o"), 5000, k_now - 50 * k_second);
  CleanupStats s = cleanup_local(m_dir, size - 1, 1.0, k_now);
  EXPECT_EQ(s.files_before, 4);
  EXPECT_EQ(s.files_removed, 2);
  EXPECT_TRUE(exists(entry_path(1)));
  EXPECT_TRUE(exists(entry_path(1, ".o")));
  EXPECT_FALSE(exists(entry_path(2)));
  EXPECT_FALSE(exists(entry_path(2, ".o")));
}

TEST_F(CleanupTest, RemovesOnlyStaleTemporaries) {
  std::string stale = entry_path(1, ".tmp.123.abc.0");
  std::string young = entry_path(2, ".tmp.456.def.1");
  create(stale, 100, k_now - 2 * 3600 * k_second);
  create(young, 100, k_now - 60 * k_second);
  create(entry_path(3), 100, k_now - 3 * 3600 * k_second);
  CleanupStats s = cleanup_local(m_dir, 0, 0.9, k_now);
  EXPECT_EQ(s.stale_temporaries_removed, 1);
  EXPECT_EQ(s.files_before, 1);  // temporaries are not entries
  EXPECT_FALSE(exists(stale));
  EXPECT_TRUE(exists(young));
  EXPECT_TRUE(exists(entry_path(3)));
}

TEST_F(CleanupTest, RemovesStaleTraceFiles) {
  create("tmp/trace.stale1", 100, k_now - 2 * 3600 * k_second);
  create("tmp/trace.young1", 100, k_now - 60 * k_second);
  create("tmp/other.stale", 100, k_now - 2 * 3600 * k_second);
  CleanupStats s = cleanup_local(m_dir, 0, 0.9, k_now);
  EXPECT_EQ(s.stale_temporaries_removed, 1);
  EXPECT_FALSE(exists("tmp/trace.stale1"));
  EXPECT_TRUE(exists("tmp/trace.young1"));
  EXPECT_TRUE(exists("tmp/other.stale"));
}

TEST_F(CleanupTest, IgnoresFilesThatAreNotEntries) {
  std::string h = hex_of(5);
  std::string fan = h.substr(0, 2) + "/" + h.substr(2, 2) + "/";
  std::vector<std::string> others = {
      "stats",
      "kiln.toml",
      "tmp/" + h + "R",
      "tmp/" + h + "R.tmp.1.2.3",
      fan + "README",
      fan + h + "X",
      fan + h.substr(1) + "R",
      "AB/CD/" + h + "R",
      "abc/de/" + h + "R",
  };
  std::string upper = h;
  upper[0] = 'A';
  others.push_back(fan + upper + "R");
  for (const auto& o : others) {
    create(o, 100000, k_now - 10 * 3600 * k_second);
  }
  int64_t one = create(entry_path(5), 100, k_now);

  CleanupStats m = measure_local(m_dir);
  EXPECT_EQ(m.files_before, 1);
  EXPECT_EQ(m.size_before, one);

  CleanupStats s = cleanup_local(m_dir, 1, 0.5, k_now);
  EXPECT_EQ(s.files_before, 1);
  EXPECT_EQ(s.files_removed, 1);
  EXPECT_EQ(s.stale_temporaries_removed, 0);
  for (const auto& o : others) {
    EXPECT_TRUE(exists(o)) << o;
  }
}

TEST_F(CleanupTest, SkipsWhenAnotherCleanupHoldsTheLock) {
  create(entry_path(1), 5000, k_now - 100 * k_second);
  create(entry_path(2), 5000, k_now);
  int fd = ::open((m_dir + "/cleanup.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);

  CleanupStats s = cleanup_local(m_dir, 1, 0.5, k_now);
  EXPECT_TRUE(s.skipped_locked);
  EXPECT_EQ(s.files_removed, 0);
  EXPECT_TRUE(exists(entry_path(1)));

  ::close(fd);
  s = cleanup_local(m_dir, 1, 0.5, k_now);
  EXPECT_FALSE(s.skipped_locked);
  EXPECT_EQ(s.files_removed, 2);
}

TEST_F(CleanupTest, WipeRemovesEntriesAndTemporariesOnly) {
  for (int n = 0; n < 6; ++n) {
    create(entry_path(n), 100, k_now);
  }
  create(entry_path(0, ".o"), 100, k_now);
  create(entry_path(7, ".tmp.1.2.3"), 100, k_now);
  create("stats", 10, k_now);
  EXPECT_EQ(wipe_local(m_dir), 7);
  EXPECT_EQ(measure_local(m_dir).files_before, 0);
  EXPECT_FALSE(exists(entry_path(7, ".tmp.1.2.3")));
  EXPECT_TRUE(exists("stats"));
}

}  // namespace
}  // namespace kiln::storage
