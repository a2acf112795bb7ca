#include "kiln/service/store.hpp"

#include <charconv>

#include "kiln/service/program_id.hpp"
#include "kiln/service/schema.hpp"

namespace kiln::service {
namespace {

using Error = std::string;

// Runs one statement that ends in RETURNING in a write transaction: whether
// it touched a row (the guard of a remove, finish or reset held).
expected<bool, Error> write_touched_a_row(Database& db, const std::string& statement,
                                          const std::vector<Param>& params) {
  bool touched = false;
  auto done = in_write_transaction(db, [&]() -> expected<void, Error> {
    auto rows = db.query(statement, params);
    if (!rows) {
      return unexpected(rows.error());
    }
    touched = !rows->empty();
    return {};
  });
  if (!done) {
    return unexpected(done.error());
  }
  return touched;
}

constexpr std::string_view k_program_columns =
    "id, name, version, status, source_sha256, recipe, compiled_by, log, cache_hits, "
    "cache_misses, binary_sha256, compile_count, created_at, updated_at";

// Replica `worker_id` of `workers` owns the programs whose shard key u =
// shard_hi * 2^32 + shard_lo has u % workers == worker_id. u does not fit a
// signed 64-bit integer, so the database computes the same remainder from
// the halves: ((shard_hi % N) * (2^32 % N) + shard_lo) % N, every
// intermediate below (2^31)^2 + 2^32 < 2^63 for N < 2^31. Parameters: ?1 worker id, ?2 N, ?3 2^32 %
// N.
constexpr std::string_view k_in_shard = "((shard_hi % ?2) * ?3 + shard_lo) % ?2 = ?1";

// Expands {now} (the server's clock in ms), {lock} and {recheck} (a claim's
// PostgreSQL-only parts), {columns} (of a Program) and {in_shard} for the
// dialect.
std::string sql(Dialect dialect, std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 5, "{now}") == 0) {
      out += now_ms_sql(dialect);
      i += 5;
    } else if (text.compare(i, 6, "{lock}") == 0) {
      // SKIP LOCKED: a claimer passes over the rows another claimer is
      // taking instead of waiting for it and then finding them Compiling.
      out += dialect == Dialect::postgres ? "FOR UPDATE SKIP LOCKED" : "";
      i += 6;
    } else if (text.compare(i, 9, "{recheck}") == 0) {
      // A claim's update re-checks Pending on PostgreSQL, where claimers run
      // concurrently. On SQLite they cannot (the write lock), and the check
      // would lead its planner to scan the status index instead of looking
      // the picked ids up by primary key.
      out += dialect == Dialect::postgres ? "status = 'Pending' AND" : "";
      i += 9;
    } else if (text.compare(i, 9, "{columns}") == 0) {
      out += k_program_columns;
      i += 9;
    } else if (text.compare(i, 10, "{in_shard}") == 0) {
      out += k_in_shard;
      i += 10;
    } else {
      out += text[i++];
    }
  }
  return out;
}

expected<int64_t, Error> to_int(const std::optional<std::string>& text) {
  if (!text) {
    return unexpected(Error("unexpected NULL"));
  }
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size()) {
    return unexpected("not an integer: " + *text);
  }
  return value;
}

expected<Program, Error> to_program(const Row& row) {
  if (row.size() != 14) {
    return unexpected(Error("programs: unexpected column count"));
  }
  Program p;
  p.id = row[0].value_or("");
  p.name = row[1].value_or("");
  auto version = to_int(row[2]);
  auto status = parse_status(row[3].value_or(""));
  auto hits = to_int(row[8]);
  auto misses = to_int(row[9]);
  auto count = to_int(row[11]);
  auto created = to_int(row[12]);
  auto updated = to_int(row[13]);
  if (!version || !status || !hits || !misses || !count || !created || !updated) {
    return unexpected("programs: malformed row of " + p.name);
  }
  p.version = *version;
  p.status = *status;
  p.source_sha256 = row[4].value_or("");
  p.recipe = row[5].value_or("");
  if (row[6]) {
    auto by = to_int(row[6]);
    if (!by) {
      return unexpected("programs: malformed compiled_by of " + p.name);
    }
    p.compiled_by = *by;
  }
  p.log = row[7].value_or("");
  p.cache_hits = *hits;
  p.cache_misses = *misses;
  p.binary_sha256 = row[10];
  p.compile_count = *count;
  p.created_at_ms = *created;
  p.updated_at_ms = *updated;
  return p;
}

// The checks of a (worker_id, workers) pair, and the parameters ?1..?3 of
// k_in_shard.
expected<std::vector<Param>, Error> shard_params(int64_t worker_id, int64_t workers) {
  if (workers < 1 || workers >= (int64_t{1} << 31)) {
    return unexpected("workers must be in [1, 2^31), not " + std::to_string(workers));
  }
  if (worker_id < 0 || worker_id >= workers) {
    return unexpected("worker id " + std::to_string(worker_id) + " is not in [0, " +
                      std::to_string(workers) + ")");
  }
  std::vector<Param> params;
  params.reserve(4);  // claim() adds its limit
  params.emplace_back(worker_id);
  params.emplace_back(workers);
  params.emplace_back((int64_t{1} << 32) % workers);
  return params;
}

// Tells the replicas that LISTEN (PostgreSQL) that a version became
// Pending; best effort: a replica that misses it claims at its next poll.
void notify_pending(Database& db) {
  if (db.dialect() == Dialect::postgres) {
    (void)db.query("SELECT pg_notify('" + std::string(k_pending_channel) + "', '')", {});
  }
}

}  // namespace

// Every method takes m_mutex, then works on `Database& db = *m_db` for the
// rest of its body: the lambdas it runs (transactions) run under the same
// lock, which the thread-safety analysis cannot see through m_db itself.
Store::Store(std::unique_ptr<Database> database) : m_db(std::move(database)) {}

expected<std::unique_ptr<Store>, Error> Store::open(std::unique_ptr<Database> database) {
  if (auto migrated = migrate(*database); !migrated) {
    return unexpected("schema migration failed: " + migrated.error());
  }
  return std::unique_ptr<Store>(new Store(std::move(database)));
}

int64_t Store::latest_schema_version() {
  return latest_migration();
}

expected<int64_t, Error> Store::schema_version() {
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  return current_schema_version(db);
}

expected<UpsertResult, Error> Store::upsert(std::string_view name, std::string_view source_sha256,
                                            std::string_view recipe) {
  if (name.empty()) {
    return unexpected(Error("a program needs a name"));
  }
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  const std::string id = new_program_id();
  const uint64_t key = *shard_key(id);
  // Insert, or on a name that exists make a new version, but only when
  // something changed (the WHERE of DO UPDATE): one statement, so two
  // concurrent submissions of one name cannot both insert. A conflict
  // wastes the new id, which is fine.
  const std::string upsert_sql = sql(db.dialect(), R"sql(
INSERT INTO programs (id, name, version, status, source_sha256, recipe, log, cache_hits,
                      cache_misses, compile_count, shard_hi, shard_lo, created_at, updated_at)
VALUES (?1, ?2, 1, 'Pending', ?3, ?4, '', 0, 0, 0, ?5, ?6, {now}, {now})
ON CONFLICT (name) DO UPDATE SET
  version = programs.version + 1, status = 'Pending', source_sha256 = excluded.source_sha256,
  recipe = excluded.recipe, compiled_by = NULL, log = '', cache_hits = 0, cache_misses = 0,
  binary_sha256 = NULL, updated_at = excluded.updated_at
WHERE programs.source_sha256 <> excluded.source_sha256 OR programs.recipe <> excluded.recipe
RETURNING {columns})sql");
  const std::string select_sql =
      sql(db.dialect(), "SELECT {columns} FROM programs WHERE name = ?1");
  UpsertResult result;
  auto done = in_write_transaction(db, [&]() -> expected<void, Error> {
    auto rows = db.query(
        upsert_sql, {id, std::string(name), std::string(source_sha256), std::string(recipe),
                     static_cast<int64_t>(key >> 32), static_cast<int64_t>(key & 0xffffffffu)});
    if (!rows) {
      return unexpected(rows.error());
    }
    result.changed = !rows->empty();
    if (rows->empty()) {
      // Unchanged: the statement wrote nothing and returned nothing.
      rows = db.query(select_sql, {std::string(name)});
      if (!rows) {
        return unexpected(rows.error());
      }
      if (rows->empty()) {
        return unexpected("program " + std::string(name) + " vanished during the upsert");
      }
    }
    auto program = to_program((*rows)[0]);
    if (!program) {
      return unexpected(program.error());
    }
    result.program = std::move(*program);
    return {};
  });
  if (!done) {
    return unexpected(done.error());
  }
  if (result.changed) {
    notify_pending(db);
  }
  return result;
}

expected<std::optional<Program>, Error> Store::get(std::string_view name) {
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  auto rows = db.query(sql(db.dialect(), "SELECT {columns} FROM programs WHERE name = ?1"),
                       {std::string(name)});
  if (!rows) {
    return unexpected(rows.error());
  }
  if (rows->empty()) {
    return std::optional<Program>();
  }
  auto program = to_program((*rows)[0]);
  if (!program) {
    return unexpected(program.error());
  }
  return std::optional<Program>(std::move(*program));
}

expected<std::vector<Program>, Error> Store::list() {
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  auto rows = db.query(sql(db.dialect(), "SELECT {columns} FROM programs ORDER BY name"), {});
  if (!rows) {
    return unexpected(rows.error());
  }
  std::vector<Program> programs;
  programs.reserve(rows->size());
  for (const Row& row : *rows) {
    auto program = to_program(row);
    if (!program) {
      return unexpected(program.error());
    }
    programs.push_back(std::move(*program));
  }
  return programs;
}

expected<bool, Error> Store::remove(std::string_view name) {
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  return write_touched_a_row(db, "DELETE FROM programs WHERE name = ?1 RETURNING id",
                             {std::string(name)});
}

expected<std::vector<std::string>, Error> Store::shard_ids(int64_t worker_id, int64_t workers) {
  auto params = shard_params(worker_id, workers);
  if (!params) {
    return unexpected(params.error());
  }
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  auto rows =
      db.query(sql(db.dialect(), "SELECT id FROM programs WHERE {in_shard} ORDER BY id"), *params);
  if (!rows) {
    return unexpected(rows.error());
  }
  std::vector<std::string> ids;
  ids.reserve(rows->size());
  for (const Row& row : *rows) {
    ids.push_back(row[0].value_or(""));
  }
  return ids;
}

expected<std::vector<Claim>, Error> Store::claim(int64_t worker_id, int64_t workers,
                                                 int64_t limit) {
  auto params = shard_params(worker_id, workers);
  if (!params) {
    return unexpected(params.error());
  }
  if (limit <= 0) {
    return std::vector<Claim>{};
  }
  params->emplace_back(limit);
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  // One statement: the rows it picks are the rows it changes, and a row is
  // picked only while Pending. PostgreSQL: the pick locks them (SKIP LOCKED:
  // concurrent claimers take disjoint rows without waiting), and the outer
  // status check ({recheck}) re-reads a row a concurrent claim changed. SQLite: the write
  // lock, taken by BEGIN IMMEDIATE, serializes claimers.
  //
  // The pick is a MATERIALIZED CTE, not `id IN (SELECT ... LIMIT n FOR
  // UPDATE SKIP LOCKED)`: PostgreSQL may plan that IN as a semi-join that
  // rescans the subquery for each outer row, and every rescan skips the rows
  // this statement has just updated and returns the next ones, so one claim
  // took more than `limit` rows (seen: 5 for a limit of 3). A materialized
  // CTE runs once.
  const std::string claim_sql = sql(db.dialect(), R"sql(
WITH picked AS MATERIALIZED (
  SELECT id FROM programs WHERE status = 'Pending' AND {in_shard}
  ORDER BY updated_at, id LIMIT ?4 {lock})
UPDATE programs SET status = 'Compiling', compiled_by = ?1, compile_count = compile_count + 1,
                    updated_at = {now}
WHERE {recheck} id IN (SELECT id FROM picked)
RETURNING id, name, version, recipe, source_sha256)sql");
  std::vector<Claim> claims;
  auto run = [&]() -> expected<void, Error> {
    auto rows = db.query(claim_sql, *params);
    if (!rows) {
      return unexpected(rows.error());
    }
    for (const Row& row : *rows) {
      auto version = to_int(row[2]);
      if (!version) {
        return unexpected("claim: " + version.error());
      }
      claims.push_back(Claim{row[0].value_or(""), row[1].value_or(""), *version,
                             row[3].value_or(""), row[4].value_or("")});
    }
    return {};
  };
  // PostgreSQL runs the one statement as its own transaction.
  auto done = db.dialect() == Dialect::sqlite ? in_write_transaction(db, run) : run();
  if (!done) {
    return unexpected(done.error());
  }
  return claims;
}

expected<bool, Error> Store::finish(std::string_view id, int64_t version, Status status,
                                    std::string_view log, int64_t cache_hits, int64_t cache_misses,
                                    std::optional<std::string> binary_sha256) {
  if (status != Status::success && status != Status::compile_error &&
      status != Status::system_error) {
    return unexpected("finish: " + std::string(to_string(status)) +
                      " is not a result (Success, CompileError or SystemError)");
  }
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  const std::string finish_sql = sql(db.dialect(), R"sql(
UPDATE programs SET status = ?3, log = ?4, cache_hits = ?5, cache_misses = ?6, binary_sha256 = ?7,
                    updated_at = {now}
WHERE id = ?1 AND version = ?2 AND status = 'Compiling'
RETURNING id)sql");
  Param binary = binary_sha256 ? Param(*binary_sha256) : Param(nullptr);
  return write_touched_a_row(db, finish_sql,
                             {std::string(id), version, std::string(to_string(status)),
                              std::string(log), cache_hits, cache_misses, binary});
}

expected<int64_t, Error> Store::reset_compiling(int64_t worker_id, int64_t workers) {
  auto params = shard_params(worker_id, workers);
  if (!params) {
    return unexpected(params.error());
  }
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  const std::string reset_sql = sql(db.dialect(), R"sql(
UPDATE programs SET status = 'Pending', compiled_by = NULL, updated_at = {now}
WHERE status = 'Compiling' AND {in_shard}
RETURNING id)sql");
  int64_t count = 0;
  auto done = in_write_transaction(db, [&]() -> expected<void, Error> {
    auto rows = db.query(reset_sql, *params);
    if (!rows) {
      return unexpected(rows.error());
    }
    count = static_cast<int64_t>(rows->size());
    return {};
  });
  if (!done) {
    return unexpected(done.error());
  }
  return count;
}

expected<bool, Error> Store::back_to_pending(std::string_view id, int64_t version) {
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  const std::string back_sql = sql(db.dialect(), R"sql(
UPDATE programs SET status = 'Pending', binary_sha256 = NULL, compiled_by = NULL,
                    updated_at = {now}
WHERE id = ?1 AND version = ?2 AND status = 'Success'
RETURNING id)sql");
  auto touched = write_touched_a_row(db, back_sql, {std::string(id), version});
  if (touched && *touched) {
    notify_pending(db);
  }
  return touched;
}

expected<bool, Error> Store::retry_system_error(std::string_view id, int64_t version) {
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  auto touched = write_touched_a_row(db, sql(db.dialect(), R"sql(
UPDATE programs SET status = 'Pending', log = '', updated_at = {now}
WHERE id = ?1 AND version = ?2 AND status = 'SystemError' RETURNING id)sql"),
                                     {std::string(id), version});
  if (touched && *touched) {
    notify_pending(db);
  }
  return touched;
}

expected<void, Error> Store::put_source(std::string_view sha256, std::string_view base64) {
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  const std::string insert = sql(db.dialect(), R"sql(
INSERT INTO sources (sha256, data, size, created_at) VALUES (?1, ?2, ?3, {now})
ON CONFLICT (sha256) DO UPDATE SET created_at = excluded.created_at)sql");
  // Refreshing created_at keeps a re-submitted archive from the cleanup of
  // unreferenced sources while its program row is being written.
  auto rows = db.query(
      insert, {std::string(sha256), std::string(base64), static_cast<int64_t>(base64.size())});
  if (!rows) {
    return unexpected(rows.error());
  }
  return {};
}

expected<std::optional<std::string>, Error> Store::get_source(std::string_view sha256) {
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  auto rows = db.query("SELECT data FROM sources WHERE sha256 = ?1", {std::string(sha256)});
  if (!rows) {
    return unexpected(rows.error());
  }
  if (rows->empty() || rows->front().empty() || !rows->front()[0]) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(std::move(*rows->front()[0]));
}

expected<int64_t, Error> Store::remove_unreferenced_sources(std::chrono::milliseconds min_age) {
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  const std::string remove = sql(db.dialect(), R"sql(
DELETE FROM sources WHERE created_at < {now} - ?1
  AND sha256 NOT IN (SELECT source_sha256 FROM programs) RETURNING sha256)sql");
  auto rows = db.query(remove, {static_cast<int64_t>(min_age.count())});
  if (!rows) {
    return unexpected(rows.error());
  }
  return static_cast<int64_t>(rows->size());
}

expected<void, Error> Store::heartbeat_member(int64_t worker_id, int64_t workers,
                                              std::string_view url) {
  if (auto params = shard_params(worker_id, workers); !params) {
    return unexpected(params.error());
  }
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  const std::string upsert_sql = sql(db.dialect(), R"sql(
INSERT INTO members (worker_id, url, workers, last_seen) VALUES (?1, ?2, ?3, {now})
ON CONFLICT (worker_id, url) DO UPDATE SET workers = excluded.workers,
                                           last_seen = excluded.last_seen)sql");
  // Replicas that moved (a new pod address) leave rows behind; a day after
  // their last heartbeat nobody needs them.
  const std::string prune_sql =
      sql(db.dialect(), "DELETE FROM members WHERE last_seen < {now} - 86400000");
  return in_write_transaction(db, [&]() -> expected<void, Error> {
    if (auto rows = db.query(upsert_sql, {worker_id, std::string(url), workers}); !rows) {
      return unexpected(rows.error());
    }
    if (auto rows = db.query(prune_sql, {}); !rows) {
      return unexpected(rows.error());
    }
    return {};
  });
}

expected<bool, Error> Store::remove_member(int64_t worker_id, std::string_view url) {
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  return write_touched_a_row(
      db, "DELETE FROM members WHERE worker_id = ?1 AND url = ?2 RETURNING worker_id",
      {worker_id, std::string(url)});
}

expected<std::vector<Member>, Error> Store::members(std::chrono::milliseconds max_age) {
  util::MutexLock lock(m_mutex);
  Database& db = *m_db;
  if (auto ok = db.reconnect_if_lost(); !ok) {
    return unexpected(ok.error());
  }
  auto rows = db.query(sql(db.dialect(), R"sql(
SELECT worker_id, workers, url, {now} - last_seen FROM members
WHERE {now} - last_seen <= ?1 ORDER BY worker_id, url)sql"),
                       {static_cast<int64_t>(max_age.count())});
  if (!rows) {
    return unexpected(rows.error());
  }
  std::vector<Member> out;
  for (const Row& row : *rows) {
    auto worker_id = to_int(row[0]);
    auto workers = to_int(row[1]);
    auto age = to_int(row[3]);
    if (!worker_id || !workers || !age) {
      return unexpected(Error("members: malformed row"));
    }
    out.push_back(Member{*worker_id, *workers, row[2].value_or(""),
                         std::chrono::milliseconds(std::max<int64_t>(0, *age))});
  }
  return out;
}

}  // namespace kiln::service
