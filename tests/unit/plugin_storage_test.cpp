#include "kiln/storage/plugin_storage.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "kiln/storage/remote_settings_text.hpp"
#include "kiln/util/file.hpp"
#include "temp_dir.hpp"

namespace kiln::storage {
namespace {

class PluginPathTest : public kiln::testing::TempDirTest {
 protected:
  static std::string http(const std::string& url) {
    HttpSettings s;
    s.url = url;
    return to_text(s);
  }
};

TEST_F(PluginPathTest, PlainHttpGoesToTheLightPluginWhenInstalled) {
  ASSERT_TRUE(util::write_file(m_dir + "/libkiln-http.so", "x"));
  EXPECT_EQ(plugin_path_for("http", http("http://127.0.0.1:8080/cache"), m_dir),
            m_dir + "/libkiln-http.so");
  EXPECT_EQ(plugin_path_for("http", http("HTTP://cache.example/"), m_dir),
            m_dir + "/libkiln-http.so");
}

TEST_F(PluginPathTest, HttpsAndS3NeedLibcurl) {
  ASSERT_TRUE(util::write_file(m_dir + "/libkiln-http.so", "x"));
  EXPECT_EQ(plugin_path_for("http", http("https://cache.example/"), m_dir),
            m_dir + "/libkiln-remote.so");
  S3Settings s3;
  s3.endpoint = "127.0.0.1:9000";
  s3.use_ssl = false;
  EXPECT_EQ(plugin_path_for("s3", to_text(s3), m_dir), m_dir + "/libkiln-remote.so");
}

TEST_F(PluginPathTest, PlainHttpFallsBackToLibcurlWithoutTheLightPlugin) {
  EXPECT_EQ(plugin_path_for("http", http("http://127.0.0.1:8080/cache"), m_dir),
            m_dir + "/libkiln-remote.so");
}

TEST_F(PluginPathTest, RedisHasItsOwnPlugin) {
  RedisSettings r;
  r.url = "redis://127.0.0.1:6379";
  EXPECT_EQ(plugin_path_for("redis", to_text(r), m_dir), m_dir + "/libkiln-redis.so");
}

}  // namespace
}  // namespace kiln::storage
