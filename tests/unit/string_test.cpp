#include "kiln/util/string.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kiln::util {
namespace {

constexpr int64_t k_kib = 1024;
constexpr int64_t k_mib = 1024 * k_kib;
constexpr int64_t k_gib = 1024 * k_mib;

TEST(StringTest, Split) {
  EXPECT_EQ(split("a:b::c", ':'), (std::vector<std::string>{"a", "b", "", "c"}));
  EXPECT_EQ(split("", ':'), (std::vector<std::string>{""}));
  EXPECT_EQ(split(":", ':'), (std::vector<std::string>{"", ""}));
  EXPECT_EQ(split("abc", ':'), (std::vector<std::string>{"abc"}));
}

TEST(StringTest, Trim) {
  EXPECT_EQ(trim("  a b \t\r\n"), "a b");
  EXPECT_EQ(trim(" \n "), "");
  EXPECT_EQ(trim("x"), "x");
}

TEST(StringTest, ParseSizeUnits) {
  EXPECT_EQ(parse_size("1024"), 1024);
  EXPECT_EQ(parse_size("0"), 0);
  EXPECT_EQ(parse_size("7B"), 7);
  EXPECT_EQ(parse_size("5G"), 5 * k_gib);
  EXPECT_EQ(parse_size("5GB"), 5 * k_gib);
  EXPECT_EQ(parse_size("500M"), 500 * k_mib);
  EXPECT_EQ(parse_size("500MiB"), 500 * k_mib);
  EXPECT_EQ(parse_size("64K"), 64 * k_kib);
  EXPECT_EQ(parse_size("64k"), 64 * k_kib);
  EXPECT_EQ(parse_size("2T"), 2 * 1024 * k_gib);
  EXPECT_EQ(parse_size("1.5GiB"), 3 * k_gib / 2);
  EXPECT_EQ(parse_size(" 10 G "), 10 * k_gib);
  EXPECT_EQ(parse_size("0.5K"), 512);
}

TEST(StringTest, ParseSizeRejectsGarbage) {
  for (const char* s : {"", "   ", "G", "abc", "-5", "-5G", "5X", "5 GG", "1.2.3G", ".", "5g",
                        "0x10", "5G extra"}) {
    EXPECT_FALSE(parse_size(s)) << '"' << s << '"';
  }
}

TEST(StringTest, ParseSizeRejectsOverflow) {
  auto huge = parse_size("100000000000T");
  EXPECT_FALSE(huge);
}

TEST(StringTest, FormatSize) {
  EXPECT_EQ(format_size(0), "0 B");
  EXPECT_EQ(format_size(1023), "1023 B");
  EXPECT_EQ(format_size(1024), "1.0 KiB");
  EXPECT_EQ(format_size(1536), "1.5 KiB");
  EXPECT_EQ(format_size(500 * k_mib), "500.0 MiB");
  EXPECT_EQ(format_size(5 * k_gib), "5.0 GiB");
  EXPECT_EQ(format_size(3 * k_gib / 2), "1.5 GiB");
}

TEST(StringTest, FormatThenParseIsClose) {
  for (int64_t v : {int64_t{1}, int64_t{1000}, 3 * k_mib, 10 * k_gib}) {
    std::string text = format_size(v);
    auto back = parse_size(text);
    ASSERT_TRUE(back) << text;
    EXPECT_NEAR(static_cast<double>(*back), static_cast<double>(v), static_cast<double>(v) / 20)
        << text;
  }
}

TEST(StringTest, ParseInt) {
  EXPECT_EQ(parse_int("42"), 42);
  EXPECT_EQ(parse_int(" -7 "), -7);
  EXPECT_EQ(parse_int("9223372036854775807"), INT64_MAX);
  EXPECT_FALSE(parse_int(""));
  EXPECT_FALSE(parse_int("4x"));
  EXPECT_FALSE(parse_int("x4"));
  EXPECT_FALSE(parse_int("9223372036854775808"));
  EXPECT_FALSE(parse_int("1.0"));
}

TEST(StringTest, JsonEscape) {
  EXPECT_EQ(json_escape("plain text"), "plain text");
  EXPECT_EQ(json_escape("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(json_escape("line\nnext\ttab\rcr"), "line\\nnext\\ttab\\rcr");
  EXPECT_EQ(json_escape(std::string("\x01\x1f", 2)), "\\u0001\\u001f");
  EXPECT_EQ(json_escape(std::string("nul\0x", 5)), "nul\\u0000x");
  // Bytes >= 0x20, including UTF-8 sequences, pass through.
  EXPECT_EQ(json_escape("caf\xc3\xa9 \x7f"), "caf\xc3\xa9 \x7f");
  EXPECT_EQ(json_escape("/"), "/");
}

TEST(StringTest, ToValidUtf8KeepsGoodTextAndReplacesTheRest) {
  EXPECT_EQ(to_valid_utf8("plain ascii"), "plain ascii");
  EXPECT_EQ(to_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(to_valid_utf8("a\xFF"
                          "b"),
            "a" + r + "b");                                         // not a lead byte
  EXPECT_EQ(to_valid_utf8(std::string("a\0b", 3)), "a" + r + "b");  // NUL
  EXPECT_EQ(to_valid_utf8("\xC3"), r);                              // truncated
  EXPECT_EQ(to_valid_utf8("\xC0\xAF"), r + r);                      // overlong
  EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), r + r + r);              // surrogate
  EXPECT_EQ(to_valid_utf8("\xF4\x90\x80\x80"), r + r + r + r);      // past U+10FFFF
  EXPECT_EQ(to_valid_utf8("\xE9t\xE9"), r + "t" + r);               // Latin-1
}

}  // namespace
}  // namespace kiln::util
