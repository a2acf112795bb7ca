// CredentialsProvider's sources and their order, without a network: the
// environment and the files are the test's (web identity against STS is
// tested with moto in tests/remote/s3_storage_test.cpp).
#include "kiln/storage/remote/s3_credentials.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include "kiln/util/file.hpp"
#include "temp_dir.hpp"

namespace kiln::storage {
namespace {

// An environment holding only `vars`: the tests never read the real one.
EnvLookup env_of(std::map<std::string, std::string> vars = {}) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) {
      return std::nullopt;
    }
    return it->second;
  };
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

class S3CredentialsTest : public testing::TempDirTest {
 protected:
  // Writes a shared credentials file with [default], [kiln] (with a session
  // token) and, in ~/.aws/config style, [profile ci]; returns its path.
  std::string write_credentials() {
    std::string file = m_dir + "/credentials";
    EXPECT_TRUE(util::write_file(file,
                                 "# comment\n"
                                 "[default]\n"
                                 "aws_access_key_id = AKIADEFAULT\n"
                                 "aws_secret_access_key = default-secret\n"
                                 "\n"
                                 "; another comment\n"
                                 "[kiln]\n"
                                 "aws_access_key_id=AKIAKILN\n"
                                 "aws_secret_access_key=kiln-secret\n"
                                 "aws_session_token = kiln-token\n"
                                 "[profile ci]\n"
                                 "aws_access_key_id = AKIACI\n"
                                 "aws_secret_access_key = ci-secret\n"
                                 "[half]\n"
                                 "aws_access_key_id = AKIAHALF\n"));
    return file;
  }

  static expected<AwsCredentials, CredentialsError> get(const S3Settings& s, EnvLookup env) {
    CredentialsProvider provider(s, std::move(env));
    return provider.get();
  }
};

TEST_F(S3CredentialsTest, Environment) {
  auto c = get(S3Settings{}, env_of({{"AWS_ACCESS_KEY_ID", "AKIAENV"},
                                     {"AWS_SECRET_ACCESS_KEY", "env-secret"},
                                     {"AWS_SESSION_TOKEN", "tok"}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->access_key_id, "AKIAENV");
  EXPECT_EQ(c->secret_access_key, "env-secret");
  EXPECT_EQ(c->session_token, "tok");
  EXPECT_EQ(c->expiration, 0);
  EXPECT_EQ(c->source, "the environment (AWS_ACCESS_KEY_ID)");

  // A key ID without its secret is an error, not a fall-through.
  auto half = get(S3Settings{}, env_of({{"AWS_ACCESS_KEY_ID", "AKIAENV"}}));
  ASSERT_FALSE(half);
  EXPECT_EQ(half.error().failure, Failure::error);
  EXPECT_TRUE(contains(half.error().message, "AWS_SECRET_ACCESS_KEY is not"))
      << half.error().message;
  // Empty values count as unset.
  auto empty = get(S3Settings{}, env_of({{"AWS_ACCESS_KEY_ID", ""}, {"HOME", m_dir}}));
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->anonymous());
}

TEST_F(S3CredentialsTest, SharedCredentialsFileDefaultProfile) {
  std::string file = write_credentials();
  auto c = get(S3Settings{}, env_of({{"AWS_SHARED_CREDENTIALS_FILE", file}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->access_key_id, "AKIADEFAULT");
  EXPECT_EQ(c->secret_access_key, "default-secret");
  EXPECT_EQ(c->session_token, "");
  EXPECT_EQ(c->source, "the shared credentials file " + file + " (profile default)");
}

TEST_F(S3CredentialsTest, SharedCredentialsFileUnderHome) {
  std::filesystem::create_directories(m_dir + "/.aws");
  ASSERT_TRUE(util::write_file(m_dir + "/.aws/credentials",
                               "[default]\naws_access_key_id=AKIAHOME\naws_secret_access_key=s\n"));
  auto c = get(S3Settings{}, env_of({{"HOME", m_dir}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->access_key_id, "AKIAHOME");
}

TEST_F(S3CredentialsTest, NamedProfiles) {
  std::string file = write_credentials();
  // From AWS_PROFILE, with a session token.
  auto from_env =
      get(S3Settings{}, env_of({{"AWS_SHARED_CREDENTIALS_FILE", file}, {"AWS_PROFILE", "kiln"}}));
  ASSERT_TRUE(from_env) << from_env.error().message;
  EXPECT_EQ(from_env->access_key_id, "AKIAKILN");
  EXPECT_EQ(from_env->session_token, "kiln-token");
  EXPECT_EQ(from_env->source, "the shared credentials file " + file + " (profile kiln)");

  // From the settings, which win over AWS_PROFILE; "[profile ci]" as in ~/.aws/config.
  S3Settings s;
  s.credentials_file = file;
  s.profile = "ci";
  auto from_settings = get(s, env_of({{"AWS_PROFILE", "kiln"}}));
  ASSERT_TRUE(from_settings) << from_settings.error().message;
  EXPECT_EQ(from_settings->access_key_id, "AKIACI");

  // A profile that is missing or lacks its secret is an error.
  auto absent =
      get(S3Settings{}, env_of({{"AWS_SHARED_CREDENTIALS_FILE", file}, {"AWS_PROFILE", "absent"}}));
  ASSERT_FALSE(absent);
  EXPECT_TRUE(contains(absent.error().message, "profile 'absent'")) << absent.error().message;
  auto half =
      get(S3Settings{}, env_of({{"AWS_SHARED_CREDENTIALS_FILE", file}, {"AWS_PROFILE", "half"}}));
  ASSERT_FALSE(half);
  EXPECT_TRUE(contains(half.error().message, "lacks aws_access_key_id or aws_secret_access_key"))
      << half.error().message;
}

TEST_F(S3CredentialsTest, Precedence) {
  std::string file = write_credentials();
  std::map<std::string, std::string> all = {{"AWS_ACCESS_KEY_ID", "AKIAENV"},
                                            {"AWS_SECRET_ACCESS_KEY", "env"},
                                            {"AWS_SHARED_CREDENTIALS_FILE", file},
                                            {"HOME", m_dir}};
  auto source = [&](const S3Settings& s, std::map<std::string, std::string> vars) {
    auto c = get(s, env_of(std::move(vars)));
    return c ? c->source : "error: " + c.error().message;
  };
  S3Settings s;
  s.access_key_id = "AKIASETTINGS";
  s.secret_access_key = "settings";
  EXPECT_EQ(source(s, all), "the kiln settings (access_key_id)");
  s.no_credentials = true;
  EXPECT_EQ(source(s, all), "no_credentials = true (anonymous access)");
  s = S3Settings{};
  EXPECT_EQ(source(s, all), "the environment (AWS_ACCESS_KEY_ID)");
  // Web identity comes before the file: here its token file cannot be read,
  // which is an error (and no request is sent).
  auto with_role = all;
  with_role.erase("AWS_ACCESS_KEY_ID");
  with_role["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/kiln-ci";
  with_role["AWS_WEB_IDENTITY_TOKEN_FILE"] = m_dir + "/no-token";
  EXPECT_TRUE(contains(source(s, with_role), "cannot read the token file " + m_dir + "/no-token"));
  auto file_only = all;
  file_only.erase("AWS_ACCESS_KEY_ID");
  EXPECT_EQ(source(s, file_only), "the shared credentials file " + file + " (profile default)");
  EXPECT_EQ(source(s, {{"HOME", m_dir}}), "no credentials found (anonymous access)");
  // A key ID in the settings without its secret is an error.
  s.access_key_id = "AKIASETTINGS";
  EXPECT_TRUE(source(s, all).starts_with("error: S3: access_key_id is set"));
}

TEST_F(S3CredentialsTest, LongTermCredentialsDoNotExpire) {
  util::ManualClock clock = util::ManualClock::at_unix_seconds(1'700'000'000);
  CredentialsProvider provider(
      S3Settings{}, env_of({{"AWS_ACCESS_KEY_ID", "AKIAENV"}, {"AWS_SECRET_ACCESS_KEY", "s"}}),
      clock);
  ASSERT_TRUE(provider.get());
  clock.advance(std::chrono::hours(24 * 365));
  auto later = provider.get();
  ASSERT_TRUE(later);
  EXPECT_EQ(later->access_key_id, "AKIAENV");
  EXPECT_EQ(provider.sts_requests(), 0);
}

TEST(AwsXml, ValuesAndTimes) {
  std::string xml =
      "<Error><Code>AccessDenied</Code><Message>a &lt;b&gt; &amp; c</Message></Error>";
  EXPECT_EQ(aws_xml_value(xml, "Code"), "AccessDenied");
  EXPECT_EQ(aws_xml_value(xml, "Message"), "a <b> & c");
  EXPECT_EQ(aws_xml_value(xml, "Region"), std::nullopt);
  EXPECT_EQ(aws_xml_value("<Code>unterminated", "Code"), std::nullopt);
  EXPECT_EQ(parse_aws_time("1970-01-02T00:00:10Z"), 86410);
  EXPECT_EQ(parse_aws_time("2024-05-01T12:00:00.123Z"), 1714564800);
  EXPECT_EQ(parse_aws_time("2024-05-01T12:00:00+00:00"), 1714564800);
  EXPECT_EQ(parse_aws_time("2024-05-01T12:00:00+02:00"), std::nullopt);
  EXPECT_EQ(parse_aws_time("yesterday"), std::nullopt);
}

}  // namespace
}  // namespace kiln::storage
