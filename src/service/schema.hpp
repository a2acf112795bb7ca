#pragma once

#include <cstdint>
#include <string>

#include "kiln/service/database.hpp"
#include "kiln/util/expected.hpp"

namespace kiln::service {

// The schema's ordered migrations (docs/service-store.md, "Migrations").

// The number of the last migration.
int64_t latest_migration();

// Applies the migrations `db` has not seen, each in its own transaction
// under a lock that makes concurrent callers wait for each other (SQLite
// BEGIN IMMEDIATE, PostgreSQL pg_advisory_xact_lock); a caller that gets the
// lock after another one migrated finds nothing to do. An error for a
// database whose schema is newer than latest_migration().
expected<void, std::string> migrate(Database& db);

// MAX(version) of schema_version, 0 before the first migration.
expected<int64_t, std::string> current_schema_version(Database& db);

}  // namespace kiln::service
