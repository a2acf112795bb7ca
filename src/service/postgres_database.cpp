// The PostgreSQL backend (libpq): the state shared by replicas on several
// machines.

#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <memory>

#include "kiln/service/database.hpp"

namespace kiln::service {
namespace {

// Type OIDs of the parameters sent (pg_type.oid): int8 and text, so that
// the server never has to guess, e.g. for LIMIT or arithmetic.
constexpr Oid k_int8_oid = 20;
constexpr Oid k_text_oid = 25;

std::string trim_message(const char* message) {
  std::string text = message ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

class PostgresDatabase final : public Database {
 public:
  explicit PostgresDatabase(PGconn* conn) : m_conn(conn) {}
  ~PostgresDatabase() override { PQfinish(m_conn); }
  PostgresDatabase(const PostgresDatabase&) = delete;
  PostgresDatabase& operator=(const PostgresDatabase&) = delete;

  Dialect dialect() const override { return Dialect::postgres; }

  expected<std::vector<Row>, std::string> query(std::string_view sql,
                                                const std::vector<Param>& params) override {
    // The store writes ?N; PostgreSQL numbers parameters $N. The store's SQL
    // has no '?' in literals or identifiers, so a plain replacement is exact.
    std::string text(sql);
    for (char& c : text) {
      if (c == '?') {
        c = '$';
      }
    }
    std::vector<Oid> types;
    std::vector<std::string> storage;
    std::vector<const char*> values;
    types.reserve(params.size());
    storage.reserve(params.size());
    values.reserve(params.size());
    for (const Param& param : params) {
      if (const auto* n = std::get_if<int64_t>(&param)) {
        types.push_back(k_int8_oid);
        storage.push_back(std::to_string(*n));
        values.push_back(storage.back().c_str());
      } else if (const auto* s = std::get_if<std::string>(&param)) {
        types.push_back(k_text_oid);
        storage.push_back(*s);
        values.push_back(storage.back().c_str());
      } else {
        types.push_back(0);  // NULL: the server infers the type from the context
        storage.emplace_back();
        values.push_back(nullptr);
      }
    }
    std::unique_ptr<PGresult, void (*)(PGresult*)> result(
        PQexecParams(m_conn, text.c_str(), static_cast<int>(params.size()), types.data(),
                     values.data(), nullptr, nullptr, 0),
        PQclear);
    if (!result) {
      return unexpected("postgresql: " + trim_message(PQerrorMessage(m_conn)));
    }
    const ExecStatusType status = PQresultStatus(result.get());
    if (status == PGRES_COMMAND_OK) {
      return std::vector<Row>{};
    }
    if (status != PGRES_TUPLES_OK) {
      return unexpected("postgresql: " + trim_message(PQresultErrorMessage(result.get())));
    }
    const int rows = PQntuples(result.get());
    const int columns = PQnfields(result.get());
    std::vector<Row> out;
    out.reserve(rows);
    for (int r = 0; r < rows; ++r) {
      Row row;
      row.reserve(columns);
      for (int c = 0; c < columns; ++c) {
        if (PQgetisnull(result.get(), r, c)) {
          row.emplace_back(std::nullopt);
        } else {
          row.emplace_back(
              std::string(PQgetvalue(result.get(), r, c), PQgetlength(result.get(), r, c)));
        }
      }
      out.push_back(std::move(row));
    }
    return out;
  }

  expected<void, std::string> execute_script(std::string_view sql) override {
    const std::string text(sql);
    std::unique_ptr<PGresult, void (*)(PGresult*)> result(PQexec(m_conn, text.c_str()), PQclear);
    if (!result) {
      return unexpected("postgresql: " + trim_message(PQerrorMessage(m_conn)));
    }
    const ExecStatusType status = PQresultStatus(result.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      return unexpected("postgresql: " + trim_message(PQresultErrorMessage(result.get())));
    }
    return {};
  }

  expected<void, std::string> reconnect_if_lost() override {
    if (PQstatus(m_conn) == CONNECTION_OK) {
      return {};
    }
    PQreset(m_conn);
    if (PQstatus(m_conn) != CONNECTION_OK) {
      return unexpected("postgresql: connection lost and not re-established: " +
                        trim_message(PQerrorMessage(m_conn)));
    }
    return {};
  }

 private:
  PGconn* m_conn;
};

// A connection, or why not. Notices (e.g. "relation already exists,
// skipping") are not for stderr.
expected<PGconn*, std::string> connect(const std::string& conninfo, const char* application) {
  // connect_timeout first, the URL after it (expand_dbname): a timeout the
  // URL names wins, and an unreachable server costs seconds, not minutes.
  const char* keywords[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {"10", application, conninfo.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keywords, values, 1);
  if (conn == nullptr) {
    return unexpected(std::string("postgresql: out of memory"));
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    // libpq's message names the host and port, never the password.
    std::string message = trim_message(PQerrorMessage(conn));
    PQfinish(conn);
    return unexpected("postgresql: cannot connect: " + message);
  }
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  return conn;
}

}  // namespace

expected<std::unique_ptr<Database>, std::string> open_postgres(const std::string& conninfo) {
  auto conn = connect(conninfo, "kiln-server");
  if (!conn) {
    return unexpected(conn.error());
  }
  return std::make_unique<PostgresDatabase>(*conn);
}

namespace {

class PostgresListener final : public Listener {
 public:
  explicit PostgresListener(PGconn* conn) : m_conn(conn) {}
  ~PostgresListener() override { PQfinish(m_conn); }
  PostgresListener(const PostgresListener&) = delete;
  PostgresListener& operator=(const PostgresListener&) = delete;

  expected<bool, std::string> wait(std::chrono::milliseconds timeout) override {
    if (consume()) {
      return true;
    }
    const int fd = PQsocket(m_conn);
    if (fd < 0 || PQstatus(m_conn) != CONNECTION_OK) {
      return unexpected(std::string("postgresql: the listening connection is lost"));
    }
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n < 0) {
      return errno == EINTR ? expected<bool, std::string>(false)
                            : unexpected(std::string("postgresql: poll failed"));
    }
    if (n == 0) {
      return false;
    }
    if (!PQconsumeInput(m_conn)) {
      return unexpected("postgresql: " + trim_message(PQerrorMessage(m_conn)));
    }
    return consume();
  }

 private:
  bool consume() {
    bool any = false;
    while (PGnotify* note = PQnotifies(m_conn)) {
      any = true;
      PQfreemem(note);
    }
    return any;
  }

  PGconn* m_conn;
};

}  // namespace

expected<std::unique_ptr<Listener>, std::string> listen_postgres(const std::string& conninfo,
                                                                 std::string_view channel) {
  auto connected = connect(conninfo, "kiln-server-listen");
  if (!connected) {
    return unexpected(connected.error());
  }
  PGconn* conn = *connected;
  // The channel is a constant identifier of ours, never user input.
  const std::string sql = "LISTEN " + std::string(channel);
  std::unique_ptr<PGresult, void (*)(PGresult*)> result(PQexec(conn, sql.c_str()), PQclear);
  if (!result || PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
    std::string message = trim_message(PQerrorMessage(conn));
    PQfinish(conn);
    return unexpected("postgresql: LISTEN failed: " + message);
  }
  return std::make_unique<PostgresListener>(conn);
}

}  // namespace kiln::service
