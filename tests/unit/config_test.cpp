#include "kiln/cache/config.hpp"
#include <algorithm>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "kiln/util/file.hpp"

namespace kiln::cache {
namespace {

constexpr int64_t k_gib = int64_t{1024} * 1024 * 1024;

// Every variable load_config reads; the fixture saves and restores them.
const char* const k_env_names[] = {
    "KILN_CONFIG",    "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "HOME",        "KILN_DIR",
    "KILN_MAXSIZE",   "KILN_DISABLE",    "KILN_BASEDIR",   "KILN_DIRECT", "KILN_DEPEND",
    "KILN_HASHDIR",   "KILN_READONLY",   "KILN_RECACHE",   "KILN_STATS",  "KILN_COMPRESSLEVEL",
    "KILN_FILE_LINK", "KILN_LOGFILE",
};

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-config-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
    m_file = m_dir + "/kiln.toml";
    for (const char* name : k_env_names) {
      const char* v = std::getenv(name);
      m_saved.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
      ::unsetenv(name);
    }
    ::setenv("KILN_CONFIG", m_file.c_str(), 1);
    ::setenv("XDG_CACHE_HOME", (m_dir + "/xdg-cache").c_str(), 1);
    ::setenv("HOME", (m_dir + "/home").c_str(), 1);
  }
  void TearDown() override {
    for (const auto& [name, value] : m_saved) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
    std::error_code ec;
    std::filesystem::permissions(m_file, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(m_dir, ec);
  }

  void write_config(const std::string& text) { ASSERT_TRUE(util::write_file(m_file, text)); }

  static std::string value_of(const Config& c, const std::string& key) {
    for (const auto& [k, v] : c.items()) {
      if (k == key) {
        return v;
      }
    }
    return "<missing>";
  }

  std::string m_dir;
  std::string m_file;
  std::vector<std::pair<std::string, std::optional<std::string>>> m_saved;
};

TEST_F(ConfigTest, DefaultsWithoutAFile) {
  Config fallback;
  auto c = load_config(&fallback);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->config_path, m_file);
  EXPECT_EQ(c->cache_dir, m_dir + "/xdg-cache/kiln");
  EXPECT_EQ(c->max_size, 5 * k_gib);
  EXPECT_FALSE(c->disable);
  EXPECT_TRUE(c->direct_mode);
  EXPECT_TRUE(c->depend_mode);
  EXPECT_EQ(c->compression_level, 1);
  EXPECT_EQ(c->file_link, "copy");
  EXPECT_EQ(c->base_dir, "");
  EXPECT_EQ(c->sources.size(), c->items().size());
  for (const auto& [key, source] : c->sources) {
    EXPECT_EQ(source, ConfigSource::default_value) << key;
  }
}

TEST_F(ConfigTest, CacheDirFallsBackToHome) {
  ::unsetenv("XDG_CACHE_HOME");
  Config fallback;
  auto c = load_config(&fallback);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->cache_dir, m_dir + "/home/.cache/kiln");
}

TEST_F(ConfigTest, ReadsTheFile) {
  write_config(
      "# a comment\n"
      "cache_dir = \"/var/cache/kiln\"\n"
      "max_size = \"10G\"\n"
      "direct_mode = false\n"
      "compression_level = \"5\"\n"
      "base_dir = \"/home/u/./proj/\"\n"
      "file_link = \"hardlink\"\n"
      "stats = \"no\"\n");
  Config fallback;
  auto c = load_config(&fallback);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->cache_dir, "/var/cache/kiln");
  EXPECT_EQ(c->max_size, 10 * k_gib);
  EXPECT_FALSE(c->direct_mode);
  EXPECT_EQ(c->compression_level, 5);
  EXPECT_EQ(c->base_dir, "/home/u/proj");
  EXPECT_EQ(c->file_link, "hardlink");
  EXPECT_FALSE(c->stats);
  for (const char* key : {"cache_dir", "max_size", "direct_mode", "compression_level", "base_dir",
                          "file_link", "stats"}) {
    EXPECT_EQ(c->sources.at(key), ConfigSource::config_file) << key;
  }
  EXPECT_EQ(c->sources.at("depend_mode"), ConfigSource::default_value);
  EXPECT_EQ(value_of(*c, "max_size"), "10.0 GiB");
  EXPECT_EQ(value_of(*c, "direct_mode"), "false");
}

// docs/configuration.md gives compression_level as an integer; TOML integers
// must be read as such.
TEST_F(ConfigTest, IntegerValuesAreRead) {
  write_config("compression_level = 5\nmax_size = 1048576\n");
  Config fallback;
  auto c = load_config(&fallback);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->compression_level, 5);
  EXPECT_EQ(c->max_size, 1048576);
  EXPECT_EQ(c->sources.at("compression_level"), ConfigSource::config_file);
}

TEST_F(ConfigTest, EnvironmentOverridesTheFile) {
  write_config("max_size = \"10G\"\ndisable = true\n");
  ::setenv("KILN_MAXSIZE", "2G", 1);
  ::setenv("KILN_DISABLE", "0", 1);
  ::setenv("KILN_READONLY", "yes", 1);
  ::setenv("KILN_COMPRESSLEVEL", "-3", 1);
  ::setenv("KILN_DIR", "/tmp/elsewhere", 1);
  Config fallback;
  auto c = load_config(&fallback);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->max_size, 2 * k_gib);
  EXPECT_FALSE(c->disable);
  EXPECT_TRUE(c->read_only);
  EXPECT_EQ(c->compression_level, -3);
  EXPECT_EQ(c->cache_dir, "/tmp/elsewhere");
  for (const char* key : {"max_size", "disable", "read_only", "compression_level", "cache_dir"}) {
    EXPECT_EQ(c->sources.at(key), ConfigSource::environment) << key;
  }
  EXPECT_EQ(c->sources.at("recache"), ConfigSource::default_value);
}

TEST_F(ConfigTest, BadValueInTheFileGivesAnErrorAndAFallback) {
  write_config("max_size = \"lots\"\nfile_link = \"hardlink\"\n");
  ::setenv("KILN_RECACHE", "1", 1);
  Config fallback;
  auto c = load_config(&fallback);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind, ConfigErrorKind::bad_value);
  EXPECT_NE(c.error().message.find("max_size"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find(m_file), std::string::npos) << c.error().message;
  // The fallback is usable: defaults for the bad key, environment applied.
  EXPECT_EQ(fallback.cache_dir, m_dir + "/xdg-cache/kiln");
  EXPECT_EQ(fallback.max_size, 5 * k_gib);
  EXPECT_TRUE(fallback.recache);
  EXPECT_EQ(fallback.sources.at("recache"), ConfigSource::environment);
  EXPECT_EQ(fallback.sources.at("max_size"), ConfigSource::default_value);
  // docs/configuration.md: defaults only "for what it could not read".
  EXPECT_EQ(fallback.file_link, "hardlink");
  EXPECT_EQ(fallback.sources.at("file_link"), ConfigSource::config_file);
}

TEST_F(ConfigTest, OutOfRangeValuesAreBadValues) {
  for (const char* text :
       {"compression_level = 20\n", "compression_level = \"x\"\n", "file_link = \"symlink\"\n",
        "base_dir = \"relative/dir\"\n", "cache_dir = \"\"\n", "disable = \"maybe\"\n",
        "max_size = \"-5\"\n", "max_size = \"5X\"\n"}) {
    write_config(text);
    Config fallback;
    auto c = load_config(&fallback);
    ASSERT_FALSE(c) << text;
    EXPECT_EQ(c.error().kind, ConfigErrorKind::bad_value) << text;
    EXPECT_FALSE(fallback.cache_dir.empty()) << text;
  }
}

TEST_F(ConfigTest, UnknownKeyGivesAnErrorAndAFallback) {
  write_config("max_size = \"1G\"\nmax_sise = \"2G\"\n");
  Config fallback;
  auto c = load_config(&fallback);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind, ConfigErrorKind::unknown_key);
  EXPECT_NE(c.error().message.find("max_sise"), std::string::npos) << c.error().message;
  EXPECT_FALSE(fallback.cache_dir.empty());
  EXPECT_TRUE(fallback.direct_mode);
}

TEST_F(ConfigTest, SyntaxErrorGivesAnErrorAndAFallback) {
  write_config("max_size = \"1G\"\n\nthis is not toml\n");
  ::setenv("KILN_DIR", "/tmp/env-cache", 1);
  Config fallback;
  auto c = load_config(&fallback);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind, ConfigErrorKind::syntax);
  EXPECT_NE(c.error().message.find(m_file + ":3"), std::string::npos) << c.error().message;
  EXPECT_EQ(fallback.cache_dir, "/tmp/env-cache");
  EXPECT_EQ(fallback.max_size, 5 * k_gib);
  EXPECT_EQ(fallback.config_path, m_file);
  EXPECT_EQ(fallback.sources.at("cache_dir"), ConfigSource::environment);
}

TEST_F(ConfigTest, BadEnvironmentValueGivesAnErrorAndAFallback) {
  write_config("max_size = \"1G\"\n");
  ::setenv("KILN_DIRECT", "perhaps", 1);
  ::setenv("KILN_DEPEND", "false", 1);
  Config fallback;
  auto c = load_config(&fallback);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind, ConfigErrorKind::bad_value);
  EXPECT_NE(c.error().message.find("KILN_DIRECT"), std::string::npos) << c.error().message;
  EXPECT_TRUE(fallback.direct_mode);
  EXPECT_EQ(fallback.sources.at("direct_mode"), ConfigSource::default_value);
  EXPECT_FALSE(fallback.depend_mode);
  EXPECT_EQ(fallback.sources.at("depend_mode"), ConfigSource::environment);
}

TEST_F(ConfigTest, UnreadableFile) {
  // A directory where the file should be cannot be read, even by root.
  ASSERT_EQ(::mkdir(m_file.c_str(), 0755), 0);
  ::setenv("KILN_MAXSIZE", "1G", 1);
  Config fallback;
  auto c = load_config(&fallback);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind, ConfigErrorKind::unreadable_file);
  EXPECT_NE(c.error().message.find(m_file), std::string::npos) << c.error().message;
  EXPECT_EQ(fallback.max_size, k_gib);
  EXPECT_EQ(fallback.cache_dir, m_dir + "/xdg-cache/kiln");
}

TEST_F(ConfigTest, UnreadableFileWithoutPermission) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root reads any file";
  }
  write_config("max_size = \"1G\"\n");
  ASSERT_EQ(::chmod(m_file.c_str(), 0), 0);
  Config fallback;
  auto c = load_config(&fallback);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind, ConfigErrorKind::unreadable_file);
  EXPECT_EQ(fallback.max_size, 5 * k_gib);
}

// A TOML value of a type no key takes (float, array, table) must be an error,
// not read as "" (which a boolean key takes as false and log_file as unset).
TEST_F(ConfigTest, ValueOfTheWrongTomlTypeIsABadValue) {
  write_config("stats = 1.5\n");
  Config fallback;
  auto c = load_config(&fallback);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind, ConfigErrorKind::bad_value);
  EXPECT_TRUE(fallback.stats);
}

TEST_F(ConfigTest, SetConfigValueWritesWhatLoadConfigReads) {
  std::string path = m_dir + "/new/dir/kiln.toml";
  ::setenv("KILN_CONFIG", path.c_str(), 1);
  ASSERT_TRUE(set_config_value(path, "max_size", "10G"));
  ASSERT_TRUE(set_config_value(path, "direct_mode", "false"));
  ASSERT_TRUE(set_config_value(path, "log_file", "/tmp/kiln.log"));
  ASSERT_TRUE(set_config_value(path, "max_size", "3G"));  // replaces
  Config fallback;
  auto c = load_config(&fallback);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->max_size, 3 * k_gib);
  EXPECT_FALSE(c->direct_mode);
  EXPECT_EQ(c->log_file, "/tmp/kiln.log");
  EXPECT_EQ(c->sources.at("max_size"), ConfigSource::config_file);
  EXPECT_EQ(c->sources.at("depend_mode"), ConfigSource::default_value);
}

TEST_F(ConfigTest, SetCompressionLevelReadsBack) {
  ASSERT_TRUE(set_config_value(m_file, "compression_level", "7"));
  auto text = util::read_file(m_file);
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("compression_level = 7"), std::string::npos) << *text;
  Config fallback;
  auto c = load_config(&fallback);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->compression_level, 7);
}

TEST_F(ConfigTest, SetConfigValueKeepsOtherKeys) {
  write_config("# my settings\ncache_dir = \"/var/cache/kiln\"\n");
  ASSERT_TRUE(set_config_value(m_file, "stats", "off"));
  Config fallback;
  auto c = load_config(&fallback);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->cache_dir, "/var/cache/kiln");
  EXPECT_FALSE(c->stats);
}

TEST_F(ConfigTest, SetConfigValueRejectsBadInput) {
  write_config("max_size = \"1G\"\n");
  auto unknown = set_config_value(m_file, "no_such_key", "1");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, ConfigErrorKind::unknown_key);
  auto bad = set_config_value(m_file, "compression_level", "99");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, ConfigErrorKind::bad_value);
  auto bad_bool = set_config_value(m_file, "disable", "maybe");
  ASSERT_FALSE(bad_bool);
  EXPECT_EQ(bad_bool.error().kind, ConfigErrorKind::bad_value);
  // The file is untouched.
  auto text = util::read_file(m_file);
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, "max_size = \"1G\"\n");

  write_config("not toml at all\n");
  auto syntax = set_config_value(m_file, "max_size", "1G");
  ASSERT_FALSE(syntax);
  EXPECT_EQ(syntax.error().kind, ConfigErrorKind::syntax);
}

TEST_F(ConfigTest, DefaultConfigPath) {
  EXPECT_EQ(default_config_path(), m_file);
  ::unsetenv("KILN_CONFIG");
  ::setenv("XDG_CONFIG_HOME", "/xdg", 1);
  EXPECT_EQ(default_config_path(), "/xdg/kiln/kiln.toml");
  ::unsetenv("XDG_CONFIG_HOME");
  EXPECT_EQ(default_config_path(), m_dir + "/home/.config/kiln/kiln.toml");
  ::setenv("KILN_CONFIG", "", 1);
  EXPECT_EQ(default_config_path(), m_dir + "/home/.config/kiln/kiln.toml");
}

TEST_F(ConfigTest, ItemsAreInDocumentationOrder) {
  Config c;
  auto items = c.items();
  std::vector<std::string> keys;
  for (const auto& [k, v] : items) {
    keys.push_back(k);
  }
  std::vector<std::string> local_keys{
      "cache_dir",         "max_size",  "disable",   "base_dir", "direct_mode",
      "depend_mode",       "hash_dir",  "read_only", "recache",  "stats",
      "compression_level", "file_link", "log_file"};
  ASSERT_GT(keys.size(), local_keys.size());
  EXPECT_EQ(std::vector<std::string>(keys.begin(), keys.begin() + 13), local_keys);
  for (const char* remote :
       {"storage", "s3_bucket", "s3_endpoint", "s3_region", "s3_use_ssl", "s3_key_prefix",
        "s3_server_side_encryption", "redis_endpoint", "http_endpoint"}) {
    EXPECT_NE(std::find(keys.begin(), keys.end(), remote), keys.end()) << remote;
  }
  EXPECT_EQ(value_of(c, "max_size"), "5.0 GiB");
  EXPECT_EQ(value_of(c, "compression_level"), "1");
}

TEST_F(ConfigTest, SourceNames) {
  EXPECT_EQ(to_string(ConfigSource::default_value), "default");
  EXPECT_EQ(to_string(ConfigSource::config_file), "config file");
  EXPECT_EQ(to_string(ConfigSource::environment), "environment");
  EXPECT_EQ(to_string(ConfigSource::command_line), "command line");
}

}  // namespace
}  // namespace kiln::cache
