#pragma once

#include <memory>

#include "kiln/net/http_client.hpp"

namespace kiln::net {

// The libcurl transport: http and https (TLS, proxies from the environment as
// libcurl reads them), one easy handle reused for every request so that its
// connection cache keeps connections alive. The transport of the S3 backend,
// of https:// cache levels and of the daemons. Response limits are enforced
// as the bytes arrive (and against Content-Length before the body is read).
std::unique_ptr<HttpClient> make_curl_client(HttpTimeouts timeouts = {}, HttpLimits limits = {});

}  // namespace kiln::net
