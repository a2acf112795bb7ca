#include "kiln/net/percent.hpp"

#include <gtest/gtest.h>

#include <string>

namespace kiln::net {
namespace {

TEST(PercentTest, EncodesAllButUnreservedCharacters) {
  EXPECT_EQ(percent_encode("aZ09-._~"), "aZ09-._~");
  EXPECT_EQ(percent_encode("a b/c+d=e&\xff"), "a%20b%2Fc%2Bd%3De%26%FF");
  EXPECT_EQ(percent_encode(std::string("\0", 1)), "%00");
}

TEST(PercentTest, DecodesEitherCase) {
  EXPECT_EQ(percent_decode("s3cr%40t%2f%2F+x"), "s3cr@t//+x");
  EXPECT_EQ(percent_decode(""), "");
  EXPECT_EQ(percent_decode("%00"), std::string("\0", 1));
}

TEST(PercentTest, RejectsBrokenEscapes) {
  EXPECT_FALSE(percent_decode("%"));
  EXPECT_FALSE(percent_decode("%4"));
  EXPECT_FALSE(percent_decode("abc%zz"));
  EXPECT_FALSE(percent_decode("%g0"));
}

TEST(PercentTest, RoundTripsEveryByte) {
  std::string all;
  for (int c = 0; c < 256; ++c) {
    all += static_cast<char>(c);
  }
  EXPECT_EQ(percent_decode(percent_encode(all)), all);
}

}  // namespace
}  // namespace kiln::net
