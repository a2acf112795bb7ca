#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kiln/util/string.hpp"

namespace kiln::dist {

// The per-job token: the scheduler signs (job id, server id, expiry) with the
// secret it shares with the workers, and the chosen worker checks the
// signature itself, so a client can run only the job it was allocated, only
// on that worker, and only until the token expires; no round trip to the
// scheduler. Format: "<expiry unix seconds>.<hex HMAC-SHA256>".
std::string make_job_token(std::string_view secret, std::string_view job_id,
                           std::string_view server_id, int64_t expires_unix);

bool check_job_token(std::string_view secret, std::string_view token, std::string_view job_id,
                     std::string_view server_id, int64_t now_unix);

using util::constant_time_equal;

}  // namespace kiln::dist
