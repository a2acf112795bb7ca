// The compile pipeline through its seams (compilation.hpp): the client's
// environment as a snapshot, an output sink, an executor. Real g++ runs.
#include "kiln/cache/compilation.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <time.h>

#include <thread>

#include "kiln/cache/key.hpp"
#include "kiln/util/clock.hpp"
#include "kiln/util/file.hpp"
#include "temp_dir.hpp"

namespace kiln::cache {
namespace {

// Runs commands locally and remembers them; or fails them as told.
class RecordingExecutor final : public Executor {
 public:
  expected<util::RunResult, int> run(const Command& command) override {
    commands.push_back(command);
    if (start_errno) {
      return unexpected(start_errno);
    }
    if (static_cast<int>(commands.size()) > times_out_from) {
      util::RunResult killed;
      killed.exit_code = 128 + 9;
      killed.err = "partial output\n";
      killed.timed_out = true;
      return killed;
    }
    return m_local.run(command);
  }
  std::vector<Command> commands;
  int start_errno = 0;
  int times_out_from = 1 << 30;  // the index of the first run that "times out"

 private:
  LocalExecutor m_local;
};

class CompilationTest : public testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    m_config.cache_dir = m_dir + "/cache";
    ASSERT_TRUE(util::make_directories(m_config.cache_dir));
    write_old(m_dir + "/a.cpp", "int f(int x) { int unused; return x * 2; }\n");
  }

  // Sources older than the compilation, as in a real build: a file whose
  // mtime or ctime is within 50 ms of the start may have changed during the
  // compilation, and its result is not stored. (The ctime cannot be set back.)
  static void write_old(const std::string& path, std::string_view text) {
    ASSERT_TRUE(util::write_file(path, text));
    struct timespec times[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  // One compilation of `args` (after the compiler) in m_dir.
  Outcome compile(const std::vector<std::string>& args, const util::Environment& env,
                  Stats* stats) {
    Invocation inv;
    inv.config = &m_config;
    inv.log = &m_log;
    inv.cwd = m_dir;
    inv.compiler_path = "/usr/bin/g++";
    inv.args = args;
    inv.start_ns = util::Clock::system().wall_ns();
    inv.env = &env;
    inv.output = &m_output;
    inv.executor = &m_executor;
    Compilation c(inv, *stats);
    return c.run();
  }

  int64_t counter(const Stats& stats, Counter c) {
    auto it = stats.delta().find(std::string(to_string(c)));
    return it == stats.delta().end() ? 0 : it->second;
  }

  Config m_config;
  util::Logger m_log;
  StringOutputSink m_output;
  RecordingExecutor m_executor;
  const std::vector<std::string> m_args{"-c", "a.cpp", "-Wunused-variable", "-o", "a.o"};
};

TEST_F(CompilationTest, AMissRunsTheExecutorAndAHitDoesNot) {
  const util::Environment env({"PATH=/usr/bin:/bin"});
  Stats first;
  Outcome o = compile(m_args, env, &first);
  EXPECT_EQ(o.kind, Outcome::Kind::done);
  EXPECT_EQ(counter(first, Counter::miss), 1);
  ASSERT_FALSE(m_executor.commands.empty());
  // The compiler ran in the client's directory with the client's environment
  // (plus the tracer's variables).
  const Command& compile_run = m_executor.commands.back();
  EXPECT_EQ(compile_run.cwd, m_dir);
  EXPECT_EQ(compile_run.argv[0], "/usr/bin/g++");
  EXPECT_EQ(util::Environment(compile_run.env).get("PATH"), "/usr/bin:/bin");
  EXPECT_NE(m_output.err_text().find("unused variable"), std::string::npos) << m_output.err_text();
  auto object = util::read_file(m_dir + "/a.o");
  ASSERT_TRUE(object);
  const std::string warning = m_output.err_text();

  ::unlink((m_dir + "/a.o").c_str());
  m_executor.commands.clear();
  StringOutputSink second_output;
  m_output = second_output;
  Stats second;
  o = compile(m_args, env, &second);
  EXPECT_EQ(o.kind, Outcome::Kind::done);
  EXPECT_EQ(counter(second, Counter::direct_hit), 1) << [&] {
    std::string all;
    for (const auto& [k, v] : first.delta())
      all += " first." + k + "=" + std::to_string(v);
    for (const auto& [k, v] : second.delta())
      all += " " + k + "=" + std::to_string(v);
    return all;
  }();
  EXPECT_TRUE(m_executor.commands.empty()) << "a hit ran " << m_executor.commands[0].argv[0];
  // The sink gets the stored diagnostics without colours: it is no terminal.
  EXPECT_EQ(m_output.err_text(), warning);
  EXPECT_EQ(util::read_file(m_dir + "/a.o").value_or(""), *object);
}

TEST_F(CompilationTest, TheEnvironmentIsTheSnapshotNotTheProcesses) {
  Stats stats;
  const util::Environment env({"PATH=/usr/bin:/bin", "DEPENDENCIES_OUTPUT=deps.d"});
  Outcome o = compile(m_args, env, &stats);
  EXPECT_EQ(o.kind, Outcome::Kind::fall_back);
  EXPECT_EQ(counter(stats, Counter::dependency_env), 1);
  EXPECT_TRUE(m_executor.commands.empty());
}

TEST_F(CompilationTest, AnEnvironmentVariableInTheKeyMakesAnotherEntry) {
  Stats a, b, c;
  compile(m_args, util::Environment({"PATH=/usr/bin:/bin"}), &a);
  compile(m_args, util::Environment({"PATH=/usr/bin:/bin", "CPATH=/nonexistent"}), &b);
  compile(m_args, util::Environment({"PATH=/usr/bin:/bin", "CPATH=/nonexistent"}), &c);
  EXPECT_EQ(counter(a, Counter::miss), 1);
  EXPECT_EQ(counter(b, Counter::miss), 1);
  EXPECT_EQ(counter(c, Counter::direct_hit), 1);
}

TEST_F(CompilationTest, AFailedCompileReachesTheSinkWithItsStatus) {
  write_old(m_dir + "/a.cpp", "int f( {\n");
  Stats stats;
  Outcome o = compile(m_args, util::Environment({"PATH=/usr/bin:/bin"}), &stats);
  EXPECT_EQ(o.kind, Outcome::Kind::done);
  EXPECT_NE(o.exit_code, 0);
  EXPECT_EQ(counter(stats, Counter::compile_failed), 1);
  EXPECT_NE(m_output.err_text().find("error"), std::string::npos);
}

TEST_F(CompilationTest, AMissingSourceIsTheCompilersToReport) {
  // Direct mode has no key for a source it cannot read: no look-up under an
  // empty key; the compiler runs and says why.
  Stats stats;
  Outcome o = compile({"-c", "missing.cpp", "-o", "m.o"}, util::Environment({"PATH=/usr/bin:/bin"}),
                      &stats);
  if (o.kind == Outcome::Kind::done) {
    EXPECT_NE(o.exit_code, 0);
    EXPECT_NE(m_output.err_text().find("missing.cpp"), std::string::npos) << m_output.err_text();
  }
  EXPECT_EQ(counter(stats, Counter::direct_hit), 0);
  EXPECT_EQ(counter(stats, Counter::miss), 0);
}

TEST_F(CompilationTest, APreprocessorTimeoutFallsBackAndACompileTimeoutIsPassedOn) {
  // Preprocessor mode (no depfile): run 0 preprocesses, run 1 compiles.
  const util::Environment env({"PATH=/usr/bin:/bin"});
  m_executor.times_out_from = 0;
  Stats first;
  EXPECT_EQ(compile(m_args, env, &first).kind, Outcome::Kind::fall_back);
  EXPECT_EQ(counter(first, Counter::error_compile_timeout), 1);

  m_executor.commands.clear();
  m_executor.times_out_from = 1;
  Stats second;
  Outcome o = compile(m_args, env, &second);
  EXPECT_EQ(o.kind, Outcome::Kind::done);
  EXPECT_EQ(o.exit_code, 128 + 9);
  EXPECT_EQ(counter(second, Counter::error_compile_timeout), 1);
  EXPECT_EQ(counter(second, Counter::compile_failed), 0);
  EXPECT_EQ(counter(second, Counter::miss), 0);
  EXPECT_NE(m_output.err_text().find("partial output"), std::string::npos);
}

TEST_F(CompilationTest, AnExecutorThatCannotStartFallsBack) {
  m_executor.start_errno = ENOENT;
  Stats stats;
  Outcome o = compile(m_args, util::Environment({"PATH=/usr/bin:/bin"}), &stats);
  EXPECT_EQ(o.kind, Outcome::Kind::fall_back);
  EXPECT_GE(counter(stats, Counter::error_internal) + counter(stats, Counter::preprocessor_failed),
            1);
}

// The keys are free functions of the compiler, the arguments, the
// environment and the working directory.
class KeyTest : public testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    ASSERT_TRUE(util::write_file(m_dir + "/a.c", "int x;\n"));
    m_compiler.path = "/usr/bin/gcc";
    m_compiler.family = compiler::Family::gcc;
  }
  std::optional<ManifestKey> key(const std::vector<std::string>& args, const util::Environment& env,
                                 const std::string& cwd) {
    auto processed = compiler::process_args(args, m_compiler.family, {cwd, ""});
    FileChecker files(cwd);
    return manifest_key(KeyInputs{m_compiler, processed, env, cwd, true, files}, 20261201);
  }
  compiler::CompilerInfo m_compiler;
};

TEST_F(KeyTest, SameInputsSameKey) {
  const util::Environment env;
  auto a = key({"-c", "a.c", "-o", "a.o"}, env, m_dir);
  auto b = key({"-c", "a.c", "-o", "a.o"}, env, m_dir);
  ASSERT_TRUE(a && a->digest && b && b->digest);
  EXPECT_EQ(*a->digest, *b->digest);
  // The output's name is not in the key.
  EXPECT_EQ(*key({"-c", "a.c", "-o", "b.o"}, env, m_dir)->digest, *a->digest);
}

TEST_F(KeyTest, EnvironmentAndDirectoryChangeTheKeyWhereTheyChangeTheObject) {
  const util::Environment env;
  auto plain = *key({"-c", "a.c", "-o", "a.o"}, env, m_dir)->digest;
  EXPECT_NE(*key({"-c", "a.c", "-o", "a.o"}, util::Environment({"CPATH=/x"}), m_dir)->digest,
            plain);
  // Not an unrelated variable.
  EXPECT_EQ(*key({"-c", "a.c", "-o", "a.o"}, util::Environment({"HOME=/x"}), m_dir)->digest, plain);
  // The directory only with debug info (it is in DW_AT_comp_dir).
  ASSERT_TRUE(util::make_directories(m_dir + "/other"));
  ASSERT_TRUE(util::write_file(m_dir + "/other/a.c", "int x;\n"));
  EXPECT_EQ(*key({"-c", "a.c", "-o", "a.o"}, env, m_dir + "/other")->digest, plain);
  EXPECT_NE(*key({"-c", "a.c", "-g", "-o", "a.o"}, env, m_dir + "/other")->digest,
            *key({"-c", "a.c", "-g", "-o", "a.o"}, env, m_dir)->digest);
}

TEST_F(KeyTest, TimeMacrosInTheSourceHaveNoKeyUnlessFixed) {
  ASSERT_TRUE(util::write_file(m_dir + "/a.c", "const char* t = __TIME__;\n"));
  EXPECT_FALSE(key({"-c", "a.c", "-o", "a.o"}, util::Environment(), m_dir));
  auto fixed = key({"-c", "a.c", "-o", "a.o"}, util::Environment({"SOURCE_DATE_EPOCH=1"}), m_dir);
  ASSERT_TRUE(fixed && fixed->digest);
  EXPECT_FALSE(fixed->source_has_date);
}

}  // namespace
}  // namespace kiln::cache
