#include "kiln/storage/remote/s3_storage.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "kiln/storage/plugin_storage.hpp"
#include "kiln/storage/remote/s3_credentials.hpp"
#include "kiln/storage/remote_settings_text.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/hash.hpp"
#include "kiln/util/hex.hpp"
#include "server_fixture.hpp"

namespace kiln::storage {
namespace {

using test::MotoServer;
using test::SilentServer;
using test::TempDir;

constexpr const char* k_role_arn = "arn:aws:iam::123456789012:role/kiln-ci";

Key key_of(std::string_view text) {
  return Key{util::Hasher().update(text).finish()};
}

// Leases are taken on manifest keys.
Key manifest_of(std::string_view text) {
  return Key{util::Hasher().update(text).finish(), EntryKind::manifest};
}

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

// Tests against one moto_server per test process, set up with IAM users
// "kiln" (may do anything on S3) and "nobody" (no permission), the role
// kiln-ci (may do anything on S3) and the bucket "kiln". Each test starts with
// IAM authentication on, so moto checks every SigV4 signature.
class S3StorageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    m_moto = MotoServer::start(&m_why, &m_missing);
    if (!m_moto) {
      return;
    }
    auto setup = m_moto->boto3(R"(
policy = json.dumps({"Version": "2012-10-17",
                     "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
trust = json.dumps({"Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Principal": {"Federated": "ci"},
                                   "Action": "sts:AssumeRoleWithWebIdentity"}]})
iam.create_user(UserName="kiln")
iam.put_user_policy(UserName="kiln", PolicyName="s3", PolicyDocument=policy)
admin = iam.create_access_key(UserName="kiln")["AccessKey"]
iam.create_user(UserName="nobody")
nobody = iam.create_access_key(UserName="nobody")["AccessKey"]
iam.create_role(RoleName="kiln-ci", AssumeRolePolicyDocument=trust)
iam.put_role_policy(RoleName="kiln-ci", PolicyName="s3", PolicyDocument=policy)
s3.create_bucket(Bucket="kiln")
print(admin["AccessKeyId"], admin["SecretAccessKey"], nobody["AccessKeyId"], nobody["SecretAccessKey"])
)");
    std::istringstream out(setup.out);
    out >> m_admin_key >> m_admin_secret >> m_nobody_key >> m_nobody_secret;
    if (setup.exit_code != 0 || m_nobody_secret.empty()) {
      m_why = "moto setup failed: " + setup.err;
      m_moto.reset();
    }
  }
  static void TearDownTestSuite() { m_moto.reset(); }

  void SetUp() override {
    if (!m_moto) {
      if (m_missing) {
        GTEST_SKIP() << m_why;
      }
      FAIL() << m_why;
    }
    ASSERT_TRUE(m_moto->set_auth(0));
  }

  // Settings for the bucket on moto with the keys of the IAM user "kiln".
  static S3Settings settings(const std::string& bucket = "kiln") {
    S3Settings s;
    s.bucket = bucket;
    s.endpoint = m_moto->endpoint();
    s.use_ssl = false;
    s.path_style = true;
    s.access_key_id = m_admin_key;
    s.secret_access_key = m_admin_secret;
    s.common.connect_timeout_ms = 2000;
    s.common.request_timeout_ms = 20000;
    return s;
  }

  // Runs a boto3 script as the IAM user "kiln"; returns its stdout.
  static std::string boto3(const std::string& script) {
    auto r = m_moto->boto3(script, m_admin_key, m_admin_secret);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  static void expect_round_trip(S3Storage& storage, const Key& key, const std::string& value) {
    ASSERT_TRUE(storage.put(key, value)) << storage.last_error();
    auto got = storage.get(key);
    ASSERT_TRUE(got) << storage.last_error();
    EXPECT_TRUE(*got == value);
  }

  static inline std::unique_ptr<MotoServer> m_moto;
  static inline std::string m_why;
  static inline bool m_missing = false;
  static inline std::string m_admin_key;
  static inline std::string m_admin_secret;
  static inline std::string m_nobody_key;
  static inline std::string m_nobody_secret;
};

TEST_F(S3StorageTest, SignedPutGetExistsRemove) {
  S3Storage storage(settings(), env_of());
  Key key = key_of("round trip");
  EXPECT_EQ(storage.name(), "s3");

  ASSERT_TRUE(storage.put(key, "value")) << storage.last_error();
  auto got = storage.get(key);
  ASSERT_TRUE(got) << storage.last_error();
  EXPECT_EQ(*got, "value");
  auto exists = storage.exists(key);
  ASSERT_TRUE(exists) << storage.last_error();
  EXPECT_TRUE(*exists);

  ASSERT_TRUE(storage.remove(key)) << storage.last_error();
  exists = storage.exists(key);
  ASSERT_TRUE(exists) << storage.last_error();
  EXPECT_FALSE(*exists);
  EXPECT_EQ(storage.get(key).error(), Failure::not_found);
  EXPECT_EQ(storage.last_error(), "");
}

TEST_F(S3StorageTest, MissingKeyIsNotFound) {
  S3Storage storage(settings(), env_of());
  EXPECT_EQ(storage.get(key_of("never stored")).error(), Failure::not_found);
  auto exists = storage.exists(key_of("never stored"));
  ASSERT_TRUE(exists) << storage.last_error();
  EXPECT_FALSE(*exists);
}

TEST_F(S3StorageTest, LargeBinaryValue) {
  S3Storage storage(settings(), env_of());
  std::string value(5 * 1024 * 1024 + 3, '\0');
  for (size_t i = 0; i < value.size(); ++i) {
    value[i] = static_cast<char>((i * 167 + i / 251) & 0xff);
  }
  expect_round_trip(storage, key_of("large"), value);
}

TEST_F(S3StorageTest, ObjectKeyIsPrefixAndRelativePath) {
  boto3(R"(s3.create_bucket(Bucket="layout"))");
  S3Settings s = settings("layout");
  s.key_prefix = "/team/kiln/";
  S3Storage storage(s, env_of());
  Key key = key_of("layout");
  ASSERT_TRUE(storage.put(key, "layout value")) << storage.last_error();
  EXPECT_EQ(storage.object_key(key), "team/kiln/" + key.relative_path());

  std::string listing = boto3(R"(
for o in s3.list_objects_v2(Bucket="layout")["Contents"]:
    print(o["Key"], s3.get_object(Bucket="layout", Key=o["Key"])["Body"].read().hex())
)");
  EXPECT_EQ(listing,
            "team/kiln/" + key.relative_path() + " " + util::to_hex("layout value") + "\n");
}

TEST_F(S3StorageTest, EmptyPrefixHasNoLeadingSlash) {
  boto3(R"(s3.create_bucket(Bucket="flat"))");
  S3Settings s = settings("flat");
  s.key_prefix = "/";
  S3Storage storage(s, env_of());
  Key key = key_of("flat");
  ASSERT_TRUE(storage.put(key, "flat value")) << storage.last_error();
  std::string listing = boto3(R"(
for o in s3.list_objects_v2(Bucket="flat")["Contents"]:
    print(o["Key"])
)");
  EXPECT_EQ(listing, key.relative_path() + "\n");
}

TEST_F(S3StorageTest, VirtualHostStyle) {
  // curl resolves <bucket>.localhost to the loopback address; moto takes the
  // bucket from the Host header.
  S3Settings s = settings();
  s.endpoint = "localhost:" + std::to_string(m_moto->port());
  s.path_style = false;
  S3Storage storage(s, env_of());
  Key key = key_of("virtual host");
  EXPECT_EQ(storage.object_url(key),
            "http://kiln.localhost:" + std::to_string(m_moto->port()) + "/" + key.relative_path());
  expect_round_trip(storage, key, "virtual");
  std::string listing = boto3(R"(print(s3.head_object(Bucket="kiln", Key=")" + key.relative_path() +
                              R"(")["ContentLength"]))");
  EXPECT_EQ(listing, "7\n");
}

TEST_F(S3StorageTest, ServerSideEncryptionAes256) {
  S3Settings s = settings();
  s.server_side_encryption = "AES256";
  S3Storage storage(s, env_of());
  Key key = key_of("sse");
  expect_round_trip(storage, key, "encrypted");
  std::string head = boto3(R"(print(s3.head_object(Bucket="kiln", Key=")" + key.relative_path() +
                           R"(")["ServerSideEncryption"]))");
  EXPECT_EQ(head, "AES256\n");
}

TEST_F(S3StorageTest, ServerSideEncryptionKms) {
  S3Settings s = settings();
  s.server_side_encryption = "aws:kms";
  s.sse_kms_key_id = "alias/kiln";
  S3Storage storage(s, env_of());
  Key key = key_of("sse kms");
  expect_round_trip(storage, key, "kms");
  std::string head = boto3(R"(h = s3.head_object(Bucket="kiln", Key=")" + key.relative_path() +
                           R"(")
print(h["ServerSideEncryption"], h["SSEKMSKeyId"]))");
  EXPECT_TRUE(head.starts_with("aws:kms ")) << head;
  EXPECT_TRUE(contains(head, "alias/kiln")) << head;
}

TEST_F(S3StorageTest, WrongSecretIsAccessDenied) {
  S3Settings s = settings();
  s.secret_access_key = "not-the-secret";
  S3Storage storage(s, env_of());
  EXPECT_EQ(storage.put(key_of("denied"), "v").error(), Failure::access_denied);
  std::string e = storage.last_error();
  EXPECT_TRUE(contains(e, "SignatureDoesNotMatch")) << e;
  EXPECT_TRUE(contains(e, "the kiln settings (access_key_id)")) << e;
  EXPECT_TRUE(contains(e, "check the secret")) << e;
  EXPECT_EQ(storage.get(key_of("denied")).error(), Failure::access_denied);
  EXPECT_EQ(storage.exists(key_of("denied")).error(), Failure::access_denied);
}

TEST_F(S3StorageTest, UnknownAccessKeyIsAccessDenied) {
  S3Settings s = settings();
  s.access_key_id = "AKIAUNKNOWNKEY000000";
  S3Storage storage(s, env_of());
  EXPECT_EQ(storage.get(key_of("denied")).error(), Failure::access_denied);
  EXPECT_TRUE(contains(storage.last_error(), "does not know the access key ID"))
      << storage.last_error();
}

TEST_F(S3StorageTest, MissingPermissionIsAccessDenied) {
  S3Settings s = settings();
  s.access_key_id = m_nobody_key;
  s.secret_access_key = m_nobody_secret;
  S3Storage storage(s, env_of());
  EXPECT_EQ(storage.put(key_of("denied"), "v").error(), Failure::access_denied);
  EXPECT_TRUE(contains(storage.last_error(), "lack s3:PutObject permission on bucket 'kiln'"))
      << storage.last_error();
}

TEST_F(S3StorageTest, MissingBucketIsErrorNamingTheBucket) {
  S3Storage storage(settings("no-such-bucket"), env_of());
  EXPECT_EQ(storage.get(key_of("x")).error(), Failure::error);
  EXPECT_EQ(storage.last_error(), "S3 bucket 'no-such-bucket' does not exist at http://" +
                                      m_moto->endpoint() +
                                      " (check KILN_S3_BUCKET / KILN_S3_ENDPOINT)");
  EXPECT_EQ(storage.put(key_of("x"), "v").error(), Failure::error);
}

TEST_F(S3StorageTest, AnonymousReadsArePublicOnly) {
  ASSERT_TRUE(m_moto->set_auth(1LL << 40));  // moto cannot authenticate unsigned requests
  boto3(R"(
s3.create_bucket(Bucket="public")
s3.put_object(Bucket="public", Key="x", Body=b"")
)");
  S3Settings admin = settings("public");
  S3Storage writer(admin, env_of());
  Key open_key = key_of("public");
  Key private_key = key_of("private");
  ASSERT_TRUE(writer.put(private_key, "private value")) << writer.last_error();
  ASSERT_TRUE(writer.put(open_key, "public value")) << writer.last_error();
  boto3(R"(s3.put_object_acl(Bucket="public", Key=")" + open_key.relative_path() +
        R"(", ACL="public-read"))");

  S3Settings s = settings("public");
  s.no_credentials = true;
  S3Storage reader(s, env_of());
  auto got = reader.get(open_key);
  ASSERT_TRUE(got) << reader.last_error();
  EXPECT_EQ(*got, "public value");
  EXPECT_EQ(reader.get(private_key).error(), Failure::access_denied);
  EXPECT_TRUE(contains(reader.last_error(), "does not allow anonymous access"))
      << reader.last_error();
  EXPECT_TRUE(contains(reader.last_error(), "no_credentials = true")) << reader.last_error();
}

TEST_F(S3StorageTest, WebIdentityCredentialsFromSts) {
  // The first request (STS, which moto cannot authenticate) is free; the S3
  // requests after it must be signed with the credentials STS issued.
  ASSERT_TRUE(m_moto->set_auth(1));
  TempDir dir;
  std::string token_file = dir.path() + "/token";
  ASSERT_TRUE(util::write_file(token_file, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n"));
  S3Settings s = settings();
  s.access_key_id.clear();
  s.secret_access_key.clear();
  S3Storage storage(s, env_of({{"AWS_ROLE_ARN", k_role_arn},
                               {"AWS_WEB_IDENTITY_TOKEN_FILE", token_file},
                               {"AWS_ENDPOINT_URL_STS", m_moto->url() + "/"}}));
  Key key = key_of("web identity");
  expect_round_trip(storage, key, "from the role");
  auto exists = storage.exists(key);
  ASSERT_TRUE(exists) << storage.last_error();
  EXPECT_TRUE(*exists);
}

TEST_F(S3StorageTest, WebIdentityCredentialsAreRenewedBeforeExpiry) {
  ASSERT_TRUE(m_moto->set_auth(1LL << 40));
  TempDir dir;
  std::string token_file = dir.path() + "/token";
  ASSERT_TRUE(util::write_file(token_file, "token-1"));
  S3Settings s = settings();
  s.access_key_id.clear();
  s.role_arn = k_role_arn;
  s.web_identity_token_file = token_file;
  s.sts_endpoint = m_moto->url();
  int64_t now = util::Clock::system().wall_seconds();
  auto clock = util::ManualClock::at_unix_seconds(now);
  auto set_now = [&](int64_t t) { clock.advance(std::chrono::seconds(t - clock.wall_seconds())); };
  CredentialsProvider provider(s, env_of(), clock);

  auto first = provider.get();
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_FALSE(first->anonymous());
  EXPECT_FALSE(first->session_token.empty());
  EXPECT_GT(first->expiration, now + 600);
  EXPECT_TRUE(contains(first->source, "web identity")) << first->source;
  set_now(first->expiration - 400);  // not yet in the 5-minute renewal window
  ASSERT_TRUE(provider.get());
  EXPECT_EQ(provider.sts_requests(), 1);

  set_now(first->expiration - 200);  // inside the 5-minute renewal window
  auto renewed = provider.get();
  ASSERT_TRUE(renewed) << renewed.error().message;
  EXPECT_EQ(provider.sts_requests(), 2);
  EXPECT_NE(renewed->access_key_id, first->access_key_id);

  // When renewal fails (here: the token file is gone), the credentials
  // serve until they expire.
  std::filesystem::remove(token_file);
  set_now(renewed->expiration - 100);
  auto kept = provider.get();
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_EQ(kept->access_key_id, renewed->access_key_id);
  set_now(renewed->expiration + 1);
  auto expired = provider.get();
  ASSERT_FALSE(expired);
  EXPECT_TRUE(contains(expired.error().message, "cannot read the token file"))
      << expired.error().message;
}

TEST_F(S3StorageTest, WebIdentityWithoutTokenFileIsError) {
  S3Settings s = settings();
  s.access_key_id.clear();
  S3Storage storage(s, env_of({{"AWS_ROLE_ARN", k_role_arn},
                               {"AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"},
                               {"AWS_ENDPOINT_URL_STS", m_moto->url()}}));
  EXPECT_EQ(storage.get(key_of("x")).error(), Failure::error);
  EXPECT_TRUE(contains(storage.last_error(), "cannot read the token file /nonexistent/token"))
      << storage.last_error();
}

TEST_F(S3StorageTest, SharedCredentialsFileProfile) {
  TempDir dir;
  std::string file = dir.path() + "/credentials";
  ASSERT_TRUE(util::write_file(file,
                               "# test file\n"
                               "[default]\n"
                               "aws_access_key_id = AKIAWRONGWRONGWRONG0\n"
                               "aws_secret_access_key = wrong\n"
                               "\n"
                               "[kiln]\n"
                               "aws_access_key_id = " +
                                   m_admin_key +
                                   "\n"
                                   "aws_secret_access_key=" +
                                   m_admin_secret + "\n"));
  S3Settings s = settings();
  s.access_key_id.clear();
  s.secret_access_key.clear();
  {
    S3Storage storage(s, env_of({{"AWS_SHARED_CREDENTIALS_FILE", file}, {"AWS_PROFILE", "kiln"}}));
    expect_round_trip(storage, key_of("profile from env"), "profile");
  }
  {
    S3Settings with_profile = s;
    with_profile.credentials_file = file;
    with_profile.profile = "kiln";
    S3Storage storage(with_profile, env_of({{"AWS_PROFILE", "default"}}));
    expect_round_trip(storage, key_of("profile from settings"), "profile");
  }
  {
    S3Storage storage(s, env_of({{"AWS_SHARED_CREDENTIALS_FILE", file}}));
    EXPECT_EQ(storage.get(key_of("x")).error(), Failure::access_denied);
    EXPECT_TRUE(contains(storage.last_error(),
                         "the shared credentials file " + file + " (profile default)"))
        << storage.last_error();
  }
  {
    S3Storage storage(s,
                      env_of({{"AWS_SHARED_CREDENTIALS_FILE", file}, {"AWS_PROFILE", "absent"}}));
    EXPECT_EQ(storage.get(key_of("x")).error(), Failure::error);
    EXPECT_TRUE(contains(storage.last_error(), "profile 'absent'")) << storage.last_error();
  }
}

TEST_F(S3StorageTest, EnvironmentCredentials) {
  S3Settings s = settings();
  s.access_key_id.clear();
  s.secret_access_key.clear();
  S3Storage storage(
      s, env_of({{"AWS_ACCESS_KEY_ID", m_admin_key}, {"AWS_SECRET_ACCESS_KEY", m_admin_secret}}));
  expect_round_trip(storage, key_of("env"), "from the environment");
}

// --- In-flight leases -----------------------------------------------------

TEST_F(S3StorageTest, LeaseHasOneHolderUntilReleased) {
  using namespace std::chrono_literals;
  S3Storage a(settings(), env_of());
  S3Storage b(settings(), env_of());
  Key key = manifest_of("lease one holder");
  ASSERT_TRUE(a.supports_leases());
  EXPECT_EQ(b.lease_held(key).value_or(true), false) << b.last_error();

  auto taken = a.acquire_lease(key, "host-a:1:x", 30s);
  ASSERT_TRUE(taken) << a.last_error();
  EXPECT_TRUE(*taken);
  EXPECT_EQ(a.acquire_lease(key, "host-a:1:x", 30s).value_or(false), true) << "a holds it already";
  taken = b.acquire_lease(key, "host-b:2:y", 30s);
  ASSERT_TRUE(taken) << b.last_error();
  EXPECT_FALSE(*taken);
  EXPECT_EQ(b.lease_held(key).value_or(false), true) << b.last_error();
  EXPECT_EQ(b.lease_held(manifest_of("no lease here")).value_or(true), false);

  // Only the holder ends it.
  ASSERT_TRUE(b.release_lease(key, "host-b:2:y")) << b.last_error();
  EXPECT_EQ(b.lease_held(key).value_or(false), true);
  EXPECT_EQ(b.acquire_lease(key, "host-b:2:y", 30s).value_or(true), false);
  ASSERT_TRUE(a.release_lease(key, "host-a:1:x")) << a.last_error();
  EXPECT_EQ(b.lease_held(key).value_or(true), false);
  ASSERT_TRUE(a.release_lease(key, "host-a:1:x")) << "releasing a lease that is gone is no failure";

  EXPECT_EQ(b.acquire_lease(key, "host-b:2:y", 30s).value_or(false), true) << b.last_error();
  EXPECT_EQ(a.acquire_lease(key, "host-a:1:x", 30s).value_or(true), false);
  ASSERT_TRUE(b.release_lease(key, "host-b:2:y"));
  EXPECT_EQ(a.last_error(), "");
  EXPECT_EQ(b.last_error(), "");
}

TEST_F(S3StorageTest, ExpiredLeaseCanBeTakenByAnother) {
  using namespace std::chrono_literals;
  S3Storage a(settings(), env_of());
  S3Storage b(settings(), env_of());
  Key key = manifest_of("lease expiry");
  ASSERT_EQ(a.acquire_lease(key, "a", 200ms).value_or(false), true) << a.last_error();
  EXPECT_EQ(b.acquire_lease(key, "b", 200ms).value_or(true), false) << b.last_error();
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(b.lease_held(key).value_or(true), false) << b.last_error();
  EXPECT_EQ(b.acquire_lease(key, "b", 10s).value_or(false), true) << b.last_error();
  EXPECT_EQ(a.lease_held(key).value_or(false), true);
  // The first holder, late, does not end the new holder's lease.
  ASSERT_TRUE(a.release_lease(key, "a")) << a.last_error();
  EXPECT_EQ(a.lease_held(key).value_or(false), true);
  ASSERT_TRUE(b.release_lease(key, "b"));
}

TEST_F(S3StorageTest, LeaseObjectLayout) {
  using namespace std::chrono_literals;
  boto3(R"(s3.create_bucket(Bucket="leases"))");
  S3Settings s = settings("leases");
  s.key_prefix = "/team/kiln/";
  S3Storage storage(s, env_of());
  Key key = manifest_of("lease layout");
  EXPECT_EQ(storage.lease_object_key(key), "team/kiln/leases/" + key.name());
  auto before = std::chrono::system_clock::now();
  ASSERT_EQ(storage.acquire_lease(key, "host:42:nonce", 60s).value_or(false), true)
      << storage.last_error();
  EXPECT_EQ(storage.exists(key).value_or(true), false) << "a lease is not an entry";

  std::string listing = boto3(R"(
for o in s3.list_objects_v2(Bucket="leases")["Contents"]:
    print(o["Key"], s3.get_object(Bucket="leases", Key=o["Key"])["Body"].read().decode())
)");
  std::istringstream in(listing);
  std::string object, holder;
  int64_t expiry_ms = 0;
  in >> object >> expiry_ms >> holder;
  EXPECT_EQ(object, "team/kiln/leases/" + key.name()) << listing;
  EXPECT_EQ(holder, "host:42:nonce") << listing;
  int64_t before_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(before.time_since_epoch()).count();
  EXPECT_GE(expiry_ms, before_ms + 60000) << listing;
  EXPECT_LT(expiry_ms, before_ms + 70000) << listing;
}

TEST_F(S3StorageTest, LeaseObjectThatDoesNotParseCountsAsExpired) {
  using namespace std::chrono_literals;
  S3Storage storage(settings(), env_of());
  Key key = manifest_of("lease junk");
  boto3(R"(s3.put_object(Bucket="kiln", Key="leases/)" + key.name() + R"(", Body=b"junk"))");
  EXPECT_EQ(storage.lease_held(key).value_or(true), false) << storage.last_error();
  EXPECT_EQ(storage.acquire_lease(key, "a", 10s).value_or(false), true) << storage.last_error();
  EXPECT_EQ(storage.lease_held(key).value_or(false), true);
  ASSERT_TRUE(storage.release_lease(key, "a"));
}

TEST_F(S3StorageTest, LeaseWithoutPermissionIsAccessDenied) {
  using namespace std::chrono_literals;
  S3Settings s = settings();
  s.access_key_id = m_nobody_key;
  s.secret_access_key = m_nobody_secret;
  S3Storage storage(s, env_of());
  Key key = manifest_of("lease denied");
  EXPECT_EQ(storage.acquire_lease(key, "a", 10s).error(), Failure::access_denied);
  EXPECT_TRUE(contains(storage.last_error(), "leases/" + key.name())) << storage.last_error();
  EXPECT_TRUE(contains(storage.last_error(), "s3:PutObject")) << storage.last_error();
  EXPECT_EQ(storage.lease_held(key).error(), Failure::access_denied);
}

TEST_F(S3StorageTest, LeaseThroughThePlugin) {
  using namespace std::chrono_literals;
  auto opened = open_remote_storage("s3", to_text(settings()), KILN_PLUGIN_DIR);
  ASSERT_TRUE(opened) << opened.error();
  Storage& plugin = **opened;
  S3Storage other(settings(), env_of());
  Key key = manifest_of("lease through the plugin");
  ASSERT_TRUE(plugin.supports_leases());
  EXPECT_EQ(plugin.lease_held(key).value_or(true), false) << plugin.last_error();
  EXPECT_EQ(plugin.acquire_lease(key, "plugin:1:a", 30s).value_or(false), true)
      << plugin.last_error();
  EXPECT_EQ(other.acquire_lease(key, "other:2:b", 30s).value_or(true), false);
  EXPECT_EQ(other.lease_held(key).value_or(false), true);
  EXPECT_EQ(plugin.lease_held(key).value_or(false), true);
  ASSERT_TRUE(plugin.release_lease(key, "other:2:b")) << plugin.last_error();
  EXPECT_EQ(other.lease_held(key).value_or(false), true);
  ASSERT_TRUE(plugin.release_lease(key, "plugin:1:a")) << plugin.last_error();
  EXPECT_EQ(other.lease_held(key).value_or(true), false);
  EXPECT_EQ(other.acquire_lease(key, "other:2:b", 30s).value_or(false), true);
  ASSERT_TRUE(other.release_lease(key, "other:2:b"));
}

// Tests without a server.

TEST(S3Storage, ConnectionRefusedIsErrorNamingTheEndpoint) {
  int port = test::free_port();
  S3Settings s;
  s.bucket = "b";
  s.endpoint = "127.0.0.1:" + std::to_string(port);
  s.use_ssl = false;
  s.path_style = true;
  s.access_key_id = "AKIA0";
  s.secret_access_key = "secret";
  S3Storage storage(s, env_of());
  EXPECT_EQ(storage.get(key_of("x")).error(), Failure::error);
  std::string e = storage.last_error();
  EXPECT_TRUE(
      e.starts_with("cannot connect to S3 endpoint http://127.0.0.1:" + std::to_string(port)))
      << e;
  EXPECT_TRUE(contains(e, "(check KILN_S3_ENDPOINT / KILN_S3_USE_SSL)")) << e;
}

TEST(S3Storage, SilentServerTimesOut) {
  SilentServer server;
  S3Settings s;
  s.bucket = "b";
  s.endpoint = "http://127.0.0.1:" + std::to_string(server.port());
  s.path_style = true;
  s.no_credentials = true;
  s.common.request_timeout_ms = 600;
  S3Storage storage(s, env_of());
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(storage.get(key_of("slow")).error(), Failure::timeout);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::milliseconds(3000));
  EXPECT_TRUE(server.connected());
  EXPECT_TRUE(contains(storage.last_error(), "timed out")) << storage.last_error();
}

TEST(S3Storage, ReadOnlyAndAnonymousWritesSendNothing) {
  SilentServer server;
  S3Settings s;
  s.bucket = "b";
  s.endpoint = "127.0.0.1:" + std::to_string(server.port());
  s.use_ssl = false;
  s.path_style = true;
  s.access_key_id = "AKIA0";
  s.secret_access_key = "secret";
  s.common.read_only = true;
  S3Storage read_only(s, env_of());
  EXPECT_EQ(read_only.put(key_of("x"), "v").error(), Failure::error);
  EXPECT_TRUE(contains(read_only.last_error(), "read-only")) << read_only.last_error();
  EXPECT_EQ(read_only.remove(key_of("x")).error(), Failure::error);

  s.common.read_only = false;
  s.access_key_id.clear();
  s.secret_access_key.clear();
  S3Storage anonymous(s, env_of());
  EXPECT_EQ(anonymous.put(key_of("x"), "v").error(), Failure::access_denied);
  EXPECT_TRUE(contains(anonymous.last_error(), "without credentials (no credentials found"))
      << anonymous.last_error();
  EXPECT_FALSE(server.connected());
}

TEST(S3Storage, RequestHeaders) {
  test::RecordingServer server(200, "object");
  S3Settings s;
  s.bucket = "b";
  s.endpoint = server.url();
  s.path_style = true;
  s.server_side_encryption = "aws:kms";
  s.sse_kms_key_id = "key-1";
  s.region = "eu-central-1";
  S3Storage signed_storage(s, env_of({{"AWS_ACCESS_KEY_ID", "AKIAENV"},
                                      {"AWS_SECRET_ACCESS_KEY", "secret"},
                                      {"AWS_SESSION_TOKEN", "the-token"}}));
  Key key = key_of("headers");
  ASSERT_TRUE(signed_storage.put(key, "value")) << signed_storage.last_error();
  s.no_credentials = true;
  S3Storage anonymous(s, env_of());
  auto got = anonymous.get(key);
  ASSERT_TRUE(got) << anonymous.last_error();
  EXPECT_EQ(*got, "object");

  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  const std::string& put = requests[0];
  EXPECT_TRUE(put.starts_with("PUT /b/" + key.relative_path() + " HTTP/1.1\r\n")) << put;
  EXPECT_TRUE(contains(put, "\r\nx-amz-server-side-encryption: aws:kms\r\n")) << put;
  EXPECT_TRUE(contains(put, "\r\nx-amz-server-side-encryption-aws-kms-key-id: key-1\r\n")) << put;
  EXPECT_TRUE(contains(put, "\r\nx-amz-security-token: the-token\r\n")) << put;
  EXPECT_TRUE(contains(put, "\r\nx-amz-content-sha256: " +
                                util::Hasher().update("value").finish().to_hex() + "\r\n"))
      << put;
  EXPECT_TRUE(contains(put, "Credential=AKIAENV/")) << put;
  EXPECT_TRUE(contains(put,
                       "/eu-central-1/s3/aws4_request, SignedHeaders=content-type;host;"
                       "x-amz-content-sha256;x-amz-date;x-amz-security-token;"
                       "x-amz-server-side-encryption;"
                       "x-amz-server-side-encryption-aws-kms-key-id, Signature="))
      << put;
  const std::string& get = requests[1];
  EXPECT_TRUE(get.starts_with("GET /b/" + key.relative_path() + " HTTP/1.1\r\n")) << get;
  EXPECT_FALSE(contains(get, "Authorization")) << get;
  EXPECT_FALSE(contains(get, "x-amz-")) << get;
}

TEST(S3Storage, LeasePutIsConditionalAndSigned) {
  using namespace std::chrono_literals;
  test::RecordingServer server(200, "");
  S3Settings s;
  s.bucket = "b";
  s.endpoint = server.url();
  s.path_style = true;
  S3Storage storage(
      s, env_of({{"AWS_ACCESS_KEY_ID", "AKIAENV"}, {"AWS_SECRET_ACCESS_KEY", "secret"}}));
  Key key = manifest_of("conditional");
  auto taken = storage.acquire_lease(key, "host:1:n", 5s);
  ASSERT_TRUE(taken) << storage.last_error();
  EXPECT_TRUE(*taken);
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  const std::string& put = requests[0];
  EXPECT_TRUE(put.starts_with("PUT /b/leases/" + key.name() + " HTTP/1.1\r\n")) << put;
  EXPECT_TRUE(contains(put, "\r\nIf-None-Match: *\r\n")) << put;
  EXPECT_TRUE(contains(put, "if-none-match;")) << "signed: " << put;
  EXPECT_TRUE(contains(put, " host:1:n")) << put;
}

TEST(S3Storage, ReadOnlyTakesNoLease) {
  using namespace std::chrono_literals;
  SilentServer server;
  S3Settings s;
  s.bucket = "b";
  s.endpoint = "127.0.0.1:" + std::to_string(server.port());
  s.use_ssl = false;
  s.path_style = true;
  s.access_key_id = "AKIA0";
  s.secret_access_key = "secret";
  s.common.read_only = true;
  S3Storage storage(s, env_of());
  EXPECT_EQ(storage.acquire_lease(manifest_of("x"), "a", 5s).error(), Failure::error);
  EXPECT_TRUE(contains(storage.last_error(), "read-only")) << storage.last_error();
  EXPECT_EQ(storage.release_lease(manifest_of("x"), "a").error(), Failure::error);
  EXPECT_FALSE(server.connected());
}

TEST(S3Storage, LeaseRequestTimesOut) {
  using namespace std::chrono_literals;
  SilentServer server;
  S3Settings s;
  s.bucket = "b";
  s.endpoint = "http://127.0.0.1:" + std::to_string(server.port());
  s.path_style = true;
  s.access_key_id = "AKIA0";
  s.secret_access_key = "secret";
  s.common.request_timeout_ms = 600;
  S3Storage storage(s, env_of());
  Key key = manifest_of("slow lease");
  EXPECT_EQ(storage.acquire_lease(key, "a", 5s).error(), Failure::timeout);
  EXPECT_TRUE(contains(storage.last_error(), "timed out")) << storage.last_error();
  EXPECT_TRUE(contains(storage.last_error(), "leases/" + key.name())) << storage.last_error();
  EXPECT_EQ(storage.lease_held(key).error(), Failure::timeout);
}

TEST(S3Storage, UrlsAndObjectKeys) {
  S3Settings s;
  s.bucket = "cache";
  s.region = "eu-west-1";
  s.key_prefix = "a b/c/";
  S3Storage virtual_host(s, env_of());
  Key key = key_of("url");
  EXPECT_EQ(virtual_host.object_key(key), "a b/c/" + key.relative_path());
  EXPECT_EQ(virtual_host.object_url(key),
            "https://cache.s3.eu-west-1.amazonaws.com/a%20b/c/" + key.relative_path());
  s.path_style = true;
  s.use_ssl = false;
  s.endpoint = "minio:9000/";
  s.key_prefix.clear();
  S3Storage path_style(s, env_of());
  EXPECT_EQ(path_style.object_url(key), "http://minio:9000/cache/" + key.relative_path());
}

TEST(CredentialsProvider, UnreachableStsIsError) {
  TempDir dir;
  ASSERT_TRUE(util::write_file(dir.path() + "/token", "token"));
  S3Settings s;
  s.role_arn = k_role_arn;
  s.web_identity_token_file = dir.path() + "/token";
  s.sts_endpoint = "http://127.0.0.1:" + std::to_string(test::free_port());
  CredentialsProvider provider(s, env_of());
  auto c = provider.get();
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().failure, Failure::error);
  EXPECT_TRUE(contains(c.error().message,
                       "STS AssumeRoleWithWebIdentity for role " + std::string(k_role_arn)))
      << c.error().message;
  EXPECT_TRUE(contains(c.error().message, "AWS_ENDPOINT_URL_STS")) << c.error().message;
}

}  // namespace
}  // namespace kiln::storage
