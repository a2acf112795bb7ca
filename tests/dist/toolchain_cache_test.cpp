#include "kiln/dist/toolchain_cache.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include "kiln/dist/toolchain_unpack.hpp"
#include "kiln/util/file.hpp"
#include "toolchain_test_support.hpp"

namespace kiln::dist {
namespace {

using testing::id_of;
using testing::make_tar;
using testing::names_in;
using testing::TarEntry;
using testing::TempDirTest;
namespace fs = std::filesystem;

using ToolchainUnpack = TempDirTest;

TEST_F(ToolchainUnpack, UnpacksFilesSymlinksAndModes) {
  std::string archive = make_tar({
      {"lib64", TarEntry::symlink, "usr/lib64"},
      {"usr/bin/g++", TarEntry::symlink, "x86_64-linux-gnu-g++-12"},
      {"usr/bin/x86_64-linux-gnu-g++-12", TarEntry::file, "#!driver", 0755},
      {"usr/lib/x86_64-linux-gnu/ld.so", TarEntry::file, "loader", 04755},
      {"usr/lib64/ld.so", TarEntry::symlink, "/usr/lib/x86_64-linux-gnu/ld.so"},
      {"usr/share", TarEntry::dir, "", 0755},
      {"usr/sealed", TarEntry::dir, "", 0},
  });
  const std::string dest = m_dir + "/tc";
  auto done = unpack_toolchain(archive, id_of(archive), dest);
  ASSERT_TRUE(done) << done.error();
  EXPECT_EQ(fs::read_symlink(dest + "/lib64"), "usr/lib64");
  EXPECT_EQ(fs::read_symlink(dest + "/usr/bin/g++"), "x86_64-linux-gnu-g++-12");
  EXPECT_EQ(*util::read_file(dest + "/usr/bin/g++"), "#!driver");
  EXPECT_EQ(fs::read_symlink(dest + "/usr/lib64/ld.so"), "/usr/lib/x86_64-linux-gnu/ld.so");
  EXPECT_EQ(util::FileStat::of(dest + "/usr/bin/x86_64-linux-gnu-g++-12").mode & 07777, 0755u);
  EXPECT_EQ(util::FileStat::of(dest + "/usr/lib/x86_64-linux-gnu/ld.so").mode & 07777, 0755u)
      << "set-id bits are dropped";
  EXPECT_TRUE(util::FileStat::of(dest + "/usr/share").is_directory());
  EXPECT_EQ(util::FileStat::of(dest + "/usr/sealed").mode & 07777, 0700u)
      << "a directory the worker could not remove";
  EXPECT_EQ(tree_size(dest), 14u);
  EXPECT_EQ(names_in(m_dir), std::vector<std::string>{"tc"});

  auto again = unpack_toolchain(archive, id_of(archive), dest);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().find("exists"), std::string::npos) << again.error();
}

// Each refusal leaves nothing behind: no destination, no temporary directory.
void expect_refused(const std::string& dir, const std::string& archive, const std::string& why,
                    uint64_t limit = k_default_max_unpacked_bytes) {
  auto done = unpack_toolchain(archive, id_of(archive), dir + "/tc", limit);
  ASSERT_FALSE(done) << "accepted; expected a refusal for " << why;
  EXPECT_NE(done.error().find(why), std::string::npos) << done.error();
  EXPECT_EQ(names_in(dir), std::vector<std::string>{}) << why;
}

TEST_F(ToolchainUnpack, RefusesAnArchiveThatIsNotTheExpectedId) {
  std::string archive = make_tar({{"usr/bin/cc", TarEntry::file, "cc"}});
  std::string other = make_tar({{"usr/bin/cc", TarEntry::file, "cC"}});
  auto done = unpack_toolchain(archive, id_of(other), m_dir + "/tc");
  ASSERT_FALSE(done);
  EXPECT_NE(done.error().find("not the expected id"), std::string::npos) << done.error();
  EXPECT_EQ(names_in(m_dir), std::vector<std::string>{});
  EXPECT_FALSE(unpack_toolchain("not an archive", id_of("not an archive"), m_dir + "/tc"));
  EXPECT_EQ(names_in(m_dir), std::vector<std::string>{});
}

TEST_F(ToolchainUnpack, RefusesNamesOutsideTheRoot) {
  // The good entries come first: the refusal must come before anything is written.
  const TarEntry good{"usr/bin/cc", TarEntry::file, "cc"};
  expect_refused(m_dir, make_tar({good, {"../evil", TarEntry::file, "x"}}), "\"../evil\"");
  expect_refused(m_dir, make_tar({good, {"usr/../../evil", TarEntry::file, "x"}}),
                 "usr/../../evil");
  expect_refused(m_dir, make_tar({good, {"/etc/evil", TarEntry::file, "x"}}), "\"/etc/evil\"");
  expect_refused(m_dir, make_tar({good, {"usr/./bin/x", TarEntry::file, "x"}}), "usr/./bin/x");
  expect_refused(m_dir, make_tar({good, good}), "appears twice");
}

TEST_F(ToolchainUnpack, RefusesSymlinksThatLeadOutside) {
  const TarEntry good{"usr/bin/cc", TarEntry::file, "cc"};
  expect_refused(m_dir, make_tar({good, {"usr/passwd", TarEntry::symlink, "../../etc/passwd"}}),
                 "leads outside");
  expect_refused(m_dir, make_tar({good, {"usr/up", TarEntry::symlink, "/../etc"}}),
                 "leads outside");
  expect_refused(m_dir, make_tar({good, {"usr/empty", TarEntry::symlink, ""}}), "leads outside");
  // Each harmless taken alone: d is the root, so d/.. is above it.
  expect_refused(
      m_dir, make_tar({{"d", TarEntry::symlink, "."}, {"e", TarEntry::symlink, "d/../x"}, good}),
      "leads outside");
  // Through another link of the archive, with an absolute target.
  expect_refused(m_dir,
                 make_tar({{"lib", TarEntry::symlink, "/usr/lib"},
                           {"usr/lib/x", TarEntry::symlink, "/lib/../../.."}}),
                 "leads outside");
  // Writing below a symlink of the archive would write where it points.
  expect_refused(
      m_dir,
      make_tar({{"lib64", TarEntry::symlink, "usr/lib64"}, {"lib64/evil", TarEntry::file, "x"}}),
      "below the symbolic link lib64");
}

TEST_F(ToolchainUnpack, RefusesHardLinksAndSpecialFiles) {
  const TarEntry good{"usr/bin/cc", TarEntry::file, "cc"};
  expect_refused(m_dir, make_tar({good, {"usr/bin/c++", TarEntry::hardlink, "usr/bin/cc"}}),
                 "hard link");
  expect_refused(m_dir, make_tar({good, {"usr/fifo", TarEntry::fifo, ""}}),
                 "not a regular file, directory or symbolic link");
}

TEST_F(ToolchainUnpack, RefusesMoreThanTheSizeLimit) {
  std::string archive = make_tar({{"usr/a", TarEntry::file, std::string(600, 'a')},
                                  {"usr/b", TarEntry::file, std::string(400, 'b')}});
  expect_refused(m_dir, archive, "more than 999 bytes", 999);
  auto done = unpack_toolchain(archive, id_of(archive), m_dir + "/tc", 1000);
  EXPECT_TRUE(done) << done.error();
}

// A toolchain archive of `bytes` bytes of content, distinct per `tag`.
std::string toolchain(char tag, size_t bytes = 1000) {
  return make_tar({{"usr/bin/cc", TarEntry::file, std::string(bytes, tag), 0755}});
}

ToolchainCache::Fetch serve(const std::string& archive, std::atomic<int>* calls) {
  return [archive, calls]() -> expected<std::string, std::string> {
    ++*calls;
    return archive;
  };
}

// The fetch holds on until every thread has called acquire, and a while
// longer for them to reach the wait: all of them must share this one fetch.
void wait_for_all(const std::atomic<int>& started, int threads) {
  while (started.load() < threads) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
}

using ToolchainCacheTest = TempDirTest;

TEST_F(ToolchainCacheTest, ConcurrentAcquiresOfOneIdFetchOnce) {
  ToolchainCache cache(m_dir + "/tc", 1 << 20);
  const std::string archive = toolchain('a');
  const std::string id = id_of(archive);
  std::atomic<int> calls{0};
  std::atomic<int> started{0};
  auto slow = [&]() -> expected<std::string, std::string> {
    ++calls;
    wait_for_all(started, 8);
    return archive;
  };
  std::vector<std::optional<expected<ToolchainCache::Handle, std::string>>> results(8);
  std::vector<std::thread> threads;
  for (auto& result : results) {
    threads.emplace_back([&] {
      ++started;
      result.emplace(cache.acquire(id, slow));
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(calls.load(), 1);
  for (auto& result : results) {
    ASSERT_TRUE(*result) << (*result).error();
    EXPECT_EQ((*result)->root(), m_dir + "/tc/" + id);
    EXPECT_EQ((*result)->id(), id);
  }
  EXPECT_EQ(*util::read_file(m_dir + "/tc/" + id + "/usr/bin/cc"), std::string(1000, 'a'));
  EXPECT_TRUE(cache.has(id));
  EXPECT_EQ(cache.ids(), std::vector<std::string>{id});
  EXPECT_EQ(cache.size_bytes(), 1000u);
}

TEST_F(ToolchainCacheTest, EvictsTheLeastRecentlyUsedUnpinnedOnes) {
  ToolchainCache cache(m_dir + "/tc", 2500);
  std::string a = toolchain('a'), b = toolchain('b'), c = toolchain('c'), d = toolchain('d');
  std::atomic<int> calls{0};
  ASSERT_TRUE(cache.acquire(id_of(a), serve(a, &calls)));
  ASSERT_TRUE(cache.acquire(id_of(b), serve(b, &calls)));
  ASSERT_TRUE(cache.acquire(id_of(a), serve(a, &calls)));  // b is now the older
  EXPECT_EQ(calls.load(), 2);
  {
    auto hc = cache.acquire(id_of(c), serve(c, &calls));
    ASSERT_TRUE(hc);
    EXPECT_TRUE(cache.has(id_of(a)));
    EXPECT_FALSE(cache.has(id_of(b)));
    EXPECT_FALSE(fs::exists(m_dir + "/tc/" + id_of(b)));
    EXPECT_TRUE(cache.has(id_of(c)));
    EXPECT_EQ(cache.size_bytes(), 2000u);

    // a and c pinned, d pinned by its own handle: nothing may go.
    auto ha = cache.acquire(id_of(a), serve(a, &calls));
    ASSERT_TRUE(ha);
    {
      auto hd = cache.acquire(id_of(d), serve(d, &calls));
      ASSERT_TRUE(hd);
      EXPECT_EQ(cache.ids().size(), 3u);
      EXPECT_EQ(cache.size_bytes(), 3000u);
      EXPECT_TRUE(fs::exists(ha->root() + "/usr/bin/cc"));
      EXPECT_TRUE(fs::exists(hc->root() + "/usr/bin/cc"));
    }
    // d released: the only unpinned one, and the cache is over its limit.
    EXPECT_FALSE(cache.has(id_of(d)));
    EXPECT_TRUE(cache.has(id_of(a)));
    EXPECT_TRUE(cache.has(id_of(c)));
  }
  EXPECT_EQ(names_in(m_dir + "/tc").size(), 2u) << "evicted directories are removed";
}

TEST_F(ToolchainCacheTest, AdoptsUnpackedToolchainsAfterARestart) {
  const std::string dir = m_dir + "/tc";
  std::string a = toolchain('a'), b = toolchain('b');
  std::atomic<int> calls{0};
  {
    ToolchainCache cache(dir, 1 << 20);
    ASSERT_TRUE(cache.acquire(id_of(a), serve(a, &calls)));
    ASSERT_TRUE(cache.acquire(id_of(b), serve(b, &calls)));
  }
  // What a kill -9 in the middle of an unpacking or an eviction leaves.
  ASSERT_TRUE(util::make_directories(dir + "/" + id_of(a) + ".tmp.123.abc.0/usr"));
  ToolchainCache cache(dir, 1 << 20);
  std::vector<std::string> expected_ids = {id_of(a), id_of(b)};
  std::sort(expected_ids.begin(), expected_ids.end());
  EXPECT_EQ(cache.ids(), expected_ids);
  EXPECT_EQ(cache.size_bytes(), 2000u);
  EXPECT_EQ(names_in(dir), expected_ids) << "leftovers are removed";
  auto h = cache.acquire(id_of(a), [] {
    return expected<std::string, std::string>(unexpected(std::string("must not be fetched again")));
  });
  ASSERT_TRUE(h) << h.error();
  EXPECT_EQ(calls.load(), 2);

  // Restarted with a smaller limit, the least recently used goes.
  h = unexpected(std::string("released"));
  ToolchainCache smaller(dir, 1500);
  EXPECT_EQ(smaller.ids(), std::vector<std::string>{id_of(a)});
}

TEST_F(ToolchainCacheTest, AFailedFetchFailsEveryWaiterAndIsRetriedLater) {
  ToolchainCache cache(m_dir + "/tc", 1 << 20);
  const std::string archive = toolchain('a');
  const std::string id = id_of(archive);
  std::atomic<int> calls{0};
  std::atomic<int> started{0};
  auto failing = [&]() -> expected<std::string, std::string> {
    ++calls;
    wait_for_all(started, 4);
    return unexpected(std::string("connection reset"));
  };
  std::vector<std::optional<expected<ToolchainCache::Handle, std::string>>> results(4);
  std::vector<std::thread> threads;
  for (auto& result : results) {
    threads.emplace_back([&] {
      ++started;
      result.emplace(cache.acquire(id, failing));
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(calls.load(), 1);
  for (auto& result : results) {
    ASSERT_FALSE(*result);
    EXPECT_NE(result->error().find("connection reset"), std::string::npos) << result->error();
  }
  EXPECT_FALSE(cache.has(id));

  auto retried = cache.acquire(id, serve(archive, &calls));
  ASSERT_TRUE(retried) << retried.error();
  EXPECT_EQ(calls.load(), 2);
  EXPECT_TRUE(cache.has(id));
}

TEST_F(ToolchainCacheTest, RefusesMalformedIdsAndArchivesOfAnotherId) {
  ToolchainCache cache(m_dir + "/tc", 1 << 20);
  std::atomic<int> calls{0};
  const std::string archive = toolchain('a');
  EXPECT_FALSE(cache.acquire("../../etc", serve(archive, &calls)));
  EXPECT_FALSE(cache.acquire(std::string(64, 'A'), serve(archive, &calls)));
  EXPECT_EQ(calls.load(), 0);
  const std::string other = id_of(toolchain('b'));
  auto wrong = cache.acquire(other, serve(archive, &calls));
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().find("not the expected id"), std::string::npos) << wrong.error();
  EXPECT_FALSE(cache.has(other));
  EXPECT_EQ(names_in(m_dir + "/tc"), std::vector<std::string>{});
}

}  // namespace
}  // namespace kiln::dist
