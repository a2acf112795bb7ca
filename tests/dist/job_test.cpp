#include "kiln/dist/job.hpp"

#include <gtest/gtest.h>

#include "kiln/util/compress.hpp"
#include "kiln/util/serial.hpp"

namespace kiln::dist {
namespace {

JobRequest sample() {
  JobRequest j;
  j.toolchain = "abc";
  j.argv = {"/usr/bin/g++", "-c", "a.ii", "-o", "a.o"};
  j.cwd = "/home/u/build";
  j.env = {"LANG=C"};
  j.inputs = {{"a.ii", "int a;\n"}, {"sub/b.h", std::string(100000, 'x')}};
  j.outputs = {"a.o", "a.d"};
  return j;
}

TEST(JobTest, RequestAndResultRoundTrip) {
  auto decoded = decode_job(encode_job(sample()));
  ASSERT_TRUE(decoded) << decoded.error();
  EXPECT_EQ(decoded->argv, sample().argv);
  EXPECT_EQ(decoded->cwd, "/home/u/build");
  ASSERT_EQ(decoded->inputs.size(), 2u);
  EXPECT_EQ(decoded->inputs[1].path, "sub/b.h");
  EXPECT_EQ(decoded->inputs[1].data, std::string(100000, 'x'));
  EXPECT_EQ(decoded->outputs, sample().outputs);

  JobResult r;
  r.exit_code = 1;
  r.out = "out";
  r.err = "a.cc:1: error\n";
  r.outputs = {{"a.o", std::string("\x7f"
                                   "ELF\0\1",
                                   6)}};
  auto back = decode_result(encode_result(r));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->exit_code, 1);
  EXPECT_EQ(back->err, r.err);
  EXPECT_EQ(back->outputs[0].data, r.outputs[0].data);
}

TEST(JobTest, UnsafePathsAreRefusedBeforeAnythingRuns) {
  for (std::string bad : {"/etc/passwd", "../x", "a/../../x", "a//b", "./a", "", "a/."}) {
    JobRequest j = sample();
    j.inputs[0].path = bad;
    auto d = decode_job(encode_job(j));
    ASSERT_FALSE(d) << bad;
    EXPECT_NE(d.error().find("refused path"), std::string::npos) << d.error();
    JobRequest o = sample();
    o.outputs = {bad};
    EXPECT_FALSE(decode_job(encode_job(o))) << bad;
  }
  for (std::string bad : {"relative", "/a/../b", "/a/", "/a//b"}) {
    JobRequest j = sample();
    j.cwd = bad;
    EXPECT_FALSE(decode_job(encode_job(j))) << bad;
  }
  JobRequest j = sample();
  j.argv[0] = "g++";
  EXPECT_FALSE(decode_job(encode_job(j)));
}

TEST(JobTest, SizesAreCheckedBeforeAllocation) {
  JobLimits small;
  small.max_bytes = 1000;
  auto d = decode_job(encode_job(sample()), small);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().find("over the limit"), std::string::npos);
  // A size field claiming more than the limit, with a tiny body.
  std::string forged = "KJOB1";
  util::append_le(forged, uint64_t{1} << 40, 8);
  forged += "x";
  EXPECT_FALSE(decode_job(forged));
  EXPECT_FALSE(decode_job("garbage"));
  EXPECT_FALSE(decode_job(""));
  std::string body = encode_job(sample());
  EXPECT_FALSE(decode_job(body.substr(0, body.size() / 2)));
  EXPECT_FALSE(decode_result(body));  // a job is not a result
}

}  // namespace
}  // namespace kiln::dist
