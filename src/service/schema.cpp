#include "kiln/service/schema.hpp"

#include <array>
#include <charconv>
#include <string_view>

namespace kiln::service {
namespace {

// One step of the schema. Each runs once per database, in its own
// transaction together with its schema_version row. Append only: a step
// that shipped is never edited, a change is a new step. The SQL is the
// subset SQLite and PostgreSQL share (BIGINT is an integer column in both).
struct Migration {
  int64_t version;
  std::string_view description;
  std::string_view sql;
};

constexpr std::array k_migrations = {
    Migration{1, "programs",
              R"sql(
CREATE TABLE programs (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL UNIQUE,
  version       BIGINT NOT NULL,
  status        TEXT NOT NULL
                CHECK (status IN ('Pending', 'Compiling', 'Success', 'CompileError', 'SystemError')),
  source_sha256 TEXT NOT NULL,
  recipe        TEXT NOT NULL,
  compiled_by   BIGINT,
  log           TEXT NOT NULL DEFAULT '',
  cache_hits    BIGINT NOT NULL DEFAULT 0,
  cache_misses  BIGINT NOT NULL DEFAULT 0,
  binary_sha256 TEXT,
  compile_count BIGINT NOT NULL DEFAULT 0,
  shard_hi      BIGINT NOT NULL,
  shard_lo      BIGINT NOT NULL,
  created_at    BIGINT NOT NULL,
  updated_at    BIGINT NOT NULL
);
-- claim() polls for Pending programs of one shard: the index finds the
-- Pending rows without reading the others.
CREATE INDEX programs_status_shard ON programs (status, shard_hi, shard_lo);
)sql"},
    Migration{2, "members",
              R"sql(
CREATE TABLE members (
  worker_id BIGINT NOT NULL,
  url       TEXT NOT NULL,
  workers   BIGINT NOT NULL,
  last_seen BIGINT NOT NULL,
  PRIMARY KEY (worker_id, url)
);
)sql"},
    Migration{3, "sources",
              R"sql(
-- Submitted program archives, by content: any replica compiles any program
-- from the database alone. base64 text, since both engines store text the
-- same way (PostgreSQL text cannot hold NUL bytes).
CREATE TABLE sources (
  sha256     TEXT PRIMARY KEY,
  data       TEXT NOT NULL,
  size       BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
)sql"},
};

// The key of PostgreSQL's advisory lock for migrations ("kiln" "schm").
constexpr int64_t k_migration_lock = 0x6b696c6e7363686d;

expected<int64_t, std::string> first_integer(const std::vector<Row>& rows) {
  int64_t value = 0;
  if (rows.empty() || rows[0].empty() || !rows[0][0]) {
    return 0;
  }
  const std::string& text = *rows[0][0];
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return unexpected("schema_version: not an integer: " + text);
  }
  return value;
}

}  // namespace

int64_t latest_migration() {
  return k_migrations.back().version;
}

expected<int64_t, std::string> current_schema_version(Database& db) {
  auto rows = db.query("SELECT MAX(version) FROM schema_version", {});
  if (!rows) {
    return unexpected(rows.error());
  }
  return first_integer(*rows);
}

expected<void, std::string> migrate(Database& db) {
  for (;;) {
    bool up_to_date = false;
    auto step = in_write_transaction(db, [&]() -> expected<void, std::string> {
      if (db.dialect() == Dialect::postgres) {
        // Held until the transaction ends: a second opener waits here and
        // then sees the version this one wrote.
        if (auto locked = db.query("SELECT pg_advisory_xact_lock(?1)", {k_migration_lock});
            !locked) {
          return unexpected(locked.error());
        }
      }
      if (auto created = db.execute_script("CREATE TABLE IF NOT EXISTS schema_version ("
                                           " version BIGINT PRIMARY KEY, description TEXT NOT "
                                           "NULL, applied_at BIGINT NOT NULL)");
          !created) {
        return created;
      }
      auto current = current_schema_version(db);
      if (!current) {
        return unexpected(current.error());
      }
      if (*current > latest_migration()) {
        return unexpected("the database's schema is version " + std::to_string(*current) +
                          ", newer than this kiln knows (" + std::to_string(latest_migration()) +
                          "): upgrade kiln");
      }
      if (*current == latest_migration()) {
        up_to_date = true;
        return {};
      }
      // Versions are 1, 2, ...: the next step is at index `current`.
      const Migration& next = k_migrations[static_cast<size_t>(*current)];
      if (auto applied = db.execute_script(next.sql); !applied) {
        return unexpected("migration " + std::to_string(next.version) + " (" +
                          std::string(next.description) + "): " + applied.error());
      }
      std::string insert =
          "INSERT INTO schema_version (version, description, applied_at) VALUES (?1, ?2, " +
          std::string(now_ms_sql(db.dialect())) + ")";
      if (auto recorded = db.query(insert, {next.version, std::string(next.description)});
          !recorded) {
        return unexpected(recorded.error());
      }
      return {};
    });
    if (!step) {
      return step;
    }
    if (up_to_date) {
      return {};
    }
  }
}

}  // namespace kiln::service
