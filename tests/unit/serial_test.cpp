#include "kiln/util/serial.hpp"

#include <gtest/gtest.h>

#include <string>

namespace kiln::util {
namespace {

// docs/storage-layout.md: payload integers are little-endian, whatever the
// host's byte order.
TEST(SerialTest, IntegersAreWrittenLittleEndian) {
  Writer w;
  w.u32(0x01020304u);
  w.u64(0x0102030405060708ull);
  w.i64(-2);
  w.u8(0xab);
  EXPECT_EQ(w.str(), std::string("\x04\x03\x02\x01"
                                 "\x08\x07\x06\x05\x04\x03\x02\x01"
                                 "\xfe\xff\xff\xff\xff\xff\xff\xff"
                                 "\xab",
                                 21));
}

TEST(SerialTest, BytesArePrefixedWithTheirLittleEndianLength) {
  Writer w;
  w.bytes("hi");
  EXPECT_EQ(w.str(), std::string("\x02\0\0\0\0\0\0\0hi", 10));
}

TEST(SerialTest, ReaderDecodesLittleEndian) {
  const std::string in(
      "\x04\x03\x02\x01"
      "\x08\x07\x06\x05\x04\x03\x02\x01"
      "\xfe\xff\xff\xff\xff\xff\xff\xff",
      20);
  Reader r(in);
  EXPECT_EQ(r.u32(), 0x01020304u);
  EXPECT_EQ(r.u64(), 0x0102030405060708ull);
  EXPECT_EQ(r.i64(), -2);
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.at_end());
  EXPECT_EQ(load_le32(in.data()), 0x01020304u);
  EXPECT_EQ(load_le64(in.data() + 4), 0x0102030405060708ull);
}

TEST(SerialTest, RoundTripAndShortInput) {
  Writer w;
  w.u32(7);
  w.bytes("payload");
  w.i64(-1234567890123);
  Reader r(w.str());
  EXPECT_EQ(r.u32(), 7u);
  EXPECT_EQ(r.bytes(), "payload");
  EXPECT_EQ(r.i64(), -1234567890123);
  EXPECT_TRUE(r.ok());
  Reader short_input(std::string_view("\x01\x02\x03", 3));
  EXPECT_EQ(short_input.u32(), 0u);
  EXPECT_FALSE(short_input.ok());
  EXPECT_EQ(short_input.u8(), 0u);  // every later read is zero
}

}  // namespace
}  // namespace kiln::util
