#include "postgres_server.hpp"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <vector>

#include "kiln/util/hex.hpp"
#include "kiln/util/process.hpp"

namespace kiln::service::test {
namespace {

// Where Debian's postgresql-15 puts the server programs; the environment
// variable KILN_TEST_POSTGRES_BIN points elsewhere (or, in a test of the
// tests, nowhere).
std::string bin_dir() {
  const char* dir = std::getenv("KILN_TEST_POSTGRES_BIN");
  return dir && *dir ? dir : "/usr/lib/postgresql/15/bin";
}

int g_port = 0;
std::string g_error = "the PostgreSQL test server was not started";

// Runs a PostgreSQL program, as the postgres user when this is root (the
// server refuses to run as root). Returns an error message, empty on success.
std::string run_pg(const std::vector<std::string>& argv, const std::string& cwd) {
  std::vector<std::string> full;
  if (geteuid() == 0) {
    full = {"/usr/sbin/runuser", "-u", "postgres", "--"};
  }
  full.insert(full.end(), argv.begin(), argv.end());
  util::RunOptions options;
  options.cwd = cwd;
  options.timeout = std::chrono::seconds(120);
  auto result = util::run_capture(full, options);
  if (!result) {
    return "cannot run " + full[0] + ": " + std::strerror(result.error());
  }
  if (result->exit_code != 0) {
    return full[full.size() - argv.size()] + " failed (exit " + std::to_string(result->exit_code) +
           "): " + result->out + result->err;
  }
  return {};
}

// The server's directory (data, socket, log) and whether it runs.
std::string g_dir;
bool g_started = false;
std::once_flag g_start_once;

// initdb and pg_ctl start; an error message, empty on success.
std::string start_server() {
  const std::string initdb = bin_dir() + "/initdb";
  const std::string pg_ctl = bin_dir() + "/pg_ctl";
  if (access(initdb.c_str(), X_OK) != 0 || access(pg_ctl.c_str(), X_OK) != 0) {
    return "PostgreSQL 15 server binaries not found (" + initdb + ", " + pg_ctl +
           "): install the postgresql package (scripts/install-deps.sh); the PostgreSQL "
           "backend's tests cannot run without them";
  }
  g_dir = make_temp_dir("kiln-pg");
  if (g_dir.empty()) {
    return "cannot create a temporary directory for PostgreSQL";
  }
  if (geteuid() == 0) {
    const passwd* pw = getpwnam("postgres");
    if (pw == nullptr || chown(g_dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return "running as root, but there is no postgres user to own " + g_dir;
    }
  }
  const std::string data = g_dir + "/data";
  if (auto failed = run_pg({initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E",
                            "UTF8", "--locale", "C"},
                           g_dir);
      !failed.empty()) {
    return failed;
  }
  // A free port may be taken between the probe and the start: try again.
  std::string failed;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int port = unused_port();
    // fsync off: the tests test the store, not the disk, on a busy machine.
    const std::string options = "-p " + std::to_string(port) + " -k " + g_dir +
                                " -c listen_addresses=127.0.0.1 -c fsync=off"
                                " -c full_page_writes=off -c max_connections=200";
    failed = run_pg(
        {pg_ctl, "-D", data, "-o", options, "-l", g_dir + "/server.log", "-w", "-t", "60", "start"},
        g_dir);
    if (failed.empty()) {
      g_port = port;
      g_started = true;
      return {};
    }
  }
  return "pg_ctl start: " + failed;
}

// Started by the first test that needs it (so that a run of only the SQLite
// tests starts nothing), stopped once at the end of the binary.
void ensure_started() {
  std::call_once(g_start_once, [] { g_error = start_server(); });
}

class PostgresServer : public ::testing::Environment {
 public:
  void TearDown() override {
    if (g_started) {
      run_pg({bin_dir() + "/pg_ctl", "-D", g_dir + "/data", "-m", "immediate", "-w", "stop"},
             g_dir);
      g_started = false;
    }
    if (!g_dir.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(g_dir, ignored);
    }
  }
};

// Registered before main() (gtest_main) runs the tests.
[[maybe_unused]] ::testing::Environment* const g_environment =
    ::testing::AddGlobalTestEnvironment(new PostgresServer);

std::string admin_exec(const std::string& statement) {
  const std::string url = "postgresql://postgres@127.0.0.1:" + std::to_string(g_port) + "/postgres";
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(PQconnectdb(url.c_str()), PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return PQerrorMessage(conn.get());
  }
  std::unique_ptr<PGresult, void (*)(PGresult*)> result(PQexec(conn.get(), statement.c_str()),
                                                        PQclear);
  if (PQresultStatus(result.get()) != PGRES_COMMAND_OK &&
      PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    return PQresultErrorMessage(result.get());
  }
  return {};
}

}  // namespace

const std::string& postgres_error() {
  ensure_started();
  return g_error;
}

std::string create_test_database(std::string& error) {
  ensure_started();
  if (!g_error.empty()) {
    error = g_error;
    return {};
  }
  const std::string name = "t_" + util::random_hex(8);
  error = admin_exec("CREATE DATABASE " + name);
  if (!error.empty()) {
    return {};
  }
  return "postgresql://postgres@127.0.0.1:" + std::to_string(g_port) + "/" + name;
}

void drop_test_database(const std::string& url) {
  const auto slash = url.rfind('/');
  if (g_error.empty() && slash != std::string::npos) {
    admin_exec("DROP DATABASE IF EXISTS " + url.substr(slash + 1) + " WITH (FORCE)");
  }
}

int unused_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (fd >= 0) {
      close(fd);
    }
    return 0;
  }
  close(fd);
  return ntohs(address.sin_port);
}

std::string make_temp_dir(const char* prefix) {
  std::string pattern = std::filesystem::temp_directory_path().string() + "/" + prefix + "-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    return {};
  }
  return pattern;
}

std::string terminate_connections(const std::string& url) {
  const auto slash = url.rfind('/');
  return admin_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" +
                    url.substr(slash + 1) + "' AND pid <> pg_backend_pid()");
}

}  // namespace kiln::service::test
