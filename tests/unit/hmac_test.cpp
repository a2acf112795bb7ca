#include "kiln/util/hmac.hpp"

#include <gtest/gtest.h>

#include <string>

namespace kiln::util {
namespace {

// RFC 4231, test cases 1, 2 and 6 (a key longer than the block).
TEST(HmacTest, Rfc4231Vectors) {
  EXPECT_EQ(hmac_sha256(std::string(20, '\x0b'), "Hi There").to_hex(),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(hmac_sha256("Jefe", "what do ya want for nothing?").to_hex(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(hmac_sha256(std::string(131, '\xaa'),
                        "Test Using Larger Than Block-Size Key - Hash Key First")
                .to_hex(),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(HmacTest, EmptyKeyAndData) {
  EXPECT_EQ(hmac_sha256("", "").to_hex(),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  Digest d = hmac_sha256("k", "d");
  EXPECT_EQ(digest_bytes(d).size(), 32u);
  EXPECT_EQ(static_cast<unsigned char>(digest_bytes(d)[0]), d.bytes[0]);
}

}  // namespace
}  // namespace kiln::util
