#include "kiln/dist/job_token.hpp"

#include <charconv>

#include "kiln/util/hmac.hpp"

namespace kiln::dist {

namespace {

std::string signature(std::string_view secret, std::string_view job_id, std::string_view server_id,
                      int64_t expires_unix) {
  std::string data = "kiln-job-v1|";
  data.append(job_id).append("|").append(server_id).append("|").append(
      std::to_string(expires_unix));
  return util::hmac_sha256(secret, data).to_hex();
}

}  // namespace

std::string make_job_token(std::string_view secret, std::string_view job_id,
                           std::string_view server_id, int64_t expires_unix) {
  return std::to_string(expires_unix) + "." + signature(secret, job_id, server_id, expires_unix);
}

bool check_job_token(std::string_view secret, std::string_view token, std::string_view job_id,
                     std::string_view server_id, int64_t now_unix) {
  auto dot = token.find('.');
  if (dot == std::string_view::npos || dot == 0) {
    return false;
  }
  int64_t expires = 0;
  auto [end, ec] = std::from_chars(token.data(), token.data() + dot, expires);
  if (ec != std::errc() || end != token.data() + dot || expires < now_unix) {
    return false;
  }
  return constant_time_equal(token.substr(dot + 1), signature(secret, job_id, server_id, expires));
}

}  // namespace kiln::dist
