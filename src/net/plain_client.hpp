#pragma once

#include <memory>

#include "kiln/net/http_client.hpp"
#include "kiln/util/clock.hpp"

namespace kiln::net {

// The socket transport: HTTP/1.1 over POSIX sockets for http:// URLs, so that
// a plain-HTTP cache level (libkiln-http.so) does not load libcurl and its ~36
// shared libraries. It never speaks TLS: an https:// URL fails with
// cannot_connect, naming the plugin that serves it.
//
// One connection is kept alive across requests to the same host:port; a
// request on a reused connection that the server closed before answering is
// retried once on a fresh one. Name lookups run in a thread abandoned at the
// connect timeout. "user:password@" in the URL becomes Basic authorization.
// `clock` supplies the deadlines (steady()) and must outlive the client.
std::unique_ptr<HttpClient> make_plain_client(HttpTimeouts timeouts = {}, HttpLimits limits = {},
                                              const util::Clock& clock = util::Clock::system());

}  // namespace kiln::net
