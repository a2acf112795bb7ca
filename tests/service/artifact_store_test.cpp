#include "kiln/service/artifact_store.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <thread>

#include "kiln/util/file.hpp"
#include "kiln/util/hash.hpp"
#include "postgres_server.hpp"
#include "test_archive.hpp"

namespace kiln::service {
namespace {

const std::string k_id = "9f86d081-884c-4d63-8e2d-1a2b3c4d5e6f";
const std::string k_other = "00000000-0000-4000-8000-000000000000";

std::string sha256(std::string_view data) {
  return util::Hasher().update(data).finish().to_hex();
}

class ArtifactStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_root = test::make_temp_dir("kiln-artifacts");
    ASSERT_FALSE(m_root.empty());
    m_dir = m_root + "/binaries";
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(m_root, ignored);
  }

  // The names under the store's directory, recursively, relative to it.
  std::vector<std::string> listing() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (std::filesystem::recursive_directory_iterator it(m_dir, ec), end; !ec && it != end;
         it.increment(ec)) {
      out.push_back(std::filesystem::relative(it->path(), m_dir).string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string m_root;
  std::string m_dir;
};

TEST_F(ArtifactStoreTest, PutGetRoundTrip) {
  ArtifactStore store(m_dir);
  const std::string body = test::incompressible(3 << 20);  // several write chunks
  EXPECT_FALSE(store.exists(k_id, 1));
  ASSERT_TRUE(store.put(k_id, 1, sha256(body), body));
  EXPECT_TRUE(store.exists(k_id, 1));
  EXPECT_EQ(store.path(k_id, 1), m_dir + "/" + k_id + "/1");
  auto got = store.get(k_id, 1);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->data, body);
  EXPECT_EQ(got->sha256_hex, sha256(body));
  EXPECT_EQ(listing(), (std::vector<std::string>{k_id, k_id + "/1"}));
  // Data, not a program to run here: rw for the owner, never executable.
  EXPECT_EQ(util::FileStat::of(store.path(k_id, 1)).mode & 0711, 0600u);

  ASSERT_TRUE(store.put(k_id, 2, sha256(""), ""));  // an empty binary is one too
  auto empty = store.get(k_id, 2);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->data, "");
}

TEST_F(ArtifactStoreTest, MissingIsNotFound) {
  ArtifactStore store(m_dir);
  auto got = store.get(k_id, 1);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().problem, ArtifactProblem::not_found);
  ASSERT_TRUE(store.put(k_id, 1, sha256("x"), "x"));
  EXPECT_EQ(store.get(k_id, 2).error().problem, ArtifactProblem::not_found);
  EXPECT_EQ(store.get(k_other, 1).error().problem, ArtifactProblem::not_found);
}

TEST_F(ArtifactStoreTest, HashMismatchLeavesNothing) {
  ArtifactStore store(m_dir);
  auto put = store.put(k_id, 1, sha256("other"), "body");
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().problem, ArtifactProblem::hash_mismatch);
  EXPECT_NE(put.error().message.find(sha256("body")), std::string::npos) << put.error().message;
  EXPECT_FALSE(store.exists(k_id, 1));
  EXPECT_EQ(listing(), (std::vector<std::string>{k_id}));  // the directory, no file
  // And a mismatching retry does not replace a good binary.
  ASSERT_TRUE(store.put(k_id, 1, sha256("good"), "good"));
  EXPECT_FALSE(store.put(k_id, 1, sha256("good"), "bad!"));
  EXPECT_EQ(store.get(k_id, 1)->data, "good");
  EXPECT_EQ(listing(), (std::vector<std::string>{k_id, k_id + "/1"}));
}

TEST_F(ArtifactStoreTest, RefusesBadIdsVersionsAndHashes) {
  ArtifactStore store(m_dir);
  const std::string sha = sha256("x");
  for (const std::string& id :
       {std::string(), std::string("9F86D081-884C-4D63-8E2D-1A2B3C4D5E6F"),
        std::string("9f86d081884c4d638e2d1a2b3c4d5e6f"), std::string("../../etc/passwd"),
        std::string("9f86d081-884c-4d63-8e2d-1a2b3c4d5e6g"), k_id + "/"}) {
    auto put = store.put(id, 1, sha, "x");
    ASSERT_FALSE(put) << id;
    EXPECT_EQ(put.error().problem, ArtifactProblem::invalid) << id;
    EXPECT_EQ(store.get(id, 1).error().problem, ArtifactProblem::invalid) << id;
    EXPECT_FALSE(store.exists(id, 1));
  }
  for (int64_t version : {0, -1}) {
    EXPECT_EQ(store.put(k_id, version, sha, "x").error().problem, ArtifactProblem::invalid);
    EXPECT_EQ(store.get(k_id, version).error().problem, ArtifactProblem::invalid);
  }
  for (const std::string& bad_sha :
       {std::string(), sha.substr(1), sha + "0", std::string(64, 'A'), std::string(64, 'g')}) {
    EXPECT_EQ(store.put(k_id, 1, bad_sha, "x").error().problem, ArtifactProblem::invalid)
        << bad_sha;
  }
  EXPECT_FALSE(util::FileStat::of(m_dir).exists());  // nothing was created
}

TEST_F(ArtifactStoreTest, PutOverTheSameVersionIsFine) {
  ArtifactStore store(m_dir);
  ASSERT_TRUE(store.put(k_id, 1, sha256("first"), "first"));
  ASSERT_TRUE(store.put(k_id, 1, sha256("first"), "first"));  // an upload retried
  ASSERT_TRUE(store.put(k_id, 1, sha256("second"), "second"));
  EXPECT_EQ(store.get(k_id, 1)->data, "second");
  EXPECT_EQ(listing(), (std::vector<std::string>{k_id, k_id + "/1"}));
}

TEST_F(ArtifactStoreTest, GetShowsDamageOnDisk) {
  ArtifactStore store(m_dir);
  ASSERT_TRUE(store.put(k_id, 1, sha256("binary"), "binary"));
  ASSERT_TRUE(util::write_file(store.path(k_id, 1), "binarx"));
  auto got = store.get(k_id, 1);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->sha256_hex, sha256("binarx"));
  EXPECT_NE(got->sha256_hex, sha256("binary"));
}

void age(const std::string& path, std::chrono::seconds by) {
  const auto then = std::chrono::system_clock::now() - by;
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(then.time_since_epoch()).count();
  const timespec times[2] = {{ns / 1'000'000'000, ns % 1'000'000'000},
                             {ns / 1'000'000'000, ns % 1'000'000'000}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
}

TEST_F(ArtifactStoreTest, CleanupKeepsWhatIsListedAndRemovesTheRest) {
  ArtifactStore store(m_dir);
  for (int64_t version : {1, 2, 3}) {
    ASSERT_TRUE(store.put(k_id, version, sha256("x"), "x"));
  }
  ASSERT_TRUE(store.put(k_other, 7, sha256("y"), "y"));
  // Files that are not the store's are left alone.
  ASSERT_TRUE(util::write_file(m_dir + "/" + k_id + "/README", "mine"));
  ASSERT_TRUE(util::write_file(m_dir + "/" + k_id + "/007", "mine"));
  ASSERT_TRUE(util::make_directories(m_dir + "/not-a-program"));

  auto result = store.cleanup({{k_id, 2}, {k_id, 9}}, std::chrono::hours(1));
  EXPECT_EQ(result.binaries_removed, 3);  // k_id 1 and 3, k_other 7
  EXPECT_EQ(result.temporaries_removed, 0);
  EXPECT_EQ(listing(), (std::vector<std::string>{k_id, k_id + "/007", k_id + "/2", k_id + "/README",
                                                 "not-a-program"}));
  // k_other's directory, empty, went too.
  EXPECT_FALSE(util::FileStat::of(m_dir + "/" + k_other).exists());

  result = store.cleanup({}, std::chrono::hours(1));
  EXPECT_EQ(result.binaries_removed, 1);
  EXPECT_EQ(listing(),
            (std::vector<std::string>{k_id, k_id + "/007", k_id + "/README", "not-a-program"}));
}

TEST_F(ArtifactStoreTest, CleanupRemovesOnlyStaleTemporaries) {
  ArtifactStore store(m_dir);
  ASSERT_TRUE(store.put(k_id, 1, sha256("x"), "x"));
  const std::string program_dir = m_dir + "/" + k_id;
  const std::string stale = program_dir + "/.tmp-stale";
  const std::string fresh = program_dir + "/.tmp-fresh";
  const std::string stale_elsewhere = m_dir + "/.tmp-at-the-top";
  ASSERT_TRUE(util::write_file(stale, "partial"));
  ASSERT_TRUE(util::write_file(fresh, "partial"));
  ASSERT_TRUE(util::write_file(stale_elsewhere, "partial"));
  age(stale, std::chrono::hours(2));
  age(stale_elsewhere, std::chrono::hours(2));
  age(fresh, std::chrono::minutes(30));

  auto result = store.cleanup({{k_id, 1}}, std::chrono::hours(1));
  EXPECT_EQ(result.binaries_removed, 0);
  EXPECT_EQ(result.temporaries_removed, 2);
  EXPECT_EQ(listing(), (std::vector<std::string>{k_id, k_id + "/.tmp-fresh", k_id + "/1"}));
}

TEST_F(ArtifactStoreTest, CleanupOfAMissingDirectoryDoesNothing) {
  ArtifactStore store(m_dir);
  auto result = store.cleanup({}, std::chrono::seconds(0));
  EXPECT_EQ(result.binaries_removed, 0);
  EXPECT_EQ(result.temporaries_removed, 0);
}

TEST_F(ArtifactStoreTest, ConcurrentPutsOfOneKeyEndWithOneGoodFile) {
  ArtifactStore store(m_dir);
  const std::string body = test::incompressible(4 << 20, 7);
  const std::string sha = sha256(body);
  for (int round = 0; round < 5; ++round) {
    std::vector<expected<void, ArtifactError>> results(2, expected<void, ArtifactError>{});
    std::thread a([&] { results[0] = store.put(k_id, 1, sha, body); });
    std::thread b([&] { results[1] = store.put(k_id, 1, sha, body); });
    a.join();
    b.join();
    EXPECT_TRUE(results[0]) << results[0].error().message;
    EXPECT_TRUE(results[1]) << results[1].error().message;
    auto got = store.get(k_id, 1);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->sha256_hex, sha);
    EXPECT_EQ(listing(), (std::vector<std::string>{k_id, k_id + "/1"}));
  }
}

TEST_F(ArtifactStoreTest, PutRacingCleanupOfTheEmptyDirectory) {
  // cleanup removes a program's directory once empty; a put that created it
  // just before must still succeed.
  ArtifactStore store(m_dir);
  std::atomic<bool> stop{false};
  std::thread cleaner([&] {
    while (!stop) {
      store.cleanup({{k_id, 1}}, std::chrono::hours(1));
    }
  });
  for (int i = 0; i < 200; ++i) {
    auto put = store.put(k_id, 1, sha256("x"), "x");
    ASSERT_TRUE(put) << put.error().message;
    ASSERT_TRUE(::unlink(store.path(k_id, 1).c_str()) == 0);
  }
  stop = true;
  cleaner.join();
}

TEST_F(ArtifactStoreTest, NoSpaceOnAFullFileSystem) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "mounting a 1 MiB tmpfs needs root";
  }
  const std::string mount_point = m_root + "/small";
  ASSERT_TRUE(util::make_directories(mount_point));
  if (::mount("tmpfs", mount_point.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=1m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  {
    ArtifactStore store(mount_point + "/binaries");
    const std::string body = test::incompressible(2 << 20, 3);
    auto put = store.put(k_id, 1, sha256(body), body);
    ASSERT_FALSE(put);
    EXPECT_EQ(put.error().problem, ArtifactProblem::no_space) << put.error().message;
    EXPECT_FALSE(store.exists(k_id, 1));
    // The temporary file is gone: a small binary fits again.
    EXPECT_TRUE(std::filesystem::is_empty(mount_point + "/binaries/" + k_id));
    EXPECT_TRUE(store.put(k_id, 1, sha256("small"), "small"));
  }
  EXPECT_EQ(::umount2(mount_point.c_str(), MNT_DETACH), 0) << std::strerror(errno);
}

}  // namespace
}  // namespace kiln::service
