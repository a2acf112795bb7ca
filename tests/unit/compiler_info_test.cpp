#include "kiln/compiler/compiler_info.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "kiln/util/file.hpp"
#include "kiln/util/path.hpp"

namespace kiln::compiler {
namespace {

namespace fs = std::filesystem;

TEST(CompilerInfoTest, FamilyFromVersion) {
  EXPECT_EQ(family_from_version("g++ (Debian 12.2.0-14+deb12u1) 12.2.0\nCopyright (C) 2022 "
                                "Free Software Foundation, Inc.\n"),
            Family::gcc);
  EXPECT_EQ(family_from_version("gcc (GCC) 13.2.1 20230801\n"), Family::gcc);
  EXPECT_EQ(family_from_version("x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14) 12.2.0\n"),
            Family::gcc);
  EXPECT_EQ(family_from_version("Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu\n"),
            Family::clang);
  EXPECT_EQ(family_from_version("Apple clang version 15.0.0 (clang-1500.1.0.2.5)\n"),
            Family::clang);
  EXPECT_EQ(family_from_version("clang version 18.1.8\n"), Family::clang);
  EXPECT_EQ(family_from_version("tcc version 0.9.27\n"), Family::unknown);
  EXPECT_EQ(family_from_version(""), Family::unknown);
}

TEST(CompilerInfoTest, FamilyNames) {
  EXPECT_EQ(to_string(Family::gcc), "gcc");
  EXPECT_EQ(to_string(Family::clang), "clang");
  EXPECT_EQ(to_string(Family::unknown), "unknown");
}

class ProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-compiler-info-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
    m_cache = m_dir + "/cache";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(m_dir, ec);
  }

  std::vector<std::string> cached_files() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(m_cache + "/compilers", ec)) {
      out.push_back(e.path().string());
    }
    return out;
  }

  void write_script(const std::string& path, const std::string& body) {
    ASSERT_TRUE(util::write_file(path, "#!/bin/sh\n" + body + "\n"));
    ASSERT_EQ(::chmod(path.c_str(), 0755), 0);
  }

  std::string m_dir;
  std::string m_cache;
};

void expect_real_compiler(const std::string& path, Family family, const std::string& cache,
                          std::optional<CompilerInfo>* out) {
  auto first = probe_compiler(path, cache);
  ASSERT_TRUE(first) << path;
  EXPECT_EQ(first->path, path);
  EXPECT_EQ(first->family, family) << path;
  EXPECT_NE(first->identity, util::Digest{});
  auto second = probe_compiler(path, cache);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->identity, first->identity);
  EXPECT_EQ(second->family, first->family);
  *out = std::move(*first);
}

TEST_F(ProbeTest, ProbesRealGccAndClang) {
  bool have_gcc = ::access("/usr/bin/g++", X_OK) == 0;
  bool have_clang = ::access("/usr/bin/clang++", X_OK) == 0;
  if (!have_gcc && !have_clang) {
    GTEST_SKIP() << "neither /usr/bin/g++ nor /usr/bin/clang++ is installed";
  }
  std::optional<CompilerInfo> gcc, clang;
  if (have_gcc) {
    expect_real_compiler("/usr/bin/g++", Family::gcc, m_cache, &gcc);
  }
  if (have_clang) {
    expect_real_compiler("/usr/bin/clang++", Family::clang, m_cache, &clang);
  }
  EXPECT_EQ(cached_files().size(), size_t{have_gcc} + size_t{have_clang});
  for (const auto& f : cached_files()) {
    EXPECT_EQ(util::base_name(f).size(), 64u) << f;
    auto text = util::read_file(f);
    ASSERT_TRUE(text);
    EXPECT_NE(text->find("identity "), std::string::npos);
  }
  if (gcc && clang) {
    EXPECT_NE(gcc->identity, clang->identity);
  }
}

TEST_F(ProbeTest, IdentityIsStableWithoutACacheDir) {
  if (::access("/usr/bin/g++", X_OK) != 0) {
    GTEST_SKIP() << "/usr/bin/g++ is not installed";
  }
  auto a = probe_compiler("/usr/bin/g++", "");
  auto b = probe_compiler("/usr/bin/g++", "");
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(a->identity, b->identity);
  EXPECT_EQ(a->family, Family::gcc);
}

TEST_F(ProbeTest, SecondProbeReadsTheRememberedFile) {
  std::string cc = m_dir + "/fakecc";
  std::string runs = m_dir + "/runs";
  // The script logs each run: probing costs one (`--version`), and a
  // remembered probe costs none. Each run of a real compiler is milliseconds
  // on the first compilation after the cache directory is emptied.
  write_script(cc, "echo \"$*\" >> '" + runs +
                       "'\n"
                       "case \"$1\" in --version) echo 'gcc (GCC) 99.1';; esac\n"
                       "exit 0");
  auto first = probe_compiler(cc, m_cache);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->family, Family::gcc);
  EXPECT_EQ(util::read_file(runs).value_or(""), "--version\n");
  auto files = cached_files();
  ASSERT_EQ(files.size(), 1u);

  // Edit the remembered file: the next probe must believe it rather than run
  // the compiler again.
  auto text = util::read_file(files[0]);
  ASSERT_TRUE(text);
  std::string edited = *text;
  auto pos = edited.find("family gcc");
  ASSERT_NE(pos, std::string::npos);
  edited.replace(pos, 10, "family clang");
  ASSERT_TRUE(util::write_file(files[0], edited));
  auto second = probe_compiler(cc, m_cache);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->family, Family::clang);
  EXPECT_EQ(second->identity, first->identity);
  EXPECT_EQ(util::read_file(runs).value_or(""), "--version\n");
}

TEST_F(ProbeTest, ChangedCompilerIsProbedAnew) {
  std::string cc = m_dir + "/fakecc";
  write_script(cc, "echo 'gcc (GCC) 1.0'");
  auto first = probe_compiler(cc, m_cache);
  ASSERT_TRUE(first);
  write_script(cc, "echo 'clang version 2.0 (a longer script)'");
  auto second = probe_compiler(cc, m_cache);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->family, Family::clang);
  EXPECT_NE(second->identity, first->identity);
  EXPECT_EQ(cached_files().size(), 2u);
}

TEST_F(ProbeTest, ProbeErrors) {
  auto missing = probe_compiler(m_dir + "/nope", m_cache);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), ProbeError::not_found);

  auto dir = probe_compiler(m_dir, m_cache);
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error(), ProbeError::not_executable);

  std::string plain = m_dir + "/plain";
  ASSERT_TRUE(util::write_file(plain, "not a program"));
  ASSERT_EQ(::chmod(plain.c_str(), 0644), 0);
  auto not_exec = probe_compiler(plain, m_cache);
  ASSERT_FALSE(not_exec);
  EXPECT_EQ(not_exec.error(), ProbeError::not_executable);

  std::string failing = m_dir + "/failing";
  write_script(failing, "exit 3");
  auto failed = probe_compiler(failing, m_cache);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error(), ProbeError::probe_failed);
  EXPECT_TRUE(cached_files().empty());
}

// Sets PATH for the lifetime of the object.
class ScopedPath {
 public:
  explicit ScopedPath(const std::string& value) {
    const char* old = std::getenv("PATH");
    if (old) {
      m_old = old;
    }
    ::setenv("PATH", value.c_str(), 1);
  }
  ~ScopedPath() {
    if (m_old) {
      ::setenv("PATH", m_old->c_str(), 1);
    } else {
      ::unsetenv("PATH");
    }
  }
  ScopedPath(const ScopedPath&) = delete;
  ScopedPath& operator=(const ScopedPath&) = delete;

 private:
  std::optional<std::string> m_old;
};

TEST_F(ProbeTest, FindCompilerSkipsALinkToSelf) {
  // bin1/g++ -> self (a fake kiln binary), bin2/g++ -> a real compiler.
  std::string self = m_dir + "/kiln-self";
  write_script(self, "exit 0");
  std::string real = m_dir + "/real-gxx";
  write_script(real, "exit 0");
  fs::create_directories(m_dir + "/bin1");
  fs::create_directories(m_dir + "/bin2");
  fs::create_symlink(self, m_dir + "/bin1/g++");
  fs::create_symlink(real, m_dir + "/bin2/g++");

  ScopedPath path(m_dir + "/bin1:" + m_dir + "/bin2");
  EXPECT_EQ(find_compiler("g++", util::real_path(self)), m_dir + "/bin2/g++");
  // Without knowing itself, the first candidate wins.
  EXPECT_EQ(find_compiler("g++", ""), m_dir + "/bin1/g++");
}

TEST_F(ProbeTest, FindCompilerSkipsAnythingNamedKiln) {
  fs::create_directories(m_dir + "/bin1");
  fs::create_directories(m_dir + "/bin2");
  write_script(m_dir + "/bin1/kiln", "exit 0");
  fs::create_symlink(m_dir + "/bin1/kiln", m_dir + "/bin1/cc");
  write_script(m_dir + "/bin2/cc", "exit 0");
  ScopedPath path(m_dir + "/bin1:" + m_dir + "/bin2");
  EXPECT_EQ(find_compiler("cc", "/somewhere/else/kiln"), m_dir + "/bin2/cc");
}

TEST_F(ProbeTest, FindCompilerSkipsNonExecutablesAndDirectories) {
  fs::create_directories(m_dir + "/bin1/cc");  // a directory named cc
  fs::create_directories(m_dir + "/bin2");
  fs::create_directories(m_dir + "/bin3");
  ASSERT_TRUE(util::write_file(m_dir + "/bin2/cc", "data"));
  ASSERT_EQ(::chmod((m_dir + "/bin2/cc").c_str(), 0644), 0);
  write_script(m_dir + "/bin3/cc", "exit 0");
  ScopedPath path(m_dir + "/bin1:" + m_dir + "/bin2:" + m_dir + "/bin3");
  EXPECT_EQ(find_compiler("cc", ""), m_dir + "/bin3/cc");
  EXPECT_EQ(find_compiler("no-such-compiler-kiln-test", ""), "");
}

TEST_F(ProbeTest, FindCompilerTakesAPathAsGiven) {
  // Not normalized: ".." after a symbolic link would name another file.
  EXPECT_EQ(find_compiler("/usr/bin/../bin/cc", "/usr/bin/cc"), "/usr/bin/../bin/cc");
  std::string cwd = util::current_dir();
  EXPECT_EQ(find_compiler("./tools/cc", ""), cwd + "/./tools/cc");
}

}  // namespace
}  // namespace kiln::compiler
