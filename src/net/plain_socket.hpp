#pragma once
// Timed name lookups and connects of the socket transport (plain_client.cpp).
// Internal to kiln_net.

#include <string>

#include "kiln/net/http_client.hpp"
#include "kiln/util/clock.hpp"
#include "kiln/util/expected.hpp"

namespace kiln::net::plain {

using SteadyPoint = util::Clock::SteadyPoint;

// Where an http:// URL points.
struct Endpoint {
  std::string host;       // for getaddrinfo: an IPv6 literal without brackets
  std::string port;       // decimal
  std::string host_port;  // "host:port" (IPv6 in brackets), for messages and reuse
};

// Milliseconds from `clock`'s now until `deadline`, 0 once it has passed.
int ms_until(const util::Clock& clock, SteadyPoint deadline);

// Waits until `fd` is ready for `events` or the deadline passes. Returns
// false on timeout; errors and hang-ups count as ready (the next call reports them).
bool wait_for(const util::Clock& clock, int fd, short events, SteadyPoint deadline);

std::string errno_text(int error);

// Opens a non-blocking TCP connection (TCP_NODELAY) to the endpoint, trying
// every address its name resolves to; the name lookup (in a thread of its
// own, abandoned at the deadline, as libcurl's threaded resolver is) and the
// connects end at `connect_deadline` (a timeout). Returns the socket, owned
// by the caller.
expected<int, HttpError> connect_to(const util::Clock& clock, const Endpoint& endpoint,
                                    SteadyPoint connect_deadline, int connect_ms);

}  // namespace kiln::net::plain
