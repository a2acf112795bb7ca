#include "kiln/util/hex.hpp"

#include <gtest/gtest.h>

#include <string>

namespace kiln::util {
namespace {

TEST(HexTest, DigitValues) {
  EXPECT_EQ(hex_value('0'), 0);
  EXPECT_EQ(hex_value('9'), 9);
  EXPECT_EQ(hex_value('a'), 10);
  EXPECT_EQ(hex_value('F'), 15);
  EXPECT_EQ(hex_value('g'), -1);
  EXPECT_EQ(hex_value(' '), -1);
  EXPECT_EQ(hex_value('\0'), -1);
}

TEST(HexTest, EncodesBothCases) {
  EXPECT_EQ(to_hex(std::string("\x00\x01\xab\xff", 4)), "0001abff");
  EXPECT_EQ(to_hex_upper(std::string("\x00\x01\xab\xff", 4)), "0001ABFF");
  EXPECT_EQ(to_hex(""), "");
}

TEST(HexTest, DecodesEitherCaseAndRejectsTheRest) {
  EXPECT_EQ(from_hex("0001abFF"), std::string("\x00\x01\xab\xff", 4));
  EXPECT_EQ(from_hex(""), std::string());
  EXPECT_FALSE(from_hex("abc"));
  EXPECT_FALSE(from_hex("zz"));
  EXPECT_FALSE(from_hex("0x"));
}

TEST(Hex, RandomHexIsHexOfTheLengthAskedAndDiffers) {
  std::string a = random_hex(12);
  std::string b = random_hex(12);
  EXPECT_EQ(a.size(), 24u);
  EXPECT_TRUE(from_hex(a).has_value());
  EXPECT_NE(a, b);
  EXPECT_EQ(random_hex(0), "");
}

}  // namespace
}  // namespace kiln::util
