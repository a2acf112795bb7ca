#pragma once

#include <string>

namespace kiln::service::test {

// A private PostgreSQL 15 server for this test binary, started once, by the
// first test that needs it, on a free loopback port in a temporary
// directory, and stopped and deleted at the end (a GoogleTest Environment,
// registered by postgres_server.cpp).
// Without the server binaries every PostgreSQL test fails (never skips):
// CI installs them (scripts/install-deps.sh).

// Starts the server if needed. Empty when it runs; otherwise why it does not.
const std::string& postgres_error();

// Creates a fresh database ("t_<random hex>") and returns its URL
// (postgresql://postgres@127.0.0.1:<port>/t_...); empty with `error` set on
// failure.
std::string create_test_database(std::string& error);

// Drops a database create_test_database made, closing its connections.
void drop_test_database(const std::string& url);

// Ends every connection to the database of `url` (as a server restart
// would); an error message, empty on success.
std::string terminate_connections(const std::string& url);

// A loopback port that nothing listens on (bound and released).
int unused_port();

// A new empty directory under the system's temporary directory.
std::string make_temp_dir(const char* prefix);

}  // namespace kiln::service::test
