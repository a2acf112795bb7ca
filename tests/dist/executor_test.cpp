#include "kiln/dist/executor.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "kiln/util/file.hpp"

namespace kiln::dist {
namespace {

namespace fs = std::filesystem;

class PrepareJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-prepare-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
    fs::create_directories(m_dir + "/src/include");
    fs::create_directories(m_dir + "/build/obj");
    fs::create_directories(m_dir + "/cache");
    ASSERT_TRUE(util::write_file(m_dir + "/src/include/h.h", "int h();\n"));
    ASSERT_TRUE(
        util::write_file(m_dir + "/src/a.cc", "#include \"h.h\"\nint a() { return h(); }\n"));
    m_step.source = "../src/a.cc";
    m_step.outputs = {"obj/a.o"};
    m_step.cache_dir = m_dir + "/cache";
    m_command.argv = {"/usr/bin/g++", "-I../src/include", "-c", "../src/a.cc", "-o", "obj/a.o"};
    m_command.env = {"PATH=/usr/bin:/bin",
                     "LANG=C.UTF-8",
                     "LC_ALL=C",
                     "HOME=/home/me",
                     "AWS_SECRET_ACCESS_KEY=topsecret",
                     "KILN_TRACE_FILE=/x",
                     "LD_PRELOAD=/opt/kiln/libkiln-trace.so",
                     "CPATH=/opt/inc"};
    m_command.cwd = m_dir + "/build";
    m_command.compile = &m_step;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(m_dir, ec);
  }
  std::string m_dir;
  cache::CompileStep m_step;
  cache::Command m_command;
  cache::LocalExecutor m_local;
};

TEST_F(PrepareJobTest, SendsTheCommandItsInputsAndOnlyTheEnvironmentThatMatters) {
  auto job = prepare_job(m_command, m_local);
  ASSERT_TRUE(job) << job.error().reason << ": " << job.error().detail;
  EXPECT_EQ(job->argv, m_command.argv);
  EXPECT_EQ(job->cwd, m_dir + "/build");
  EXPECT_EQ(job->env, (std::vector<std::string>{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C",
                                                "CPATH=/opt/inc"}));
  std::vector<std::string> paths;
  for (const auto& in : job->inputs) {
    paths.push_back("/" + in.path);
  }
  EXPECT_NE(std::find(paths.begin(), paths.end(), m_dir + "/src/a.cc"), paths.end());
  EXPECT_NE(std::find(paths.begin(), paths.end(), m_dir + "/src/include/h.h"), paths.end());
  EXPECT_EQ(job->outputs, (std::vector<std::string>{"obj/a.o"}));
  EXPECT_TRUE(fs::is_empty(m_dir + "/cache/tmp")) << "the dependency file was left behind";
}

// `__has_include` finds a header that nothing includes: it is not in the
// depfile, but the worker must see it, or the test is false there and the
// object differs. GCC opens what it probes; the trace has it.
TEST_F(PrepareJobTest, HeadersFoundByHasIncludeAreSentToo) {
  ASSERT_TRUE(util::write_file(m_dir + "/src/include/probed.h", "#error never included\n"));
  ASSERT_TRUE(util::write_file(m_dir + "/src/a.cc",
                               "#include \"h.h\"\n#if __has_include(<probed.h>)\n"
                               "int have_probed = 1;\n#endif\n"));
  const std::string trace = m_dir + "/trace.txt";
  ASSERT_TRUE(util::write_file(trace, "E /earlier/run\n"));  // the pipeline's earlier lines
  m_command.env = {"PATH=/usr/bin:/bin", "KILN_TRACE_FILE=" + trace,
                   std::string("LD_PRELOAD=") + KILN_TRACE_LIBRARY};
  auto job = prepare_job(m_command, m_local);
  ASSERT_TRUE(job) << job.error().reason << ": " << job.error().detail;
  std::vector<std::string> paths;
  for (const auto& in : job->inputs) {
    paths.push_back("/" + in.path);
  }
  EXPECT_NE(std::find(paths.begin(), paths.end(), m_dir + "/src/include/h.h"), paths.end());
  EXPECT_NE(std::find(paths.begin(), paths.end(), m_dir + "/src/include/probed.h"), paths.end())
      << "the probed header is missing from the job";
  EXPECT_EQ(std::count(paths.begin(), paths.end(), m_dir + "/src/include/h.h"), 1);
}

TEST_F(PrepareJobTest, WhatTheJobRootCannotReproduceStaysHere) {
  // A header reached through a symbolic link.
  fs::create_directory_symlink(m_dir + "/src/include", m_dir + "/src/linked");
  m_command.argv[1] = "-I../src/linked";
  auto linked = prepare_job(m_command, m_local);
  ASSERT_FALSE(linked);
  EXPECT_EQ(linked.error().reason, "not_distributable");
  // An output outside the working directory.
  m_command.argv[1] = "-I../src/include";
  m_step.outputs = {"../elsewhere.o"};
  auto outside = prepare_job(m_command, m_local);
  ASSERT_FALSE(outside);
  EXPECT_EQ(outside.error().reason, "not_distributable");
  // A source the preprocessor cannot read: the local compile will say why.
  m_step.outputs = {"obj/a.o"};
  m_command.argv[3] = "../src/missing.cc";
  auto missing = prepare_job(m_command, m_local);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().reason, "cannot_prepare");
  // Options the worker cannot honour.
  m_command.argv[3] = "../src/a.cc";
  m_command.argv.push_back("-save-temps");
  auto temps = prepare_job(m_command, m_local);
  ASSERT_FALSE(temps);
  EXPECT_EQ(temps.error().reason, "not_distributable");
}

}  // namespace
}  // namespace kiln::dist
