#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/util/expected.hpp"

// The cluster's control messages (docs/dist-protocol.md): typed structs,
// parsed once at the edge from JSON and checked there, so that nothing past a
// handler sees raw JSON. Every parse error is a message for a 400 answer.
namespace kiln::dist {

inline constexpr std::string_view k_api_prefix = "/api/v1";

// The body of every error answer: what went wrong, and whether asking again
// elsewhere (another worker, later) can help. Clients act on the flag, never
// on the text.
struct ErrorBody {
  std::string error;
  bool retry_elsewhere = false;
};
std::string to_json(const ErrorBody& e);
expected<ErrorBody, std::string> parse_error_body(std::string_view json);

// Worker -> scheduler, every few seconds and when a job ends.
struct Heartbeat {
  std::string server_id;          // stable for the worker's address (e.g. its pod name)
  std::string nonce;              // new at every start: a new nonce under a known id is a restart
  std::string public_url;         // where clients reach it (maybe a proxy's port)
  int cores = 0;                  // 1 ... 4096
  std::vector<std::string> jobs;  // ids of the jobs it holds (assigned, running)
  // Ids of the jobs that ended since the scheduler last acknowledged a
  // heartbeat: a job can start and end between two heartbeats, and the
  // scheduler holds its slot until it hears of it.
  std::vector<std::string> ended;
  std::vector<std::string> toolchains;  // ids it has unpacked
  bool draining = false;
  std::string certificate;  // PEM of its self-signed certificate (empty: plain http)
  uint64_t jobs_done = 0;   // since start
  double busy_seconds = 0;  // compile time spent on jobs_done, since start
};
std::string to_json(const Heartbeat& h);
expected<Heartbeat, std::string> parse_heartbeat(std::string_view json);

struct HeartbeatReply {
  int heartbeat_interval_ms = 2000;
  bool restarted = false;  // the scheduler knew this id under another nonce
};
std::string to_json(const HeartbeatReply& r);
expected<HeartbeatReply, std::string> parse_heartbeat_reply(std::string_view json);

// A worker leaving (drained) tells the scheduler at once.
struct Deregister {
  std::string server_id;
  std::string nonce;
};
std::string to_json(const Deregister& d);
expected<Deregister, std::string> parse_deregister(std::string_view json);

// Why a client gave up on a worker it was allocated.
struct Failure {
  std::string server_id;
  std::string job_id;
  std::string reason;  // "refused", "timeout", "gone", "tls", "5xx", ...
};

// Client -> scheduler.
struct AllocRequest {
  std::string client_id;
  std::string toolchain;             // id of the toolchain the job needs
  std::vector<std::string> exclude;  // server ids not to use (failed this job)
  std::optional<Failure> failed;     // the previous attempt, for the scheduler's penalties
  int wait_ms = 10000;               // how long to wait for a free slot (capped by the scheduler)
};
std::string to_json(const AllocRequest& a);
expected<AllocRequest, std::string> parse_alloc_request(std::string_view json);

struct Allocation {
  std::string job_id;
  std::string server_id;
  std::string url;              // the worker's public URL
  std::string certificate;      // the PEM to trust for `url`, as the worker last sent it
  std::string job_token;        // presented to the worker; valid for this job on this worker only
  bool needs_toolchain = true;  // the worker did not report holding the toolchain
};
std::string to_json(const Allocation& a);
expected<Allocation, std::string> parse_allocation(std::string_view json);

// Checks applied to ids and other short strings from the network: 1 to 128
// bytes of [A-Za-z0-9._:-].
bool is_valid_id(std::string_view id);

}  // namespace kiln::dist
