#include "kiln/cache/manifest.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "kiln/util/file.hpp"
#include "kiln/util/hash.hpp"
#include "temp_dir.hpp"

namespace kiln::cache {
namespace {

namespace fs = std::filesystem;

// Trust every directory stat (a record taken long after its last change).
constexpr int64_t k_trust_all = INT64_MAX;

util::Digest key(int n) {
  return util::Hasher().field(int64_t{n}).finish();
}

class ManifestTest : public kiln::testing::TempDirTest {
 protected:
  std::string path(const std::string& name) const { return m_dir + "/" + name; }

  void write(const std::string& name, const std::string& content) {
    ASSERT_TRUE(util::write_file(path(name), content));
  }

  // Writes `name` with an old mtime, so that rewriting it later changes its
  // stat even within one tick of the kernel's coarse clock.
  void write_old(const std::string& name, const std::string& content) {
    write(name, content);
    set_mtime(name, k_old_time);
  }

  static constexpr int64_t k_old_time = 1000000000;
  static constexpr int64_t k_touch_time = 1500000000;

  // Sets the mtime (and so the ctime, to now) of `name`.
  void set_mtime(const std::string& name, int64_t sec) {
    struct timespec times[2] = {{sec, 0}, {sec, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path(name).c_str(), times, 0), 0);
  }

  // A record of the file as it is now, with its stat trusted.
  Manifest::FileRecord record(const std::string& name, bool relative = true) {
    Manifest::FileRecord f;
    f.path = relative ? name : path(name);
    auto content = util::read_file(path(name));
    EXPECT_TRUE(content) << name;
    f.digest = util::Hasher().update(content ? *content : "").finish();
    util::FileStat st = util::FileStat::of(path(name));
    f.has_stat = true;
    f.dev = st.dev;
    f.ino = st.ino;
    f.size = st.size;
    f.mtime_ns = st.mtime_ns;
    f.ctime_ns = st.ctime_ns;
    return f;
  }

  std::optional<util::Digest> lookup(const Manifest& m, int64_t* rehashed = nullptr,
                                     int64_t today = 20240115) {
    FileChecker checker(m_dir);
    return m.lookup(checker, today, rehashed);
  }
};

TEST_F(ManifestTest, EmptyManifestMatchesNothing) {
  Manifest m;
  EXPECT_FALSE(lookup(m));
  EXPECT_TRUE(m.entries().empty());
}

TEST_F(ManifestTest, UnchangedFilesMatchWithoutHashing) {
  write("a.h", "int a;\n");
  write("b.h", "int b;\n");
  Manifest m;
  m.add({record("a.h"), record("b.h", false)}, {}, key(1), 0);
  FileChecker checker(m_dir);
  int64_t rehashed = -1;
  auto found = m.lookup(checker, 20240115, &rehashed);
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, key(1));
  EXPECT_EQ(rehashed, 0);
  EXPECT_EQ(checker.files_hashed(), 0);
}

TEST_F(ManifestTest, TouchedFileIsRehashedAndStillMatches) {
  write("a.h", "int a;\n");
  write("b.h", "int b;\n");
  Manifest m;
  m.add({record("a.h"), record("b.h")}, {}, key(1), 0);
  set_mtime("a.h", k_touch_time);
  int64_t rehashed = -1;
  auto found = lookup(m, &rehashed);
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, key(1));
  EXPECT_EQ(rehashed, 1);
}

TEST_F(ManifestTest, RefreshStatAfterAContentMatch) {
  write("a.h", "int a;\n");
  write("b.h", "int b;\n");
  Manifest::FileRecord untrusted = record("b.h");
  untrusted.has_stat = false;
  Manifest m;
  m.add({record("a.h"), untrusted}, {}, key(1), 0);
  set_mtime("a.h", k_touch_time);
  {
    FileChecker checker(m_dir);
    int64_t rehashed = -1;
    std::vector<uint32_t> matched;
    ASSERT_TRUE(m.lookup(checker, 20240115, &rehashed, &matched));
    EXPECT_EQ(rehashed, 2);
    ASSERT_EQ(matched, (std::vector<uint32_t>{0, 1}));
    for (uint32_t i : matched) {
      m.refresh_stat(i, checker.stat(m.files()[i].path));
    }
  }
  EXPECT_TRUE(m.files()[1].has_stat);
  auto parsed = Manifest::parse(m.serialize());
  ASSERT_TRUE(parsed);
  FileChecker checker(m_dir);
  int64_t rehashed = -1;
  std::vector<uint32_t> matched;
  auto found = parsed->lookup(checker, 20240115, &rehashed, &matched);
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, key(1));
  EXPECT_EQ(rehashed, 0);
  EXPECT_TRUE(matched.empty());
  EXPECT_EQ(checker.files_hashed(), 0);
}

TEST_F(ManifestTest, UntrustedStatIsAlwaysHashed) {
  write("a.h", "int a;\n");
  Manifest::FileRecord f = record("a.h");
  f.has_stat = false;
  Manifest m;
  m.add({f}, {}, key(1), 0);
  int64_t rehashed = -1;
  EXPECT_TRUE(lookup(m, &rehashed));
  EXPECT_EQ(rehashed, 1);
}

TEST_F(ManifestTest, ChangedContentDoesNotMatch) {
  write_old("a.h", "int a;\n");
  Manifest m;
  m.add({record("a.h")}, {}, key(1), 0);
  write("a.h", "int b;\n");  // same size
  int64_t rehashed = -1;
  EXPECT_FALSE(lookup(m, &rehashed));
  EXPECT_EQ(rehashed, 1);
}

TEST_F(ManifestTest, ChangedSizeDoesNotMatchWithoutHashing) {
  write("a.h", "int a;\n");
  Manifest m;
  m.add({record("a.h")}, {}, key(1), 0);
  write("a.h", "int a; int b;\n");
  int64_t rehashed = -1;
  EXPECT_FALSE(lookup(m, &rehashed));
  EXPECT_EQ(rehashed, 0);
}

TEST_F(ManifestTest, RemovedFileOrDirectoryInItsPlaceDoesNotMatch) {
  write("a.h", "int a;\n");
  Manifest m;
  m.add({record("a.h")}, {}, key(1), 0);
  ASSERT_EQ(::unlink(path("a.h").c_str()), 0);
  EXPECT_FALSE(lookup(m));
  ASSERT_EQ(::mkdir(path("a.h").c_str(), 0755), 0);
  EXPECT_FALSE(lookup(m));
}

TEST_F(ManifestTest, NewestMatchingEntryIsPreferred) {
  write_old("a.h", "int a;\n");
  write_old("b.h", "int b;\n");
  Manifest m;
  m.add({record("a.h")}, {}, key(1), 0);
  m.add({record("a.h"), record("b.h")}, {}, key(2), 0);
  EXPECT_EQ(m.files().size(), 2u);  // a.h is shared
  auto found = lookup(m);
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, key(2));
  // When the newest no longer matches, an older one may.
  write("b.h", "int c;\n");
  found = lookup(m);
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, key(1));
}

TEST_F(ManifestTest, SameResultKeyReplacesTheOldEntry) {
  write("a.h", "int a;\n");
  write("b.h", "int b;\n");
  Manifest m;
  m.add({record("a.h")}, {}, key(1), 0);
  m.add({record("b.h")}, {}, key(2), 0);
  m.add({record("b.h")}, {}, key(1), 0);
  ASSERT_EQ(m.entries().size(), 2u);
  EXPECT_EQ(m.entries()[0].result_key, key(2));
  EXPECT_EQ(m.entries()[1].result_key, key(1));
  // a.h is used by no entry any more.
  ASSERT_EQ(m.files().size(), 1u);
  EXPECT_EQ(m.files()[0].path, "b.h");
}

TEST_F(ManifestTest, DateDependentEntryMatchesOnlyThatDay) {
  write("a.h", "int a;\n");
  Manifest m;
  m.add({record("a.h")}, {}, key(1), 20240115);
  EXPECT_TRUE(lookup(m, nullptr, 20240115));
  EXPECT_FALSE(lookup(m, nullptr, 20240116));
}

TEST_F(ManifestTest, EntriesAreBounded) {
  Manifest m;
  const int n = static_cast<int>(Manifest::k_max_entries) + 6;
  for (int i = 0; i < n; ++i) {
    Manifest::FileRecord f;
    f.path = "h" + std::to_string(i) + ".h";
    f.digest = key(1000 + i);
    m.add({f}, {}, key(i), 0);
  }
  ASSERT_EQ(m.entries().size(), Manifest::k_max_entries);
  EXPECT_EQ(m.entries().front().result_key, key(6));
  EXPECT_EQ(m.entries().back().result_key, key(n - 1));
  // Records only the dropped entries used are gone.
  ASSERT_EQ(m.files().size(), Manifest::k_max_entries);
  EXPECT_EQ(m.files().front().path, "h6.h");
  for (const auto& e : m.entries()) {
    for (uint32_t i : e.files) {
      EXPECT_LT(i, m.files().size());
    }
  }
}

TEST_F(ManifestTest, AbsentNameThatAppearsBreaksTheMatch) {
  ASSERT_EQ(::mkdir(path("inc").c_str(), 0755), 0);
  write("a.h", "int a;\n");
  set_mtime("inc", k_old_time);
  Manifest m;
  {
    FileChecker checker(m_dir);
    m.add({record("a.h")}, {Manifest::dir_record("inc", {"a.h", "sub/b.h"}, checker, k_trust_all)},
          key(1), 0);
  }
  ASSERT_EQ(m.dirs().size(), 1u);
  EXPECT_FALSE(m.dirs()[0].missing);
  EXPECT_TRUE(lookup(m));

  // The shadowing header appears: the directory's mtime changes with it.
  write("inc/a.h", "int shadow;\n");
  EXPECT_FALSE(lookup(m));
}

TEST_F(ManifestTest, ChangedDirectoryWithoutAbsentNamesStillMatches) {
  ASSERT_EQ(::mkdir(path("inc").c_str(), 0755), 0);
  write("a.h", "int a;\n");
  set_mtime("inc", k_old_time);
  Manifest m;
  {
    FileChecker checker(m_dir);
    m.add({record("a.h")}, {Manifest::dir_record("inc", {"a.h"}, checker, k_trust_all)}, key(1), 0);
  }
  write("inc/unrelated.h", "");
  EXPECT_NE(util::FileStat::of(path("inc")).mtime_ns, m.dirs()[0].mtime_ns);
  EXPECT_TRUE(lookup(m));
}

TEST_F(ManifestTest, AbsentNamesAreCheckedOnlyWhenTheDirectoryChanged) {
  // A record taken while the name existed (which kiln never writes) shows that
  // an unchanged directory stat is trusted without looking at the names.
  ASSERT_EQ(::mkdir(path("inc").c_str(), 0755), 0);
  write("inc/a.h", "");
  write("a.h", "int a;\n");
  Manifest m;
  {
    FileChecker checker(m_dir);
    m.add({record("a.h")}, {Manifest::dir_record("inc", {"a.h"}, checker, k_trust_all)}, key(1), 0);
  }
  EXPECT_TRUE(lookup(m));
}

TEST_F(ManifestTest, UntrustedDirectoryStatIsNeverTrusted) {
  // Changed too recently when recorded: the names are checked even though the
  // directory's stat is still the recorded one (a file created in the same
  // clock tick as the last change would not move the mtime).
  ASSERT_EQ(::mkdir(path("inc").c_str(), 0755), 0);
  write("inc/a.h", "");
  write("a.h", "int a;\n");
  Manifest m;
  {
    FileChecker checker(m_dir);
    m.add({record("a.h")}, {Manifest::dir_record("inc", {"a.h"}, checker, 0)}, key(1), 0);
  }
  EXPECT_FALSE(m.dirs()[0].trusted);
  EXPECT_FALSE(lookup(m));
}

TEST_F(ManifestTest, DirectoryCheckedByNameIsRefreshed) {
  // An untrusted record (another machine, or a fresh directory): its names
  // are checked, then its stat taken before that check is recorded.
  ASSERT_EQ(::mkdir(path("inc").c_str(), 0755), 0);
  set_mtime("inc", k_old_time);  // so that creating a file in it moves its mtime
  write("a.h", "int a;\n");
  Manifest m;
  {
    FileChecker checker(m_dir);
    m.add({record("a.h")}, {Manifest::dir_record("inc", {"x.h"}, checker, 0)}, key(1), 0);
  }
  std::vector<uint32_t> by_name;
  {
    FileChecker checker(m_dir);
    EXPECT_TRUE(m.lookup(checker, 0, nullptr, nullptr, &by_name));
    ASSERT_EQ(by_name, (std::vector<uint32_t>{0}));
    m.refresh_dir(0, checker.stat("inc"));
  }
  EXPECT_TRUE(m.dirs()[0].trusted);
  by_name.clear();
  {
    FileChecker checker(m_dir);
    EXPECT_TRUE(m.lookup(checker, 0, nullptr, nullptr, &by_name));
    EXPECT_TRUE(by_name.empty());
  }
  // The name appears: the directory changed, the names are checked again.
  write("inc/x.h", "");
  EXPECT_FALSE(lookup(m));
}

TEST_F(ManifestTest, MissingDirectoryThatAppears) {
  write("a.h", "int a;\n");
  Manifest m;
  {
    FileChecker checker(m_dir);
    m.add({record("a.h")}, {Manifest::dir_record("gen", {"a.h"}, checker, k_trust_all)}, key(1), 0);
  }
  ASSERT_EQ(m.dirs().size(), 1u);
  EXPECT_TRUE(m.dirs()[0].missing);
  EXPECT_TRUE(lookup(m));
  ASSERT_EQ(::mkdir(path("gen").c_str(), 0755), 0);
  EXPECT_TRUE(lookup(m));  // the directory alone shadows nothing
  write("gen/a.h", "");
  EXPECT_FALSE(lookup(m));
}

TEST_F(ManifestTest, SerializeParseRoundTrip) {
  write("a.h", "int a;\n");
  write("b.h", "int b;\n");
  ASSERT_EQ(::mkdir(path("inc").c_str(), 0755), 0);
  Manifest m;
  {
    FileChecker checker(m_dir);
    m.add({record("a.h"), record("b.h", false)},
          {Manifest::dir_record("inc", {"a.h", "b.h"}, checker, k_trust_all),
           Manifest::dir_record("missing", {"x.h"}, checker, k_trust_all)},
          key(1), 0);
    Manifest::FileRecord untrusted = record("a.h");
    untrusted.has_stat = false;
    m.add({untrusted}, {}, key(2), 20240115);
  }
  std::string bytes = m.serialize();
  auto parsed = Manifest::parse(bytes);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->serialize(), bytes);
  ASSERT_EQ(parsed->files().size(), 3u);
  EXPECT_EQ(parsed->files()[1].path, path("b.h"));
  EXPECT_EQ(parsed->files()[1].mtime_ns, m.files()[1].mtime_ns);
  EXPECT_FALSE(parsed->files()[2].has_stat);
  ASSERT_EQ(parsed->dirs().size(), 2u);
  EXPECT_EQ(parsed->dirs()[0].absent, (std::vector<std::string>{"a.h", "b.h"}));
  EXPECT_TRUE(parsed->dirs()[1].missing);
  ASSERT_EQ(parsed->entries().size(), 2u);
  EXPECT_EQ(parsed->entries()[1].date, 20240115);
  EXPECT_EQ(parsed->entries()[0].result_key, key(1));
  auto found = lookup(*parsed);
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, key(2));

  Manifest empty;
  auto parsed_empty = Manifest::parse(empty.serialize());
  ASSERT_TRUE(parsed_empty);
  EXPECT_TRUE(parsed_empty->entries().empty());
}

Manifest sample_manifest() {
  Manifest m;
  for (int i = 0; i < 4; ++i) {
    std::vector<Manifest::FileRecord> files;
    for (int k = 0; k <= i; ++k) {
      Manifest::FileRecord f;
      f.path = "dir/h" + std::to_string(k) + ".h";
      f.digest = key(100 + k);
      f.has_stat = k % 2 == 0;
      f.size = 10 + k;
      f.mtime_ns = 1000 + k;
      files.push_back(f);
    }
    Manifest::DirRecord d;
    d.path = "dir" + std::to_string(i);
    d.absent = {"a.h", "b/c.h"};
    d.missing = i == 3;
    m.add(files, {d}, key(i), i == 2 ? 20240115 : 0);
  }
  return m;
}

TEST_F(ManifestTest, EveryTruncationIsRejected) {
  std::string bytes = sample_manifest().serialize();
  ASSERT_TRUE(Manifest::parse(bytes));
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(Manifest::parse(std::string_view(bytes).substr(0, n))) << "length " << n;
  }
  EXPECT_FALSE(Manifest::parse(bytes + '\0'));
}

TEST_F(ManifestTest, WrongVersionAndBadIndicesAreRejected) {
  std::string bytes = sample_manifest().serialize();
  std::string wrong_version = bytes;
  wrong_version[0] = 1;  // the format before watched directories were trusted or not
  EXPECT_FALSE(Manifest::parse(wrong_version));

  // A single-entry manifest whose entry names file index 1 of 1.
  Manifest one;
  Manifest::FileRecord f;
  f.path = "x.h";
  one.add({f}, {}, key(1), 0);
  std::string good = one.serialize();
  ASSERT_TRUE(Manifest::parse(good));
  // Layout: version, nfiles, file record, ndirs, nentries, nfiles of entry, index...
  size_t index_offset = good.size() - 8 - 32 - 4 - 4;  // date, key, ndirs, index
  ASSERT_EQ(good[index_offset], 0);
  std::string bad = good;
  bad[index_offset] = 1;
  EXPECT_FALSE(Manifest::parse(bad));
}

TEST_F(ManifestTest, RandomGarbageNeverCrashes) {
  std::mt19937_64 rng(7);
  std::string bytes = sample_manifest().serialize();
  int accepted = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    std::string mutated = bytes;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t pos = rng() % mutated.size();
      switch (rng() % 5) {
        case 0:
          mutated[pos] = static_cast<char>(mutated[pos] ^ (1 << (rng() % 8)));
          break;
        case 1:
          mutated[pos] = static_cast<char>(rng());
          break;
        case 2:
          mutated.resize(pos);
          break;
        case 3:
          mutated.insert(pos, 1, static_cast<char>(rng()));
          break;
        default:
          // A large count or length in a 4-byte field.
          for (size_t k = 0; k < 4 && pos + k < mutated.size(); ++k) {
            mutated[pos + k] = static_cast<char>(0xff);
          }
      }
      if (mutated.empty()) {
        mutated = "x";
      }
    }
    auto parsed = Manifest::parse(mutated);
    if (parsed) {
      ++accepted;
      // What parses is usable: indices are valid and it re-serializes.
      for (const auto& e : parsed->entries()) {
        for (uint32_t i : e.files) {
          ASSERT_LT(i, parsed->files().size());
        }
        for (uint32_t i : e.dirs) {
          ASSERT_LT(i, parsed->dirs().size());
        }
      }
      std::string again = parsed->serialize();
      auto reparsed = Manifest::parse(again);
      ASSERT_TRUE(reparsed);
      EXPECT_EQ(reparsed->serialize(), again);
      FileChecker checker(m_dir);
      (void)parsed->lookup(checker, 20240115);
    }
  }
  // Purely random input.
  for (int iter = 0; iter < 2000; ++iter) {
    std::string junk(rng() % 200, '\0');
    for (char& c : junk) {
      c = static_cast<char>(rng());
    }
    if (iter % 2 == 0 && junk.size() >= 4) {
      junk[0] = 1;  // right version
      junk[1] = junk[2] = junk[3] = 0;
    }
    auto parsed = Manifest::parse(junk);
    if (parsed) {
      EXPECT_TRUE(Manifest::parse(parsed->serialize()));
    }
  }
  // The mutations reach both outcomes.
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, 5000);
}

}  // namespace
}  // namespace kiln::cache
