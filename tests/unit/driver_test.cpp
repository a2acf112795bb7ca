#include "kiln/cli/driver.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

#include "temp_dir.hpp"

namespace kiln::cli {
namespace {

// Hooks that record the fallback instead of replacing the test process.
struct Recorder {
  int execs = 0;
  std::string compiler;
  std::vector<std::string> args;

  DriverHooks hooks(std::function<LoadedConfig()> load) {
    DriverHooks h;
    h.load_config = std::move(load);
    h.exec = [this](const std::string& c, const std::vector<std::string>& a) {
      ++execs;
      compiler = c;
      args = a;
      return 42;
    };
    return h;
  }
};

TEST(DriverTest, AnExceptionFromTheConfigurationRunsTheCompiler) {
  Recorder r;
  auto hooks = r.hooks([]() -> LoadedConfig { throw std::runtime_error("boom"); });
  ::testing::internal::CaptureStderr();
  int status = run({"kiln", "c++", "-c", "a.c", "-o", "a.o"}, hooks);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(status, 42);
  EXPECT_EQ(r.execs, 1);
  EXPECT_TRUE(r.compiler.ends_with("c++")) << r.compiler;
  EXPECT_EQ(r.args, (std::vector<std::string>{"-c", "a.c", "-o", "a.o"}));
  EXPECT_NE(err.find("internal error: boom; running the compiler without cache"), std::string::npos)
      << err;
}

TEST(DriverTest, AnExceptionWhenMasqueradingRunsTheCompiler) {
  Recorder r;
  auto hooks = r.hooks([]() -> LoadedConfig { throw 7; });
  ::testing::internal::CaptureStderr();
  int status = run({"/usr/lib/kiln/c++", "-c", "a.c"}, hooks);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(status, 42);
  EXPECT_EQ(r.args, (std::vector<std::string>{"-c", "a.c"}));
  EXPECT_NE(err.find("unknown exception"), std::string::npos) << err;
}

TEST(DriverTest, AnExceptionInACommandIsReportedNotThrown) {
  Recorder r;
  auto hooks = r.hooks([]() -> LoadedConfig { throw std::runtime_error("bad"); });
  ::testing::internal::CaptureStderr();
  int status = run({"kiln", "-s"}, hooks);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(status, 1);
  EXPECT_EQ(r.execs, 0);
  EXPECT_NE(err.find("kiln: internal error: bad"), std::string::npos) << err;
}

class DriverDirTest : public testing::TempDirTest {};

TEST_F(DriverDirTest, ADisabledCacheRunsTheCompilerThroughTheHook) {
  Recorder r;
  std::string dir = m_dir;
  auto hooks = r.hooks([dir] {
    LoadedConfig loaded;
    loaded.config.cache_dir = dir + "/cache";
    loaded.config.disable = true;
    return loaded;
  });
  EXPECT_EQ(run({"kiln", "cc", "-c", "x.c"}, hooks), 42);
  EXPECT_EQ(r.execs, 1);
  EXPECT_EQ(r.args, (std::vector<std::string>{"-c", "x.c"}));
}

}  // namespace
}  // namespace kiln::cli
