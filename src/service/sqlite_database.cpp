// The SQLite backend (libsqlite3): the embedded default, one file shared by
// the local processes of a one-machine deployment.

#include <sqlite3.h>

#include <chrono>
#include <thread>

#include "kiln/service/database.hpp"

namespace kiln::service {
namespace {

// How long a statement waits for another connection's write lock before it
// fails with SQLITE_BUSY. Writers hold the lock for one short transaction, so
// a long wait means something is wrong, but a loaded machine needs slack.
constexpr int k_busy_timeout_ms = 10'000;

class SqliteDatabase final : public Database {
 public:
  explicit SqliteDatabase(sqlite3* db) : m_db(db) {}
  ~SqliteDatabase() override { sqlite3_close_v2(m_db); }
  SqliteDatabase(const SqliteDatabase&) = delete;
  SqliteDatabase& operator=(const SqliteDatabase&) = delete;

  Dialect dialect() const override { return Dialect::sqlite; }

  expected<std::vector<Row>, std::string> query(std::string_view sql,
                                                const std::vector<Param>& params) override {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(m_db, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr) !=
        SQLITE_OK) {
      return unexpected(error("prepare"));
    }
    // Finalized on every path out.
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(stmt, sqlite3_finalize);
    for (size_t i = 0; i < params.size(); ++i) {
      const int index = static_cast<int>(i) + 1;
      int rc = SQLITE_OK;
      if (const auto* n = std::get_if<int64_t>(&params[i])) {
        rc = sqlite3_bind_int64(stmt, index, *n);
      } else if (const auto* s = std::get_if<std::string>(&params[i])) {
        rc = sqlite3_bind_text(stmt, index, s->data(), static_cast<int>(s->size()),
                               SQLITE_TRANSIENT);
      } else {
        rc = sqlite3_bind_null(stmt, index);
      }
      if (rc != SQLITE_OK) {
        return unexpected(error("bind"));
      }
    }
    std::vector<Row> rows;
    for (;;) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) {
        return rows;
      }
      if (rc != SQLITE_ROW) {
        return unexpected(error("step"));
      }
      const int columns = sqlite3_column_count(stmt);
      Row row;
      row.reserve(columns);
      for (int c = 0; c < columns; ++c) {
        if (sqlite3_column_type(stmt, c) == SQLITE_NULL) {
          row.emplace_back(std::nullopt);
        } else {
          const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
          row.emplace_back(std::string(text, sqlite3_column_bytes(stmt, c)));
        }
      }
      rows.push_back(std::move(row));
    }
  }

  expected<void, std::string> execute_script(std::string_view sql) override {
    const std::string script(sql);
    char* message = nullptr;
    if (sqlite3_exec(m_db, script.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message ? message : sqlite3_errmsg(m_db);
      sqlite3_free(message);
      return unexpected("sqlite: " + text);
    }
    return {};
  }

 private:
  std::string error(const char* what) const {
    return std::string("sqlite ") + what + ": " + sqlite3_errmsg(m_db);
  }

  sqlite3* m_db;
};

}  // namespace

expected<std::unique_ptr<Database>, std::string> open_sqlite(const std::string& path) {
  sqlite3* db = nullptr;
  // NOMUTEX: the store serializes its calls on one connection itself.
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return unexpected("sqlite: cannot open " + path + ": " + message);
  }
  auto database = std::make_unique<SqliteDatabase>(db);
  sqlite3_busy_timeout(db, k_busy_timeout_ms);
  sqlite3_extended_result_codes(db, 1);
  // WAL: readers never block the writer nor each other, so replicas polling
  // for work do not stall a submission. Switching a new file to WAL needs a
  // moment of exclusive access; when several processes open a new file at
  // once, some of them see SQLITE_BUSY without the busy handler: retry that,
  // and only that (a file that is not a database fails at once).
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(k_busy_timeout_ms);
  for (;;) {
    auto rows = database->query("PRAGMA journal_mode=WAL", {});
    if (rows && !rows->empty() && (*rows)[0][0] == "wal") {
      break;
    }
    const int code = sqlite3_errcode(db) & 0xff;
    const bool busy = !rows && (code == SQLITE_BUSY || code == SQLITE_LOCKED);
    if (!busy || std::chrono::steady_clock::now() >= deadline) {
      std::string why = !rows           ? rows.error()
                        : rows->empty() ? "no answer"
                                        : "journal mode stays " + (*rows)[0][0].value_or("?");
      return unexpected("sqlite: cannot switch " + path + " to WAL mode: " + why);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // In WAL mode NORMAL loses nothing on a crash of the process (SIGKILL),
  // only the last transactions on a power failure; FULL keeps those too, at
  // an fsync per commit. State that was acknowledged must survive: FULL.
  if (auto done = database->execute_script("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
      !done) {
    return unexpected(done.error());
  }
  return database;
}

}  // namespace kiln::service
