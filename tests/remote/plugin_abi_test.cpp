// The plugin boundary (plugin_abi.h) as kiln sees it: PluginStorage over the
// real plugins built with this tree. The S3 and Redis lease round trips
// through the plugins are in s3_storage_test.cpp and redis_storage_test.cpp,
// next to their servers.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "kiln/storage/plugin_abi.h"
#include "kiln/storage/plugin_storage.hpp"
#include "kiln/storage/remote_settings_text.hpp"
#include "kiln/util/hash.hpp"

namespace kiln::storage {
namespace {

Key manifest_of(std::string_view text) {
  return Key{util::Hasher().update(text).finish(), EntryKind::manifest};
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(PluginAbi, HttpLevelHasNoLeases) {
  using namespace std::chrono_literals;
  // Nothing listens there: no lease call sends a request.
  for (std::string url : {"http://127.0.0.1:1/cache", "https://127.0.0.1:1/cache"}) {
    HttpSettings s;
    s.url = url;
    auto opened = open_remote_storage("http", to_text(s), KILN_PLUGIN_DIR);
    ASSERT_TRUE(opened) << opened.error();
    Storage& http = **opened;
    EXPECT_FALSE(http.supports_leases()) << url;
    Key key = manifest_of("http lease");
    EXPECT_EQ(http.acquire_lease(key, "a", 5s).error(), Failure::error);
    EXPECT_EQ(http.last_error(), "leases are not supported by the HTTP level") << url;
    EXPECT_EQ(http.release_lease(key, "a").error(), Failure::error);
    EXPECT_EQ(http.lease_held(key).error(), Failure::error);
  }
}

TEST(PluginAbi, PluginOfAnotherVersionIsRefused) {
  RedisSettings r;
  r.url = "redis://127.0.0.1:1";
  auto opened = open_remote_storage("redis", to_text(r), KILN_OLD_PLUGIN_DIR);
  ASSERT_FALSE(opened);
  EXPECT_TRUE(contains(opened.error(), "is not a kiln remote-storage plugin of this version"))
      << opened.error();
  EXPECT_TRUE(contains(opened.error(), KILN_OLD_PLUGIN_DIR)) << opened.error();
}

TEST(PluginAbi, PluginsAreOfThisVersion) {
  EXPECT_EQ(KILN_REMOTE_ABI_VERSION, 4);
  RedisSettings r;
  r.url = "redis://127.0.0.1:1";
  auto opened = open_remote_storage("redis", to_text(r), KILN_PLUGIN_DIR);
  ASSERT_TRUE(opened) << opened.error();
  EXPECT_TRUE((*opened)->supports_leases());
}

}  // namespace
}  // namespace kiln::storage
