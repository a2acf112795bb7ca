#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "kiln/util/expected.hpp"

namespace kiln::service {

// The seam between the store's SQL and a database engine: one connection,
// statements with typed parameters, rows as text. The store writes its SQL
// once, in the subset both engines share, with the differences named in
// Dialect; SqliteDatabase and PostgresDatabase run it.
//
// Not thread-safe: one connection, used by one thread at a time (Store
// serializes its calls).

// A statement parameter: SQL NULL, a 64-bit integer or text.
using Param = std::variant<std::nullptr_t, int64_t, std::string>;

// One row of a result: each column as text (integers in decimal), nullopt
// for NULL.
using Row = std::vector<std::optional<std::string>>;

enum class Dialect { sqlite, postgres };

class Database {
 public:
  virtual ~Database() = default;

  virtual Dialect dialect() const = 0;

  // Runs one statement with parameters ?1, ?2, ... (the store's spelling;
  // the PostgreSQL backend sends them as $1, $2, ...). Returns the rows it
  // produced (none for a statement without a result or RETURNING), or the
  // engine's error message.
  virtual expected<std::vector<Row>, std::string> query(std::string_view sql,
                                                        const std::vector<Param>& params) = 0;

  // Runs a script of statements without parameters (schema migrations).
  virtual expected<void, std::string> execute_script(std::string_view sql) = 0;

  // Called by the store before each operation, outside any transaction: a
  // backend whose connection was lost (a restarted PostgreSQL) reconnects
  // here, never in the middle of a transaction, where a new connection would
  // silently run the rest of it on its own.
  virtual expected<void, std::string> reconnect_if_lost() { return {}; }
};

// Runs `body` in a write transaction and commits when it succeeds, rolls
// back when it fails. SQLite: BEGIN IMMEDIATE, which takes the file's write
// lock up front (waiting up to the busy timeout), so the transaction never
// has to upgrade a read snapshot that another writer made stale; that is what
// serializes writers across processes. PostgreSQL: BEGIN (READ COMMITTED).
expected<void, std::string> in_write_transaction(
    Database& db, const std::function<expected<void, std::string>()>& body);

// The SQL expression for "now" on the database server's clock, in
// milliseconds since the Unix epoch, as a 64-bit integer.
std::string_view now_ms_sql(Dialect dialect);

// Opens (creating it if needed) the SQLite database at `path`, in WAL mode
// with a busy timeout, so that several processes on one machine share it.
expected<std::unique_ptr<Database>, std::string> open_sqlite(const std::string& path);

// Connects to PostgreSQL with a libpq connection string or URL
// ("postgresql://user@host:port/db").
expected<std::unique_ptr<Database>, std::string> open_postgres(const std::string& conninfo);

// The channel the store notifies (PostgreSQL NOTIFY, at commit) whenever a
// program version becomes Pending, so that replicas claim it at once
// instead of at their next poll.
inline constexpr std::string_view k_pending_channel = "kiln_pending";

// A connection of its own that LISTENs on a channel. Not thread-safe.
class Listener {
 public:
  virtual ~Listener() = default;
  // Waits up to `timeout` for notifications: true if at least one came (all
  // that came are consumed), false if none. An error: the connection is
  // lost; open a new Listener.
  virtual expected<bool, std::string> wait(std::chrono::milliseconds timeout) = 0;
};

expected<std::unique_ptr<Listener>, std::string> listen_postgres(const std::string& conninfo,
                                                                 std::string_view channel);

}  // namespace kiln::service
