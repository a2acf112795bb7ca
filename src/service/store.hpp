#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/service/database.hpp"
#include "kiln/util/expected.hpp"
#include "kiln/util/thread_annotations.hpp"

namespace kiln::service {

// The compile service's state: programs, their compile status, and the
// replicas that are alive. Schema, shard function, claim semantics and the
// status machine: docs/service-store.md.
//
// Errors are the database's messages (kiln::expected<T, std::string>): the
// caller logs them and answers 503 or retries; none of them is fatal to a
// replica.

// Pending -> Compiling (claim) -> Success | CompileError | SystemError
// (finish); any -> Pending when the program changes (upsert); Compiling ->
// Pending (reset_compiling); Success -> Pending (back_to_pending).
enum class Status { pending, compiling, success, compile_error, system_error };

// "Pending", "Compiling", "Success", "CompileError", "SystemError": the
// spelling stored in the database and shown by the API.
std::string_view to_string(Status status);
std::optional<Status> parse_status(std::string_view text);

// One row of `programs`. Timestamps are the database server's clock, in
// milliseconds since the Unix epoch, so that replicas on machines with
// skewed clocks agree.
struct Program {
  std::string id;  // UUID v4, chosen by the store
  std::string name;
  int64_t version = 1;
  Status status = Status::pending;
  std::string source_sha256;
  std::string recipe;                  // JSON text, as the API stored it
  std::optional<int64_t> compiled_by;  // the worker id of the last claim
  std::string log;                     // the last compile's log
  int64_t cache_hits = 0;              // of the last compile
  int64_t cache_misses = 0;            // of the last compile
  std::optional<std::string> binary_sha256;
  int64_t compile_count = 0;  // claims of any version, ever
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
};

struct UpsertResult {
  Program program;
  // True when the program was created, or its source or recipe changed (a
  // new version, Pending); false when it was stored as is.
  bool changed = false;
};

// What a worker needs to compile one claimed program version.
struct Claim {
  std::string id;
  std::string name;
  int64_t version = 0;
  std::string recipe;
  std::string source_sha256;
};

// A replica that heartbeated recently.
struct Member {
  int64_t worker_id = 0;
  int64_t workers = 0;  // the replica count it was started with
  std::string url;
  std::chrono::milliseconds age{0};  // since its last heartbeat, by the database's clock
};

// Thread-safety: internally serialized. A Store is one database connection;
// its methods may be called from any thread, one call at a time (a mutex).
// Threads that want to use the database in parallel open a Store each; any
// number of Stores in any number of processes may share one database, and
// every guarantee below (no double claim, one migration) holds across them.
class Store {
 public:
  // Takes the connection; runs the schema migrations (see open_store).
  static expected<std::unique_ptr<Store>, std::string> open(std::unique_ptr<Database> database);

  // The schema version this build writes (the last migration's number).
  static int64_t latest_schema_version();

  // The schema version of the database (after open: latest_schema_version()).
  expected<int64_t, std::string> schema_version() EXCLUDES(m_mutex);

  // Creates the program (Pending, version 1, a new id), or, when
  // source_sha256 or recipe differ from the stored ones, makes a new version:
  // version + 1, Pending, binary, log, cache counts and compiled_by cleared.
  // Unchanged: nothing is written. `recipe` is compared as text, so the
  // caller passes it in one canonical form (sorted keys, no spaces).
  expected<UpsertResult, std::string> upsert(std::string_view name, std::string_view source_sha256,
                                             std::string_view recipe) EXCLUDES(m_mutex);

  // nullopt when there is no program of that name.
  expected<std::optional<Program>, std::string> get(std::string_view name) EXCLUDES(m_mutex);
  // All programs, by name.
  expected<std::vector<Program>, std::string> list() EXCLUDES(m_mutex);
  // Whether it existed.
  expected<bool, std::string> remove(std::string_view name) EXCLUDES(m_mutex);

  // The ids of the programs (any status) of replica `worker_id` of `workers`,
  // computed by the database with the same expression as claim(); for the
  // tests and diagnostics. workers must be in [1, 2^31), worker_id < workers.
  expected<std::vector<std::string>, std::string> shard_ids(int64_t worker_id, int64_t workers)
      EXCLUDES(m_mutex);

  // Atomically moves up to `limit` Pending programs of this replica's shard
  // (shard_of(id, workers) == worker_id), oldest change first, to Compiling
  // with compiled_by = worker_id and compile_count + 1, and returns them. No
  // program version is returned by two calls, whatever the connections,
  // processes or worker ids: it is Compiling once claimed. An empty shard is
  // one indexed query: cheap to poll.
  expected<std::vector<Claim>, std::string> claim(int64_t worker_id, int64_t workers, int64_t limit)
      EXCLUDES(m_mutex);

  // Records the result of compiling version `version` of program `id`, only
  // if it is still that version and Compiling: a program edited during its
  // compile has a new version, and the stale result is dropped. Returns
  // whether it applied. `status` must be success, compile_error or
  // system_error (an error otherwise).
  expected<bool, std::string> finish(std::string_view id, int64_t version, Status status,
                                     std::string_view log, int64_t cache_hits, int64_t cache_misses,
                                     std::optional<std::string> binary_sha256) EXCLUDES(m_mutex);

  // On a replica's start: its shard's programs left Compiling (by a crashed
  // run of it) go back to Pending. Returns how many.
  expected<int64_t, std::string> reset_compiling(int64_t worker_id, int64_t workers)
      EXCLUDES(m_mutex);

  // The leader lost the binary of a compiled program: Success -> Pending,
  // binary cleared, only if `version` is still current. Returns whether it
  // applied.
  expected<bool, std::string> back_to_pending(std::string_view id, int64_t version)
      EXCLUDES(m_mutex);

  // A SystemError (a failure of the service, not of the program) of version
  // `version` back to Pending, log cleared: a program submitted again
  // unchanged is retried. Returns whether it applied.
  expected<bool, std::string> retry_system_error(std::string_view id, int64_t version)
      EXCLUDES(m_mutex);

  // Stores a program archive under its SHA-256 (hex), unless one is stored
  // already. `base64` is the archive in base64 (the store keeps text).
  expected<void, std::string> put_source(std::string_view sha256, std::string_view base64)
      EXCLUDES(m_mutex);
  // The base64 text stored by put_source, nullopt when there is none.
  expected<std::optional<std::string>, std::string> get_source(std::string_view sha256)
      EXCLUDES(m_mutex);
  // Removes archives no program refers to that were stored at least
  // `min_age` ago (younger ones may belong to a submission in progress).
  // Returns how many.
  expected<int64_t, std::string> remove_unreferenced_sources(std::chrono::milliseconds min_age)
      EXCLUDES(m_mutex);

  // Records that replica `worker_id` of `workers`, reachable at `url`, is
  // alive now. One row per (worker_id, url): two replicas that believe they
  // have the same id both show.
  expected<void, std::string> heartbeat_member(int64_t worker_id, int64_t workers,
                                               std::string_view url) EXCLUDES(m_mutex);
  // A replica that stops cleanly leaves the membership at once, so that
  // neither /cluster_healthz nor the scaling check of replicas started with
  // a new count sees it. Returns whether it had a row.
  expected<bool, std::string> remove_member(int64_t worker_id, std::string_view url)
      EXCLUDES(m_mutex);
  // Members whose last heartbeat is at most `max_age` old, by worker id.
  expected<std::vector<Member>, std::string> members(std::chrono::milliseconds max_age)
      EXCLUDES(m_mutex);

 private:
  explicit Store(std::unique_ptr<Database> database);

  util::Mutex m_mutex;
  std::unique_ptr<Database> m_db GUARDED_BY(m_mutex);
};

// Opens the store at `url` and brings its schema up to date:
//   sqlite:///absolute/path.db          a file (created if missing), WAL mode
//   postgresql://user@host:port/db      libpq's URL syntax (also postgres://),
//                                       with any libpq parameters after '?'
// Migrations run at open, each in its own transaction, under a lock that
// makes concurrent openers wait (SQLite BEGIN IMMEDIATE, PostgreSQL
// pg_advisory_xact_lock); an up-to-date database is not written. A database
// with a newer schema than this build knows is an error.
expected<std::unique_ptr<Store>, std::string> open_store(std::string_view url);

}  // namespace kiln::service
