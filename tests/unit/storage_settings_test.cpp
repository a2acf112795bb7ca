#include "kiln/storage/storage_settings.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "kiln/config/load.hpp"
#include "kiln/storage/levels.hpp"
#include "kiln/storage/local/local_storage.hpp"
#include "kiln/storage/remote/settings_text.hpp"
#include "temp_dir.hpp"

namespace kiln::storage {
namespace {

// Storage's keys alone, without the cache's: the chain is built from
// storage's own settings.
class StorageSettingsTest : public kiln::testing::TempDirTest {
 protected:
  StorageSettingsTest() { register_settings(m_registry); }

  StorageSettings load() {
    config::Getenv getenv = [this](const char* name) -> const char* {
      auto it = m_env.find(name);
      return it == m_env.end() ? nullptr : it->second.c_str();
    };
    auto loaded = config::load(m_registry, "/nonexistent/kiln.toml", getenv);
    EXPECT_TRUE(loaded.errors.empty());
    return storage_settings(loaded.values);
  }

  config::Registry m_registry;
  std::map<std::string, std::string> m_env{{"HOME", "/home/u"}};
};

TEST_F(StorageSettingsTest, Defaults) {
  StorageSettings s = load();
  EXPECT_EQ(s.cache_dir, "/home/u/.cache/kiln");
  EXPECT_EQ(s.max_size, int64_t{5} << 30);
  EXPECT_TRUE(s.order.empty());
  EXPECT_EQ(s.remote_backoff_s, 30);
  EXPECT_FALSE(s.has_remote());
  EXPECT_EQ(s.s3.region, "us-east-1");
  EXPECT_TRUE(s.s3.use_ssl);
  EXPECT_TRUE(s.s3.path_style);
  EXPECT_EQ(s.s3.common.connect_timeout_ms, 1000);
  EXPECT_EQ(s.redis.common.request_timeout_ms, 5000);
  for (const auto& decl : m_registry.keys()) {
    EXPECT_EQ(decl.component, "storage") << decl.name;
  }
}

TEST_F(StorageSettingsTest, LevelsInTheConfiguredOrder) {
  m_env["KILN_STORAGE"] = "redis,local,http";
  m_env["KILN_REDIS_ENDPOINT"] = "redis://127.0.0.1:1";
  m_env["KILN_REDIS_RW_MODE"] = "READ_ONLY";
  m_env["KILN_REMOTE_CONNECT_TIMEOUT"] = "250";
  m_env["KILN_S3_BUCKET"] = "b";  // configured, but not in the order
  StorageSettings s = load();
  LocalStorage local(m_dir);
  auto levels = storage_levels(s, &local, false);
  ASSERT_EQ(levels.size(), 3u);
  EXPECT_EQ(levels[0].name, "redis");
  EXPECT_TRUE(levels[0].read_only);
  EXPECT_EQ(levels[1].name, "local");
  EXPECT_EQ(levels[1].storage, &local);
  EXPECT_FALSE(levels[1].read_only);
  EXPECT_EQ(levels[2].name, "http");
  // http is named but not configured: opening it says what is missing.
  auto opened = levels[2].open();
  ASSERT_FALSE(opened);
  EXPECT_NE(opened.error().find("KILN_HTTP_ENDPOINT"), std::string::npos) << opened.error();
  EXPECT_EQ(redis_settings_from_text(to_text(s.redis)).common.connect_timeout_ms, 250);
}

TEST_F(StorageSettingsTest, ReadOnlyMakesEveryLevelReadOnly) {
  m_env["KILN_S3_BUCKET"] = "b";
  StorageSettings s = load();
  auto levels = storage_levels(s, nullptr, true);
  ASSERT_EQ(levels.size(), 1u);  // no local level given
  EXPECT_EQ(levels[0].name, "s3");
  EXPECT_TRUE(levels[0].read_only);
}

}  // namespace
}  // namespace kiln::storage
