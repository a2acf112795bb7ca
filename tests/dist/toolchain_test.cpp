#include "kiln/dist/toolchain.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "kiln/dist/toolchain_unpack.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/hash.hpp"
#include "kiln/util/process.hpp"
#include "toolchain_test_support.hpp"

// Toolchains of the real compilers of the machine (Debian bookworm: g++ 12,
// clang 14), packed, checked, and run from the unpacked tree in a sandbox
// that sees nothing of the host's /usr.
namespace kiln::dist {
namespace {

using testing::TempDirTest;
namespace fs = std::filesystem;

bool has_file(const Toolchain& t, const std::string& path) {
  return std::find(t.files.begin(), t.files.end(), path) != t.files.end();
}

bool has_file_ending(const Toolchain& t, const std::string& suffix) {
  return std::any_of(t.files.begin(), t.files.end(), [&](const std::string& f) {
    return f.size() >= suffix.size() &&
           f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0;
  });
}

// Packed once per test program: clang's toolchain is ~250 MB unpacked.
const Toolchain& packed(const std::string& compiler) {
  static std::map<std::string, Toolchain> packed;
  auto it = packed.find(compiler);
  if (it == packed.end()) {
    auto t = package_toolchain(compiler);
    EXPECT_TRUE(t) << t.error();
    it = packed.emplace(compiler, t ? std::move(*t) : Toolchain{}).first;
  }
  return it->second;
}

void expect_deterministic(const std::string& compiler) {
  const Toolchain& first = packed(compiler);
  auto second = package_toolchain(compiler);
  ASSERT_TRUE(second) << second.error();
  ASSERT_FALSE(first.archive.empty());
  EXPECT_TRUE(first.archive == second->archive) << "two packings of " << compiler << " differ";
  EXPECT_EQ(first.id, second->id);
  EXPECT_EQ(first.id, testing::id_of(first.archive));
  EXPECT_EQ(first.files, second->files);
  EXPECT_TRUE(std::is_sorted(first.files.begin(), first.files.end()));
  auto listed = list_toolchain(first.archive);
  ASSERT_TRUE(listed) << listed.error();
  EXPECT_EQ(*listed, first.files);
}

TEST(ToolchainPackage, GccPacksIdenticallyTwiceWithWhatCompilingNeeds) {
  expect_deterministic("/usr/bin/g++");
  const Toolchain& t = packed("/usr/bin/g++");
  // The symlink as named, its target, GCC's compilers proper and assembler.
  EXPECT_TRUE(has_file(t, "/usr/bin/g++"));
  EXPECT_TRUE(has_file(t, "/usr/bin/g++-12"));
  EXPECT_TRUE(has_file(t, "/usr/bin/x86_64-linux-gnu-g++-12"));
  EXPECT_TRUE(has_file(t, "/usr/lib/gcc/x86_64-linux-gnu/12/cc1plus"));
  EXPECT_TRUE(has_file(t, "/usr/lib/gcc/x86_64-linux-gnu/12/cc1"));
  EXPECT_TRUE(has_file(t, "/usr/bin/as"));
  EXPECT_TRUE(has_file(t, "/usr/bin/x86_64-linux-gnu-as"));
  // Libraries under their real paths, merged /usr's links kept, the loader.
  EXPECT_TRUE(has_file(t, "/usr/lib/x86_64-linux-gnu/libc.so.6"));
  EXPECT_TRUE(has_file_ending(t, "/libisl.so.23"));           // cc1plus's
  EXPECT_TRUE(has_file_ending(t, "/libbfd-2.40-system.so"));  // as's
  EXPECT_TRUE(has_file(t, "/lib"));
  EXPECT_TRUE(has_file(t, "/lib64"));
  EXPECT_TRUE(has_file(t, "/usr/lib64/ld-linux-x86-64.so.2"));
  EXPECT_TRUE(has_file(t, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"));
  for (const auto& f : t.files) {
    for (const char* link : {"/lib/", "/lib64/", "/bin/"}) {
      EXPECT_NE(f.rfind(link, 0), 0u) << f << " is recorded through the link " << link;
    }
  }
}

TEST(ToolchainPackage, ClangPacksIdenticallyTwiceWithLibLLVM) {
  expect_deterministic("/usr/bin/clang++");
  const Toolchain& t = packed("/usr/bin/clang++");
  EXPECT_TRUE(has_file(t, "/usr/bin/clang++"));
  EXPECT_TRUE(has_file(t, "/usr/lib/llvm-14/bin/clang++"));
  EXPECT_TRUE(has_file(t, "/usr/lib/llvm-14/bin/clang"));
  EXPECT_TRUE(has_file(t, "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1"));
  EXPECT_TRUE(has_file(t, "/usr/lib/x86_64-linux-gnu/libclang-cpp.so.14"));
  EXPECT_TRUE(has_file(t, "/usr/lib/x86_64-linux-gnu/libc.so.6"));
  // clang assembles itself: no GCC, no binutils.
  EXPECT_FALSE(has_file_ending(t, "/cc1plus"));
  EXPECT_FALSE(has_file(t, "/usr/bin/as"));
}

TEST(ToolchainPackage, EntriesCarryNothingOfTheMachineOrTheMoment) {
  const Toolchain& t = packed("/usr/bin/g++");
  struct archive* a = archive_read_new();
  archive_read_support_filter_zstd(a);
  archive_read_support_format_tar(a);
  ASSERT_EQ(archive_read_open_memory(a, t.archive.data(), t.archive.size()), ARCHIVE_OK);
  struct archive_entry* entry = nullptr;
  int count = 0;
  while (archive_read_next_header(a, &entry) == ARCHIVE_OK) {
    ++count;
    std::string name = archive_entry_pathname(entry);
    EXPECT_NE(name.front(), '/') << name;
    EXPECT_EQ(archive_entry_mtime(entry), 0) << name;
    EXPECT_EQ(archive_entry_uid(entry), 0) << name;
    EXPECT_EQ(archive_entry_gid(entry), 0) << name;
    const char* uname = archive_entry_uname(entry);
    const char* gname = archive_entry_gname(entry);
    EXPECT_STREQ(uname != nullptr ? uname : "", "") << name;
    EXPECT_STREQ(gname != nullptr ? gname : "", "") << name;
    if (name == "usr/lib/gcc/x86_64-linux-gnu/12/cc1plus") {
      EXPECT_EQ(archive_entry_perm(entry), 0755);
    }
    if (name == "lib64") {
      EXPECT_EQ(archive_entry_filetype(entry), AE_IFLNK);
      EXPECT_STREQ(archive_entry_symlink(entry), "usr/lib64");
    }
  }
  archive_read_free(a);
  EXPECT_EQ(count, static_cast<int>(t.files.size()));
}

using ToolchainCached = TempDirTest;

TEST_F(ToolchainCached, PacksOncePerIdentityAndRepacksADamagedFile) {
  auto first = cached_toolchain("/usr/bin/g++", "00ff", m_dir);
  ASSERT_TRUE(first) << first.error();
  const std::string file = m_dir + "/toolchains/00ff.tar.zst";
  auto stored = util::read_file(file);
  ASSERT_TRUE(stored);
  EXPECT_TRUE(*stored == first->archive);

  // Remembered: a compiler path that cannot be packed is not even looked at.
  auto again = cached_toolchain("/nonexistent/g++", "00ff", m_dir);
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(again->id, first->id);
  EXPECT_EQ(again->files, first->files);

  // A flipped byte in the middle fails the frame's checksum: packed anew.
  std::string damaged = *stored;
  damaged[damaged.size() / 2] ^= 0x55;
  ASSERT_TRUE(util::write_file(file, damaged));
  EXPECT_FALSE(cached_toolchain("/nonexistent/g++", "00ff", m_dir));
  auto repacked = cached_toolchain("/usr/bin/g++", "00ff", m_dir);
  ASSERT_TRUE(repacked) << repacked.error();
  EXPECT_EQ(repacked->id, first->id);
  EXPECT_TRUE(*util::read_file(file) == first->archive);

  EXPECT_FALSE(cached_toolchain("/usr/bin/g++", "../x", m_dir));
}

TEST_F(ToolchainCached, RefReadsOnlyTheIdOnceItIsPacked) {
  auto first = cached_toolchain_ref("/usr/bin/g++", "00ff", m_dir);
  ASSERT_TRUE(first) << first.error();
  EXPECT_EQ(first->archive_path, m_dir + "/toolchains/00ff.tar.zst");
  auto archive = read_toolchain_archive(*first);
  ASSERT_TRUE(archive) << archive.error();
  EXPECT_EQ(util::Hasher().update(*archive).finish().to_hex(), first->id);

  // Packed before: not even the compiler is looked at, nor the archive read
  // (a damaged one still gives the id; the damage shows when it is read).
  std::string damaged = *archive;
  damaged[damaged.size() / 2] ^= 0x55;
  ASSERT_TRUE(util::write_file(first->archive_path, damaged));
  auto again = cached_toolchain_ref("/nonexistent/g++", "00ff", m_dir);
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(again->id, first->id);
  auto bad = read_toolchain_archive(*again);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("damaged or replaced"), std::string::npos) << bad.error();

  // load_toolchain_archive packs it anew: the same bytes, the same id.
  auto loaded = load_toolchain_archive(*again, "/usr/bin/g++", "00ff", m_dir);
  ASSERT_TRUE(loaded) << loaded.error();
  EXPECT_TRUE(*loaded == *archive);
  EXPECT_TRUE(read_toolchain_archive(*again));

  // A compiler that packs to another id under the same identity: an error,
  // and the id file tells the next job the new id.
  ASSERT_TRUE(util::write_file(first->archive_path, damaged));
  auto other = load_toolchain_archive(*again, "/usr/bin/clang++", "00ff", m_dir);
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().find("now packs to"), std::string::npos) << other.error();
  auto now = cached_toolchain_ref("/nonexistent/g++", "00ff", m_dir);
  ASSERT_TRUE(now);
  EXPECT_NE(now->id, first->id);

  // An id file that is not a SHA-256: packed (here: read) again.
  ASSERT_TRUE(util::write_file(m_dir + "/toolchains/00ff.id", "garbage\n"));
  auto repaired = cached_toolchain_ref("/nonexistent/g++", "00ff", m_dir);
  ASSERT_TRUE(repaired) << repaired.error();
  EXPECT_EQ(repaired->id, now->id);

  EXPECT_FALSE(cached_toolchain_ref("/usr/bin/g++", "../x", m_dir));
}

// The strongest check of a toolchain: its compiler, run from the unpacked tree
// in a sandbox whose root holds only that tree and the job's directory, makes
// the same object as the host's compiler from the same preprocessed source in
// a directory of the same path.
class ToolchainSandbox : public TempDirTest {
 protected:
  static constexpr const char* k_source = R"(#include <vector>
#include <numeric>
template <typename T> T total(const std::vector<T>& v) { return std::accumulate(v.begin(), v.end(), T{}); }
int answer(int n) { std::vector<int> v(n, 2); return total(v) + static_cast<int>(sizeof(long double)); }
const char* greeting() { return "hello from a toolchain"; }
)";

  util::RunResult run(const std::vector<std::string>& argv) {
    std::vector<std::string> env = {"PATH=/usr/bin:/bin", "LC_ALL=C"};
    util::RunOptions options;
    options.env = &env;
    options.cwd = m_job;
    options.timeout = std::chrono::seconds(300);
    auto result = util::run_capture(argv, options);
    EXPECT_TRUE(result) << argv[0];
    return result ? *result : util::RunResult{127, "", "cannot run", false};
  }

  // The root's top-level entries, as bubblewrap arguments: symlinks as
  // symlinks (merged /usr's /lib -> usr/lib), directories read-only.
  std::vector<std::string> sandbox(const std::string& root, std::vector<std::string> command) {
    std::vector<std::string> argv = {"/usr/bin/bwrap"};
    for (const auto& name : testing::names_in(root)) {
      std::string path = root + "/" + name;
      if (fs::is_symlink(path)) {
        argv.insert(argv.end(), {"--symlink", fs::read_symlink(path).string(), "/" + name});
      } else {
        argv.insert(argv.end(), {"--ro-bind", path, "/" + name});
      }
    }
    argv.insert(argv.end(), {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", m_job,
                             m_job, "--chdir", m_job, "--unshare-all", "--die-with-parent", "--"});
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
  }

  void compile_in_sandbox(const std::string& compiler, const std::string& cc1_to_remove) {
    ASSERT_TRUE(fs::exists("/usr/bin/bwrap")) << "bubblewrap (scripts/install-deps.sh) is needed";
    const Toolchain& t = packed(compiler);
    ASSERT_FALSE(t.archive.empty());
    const std::string root = m_dir + "/root";
    m_job = m_dir + "/job";
    ASSERT_TRUE(util::make_directories(m_job));
    auto unpacked = unpack_toolchain(t.archive, t.id, root);
    ASSERT_TRUE(unpacked) << unpacked.error();

    ASSERT_TRUE(util::write_file(m_job + "/a.cpp", k_source));
    auto pre = run({compiler, "-E", "a.cpp", "-o", "a.ii"});
    ASSERT_EQ(pre.exit_code, 0) << pre.err;
    const std::vector<std::string> compile = {compiler, "-O2", "-g", "-c", "a.ii", "-o"};
    auto local_args = compile;
    local_args.push_back("local.o");
    auto local = run(local_args);
    ASSERT_EQ(local.exit_code, 0) << local.err;

    auto sandboxed_args = compile;
    sandboxed_args.push_back("sandboxed.o");
    auto sandboxed = run(sandbox(root, sandboxed_args));
    ASSERT_EQ(sandboxed.exit_code, 0) << sandboxed.err;
    auto local_obj = util::read_file(m_job + "/local.o");
    auto sandboxed_obj = util::read_file(m_job + "/sandboxed.o");
    ASSERT_TRUE(local_obj && sandboxed_obj);
    EXPECT_GT(local_obj->size(), 1000u);
    EXPECT_TRUE(*local_obj == *sandboxed_obj) << "the objects differ";

    // The sandbox sees only the toolchain: without its compiler proper, no object.
    fs::remove(root + cc1_to_remove);
    ASSERT_FALSE(fs::exists(root + cc1_to_remove));
    fs::remove(m_job + "/sandboxed.o");
    auto broken = run(sandbox(root, sandboxed_args));
    EXPECT_NE(broken.exit_code, 0);
    EXPECT_FALSE(fs::exists(m_job + "/sandboxed.o"));
  }

  std::string m_job;
};

TEST_F(ToolchainSandbox, GccFromTheToolchainMakesTheSameObject) {
  compile_in_sandbox("/usr/bin/g++", "/usr/lib/gcc/x86_64-linux-gnu/12/cc1plus");
}

TEST_F(ToolchainSandbox, ClangFromTheToolchainMakesTheSameObject) {
  compile_in_sandbox("/usr/bin/clang++", "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1");
}

}  // namespace
}  // namespace kiln::dist
