#include "kiln/util/hash.hpp"

#include <gtest/gtest.h>

#include <string>

namespace kiln::util {
namespace {

std::string sha256_hex(std::string_view data) {
  return Hasher().update(data).finish().to_hex();
}

TEST(HashTest, KnownVectors) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(HashTest, StreamingEqualsOneShot) {
  Hasher h;
  h.update("a").update(std::string_view("b")).update("c", 1);
  EXPECT_EQ(h.finish().to_hex(), sha256_hex("abc"));
}

TEST(HashTest, FieldsAreLengthPrefixed) {
  Digest ab_c = Hasher().field("ab").field("c").finish();
  Digest a_bc = Hasher().field("a").field("bc").finish();
  EXPECT_NE(ab_c, a_bc);
  EXPECT_NE(Hasher().field("abc").finish(), Hasher().update("abc").finish());
  EXPECT_NE(Hasher().field(int64_t{1}).finish(), Hasher().field(int64_t{2}).finish());
  EXPECT_EQ(Hasher().field("x").field(int64_t{5}).finish(),
            Hasher().field("x").field(int64_t{5}).finish());
}

TEST(HashTest, HexRoundTrip) {
  Digest d = Hasher().update("abc").finish();
  std::string hex = d.to_hex();
  ASSERT_EQ(hex.size(), 64u);
  Digest back;
  ASSERT_TRUE(Digest::from_hex(hex, &back));
  EXPECT_EQ(back, d);
  EXPECT_EQ(back.bytes[0], 0xba);
  EXPECT_EQ(back.bytes[31], 0xad);
  EXPECT_EQ(Digest{}.to_hex(), std::string(64, '0'));
}

TEST(HashTest, FromHexRejectsBadInputAndLeavesOutputUntouched) {
  Digest keep = Hasher().update("keep").finish();
  std::string good = Hasher().update("abc").finish().to_hex();
  for (std::string bad : {std::string(), good.substr(1), good + "0", good.substr(0, 63) + "g",
                          "z" + good.substr(1), good.substr(0, 10) + " " + good.substr(11)}) {
    Digest out = keep;
    EXPECT_FALSE(Digest::from_hex(bad, &out)) << bad;
    EXPECT_EQ(out, keep) << bad;
  }
}

TEST(HashTest, Checksum64) {
  EXPECT_EQ(checksum64("abc"), checksum64("abc"));
  EXPECT_NE(checksum64("abc"), checksum64("abd"));
  EXPECT_NE(checksum64(""), checksum64(std::string(1, '\0')));
  // XXH3_64bits of the empty input.
  EXPECT_EQ(checksum64(""), 0x2D06800538D394C2ULL);
}

}  // namespace
}  // namespace kiln::util
