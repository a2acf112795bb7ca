#include "kiln/service/database.hpp"

namespace kiln::service {

expected<void, std::string> in_write_transaction(
    Database& db, const std::function<expected<void, std::string>()>& body) {
  const char* begin = db.dialect() == Dialect::sqlite ? "BEGIN IMMEDIATE" : "BEGIN";
  if (auto started = db.execute_script(begin); !started) {
    return started;
  }
  auto done = body();
  if (!done) {
    // The body's error is the one to report; a failed rollback (a lost
    // connection) ends the transaction anyway.
    (void)db.execute_script("ROLLBACK");
    return done;
  }
  if (auto committed = db.execute_script("COMMIT"); !committed) {
    (void)db.execute_script("ROLLBACK");
    return committed;
  }
  return {};
}

std::string_view now_ms_sql(Dialect dialect) {
  if (dialect == Dialect::sqlite) {
    // julianday() is a double: about 40 microseconds of resolution today.
    return "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
  }
  // clock_timestamp(), not now(): now() is the start of the transaction.
  return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";
}

}  // namespace kiln::service
