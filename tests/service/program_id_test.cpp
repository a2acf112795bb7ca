#include "kiln/service/program_id.hpp"

#include <gtest/gtest.h>

#include <set>

namespace kiln::service {
namespace {

TEST(ProgramId, IsARandomVersion4Uuid) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = new_program_id();
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[14], '4') << id;
    EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
    EXPECT_TRUE(shard_key(id)) << id;
    EXPECT_TRUE(seen.insert(id).second);
  }
}

// The worked example of docs/service-store.md, "Shards".
TEST(ShardOf, WorkedExample) {
  const std::string id = "9f86d081-884c-4d63-8e2d-1a2b3c4d5e6f";
  EXPECT_EQ(shard_key(id), 0x9f86d081884c4d63u);
  EXPECT_EQ(shard_key(id), 11495104353665830243u);
  EXPECT_EQ(shard_of(id, 1), 0u);
  EXPECT_EQ(shard_of(id, 3), 1u);
  EXPECT_EQ(shard_of(id, 7), 3u);
  EXPECT_EQ(shard_of(id, 1000), 243u);
}

TEST(ShardOf, UppercaseIsTheSameId) {
  EXPECT_EQ(shard_key("9F86D081-884C-4D63-8E2D-1A2B3C4D5E6F"),
            shard_key("9f86d081-884c-4d63-8e2d-1a2b3c4d5e6f"));
}

TEST(ShardOf, ExtremesOfTheKey) {
  EXPECT_EQ(shard_key("00000000-0000-4000-8000-000000000000"), 0x0000000000004000u);
  EXPECT_EQ(shard_key("ffffffff-ffff-ffff-ffff-ffffffffffff"), 0xffffffffffffffffu);
  EXPECT_EQ(shard_of("ffffffff-ffff-ffff-ffff-ffffffffffff", 1000), 0xffffffffffffffffu % 1000);
}

TEST(ShardOf, RejectsWhatIsNotAUuid) {
  for (const char* id :
       {"", "9f86d081884c4d638e2d1a2b3c4d5e6f", "9f86d081-884c-4d63-8e2d-1a2b3c4d5e6",
        "9f86d081-884c-4d63-8e2d-1a2b3c4d5e6g", "9f86d081_884c-4d63-8e2d-1a2b3c4d5e6f",
        "9f86d081-884c-4d63-8e2d-1a2b3c4d5e6f0"}) {
    EXPECT_FALSE(shard_key(id)) << id;
  }
  EXPECT_FALSE(shard_of("9f86d081-884c-4d63-8e2d-1a2b3c4d5e6f", 0));
}

}  // namespace
}  // namespace kiln::service
