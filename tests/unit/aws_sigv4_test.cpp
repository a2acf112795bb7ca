// SigV4 signing against the scenarios of the AWS SigV4 test suite (example
// credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z, us-east-1, service "service").
// The suite's requests do not send x-amz-content-sha256: with it off, the
// expected signatures are the suite's own. With it on (as S3 needs), they were
// computed once by an independent SigV4 in Python (hashlib and hmac).
#include "kiln/storage/remote/aws_sigv4.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kiln/util/hash.hpp"

namespace kiln::storage {
namespace {

constexpr int64_t k_suite_time = 1440938160;  // 20150830T123600Z
constexpr std::string_view k_host = "https://example.amazonaws.com";

AwsSigning suite_signing(bool content_sha256) {
  AwsSigning aws;
  aws.region = "us-east-1";
  aws.service = "service";
  aws.access_key_id = "AKIDEXAMPLE";
  aws.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  aws.content_sha256_header = content_sha256;
  return aws;
}

std::string sha256_hex(std::string_view data) {
  return util::Hasher().update(data).finish().to_hex();
}

std::string authorization(std::string_view signed_headers, std::string_view signature) {
  return "Authorization: AWS4-HMAC-SHA256 "
         "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=" +
         std::string(signed_headers) + ", Signature=" + std::string(signature);
}

struct Case {
  const char* name;
  const char* method;
  std::string target;  // path and query
  std::vector<std::string> headers;
  std::string body;
  const char* suite_signed_headers;
  const char* suite_signature;  // the test suite's, without x-amz-content-sha256
  const char* s3_signature;     // with x-amz-content-sha256 (independent computation)
};

std::vector<Case> suite_cases() {
  return {
      {"get-vanilla",
       "GET",
       "/",
       {},
       "",
       "host;x-amz-date",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
       "726c5c4879a6b4ccbbd3b24edbd6b8826d34f87450fbbf4e85546fc7ba9c1642"},
      {"get-header-key-duplicate",
       "GET",
       "/",
       {"My-Header1:value2", "My-Header1:value2", "My-Header1:value1"},
       "",
       "host;my-header1;x-amz-date",
       "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
       "db18ec62f61f68fd1c6022d944bc0e2da22ef07ee7dcc40ba80d15388e3519e9"},
      {"get-header-value-trim",
       "GET",
       "/",
       {"My-Header1: value1", "My-Header2: \"a   b   c\""},
       "",
       "host;my-header1;my-header2;x-amz-date",
       "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
       "095ca36c08b6d28690c278dfc0cd1998a603eead1c694ffba9ff6fed48555cdd"},
      {"get-vanilla-query-order-key",
       "GET",
       "/?Param2=value2&Param1=value1",
       {},
       "",
       "host;x-amz-date",
       "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
       "311c7f58b10b06de8540bb5a27f441ee0609f1d5ad7b191e68d7ea87d90e3d6b"},
      {"post-x-www-form-urlencoded",
       "POST",
       "/",
       {"Content-Type:application/x-www-form-urlencoded"},
       "Param1=value1",
       "content-type;host;x-amz-date",
       "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
       "3ae685fb42e386f9c46ad18dc31b73536a1fc7867dc5cdc8e34e4b1ee1fe5c50"},
  };
}

// The S3 variant's signed headers: x-amz-content-sha256 between host's
// neighbours in sorted order.
std::string with_content_sha256(std::string_view names) {
  std::string out(names);
  auto date = out.find("x-amz-date");
  out.insert(date, "x-amz-content-sha256;");
  return out;
}

TEST(AwsSigV4Test, TestSuiteScenarios) {
  for (const Case& c : suite_cases()) {
    std::string url = std::string(k_host) + c.target;
    auto headers = sign_aws_v4(suite_signing(false), c.method, url, c.headers, sha256_hex(c.body),
                               k_suite_time);
    ASSERT_EQ(headers.size(), 3u) << c.name;
    EXPECT_EQ(headers[0], "Host: example.amazonaws.com") << c.name;
    EXPECT_EQ(headers[1], "x-amz-date: 20150830T123600Z") << c.name;
    EXPECT_EQ(headers[2], authorization(c.suite_signed_headers, c.suite_signature)) << c.name;
  }
}

TEST(AwsSigV4Test, TestSuiteScenariosWithContentSha256) {
  for (const Case& c : suite_cases()) {
    std::string url = std::string(k_host) + c.target;
    std::string payload_hash = sha256_hex(c.body);
    auto headers =
        sign_aws_v4(suite_signing(true), c.method, url, c.headers, payload_hash, k_suite_time);
    ASSERT_EQ(headers.size(), 4u) << c.name;
    EXPECT_EQ(headers[2], "x-amz-content-sha256: " + payload_hash) << c.name;
    EXPECT_EQ(headers[3],
              authorization(with_content_sha256(c.suite_signed_headers), c.s3_signature))
        << c.name;
  }
}

TEST(AwsSigV4Test, QueryValuesAreOrderedToo) {
  // get-vanilla-query-order-value: one name twice, sorted by value ('V' < 'v').
  auto headers =
      sign_aws_v4(suite_signing(true), "GET", std::string(k_host) + "/?Param1=value2&Param1=Value1",
                  {}, sha256_hex(""), k_suite_time);
  EXPECT_EQ(headers.back(),
            authorization("host;x-amz-content-sha256;x-amz-date",
                          "b15f59bfe94d70d9256e59920a5654f457084f308b38f908271dde7e0e14eb65"));
}

TEST(AwsSigV4Test, SessionTokenIsSentAndSigned) {
  AwsSigning aws = suite_signing(true);
  aws.session_token =
      "AQoDYXdzEPT//////////"
      "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwth"
      "A"
      "x7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvl"
      "Rd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX"
      "9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
  auto headers =
      sign_aws_v4(aws, "GET", std::string(k_host) + "/", {}, sha256_hex(""), k_suite_time);
  ASSERT_EQ(headers.size(), 5u);
  EXPECT_EQ(headers[3], "x-amz-security-token: " + aws.session_token);
  EXPECT_EQ(headers[4],
            authorization("host;x-amz-content-sha256;x-amz-date;x-amz-security-token",
                          "07c4c74d2df5a40f9f6ecbdd88b5567b92c7d67a66979e89962452866bbc164b"));
}

TEST(AwsSigV4Test, S3DocumentationExample) {
  // "Example: GET Object" of the S3 SigV4 documentation (header-based auth).
  AwsSigning aws;
  aws.region = "us-east-1";
  aws.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  aws.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  std::string empty_hash = sha256_hex("");
  auto headers = sign_aws_v4(aws, "GET", "https://examplebucket.s3.amazonaws.com/test.txt",
                             {"Range: bytes=0-9"}, empty_hash, 1369353600);
  ASSERT_EQ(headers.size(), 4u);
  EXPECT_EQ(headers[0], "Host: examplebucket.s3.amazonaws.com");
  EXPECT_EQ(headers[1], "x-amz-date: 20130524T000000Z");
  EXPECT_EQ(headers[2], "x-amz-content-sha256: " + empty_hash);
  EXPECT_EQ(headers[3],
            "Authorization: AWS4-HMAC-SHA256 "
            "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(AwsSigV4Test, SignRequestUsesTheInjectedClockAndTheSentHeaders) {
  auto clock = util::ManualClock::at_unix_seconds(k_suite_time);
  net::HttpRequest request;
  request.method = "POST";
  request.url = std::string(k_host) + "/";
  request.headers = {"Content-Type:application/x-www-form-urlencoded", "Host: ignored"};
  request.body = "Param1=value1";
  sign_request(&request, suite_signing(true), clock);
  // The caller's Host is replaced by the URL's; the signature is the one above.
  std::vector<std::string> expected = {
      "Content-Type:application/x-www-form-urlencoded",
      "Host: example.amazonaws.com",
      "x-amz-date: 20150830T123600Z",
      "x-amz-content-sha256: " + sha256_hex("Param1=value1"),
      authorization("content-type;host;x-amz-content-sha256;x-amz-date",
                    "3ae685fb42e386f9c46ad18dc31b73536a1fc7867dc5cdc8e34e4b1ee1fe5c50"),
  };
  EXPECT_EQ(request.headers, expected);

  // A PUT without a Content-Type is signed with the one the transport adds.
  clock.advance(std::chrono::hours(24));
  net::HttpRequest put;
  put.method = "PUT";
  put.url = std::string(k_host) + "/key";
  put.body = "value";
  sign_request(&put, suite_signing(true), clock);
  ASSERT_EQ(put.headers.size(), 5u);
  EXPECT_EQ(put.headers[0], "Content-Type: application/octet-stream");
  EXPECT_EQ(put.headers[2], "x-amz-date: 20150831T123600Z");
  EXPECT_NE(put.headers[4].find("SignedHeaders=content-type;host;"), std::string::npos)
      << put.headers[4];
}

}  // namespace
}  // namespace kiln::storage
