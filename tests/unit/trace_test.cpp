#include "kiln/cache/trace.hpp"
#include "kiln/util/environment.hpp"

#include <gtest/gtest.h>

#include "kiln/util/file.hpp"
#include "kiln/util/process.hpp"
#include "temp_dir.hpp"

namespace kiln::cache {
namespace {

using Paths = std::vector<std::string>;

TEST(TraceTest, ParsesEachKindOnceInOrder) {
  Trace t = Trace::parse(
      "E /usr/bin/gcc\nA inc/a.h\nR src/x.c\nA inc/a.h\nW x.o\nT \nA /usr/local/include/a.h\n"
      "R src/x.c\nE /usr/lib/cc1\n");
  EXPECT_EQ(t.executables, (Paths{"/usr/bin/gcc", "/usr/lib/cc1"}));
  EXPECT_EQ(t.absent, (Paths{"inc/a.h", "/usr/local/include/a.h"}));
  EXPECT_EQ(t.read, (Paths{"src/x.c"}));
  EXPECT_EQ(t.written, (Paths{"x.o"}));
  EXPECT_TRUE(t.local_time);
}

TEST(TraceTest, IgnoresCutAndForeignLines) {
  Trace t = Trace::parse("A a.h\nQ what\nAb.h\n\nR cut-short");
  EXPECT_EQ(t.absent, (Paths{"a.h"}));
  EXPECT_TRUE(t.read.empty());
  EXPECT_FALSE(t.local_time);
}

class TracerTest : public kiln::testing::TempDirTest {};

TEST_F(TracerTest, TracesARealCompiler) {
  // The library kiln carries, written out as on a machine without an install.
  std::string library = carried_trace_library(m_dir);
  ASSERT_FALSE(library.empty());
  EXPECT_EQ(carried_trace_library(m_dir), library);  // written once
  ASSERT_TRUE(util::write_file(m_dir + "/x.c", "#if __has_include(\"opt.h\")\n#endif\nint x;\n"));
  const util::Environment env = util::Environment::of_process();
  Tracer tracer(library, m_dir + "/tmp", env);
  ASSERT_TRUE(tracer.usable());
  auto run = util::run_capture({"/usr/bin/gcc", "-c", m_dir + "/x.c", "-o", m_dir + "/x.o"},
                               tracer.environment(env).entries());
  ASSERT_TRUE(run);
  ASSERT_EQ(run->exit_code, 0) << run->err;
  auto trace = tracer.read();
  ASSERT_TRUE(trace);
  auto has = [](const Paths& list, const std::string& p) {
    return std::find(list.begin(), list.end(), p) != list.end();
  };
  EXPECT_TRUE(has(trace->read, m_dir + "/x.c"));
  EXPECT_TRUE(has(trace->absent, m_dir + "/opt.h"));  // the __has_include probe
  EXPECT_TRUE(has(trace->written, m_dir + "/x.o"));
  EXPECT_FALSE(trace->executables.empty());
  EXPECT_FALSE(trace->local_time);
}

TEST_F(TracerTest, UnusableWithoutLibrary) {
  const util::Environment env;
  EXPECT_FALSE(Tracer(m_dir + "/no-such.so", m_dir + "/tmp", env).usable());
  EXPECT_FALSE(Tracer("/path with space/lib.so", m_dir + "/tmp", env).usable());
  EXPECT_FALSE(Tracer("", m_dir + "/tmp", env).usable());
}

TEST_F(TracerTest, PreloadGoesAfterTheUsersAndTheRestIsKept) {
  std::string library = carried_trace_library(m_dir);
  ASSERT_FALSE(library.empty());
  const util::Environment env({"LD_PRELOAD=/opt/user.so", "KEEP=1"});
  Tracer tracer(library, m_dir + "/tmp", env);
  ASSERT_TRUE(tracer.usable());
  util::Environment traced = tracer.environment(env);
  EXPECT_EQ(traced.get("LD_PRELOAD"), "/opt/user.so " + library);
  EXPECT_EQ(traced.get("KEEP"), "1");
  ASSERT_TRUE(traced.get("KILN_TRACE_FILE"));
  EXPECT_TRUE(traced.get("KILN_TRACE_FILE")->starts_with(m_dir + "/tmp/trace."));
}

}  // namespace
}  // namespace kiln::cache
