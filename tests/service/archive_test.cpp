#include "kiln/service/archive.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "kiln/util/file.hpp"
#include "postgres_server.hpp"
#include "test_archive.hpp"

namespace kiln::service {
namespace {

using test::make_tar;
using test::TarEntry;
using test::TarFilter;

const ArchiveLimits k_limits;

std::vector<TarEntry> project_at_root() {
  return {TarEntry::file("CMakeLists.txt", "project(p)\n"),
          TarEntry::file("main.cc", "int main() {}\n"), TarEntry::dir("src"),
          TarEntry::file("src/util.cc", "int f() { return 1; }\n")};
}

std::vector<TarEntry> project_in(const std::string& top) {
  return {TarEntry::dir(top + "/"),
          TarEntry::file(top + "/CMakeLists.txt", "project(p)\n"),
          TarEntry::file(top + "/main.cc", "int main() {}\n", 0755),
          TarEntry::dir(top + "/include"),
          TarEntry::symlink(top + "/include/util", "../src"),
          TarEntry::dir(top + "/src"),
          TarEntry::file(top + "/src/util.cc", "int f() { return 1; }\n")};
}

// The error of an archive that must be refused.
ArchiveError refused(const std::vector<TarEntry>& entries, const ArchiveLimits& limits = k_limits) {
  auto summary = inspect_archive(make_tar(entries), limits);
  EXPECT_FALSE(summary.has_value());
  return summary ? ArchiveError{ArchiveProblem::io, "accepted"} : summary.error();
}

std::vector<TarEntry> with(std::vector<TarEntry> entries, TarEntry extra) {
  entries.push_back(std::move(extra));
  return entries;
}

TEST(ArchiveInspect, ProjectAtTheRoot) {
  auto summary = inspect_archive(make_tar(project_at_root()), k_limits);
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_EQ(summary->entries, 4u);
  EXPECT_EQ(summary->unpacked_bytes, 11u + 14u + 22u);
  EXPECT_EQ(summary->top, "");
  EXPECT_TRUE(summary->has_cmakelists);
  EXPECT_FALSE(summary->has_program_toml);
}

TEST(ArchiveInspect, ProjectInOneTopDirectory) {
  auto summary = inspect_archive(make_tar(project_in("p")), k_limits);
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_EQ(summary->top, "p");
  EXPECT_EQ(summary->entries, 7u);
  EXPECT_TRUE(summary->has_cmakelists);
}

TEST(ArchiveInspect, TopDirectoryWithDotSlashAndWithoutItsOwnEntry) {
  // `tar czf p.tar.gz -C p .` writes "./" and "./x"; other tools leave out
  // the directories' own entries.
  auto dot = inspect_archive(make_tar({TarEntry::dir("./"), TarEntry::dir("./q/"),
                                       TarEntry::file("./q/CMakeLists.txt", "")}),
                             k_limits);
  ASSERT_TRUE(dot) << dot.error().message;
  EXPECT_EQ(dot->top, "q");
  auto implied = inspect_archive(make_tar({TarEntry::file("q/kiln-program.toml", "")}), k_limits);
  ASSERT_TRUE(implied) << implied.error().message;
  EXPECT_EQ(implied->top, "q");
  EXPECT_FALSE(implied->has_cmakelists);
  EXPECT_TRUE(implied->has_program_toml);
}

TEST(ArchiveInspect, ProgramTomlInsteadOfCMakeLists) {
  auto summary =
      inspect_archive(make_tar({TarEntry::file("kiln-program.toml", "sources = [\"main.cc\"]\n"),
                                TarEntry::file("main.cc", "int main() {}\n")}),
                      k_limits);
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_EQ(summary->top, "");
  EXPECT_FALSE(summary->has_cmakelists);
  EXPECT_TRUE(summary->has_program_toml);
}

TEST(ArchiveInspect, MissingCMakeListsIsInvalid) {
  const std::string message = "no CMakeLists.txt or kiln-program.toml at the top of the archive";
  for (const auto& entries : std::vector<std::vector<TarEntry>>{
           {TarEntry::file("main.cc", "")},
           // Two directories at the root: neither is the top.
           {TarEntry::file("a/CMakeLists.txt", ""), TarEntry::file("b/main.cc", "")},
           // Deeper than the top.
           {TarEntry::file("p/sub/CMakeLists.txt", "")},
           // A directory, or a link, of that name is not the file.
           {TarEntry::dir("CMakeLists.txt"), TarEntry::file("x", "")},
           {TarEntry::file("x", ""), TarEntry::symlink("CMakeLists.txt", "x")}}) {
    const ArchiveError error = refused(entries);
    EXPECT_EQ(error.problem, ArchiveProblem::invalid);
    EXPECT_EQ(error.message, message);
  }
}

TEST(ArchiveInspect, RefusesAbsolutePaths) {
  for (const char* path : {"/etc/cron.d/x", ".//etc/x", "/x"}) {
    const ArchiveError error = refused(with(project_at_root(), TarEntry::file(path, "x")));
    EXPECT_EQ(error.problem, ArchiveProblem::invalid);
    EXPECT_NE(error.message.find(path), std::string::npos) << error.message;
    EXPECT_NE(error.message.find("absolute"), std::string::npos) << error.message;
  }
}

TEST(ArchiveInspect, RefusesDotDot) {
  for (const char* path : {"../x", "p/../../x", "p/..", "./a/../b"}) {
    const ArchiveError error = refused(with(project_at_root(), TarEntry::file(path, "x")));
    EXPECT_EQ(error.problem, ArchiveProblem::invalid);
    EXPECT_NE(error.message.find(path), std::string::npos) << error.message;
    EXPECT_NE(error.message.find("'..'"), std::string::npos) << error.message;
  }
}

TEST(ArchiveInspect, RefusesSymlinksLeavingTheArchive) {
  for (const auto& [path, target] :
       std::vector<std::pair<std::string, std::string>>{{"p/l", "../../etc"},
                                                        {"p/include/l", "../../../etc"},
                                                        {"l", ".."},
                                                        {"p/l", "../x/../../y"}}) {
    const ArchiveError error = refused(with(project_in("p"), TarEntry::symlink(path, target)));
    EXPECT_EQ(error.problem, ArchiveProblem::invalid);
    EXPECT_NE(error.message.find("\"" + path + "\" -> \"" + target + "\""), std::string::npos)
        << error.message;
    EXPECT_NE(error.message.find("leads out"), std::string::npos) << error.message;
  }
}

TEST(ArchiveInspect, RefusesAbsoluteSymlinkTargets) {
  const ArchiveError error = refused(with(project_in("p"), TarEntry::symlink("p/etc", "/etc")));
  EXPECT_EQ(error.problem, ArchiveProblem::invalid);
  EXPECT_NE(error.message.find("absolute target"), std::string::npos) << error.message;
}

TEST(ArchiveInspect, AcceptsSymlinksInsideTheTree) {
  auto entries = project_in("p");  // p/include/util -> ../src
  entries.push_back(TarEntry::symlink("p/top", "."));
  entries.push_back(TarEntry::symlink("p/src/up", "../include/util/.."));
  entries.push_back(TarEntry::symlink("p/dangling", "no/such/file"));
  auto summary = inspect_archive(make_tar(entries), k_limits);
  ASSERT_TRUE(summary) << summary.error().message;
}

TEST(ArchiveInspect, RefusesLinkChainsThatLeadOut) {
  // Each link stays inside when read lexically; followed, p/x is
  // p/a/l/.. = (p/a/l is the root) the root's parent.
  const ArchiveError error =
      refused(with(with(project_in("p"), TarEntry::symlink("p/a/l", "../..")),
                   TarEntry::symlink("p/x", "a/l/..")));
  EXPECT_EQ(error.problem, ArchiveProblem::invalid);
  EXPECT_NE(error.message.find("\"p/x\""), std::string::npos) << error.message;
  EXPECT_NE(error.message.find("through other links"), std::string::npos) << error.message;

  const ArchiveError loop = refused(
      with(with(project_in("p"), TarEntry::symlink("p/a", "b")), TarEntry::symlink("p/b", "a")));
  EXPECT_NE(loop.message.find("loop"), std::string::npos) << loop.message;
}

TEST(ArchiveInspect, RefusesEntriesThroughOrOverEarlierOnes) {
  const ArchiveError through =
      refused(with(project_in("p"), TarEntry::file("p/include/util/evil.cc", "")));
  EXPECT_NE(through.message.find("under the symbolic link \"p/include/util\""), std::string::npos)
      << through.message;
  const ArchiveError over = refused(with(project_in("p"), TarEntry::symlink("p/src", "../p")));
  EXPECT_NE(over.message.find("replace an earlier entry"), std::string::npos) << over.message;
  const ArchiveError replaced = refused(with(project_in("p"), TarEntry::dir("p/include/util")));
  EXPECT_NE(replaced.message.find("an earlier entry of that name is a symbolic link"),
            std::string::npos)
      << replaced.message;
  // A directory that only its content's entries made.
  const ArchiveError implied = refused(
      {TarEntry::file("CMakeLists.txt", ""), TarEntry::file("d/x", ""), TarEntry::file("d", "")});
  EXPECT_NE(implied.message.find("earlier entries lie under it"), std::string::npos)
      << implied.message;
  const ArchiveError under_file = refused(with(project_at_root(), TarEntry::file("main.cc/x", "")));
  EXPECT_NE(under_file.message.find("under the regular file \"main.cc\""), std::string::npos)
      << under_file.message;
}

TEST(ArchiveInspect, RefusesHardLinks) {
  const ArchiveError error =
      refused(with(project_at_root(), TarEntry::hardlink("copy.cc", "main.cc")));
  EXPECT_EQ(error.problem, ArchiveProblem::invalid);
  EXPECT_NE(error.message.find("\"copy.cc\" is a hard link"), std::string::npos) << error.message;
}

TEST(ArchiveInspect, RefusesFifos) {
  const ArchiveError error = refused(with(project_at_root(), TarEntry::fifo("pipe")));
  EXPECT_EQ(error.problem, ArchiveProblem::invalid);
  EXPECT_NE(error.message.find("\"pipe\" is a fifo"), std::string::npos) << error.message;
}

TEST(ArchiveInspect, TooManyEntries) {
  ArchiveLimits limits;
  limits.max_entries = 3;
  const ArchiveError error = refused(project_at_root(), limits);  // 4 entries
  EXPECT_EQ(error.problem, ArchiveProblem::too_large);
  EXPECT_NE(error.message.find("more than 3 entries (at \"src/util.cc\")"), std::string::npos)
      << error.message;
  limits.max_entries = 4;
  EXPECT_TRUE(inspect_archive(make_tar(project_at_root()), limits));
}

TEST(ArchiveInspect, TooManyBytes) {
  ArchiveLimits limits;
  limits.max_unpacked_bytes = 1000;
  const ArchiveError error =
      refused(with(project_at_root(), TarEntry::file("big", std::string(1000, 'x'))), limits);
  EXPECT_EQ(error.problem, ArchiveProblem::too_large);
  EXPECT_NE(error.message.find("\"big\""), std::string::npos) << error.message;
}

TEST(ArchiveInspect, TruncatedArchiveIsInvalid) {
  for (TarFilter filter : {TarFilter::gzip, TarFilter::none, TarFilter::zstd}) {
    const std::string tar = make_tar(
        with(project_at_root(), TarEntry::file("data.bin", test::incompressible(200000))), filter);
    auto summary = inspect_archive(std::string_view(tar).substr(0, tar.size() / 2), k_limits);
    ASSERT_FALSE(summary) << static_cast<int>(filter);
    EXPECT_EQ(summary.error().problem, ArchiveProblem::invalid);
    EXPECT_FALSE(summary.error().message.empty());
  }
}

TEST(ArchiveInspect, RandomBytesAndEmptyBodyAreInvalid) {
  for (const std::string& body : {test::incompressible(10000), std::string(),
                                  std::string("\x1f\x8b garbage after a gzip magic")}) {
    auto summary = inspect_archive(body, k_limits);
    ASSERT_FALSE(summary);
    EXPECT_EQ(summary.error().problem, ArchiveProblem::invalid);
    EXPECT_FALSE(summary.error().message.empty());
  }
}

TEST(ArchiveInspect, ReadsEveryFilter) {
  for (TarFilter filter :
       {TarFilter::none, TarFilter::gzip, TarFilter::zstd, TarFilter::xz, TarFilter::bzip2}) {
    auto summary = inspect_archive(make_tar(project_in("p"), filter), k_limits);
    ASSERT_TRUE(summary) << static_cast<int>(filter) << ": " << summary.error().message;
    EXPECT_EQ(summary->top, "p");
  }
}

class ArchiveExtract : public ::testing::Test {
 protected:
  void SetUp() override {
    m_dir = test::make_temp_dir("kiln-archive");
    ASSERT_FALSE(m_dir.empty());
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(m_dir, ignored);
  }

  std::string m_dir;
};

uint32_t mode_of(const std::string& path) {
  return util::FileStat::lof(path).mode & 07777;
}

TEST_F(ArchiveExtract, WritesTheTree) {
  auto entries = project_in("p");
  entries.push_back(TarEntry::file("p/implied/dir/x.h", "#pragma once\n"));
  const std::string dest = m_dir + "/new/src";
  auto summary = extract_archive(make_tar(entries), dest, k_limits);
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_EQ(summary->top, "p");
  EXPECT_TRUE(summary->has_cmakelists);
  EXPECT_EQ(util::read_file(dest + "/p/CMakeLists.txt").value_or(""), "project(p)\n");
  EXPECT_EQ(util::read_file(dest + "/p/implied/dir/x.h").value_or(""), "#pragma once\n");
  char target[64] = {};
  ASSERT_GT(::readlink((dest + "/p/include/util").c_str(), target, sizeof target - 1), 0);
  EXPECT_STREQ(target, "../src");
  EXPECT_EQ(util::read_file(dest + "/p/include/util/util.cc").value_or(""),
            "int f() { return 1; }\n");
  EXPECT_EQ(mode_of(dest + "/p"), 0755u);
  EXPECT_EQ(mode_of(dest + "/p/src"), 0755u);
  // mtimes as in the archive, directories' too (set after their content).
  EXPECT_EQ(util::FileStat::of(dest + "/p/CMakeLists.txt").mtime_ns, 1'600'000'000'000'000'000);
  EXPECT_EQ(util::FileStat::of(dest + "/p/src").mtime_ns, 1'600'000'000'000'000'000);
}

TEST_F(ArchiveExtract, KeepsOnlyTheExecutableBit) {
  auto entries = project_at_root();
  entries.push_back(TarEntry::file("run.sh", "#!/bin/sh\n", 04775));
  entries.push_back(TarEntry::file("private", "x", 0600));
  entries.push_back(TarEntry::file("group-exec", "x", 0610));
  entries.push_back(TarEntry::file("world", "x", 0666));
  entries.push_back(TarEntry::dir("closed"));
  entries.back().mode = 0700;
  const std::string dest = m_dir + "/out";
  auto summary = extract_archive(make_tar(entries), dest, k_limits);
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_EQ(mode_of(dest + "/run.sh"), 0755u);
  EXPECT_EQ(mode_of(dest + "/private"), 0644u);
  EXPECT_EQ(mode_of(dest + "/group-exec"), 0755u);
  EXPECT_EQ(mode_of(dest + "/world"), 0644u);
  EXPECT_EQ(mode_of(dest + "/main.cc"), 0644u);
  EXPECT_EQ(mode_of(dest + "/closed"), 0755u);
}

TEST_F(ArchiveExtract, LeavesNothingBehindOnFailure) {
  std::vector<std::vector<TarEntry>> bad = {
      with(project_in("p"), TarEntry::fifo("p/pipe")),
      with(project_in("p"), TarEntry::symlink("p/etc", "../../etc")),
      with(project_in("p"), TarEntry::file("p/../escape", "x")),
      // Refused only at the end, when every file is written.
      {TarEntry::dir("p"), TarEntry::file("p/main.cc", "x"), TarEntry::file("p/b.cc", "y")},
      with(with(project_in("p"), TarEntry::symlink("p/a/l", "../..")),
           TarEntry::symlink("p/x", "a/l/..")),
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    // A directory this call creates is removed; one that existed is emptied.
    const std::string created = m_dir + "/created" + std::to_string(i);
    auto summary = extract_archive(make_tar(bad[i]), created, k_limits);
    EXPECT_FALSE(summary) << i;
    EXPECT_FALSE(util::FileStat::lof(created).exists()) << i;

    const std::string existing = m_dir + "/existing" + std::to_string(i);
    ASSERT_TRUE(util::make_directories(existing));
    EXPECT_FALSE(extract_archive(make_tar(bad[i]), existing, k_limits)) << i;
    EXPECT_TRUE(std::filesystem::is_empty(existing)) << i;
  }
  EXPECT_FALSE(util::FileStat::lof(m_dir + "/escape").exists());
  // A truncated body after some files were written.
  const std::string tar =
      make_tar(with(project_in("p"), TarEntry::file("p/data.bin", test::incompressible(200000))));
  const std::string dest = m_dir + "/truncated";
  auto summary = extract_archive(std::string_view(tar).substr(0, tar.size() / 2), dest, k_limits);
  ASSERT_FALSE(summary);
  EXPECT_EQ(summary.error().problem, ArchiveProblem::invalid);
  EXPECT_FALSE(util::FileStat::lof(dest).exists());
}

TEST_F(ArchiveExtract, RefusesANonEmptyDestinationAndKeepsItsContent) {
  const std::string dest = m_dir + "/busy";
  ASSERT_TRUE(util::make_directories(dest));
  ASSERT_TRUE(util::write_file(dest + "/mine", "keep"));
  auto summary = extract_archive(make_tar(project_at_root()), dest, k_limits);
  ASSERT_FALSE(summary);
  EXPECT_EQ(summary.error().problem, ArchiveProblem::io);
  EXPECT_EQ(util::read_file(dest + "/mine").value_or(""), "keep");
  EXPECT_FALSE(util::FileStat::lof(dest + "/main.cc").exists());
}

TEST_F(ArchiveExtract, ThroughASymlinkedDestination) {
  // The data directory may be reached through a link; the extraction guard
  // must not take it for one of the archive's.
  ASSERT_TRUE(util::make_directories(m_dir + "/real"));
  ASSERT_EQ(::symlink("real", (m_dir + "/alias").c_str()), 0);
  auto summary = extract_archive(make_tar(project_in("p")), m_dir + "/alias/x", k_limits);
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_TRUE(util::FileStat::of(m_dir + "/real/x/p/CMakeLists.txt").is_regular());
}

TEST(ArchiveMember, ReadsARegularFile) {
  const std::string toml = "sources = [\"main.cc\"]\n";
  const std::string tar =
      make_tar({TarEntry::dir("./p/"), TarEntry::file("./p/kiln-program.toml", toml),
                TarEntry::file("p/main.cc", "int main() {}\n")});
  auto member = read_archive_member(tar, "p/kiln-program.toml", 1 << 20);
  ASSERT_TRUE(member) << member.error().message;
  EXPECT_EQ(member->value_or("(none)"), toml);
  auto dotted = read_archive_member(tar, "./p/kiln-program.toml", 1 << 20);
  ASSERT_TRUE(dotted);
  EXPECT_EQ(dotted->value_or("(none)"), toml);
}

TEST(ArchiveMember, AbsentDirectoryOrLinkIsNone) {
  const std::string tar =
      make_tar({TarEntry::dir("p"), TarEntry::file("p/CMakeLists.txt", ""), TarEntry::dir("p/sub"),
                TarEntry::symlink("p/kiln-program.toml", "CMakeLists.txt")});
  for (const char* path : {"kiln-program.toml", "p/kiln-program.toml", "p/sub", "p/missing"}) {
    auto member = read_archive_member(tar, path, 1 << 20);
    ASSERT_TRUE(member) << path;
    EXPECT_FALSE(member->has_value()) << path;
  }
  auto empty = read_archive_member(tar, "p/CMakeLists.txt", 1 << 20);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->value_or("(none)"), "");
}

TEST(ArchiveMember, TooLongAndUnreadable) {
  const std::string tar = make_tar({TarEntry::file("big.toml", std::string(100, 'x'))});
  auto big = read_archive_member(tar, "big.toml", 99);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().problem, ArchiveProblem::too_large);
  EXPECT_TRUE(read_archive_member(tar, "big.toml", 100));
  auto garbage = read_archive_member(test::incompressible(5000), "big.toml", 100);
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().problem, ArchiveProblem::invalid);
}

}  // namespace
}  // namespace kiln::service
