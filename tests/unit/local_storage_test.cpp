#include "kiln/storage/local/local_storage.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "kiln/storage/entry.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/hash.hpp"
#include "temp_dir.hpp"

namespace kiln::storage {
namespace {

class LocalStorageTest : public kiln::testing::TempDirTest {
 protected:
  static Key key_of(std::string_view text, EntryKind kind = EntryKind::result) {
    return Key{util::Hasher().update(text).finish(), kind};
  }
};

TEST_F(LocalStorageTest, KeyNamesAndLayout) {
  Key key = key_of("a");
  std::string hex = key.digest.to_hex();
  EXPECT_EQ(key.name(), hex + "R");
  EXPECT_EQ(key.relative_path(), hex.substr(0, 2) + "/" + hex.substr(2, 2) + "/" + hex + "R");
  Key manifest = key_of("a", EntryKind::manifest);
  EXPECT_EQ(manifest.name(), hex + "M");

  LocalStorage storage(m_dir + "/");
  EXPECT_EQ(storage.path_of(key), m_dir + "/" + key.relative_path());
  EXPECT_EQ(storage.name(), "local");
}

TEST_F(LocalStorageTest, PutGetRemove) {
  LocalStorage storage(m_dir);
  Key key = key_of("x");
  auto missing = storage.get(key);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), Failure::not_found);

  ASSERT_TRUE(storage.put(key, "hello"));
  EXPECT_TRUE(util::FileStat::of(storage.path_of(key)).is_regular());
  auto got = storage.get(key);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, "hello");

  // Result and manifest of one digest are different entries.
  EXPECT_FALSE(storage.get(key_of("x", EntryKind::manifest)));

  ASSERT_TRUE(storage.put(key, "replaced"));
  EXPECT_EQ(*storage.get(key), "replaced");

  ASSERT_TRUE(storage.remove(key));
  EXPECT_EQ(storage.get(key).error(), Failure::not_found);
  auto again = storage.remove(key);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), Failure::not_found);
}

TEST_F(LocalStorageTest, TracksDiskSizeAndFileDeltas) {
  LocalStorage storage(m_dir);
  Key a = key_of("a");
  Key b = key_of("b");
  ASSERT_TRUE(storage.put(a, std::string(10000, 'a')));
  int64_t size_a = util::FileStat::of(storage.path_of(a)).disk_size();
  EXPECT_GT(size_a, 0);
  EXPECT_EQ(storage.files_delta(), 1);
  EXPECT_EQ(storage.size_delta(), size_a);

  ASSERT_TRUE(storage.put(b, "b"));
  int64_t size_b = util::FileStat::of(storage.path_of(b)).disk_size();
  EXPECT_EQ(storage.files_delta(), 2);
  EXPECT_EQ(storage.size_delta(), size_a + size_b);

  // Replacing counts the difference, not a new file.
  ASSERT_TRUE(storage.put(a, std::string(100000, 'a')));
  int64_t size_a2 = util::FileStat::of(storage.path_of(a)).disk_size();
  EXPECT_GT(size_a2, size_a);
  EXPECT_EQ(storage.files_delta(), 2);
  EXPECT_EQ(storage.size_delta(), size_a2 + size_b);

  ASSERT_TRUE(storage.remove(a));
  ASSERT_TRUE(storage.remove(b));
  EXPECT_EQ(storage.files_delta(), 0);
  EXPECT_EQ(storage.size_delta(), 0);

  ASSERT_FALSE(storage.remove(a));
  EXPECT_EQ(storage.files_delta(), 0);
}

TEST_F(LocalStorageTest, GetRefreshesMtime) {
  LocalStorage storage(m_dir);
  Key key = key_of("lru");
  ASSERT_TRUE(storage.put(key, "v"));
  std::string path = storage.path_of(key);
  struct timespec old_times[2] = {{1000, 0}, {1000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), old_times, 0), 0);
  ASSERT_EQ(util::FileStat::of(path).mtime_ns, int64_t{1000} * 1000000000);
  ASSERT_TRUE(storage.get(key));
  EXPECT_GT(util::FileStat::of(path).mtime_ns, int64_t{1000} * 1000000000);
}

TEST_F(LocalStorageTest, CreatesTheCacheDirectoryOnFirstPut) {
  LocalStorage storage(m_dir + "/not/yet/there");
  Key key = key_of("deep");
  ASSERT_TRUE(storage.put(key, "v"));
  EXPECT_EQ(*storage.get(key), "v");
}

TEST_F(LocalStorageTest, UnwritableDirectoryIsAccessDenied) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root ignores permissions";
  }
  LocalStorage storage(m_dir);
  Key key = key_of("denied");
  ASSERT_EQ(::chmod(m_dir.c_str(), 0500), 0);
  auto put = storage.put(key, "v");
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error(), Failure::access_denied);
  EXPECT_EQ(storage.files_delta(), 0);
}

TEST_F(LocalStorageTest, PathBlockedByAFileIsAnError) {
  ASSERT_TRUE(util::write_file(m_dir + "/file", "x"));
  LocalStorage storage(m_dir + "/file");
  Key key = key_of("blocked");
  auto put = storage.put(key, "v");
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error(), Failure::error);
}

// Writers in several processes replace one key over and over while readers in
// other processes read it: a reader sees no entry or a whole, valid one.
TEST_F(LocalStorageTest, ConcurrentWritersNeverExposeAPartialEntry) {
  constexpr int k_writers = 4;
  constexpr int k_readers = 2;
  constexpr int k_rounds = 150;
  Key key = key_of("contended");
  auto payload_of = [](int writer, int round) {
    // Sizes vary so that a torn file could not pass as a shorter entry.
    return std::string(1000 + static_cast<size_t>((writer * 7919 + round * 104729) % 200000),
                       static_cast<char>('a' + writer));
  };

  std::vector<pid_t> children;
  for (int w = 0; w < k_writers; ++w) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      LocalStorage storage(m_dir);
      int failures = 0;
      for (int r = 0; r < k_rounds; ++r) {
        std::string entry = encode_entry(EntryKind::result, payload_of(w, r), w % 2 == 0 ? 0 : 1);
        failures += storage.put(key, entry) ? 0 : 1;
      }
      ::_exit(failures == 0 ? 0 : 1);
    }
    children.push_back(pid);
  }
  for (int rd = 0; rd < k_readers; ++rd) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      LocalStorage storage(m_dir);
      int bad = 0;
      for (int i = 0; i < 2000; ++i) {
        auto got = storage.get(key);
        if (!got) {
          bad += got.error() == Failure::not_found ? 0 : 1;
          continue;
        }
        auto payload = decode_entry(*got, EntryKind::result);
        if (!payload || payload->size() < 1000 || (*payload)[0] < 'a' ||
            (*payload)[0] >= 'a' + k_writers ||
            payload->find_first_not_of((*payload)[0]) != std::string::npos) {
          ++bad;
        }
      }
      ::_exit(bad == 0 ? 0 : 2);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }

  LocalStorage storage(m_dir);
  auto last = storage.get(key);
  ASSERT_TRUE(last);
  EXPECT_TRUE(decode_entry(*last, EntryKind::result));
  // Every temporary file was renamed or removed.
  int files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(m_dir)) {
    files += e.is_regular_file() ? 1 : 0;
  }
  EXPECT_EQ(files, 1);
}

TEST(StorageFailureTest, Names) {
  EXPECT_EQ(to_string(Failure::not_found), "not_found");
  EXPECT_EQ(to_string(Failure::timeout), "timeout");
  EXPECT_EQ(to_string(Failure::error), "error");
  EXPECT_EQ(to_string(Failure::access_denied), "access_denied");
}

// Leases: one holder at a time among the processes of this machine; a holder
// that releases, or dies, frees it at once.
TEST_F(LocalStorageTest, LeasesHaveOneHolderAndEndWithIt) {
  using namespace std::chrono_literals;
  Key key = key_of("lease", EntryKind::manifest);
  LocalStorage a(m_dir);
  LocalStorage b(m_dir);
  ASSERT_TRUE(a.supports_leases());
  EXPECT_EQ(b.lease_held(key).value_or(true), false);
  EXPECT_EQ(a.acquire_lease(key, "a", 10s).value_or(false), true);
  EXPECT_EQ(a.acquire_lease(key, "a", 10s).value_or(false), true) << "a holds it already";
  EXPECT_EQ(b.acquire_lease(key, "b", 10s).value_or(true), false);
  EXPECT_EQ(b.lease_held(key).value_or(false), true);
  EXPECT_EQ(b.lease_held(key_of("other", EntryKind::manifest)).value_or(true), false);
  ASSERT_TRUE(a.release_lease(key, "a"));
  EXPECT_EQ(b.lease_held(key).value_or(true), false);
  EXPECT_EQ(b.acquire_lease(key, "b", 10s).value_or(false), true);
  ASSERT_TRUE(b.release_lease(key, "b"));

  // A process that takes the lease and is killed: free at once.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    LocalStorage child(m_dir);
    bool taken = child.acquire_lease(key, "child", 10s).value_or(false);
    char c = taken ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  EXPECT_EQ(c, 'y');
  EXPECT_EQ(a.lease_held(key).value_or(false), true);
  EXPECT_EQ(a.acquire_lease(key, "a", 10s).value_or(true), false);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  EXPECT_EQ(a.lease_held(key).value_or(true), false) << "the dead holder's lock is gone";
  EXPECT_EQ(a.acquire_lease(key, "a", 10s).value_or(false), true);
}

}  // namespace
}  // namespace kiln::storage
