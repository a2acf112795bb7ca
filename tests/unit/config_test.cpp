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

#include "kiln/cli/settings.hpp"
#include "kiln/config/doc_table.hpp"
#include "kiln/dist/settings.hpp"
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
    return c.values.display(key);
  }

  std::string m_dir;
  std::string m_file;
  std::vector<std::pair<std::string, std::optional<std::string>>> m_saved;
};

TEST_F(ConfigTest, DefaultsWithoutAFile) {
  auto [config, errors] = cli::load_config();
  ASSERT_TRUE(errors.empty()) << cli::describe(errors);
  const Config* c = &config;
  EXPECT_EQ(c->config_path, m_file);
  EXPECT_EQ(c->cache_dir, m_dir + "/xdg-cache/kiln");
  EXPECT_EQ(c->storage.max_size, 5 * k_gib);
  EXPECT_FALSE(c->disable);
  EXPECT_TRUE(c->direct_mode);
  EXPECT_TRUE(c->depend_mode);
  EXPECT_EQ(c->compression_level, 1);
  EXPECT_EQ(c->file_link, "copy");
  EXPECT_EQ(c->base_dir, "");
  for (const auto& decl : cli::registry().keys()) {
    EXPECT_EQ(c->values.origin(decl.name), config::Origin::default_value) << decl.name;
  }
}

TEST_F(ConfigTest, DistKeysComeFromATomlTableOrDottedNames) {
  write_config(
      "max_size = \"1G\"\n[dist]\nscheduler_url = \"https://sched:10600/\"\n"
      "retry_limit = 5\nfallback_to_local = false\n");
  auto [config, errors] = cli::load_config();
  ASSERT_TRUE(errors.empty()) << cli::describe(errors);
  auto d = dist::dist_settings(config.values);
  EXPECT_EQ(d.scheduler_url, "https://sched:10600");  // the trailing slash goes
  EXPECT_EQ(d.retry_limit, 5);
  EXPECT_FALSE(d.fallback_to_local);
  EXPECT_TRUE(d.enabled());
  EXPECT_EQ(config.storage.max_size, k_gib);

  write_config(
      "\"dist.scheduler_url\" = \"http://a:1\"\n[dist]\nnope = 1\n"
      "retry_limit = 1000\n");
  auto [second, problems] = cli::load_config();
  EXPECT_EQ(dist::dist_settings(second.values).scheduler_url, "http://a:1");
  ASSERT_EQ(problems.size(), 2u) << cli::describe(problems);  // an unknown key, a bad value
  EXPECT_EQ(dist::dist_settings(second.values).retry_limit, 3);

  write_config("[dist]\nscheduler_url = \"ftp://x\"\n");
  auto [third, bad] = cli::load_config();
  EXPECT_EQ(bad.size(), 1u);
  EXPECT_FALSE(dist::dist_settings(third.values).enabled());
}

TEST_F(ConfigTest, CacheDirFallsBackToHome) {
  ::unsetenv("XDG_CACHE_HOME");
  auto [config, errors] = cli::load_config();
  ASSERT_TRUE(errors.empty()) << cli::describe(errors);
  const Config* c = &config;
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
  auto [config, errors] = cli::load_config();
  ASSERT_TRUE(errors.empty()) << cli::describe(errors);
  const Config* c = &config;
  EXPECT_EQ(c->cache_dir, "/var/cache/kiln");
  EXPECT_EQ(c->storage.max_size, 10 * k_gib);
  EXPECT_FALSE(c->direct_mode);
  EXPECT_EQ(c->compression_level, 5);
  EXPECT_EQ(c->base_dir, "/home/u/proj");
  EXPECT_EQ(c->file_link, "hardlink");
  EXPECT_FALSE(c->stats);
  for (const char* key : {"cache_dir", "max_size", "direct_mode", "compression_level", "base_dir",
                          "file_link", "stats"}) {
    EXPECT_EQ(c->values.origin(key), config::Origin::config_file) << key;
  }
  EXPECT_EQ(c->values.origin("depend_mode"), config::Origin::default_value);
  EXPECT_EQ(value_of(*c, "max_size"), "10.0 GiB");
  EXPECT_EQ(value_of(*c, "direct_mode"), "false");
}

// docs/configuration.md gives compression_level as an integer; TOML integers
// must be read as such.
TEST_F(ConfigTest, IntegerValuesAreRead) {
  write_config("compression_level = 5\nmax_size = 1048576\n");
  auto [config, errors] = cli::load_config();
  ASSERT_TRUE(errors.empty()) << cli::describe(errors);
  const Config* c = &config;
  EXPECT_EQ(c->compression_level, 5);
  EXPECT_EQ(c->storage.max_size, 1048576);
  EXPECT_EQ(c->values.origin("compression_level"), config::Origin::config_file);
}

TEST_F(ConfigTest, EnvironmentOverridesTheFile) {
  write_config("max_size = \"10G\"\ndisable = true\n");
  ::setenv("KILN_MAXSIZE", "2G", 1);
  ::setenv("KILN_DISABLE", "0", 1);
  ::setenv("KILN_READONLY", "yes", 1);
  ::setenv("KILN_COMPRESSLEVEL", "-3", 1);
  ::setenv("KILN_DIR", "/tmp/elsewhere", 1);
  auto [config, errors] = cli::load_config();
  ASSERT_TRUE(errors.empty()) << cli::describe(errors);
  const Config* c = &config;
  EXPECT_EQ(c->storage.max_size, 2 * k_gib);
  EXPECT_FALSE(c->disable);
  EXPECT_TRUE(c->read_only);
  EXPECT_EQ(c->compression_level, -3);
  EXPECT_EQ(c->cache_dir, "/tmp/elsewhere");
  for (const char* key : {"max_size", "disable", "read_only", "compression_level", "cache_dir"}) {
    EXPECT_EQ(c->values.origin(key), config::Origin::environment) << key;
  }
  EXPECT_EQ(c->values.origin("recache"), config::Origin::default_value);
}

TEST_F(ConfigTest, BadValueInTheFileGivesAnErrorAndAFallback) {
  write_config("max_size = \"lots\"\nfile_link = \"hardlink\"\n");
  ::setenv("KILN_RECACHE", "1", 1);
  auto [fallback, errors] = cli::load_config();
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].kind, config::ErrorKind::bad_value);
  EXPECT_NE(cli::describe(errors).find("max_size"), std::string::npos) << cli::describe(errors);
  EXPECT_NE(cli::describe(errors).find(m_file), std::string::npos) << cli::describe(errors);
  // The fallback is usable: defaults for the bad key, environment applied.
  EXPECT_EQ(fallback.cache_dir, m_dir + "/xdg-cache/kiln");
  EXPECT_EQ(fallback.storage.max_size, 5 * k_gib);
  EXPECT_TRUE(fallback.recache);
  EXPECT_EQ(fallback.values.origin("recache"), config::Origin::environment);
  EXPECT_EQ(fallback.values.origin("max_size"), config::Origin::default_value);
  // docs/configuration.md: defaults only "for what it could not read".
  EXPECT_EQ(fallback.file_link, "hardlink");
  EXPECT_EQ(fallback.values.origin("file_link"), config::Origin::config_file);
}

TEST_F(ConfigTest, OutOfRangeValuesAreBadValues) {
  for (const char* text :
       {"compression_level = 20\n", "compression_level = \"x\"\n", "file_link = \"symlink\"\n",
        "base_dir = \"relative/dir\"\n", "cache_dir = \"\"\n", "disable = \"maybe\"\n",
        "max_size = \"-5\"\n", "max_size = \"5X\"\n"}) {
    write_config(text);
    auto [fallback, errors] = cli::load_config();
    ASSERT_FALSE(errors.empty()) << text;
    EXPECT_EQ(errors[0].kind, config::ErrorKind::bad_value) << text;
    EXPECT_FALSE(fallback.cache_dir.empty()) << text;
  }
}

TEST_F(ConfigTest, UnknownKeyGivesAnErrorAndAFallback) {
  write_config("max_size = \"1G\"\nmax_sise = \"2G\"\n");
  auto [fallback, errors] = cli::load_config();
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].kind, config::ErrorKind::unknown_key);
  EXPECT_NE(cli::describe(errors).find("max_sise"), std::string::npos) << cli::describe(errors);
  EXPECT_FALSE(fallback.cache_dir.empty());
  EXPECT_TRUE(fallback.direct_mode);
}

TEST_F(ConfigTest, SyntaxErrorGivesAnErrorAndAFallback) {
  write_config("max_size = \"1G\"\n\nthis is not toml\n");
  ::setenv("KILN_DIR", "/tmp/env-cache", 1);
  auto [fallback, errors] = cli::load_config();
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].kind, config::ErrorKind::syntax);
  EXPECT_NE(cli::describe(errors).find(m_file + ":3"), std::string::npos) << cli::describe(errors);
  EXPECT_EQ(fallback.cache_dir, "/tmp/env-cache");
  EXPECT_EQ(fallback.storage.max_size, 5 * k_gib);
  EXPECT_EQ(fallback.config_path, m_file);
  EXPECT_EQ(fallback.values.origin("cache_dir"), config::Origin::environment);
}

TEST_F(ConfigTest, BadEnvironmentValueGivesAnErrorAndAFallback) {
  write_config("max_size = \"1G\"\n");
  ::setenv("KILN_DIRECT", "perhaps", 1);
  ::setenv("KILN_DEPEND", "false", 1);
  auto [fallback, errors] = cli::load_config();
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].kind, config::ErrorKind::bad_value);
  EXPECT_NE(cli::describe(errors).find("KILN_DIRECT"), std::string::npos) << cli::describe(errors);
  EXPECT_TRUE(fallback.direct_mode);
  EXPECT_EQ(fallback.values.origin("direct_mode"), config::Origin::default_value);
  EXPECT_FALSE(fallback.depend_mode);
  EXPECT_EQ(fallback.values.origin("depend_mode"), config::Origin::environment);
}

TEST_F(ConfigTest, UnreadableFile) {
  // A directory where the file should be cannot be read, even by root.
  ASSERT_EQ(::mkdir(m_file.c_str(), 0755), 0);
  ::setenv("KILN_MAXSIZE", "1G", 1);
  auto [fallback, errors] = cli::load_config();
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].kind, config::ErrorKind::unreadable_file);
  EXPECT_NE(cli::describe(errors).find(m_file), std::string::npos) << cli::describe(errors);
  EXPECT_EQ(fallback.storage.max_size, k_gib);
  EXPECT_EQ(fallback.cache_dir, m_dir + "/xdg-cache/kiln");
}

TEST_F(ConfigTest, UnreadableFileWithoutPermission) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root reads any file";
  }
  write_config("max_size = \"1G\"\n");
  ASSERT_EQ(::chmod(m_file.c_str(), 0), 0);
  auto [fallback, errors] = cli::load_config();
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].kind, config::ErrorKind::unreadable_file);
  EXPECT_EQ(fallback.storage.max_size, 5 * k_gib);
}

// A TOML value of a type no key takes (float, array, table) must be an error,
// not read as "" (which a boolean key takes as false and log_file as unset).
TEST_F(ConfigTest, ValueOfTheWrongTomlTypeIsABadValue) {
  write_config("stats = 1.5\n");
  auto [fallback, errors] = cli::load_config();
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].kind, config::ErrorKind::bad_value);
  EXPECT_TRUE(fallback.stats);
}

TEST_F(ConfigTest, SetConfigValueWritesWhatLoadConfigReads) {
  std::string path = m_dir + "/new/dir/kiln.toml";
  ::setenv("KILN_CONFIG", path.c_str(), 1);
  ASSERT_TRUE(cli::set_config_value(path, "max_size", "10G"));
  ASSERT_TRUE(cli::set_config_value(path, "direct_mode", "false"));
  ASSERT_TRUE(cli::set_config_value(path, "log_file", "/tmp/kiln.log"));
  ASSERT_TRUE(cli::set_config_value(path, "max_size", "3G"));  // replaces
  auto [config, errors] = cli::load_config();
  ASSERT_TRUE(errors.empty()) << cli::describe(errors);
  const Config* c = &config;
  EXPECT_EQ(c->storage.max_size, 3 * k_gib);
  EXPECT_FALSE(c->direct_mode);
  EXPECT_EQ(c->log_file, "/tmp/kiln.log");
  EXPECT_EQ(c->values.origin("max_size"), config::Origin::config_file);
  EXPECT_EQ(c->values.origin("depend_mode"), config::Origin::default_value);
}

TEST_F(ConfigTest, SetCompressionLevelReadsBack) {
  ASSERT_TRUE(cli::set_config_value(m_file, "compression_level", "7"));
  auto text = util::read_file(m_file);
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("compression_level = 7"), std::string::npos) << *text;
  auto [config, errors] = cli::load_config();
  ASSERT_TRUE(errors.empty()) << cli::describe(errors);
  const Config* c = &config;
  EXPECT_EQ(c->compression_level, 7);
}

TEST_F(ConfigTest, SetConfigValueKeepsOtherKeys) {
  write_config("# my settings\ncache_dir = \"/var/cache/kiln\"\n");
  ASSERT_TRUE(cli::set_config_value(m_file, "stats", "off"));
  auto [config, errors] = cli::load_config();
  ASSERT_TRUE(errors.empty()) << cli::describe(errors);
  const Config* c = &config;
  EXPECT_EQ(c->cache_dir, "/var/cache/kiln");
  EXPECT_FALSE(c->stats);
}

TEST_F(ConfigTest, SetConfigValueRejectsBadInput) {
  write_config("max_size = \"1G\"\n");
  auto unknown = cli::set_config_value(m_file, "no_such_key", "1");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, config::ErrorKind::unknown_key);
  auto bad = cli::set_config_value(m_file, "compression_level", "99");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, config::ErrorKind::bad_value);
  auto bad_bool = cli::set_config_value(m_file, "disable", "maybe");
  ASSERT_FALSE(bad_bool);
  EXPECT_EQ(bad_bool.error().kind, config::ErrorKind::bad_value);
  // The file is untouched.
  auto text = util::read_file(m_file);
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, "max_size = \"1G\"\n");

  write_config("not toml at all\n");
  auto syntax = cli::set_config_value(m_file, "max_size", "1G");
  ASSERT_FALSE(syntax);
  EXPECT_EQ(syntax.error().kind, config::ErrorKind::syntax);
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
  auto [c, errors] = cli::load_config();
  ASSERT_TRUE(errors.empty()) << cli::describe(errors);
  std::vector<std::string> keys;
  for (const auto& decl : cli::registry().keys()) {
    keys.push_back(decl.name);
  }
  std::vector<std::string> local_keys{
      "cache_dir",   "max_size",          "disable",   "base_dir", "direct_mode",
      "depend_mode", "hash_dir",          "read_only", "recache",  "inflight_wait_s",
      "stats",       "compression_level", "file_link", "log_file"};
  ASSERT_GT(keys.size(), local_keys.size());
  EXPECT_EQ(std::vector<std::string>(keys.begin(), keys.begin() + local_keys.size()), local_keys);
  for (const char* remote :
       {"storage", "s3_bucket", "s3_endpoint", "s3_region", "s3_use_ssl", "s3_key_prefix",
        "s3_server_side_encryption", "redis_endpoint", "http_endpoint"}) {
    EXPECT_NE(std::find(keys.begin(), keys.end(), remote), keys.end()) << remote;
  }
  EXPECT_EQ(value_of(c, "max_size"), "5.0 GiB");
  EXPECT_EQ(value_of(c, "compression_level"), "1");
}

// Issue 8: `kiln -o s3_use_ssl=false` wrote the string "false". Every key is
// written as its declared type.
TEST_F(ConfigTest, SetConfigValueWritesTheDeclaredType) {
  ASSERT_TRUE(cli::set_config_value(m_file, "s3_use_ssl", "false"));
  ASSERT_TRUE(cli::set_config_value(m_file, "s3_no_credentials", "yes"));
  ASSERT_TRUE(cli::set_config_value(m_file, "redis_expiration", "60"));
  ASSERT_TRUE(cli::set_config_value(m_file, "s3_rw_mode", "READ_ONLY"));
  ASSERT_TRUE(cli::set_config_value(m_file, "storage", "local, s3"));
  auto text = util::read_file(m_file);
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("s3_use_ssl = false\n"), std::string::npos) << *text;
  EXPECT_NE(text->find("s3_no_credentials = true\n"), std::string::npos) << *text;
  EXPECT_NE(text->find("redis_expiration = 60\n"), std::string::npos) << *text;
  EXPECT_NE(text->find("s3_rw_mode = 'READ_ONLY'\n"), std::string::npos) << *text;
  EXPECT_NE(text->find("storage = 'local,s3'\n"), std::string::npos) << *text;
  auto [c, errors] = cli::load_config();
  ASSERT_TRUE(errors.empty()) << cli::describe(errors);
  EXPECT_FALSE(c.storage.s3.use_ssl);
  EXPECT_TRUE(c.storage.s3.no_credentials);
  EXPECT_TRUE(c.storage.s3.common.read_only);
  EXPECT_EQ(c.storage.redis.expiration_s, 60);
  EXPECT_EQ(c.storage.order, (std::vector<std::string>{"local", "s3"}));
}

TEST_F(ConfigTest, StorageSettingsComeFromStoragesKeys) {
  write_config(
      "s3_bucket = \"b\"\n"
      "s3_endpoint = \"http://minio:9000/\"\n"
      "s3_server_side_encryption = \"true\"\n"
      "http_endpoint = \"http://cache/kiln//\"\n"
      "http_headers = \"X-A: 1; X-B:two\"\n"
      "http_bearer_token = \"t0ken\"\n"
      "redis_endpoint = \"redis://:pw@host:6379/2\"\n"
      "remote_request_timeout = 700\n");
  auto [c, errors] = cli::load_config();
  ASSERT_TRUE(errors.empty()) << cli::describe(errors);
  const auto& s = c.storage;
  EXPECT_TRUE(s.has_remote());
  EXPECT_EQ(s.s3.endpoint, "minio:9000");
  EXPECT_FALSE(s.s3.use_ssl);
  EXPECT_EQ(s.s3.server_side_encryption, "AES256");
  EXPECT_EQ(s.s3.common.request_timeout_ms, 700);
  EXPECT_EQ(s.http.url, "http://cache/kiln");
  EXPECT_EQ(s.http.headers,
            (std::vector<std::pair<std::string, std::string>>{{"X-A", "1"}, {"X-B", "two"}}));
  EXPECT_EQ(c.values.display("http_bearer_token"), "(set)");
  EXPECT_EQ(c.values.display("redis_endpoint"), "redis://:***@host:6379/2");
  EXPECT_EQ(s.cache_dir, c.cache_dir);
}

// docs/configuration.md's key tables are generated from the declarations
// (`kiln --config-doc docs/configuration.md` rewrites them): the document
// must list exactly the declared keys, as declared.
TEST(ConfigDoc, DocumentationListsEveryDeclaredKey) {
  const std::string path = std::string(KILN_SOURCE_DIR) + "/docs/configuration.md";
  auto doc = util::read_file(path);
  ASSERT_TRUE(doc) << path;
  auto update = config::update_doc_tables(*doc, cli::registry());
  EXPECT_TRUE(update.missing_sections.empty()) << update.missing_sections.front();
  EXPECT_TRUE(update.unknown_sections.empty()) << update.unknown_sections.front();
  EXPECT_EQ(update.text, *doc)
      << "docs/configuration.md is out of date: run kiln --config-doc docs/configuration.md";
}

TEST_F(ConfigTest, SourceNames) {
  EXPECT_EQ(config::to_string(config::Origin::default_value), "default");
  EXPECT_EQ(config::to_string(config::Origin::config_file), "config file");
  EXPECT_EQ(config::to_string(config::Origin::environment), "environment");
  EXPECT_EQ(config::to_string(config::Origin::command_line), "command line");
}

}  // namespace
}  // namespace kiln::cache
