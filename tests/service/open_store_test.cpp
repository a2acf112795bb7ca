// open_store's URLs and its errors: clear messages, never a crash.

#include <gtest/gtest.h>

#include <filesystem>

#include "kiln/service/store.hpp"
#include "postgres_server.hpp"

namespace kiln::service::test {
namespace {

std::string error_of(std::string_view url) {
  auto store = open_store(url);
  return store ? std::string("(opened)") : store.error();
}

TEST(OpenStore, RejectsUnsupportedSchemes) {
  for (const char* url : {"", "mysql://u@h/db", "/var/lib/kiln.db", "sqlite:/x.db", "http://x"}) {
    const std::string error = error_of(url);
    EXPECT_NE(error.find("expected sqlite:///absolute/path.db or postgresql://"), std::string::npos)
        << url << ": " << error;
  }
}

TEST(OpenStore, NeverEchoesAPasswordOfAnUnsupportedUrl) {
  const std::string error = error_of("mysql://user:s3cret@host/db");
  EXPECT_EQ(error.find("s3cret"), std::string::npos) << error;
  EXPECT_NE(error.find("mysql"), std::string::npos) << error;
}

TEST(OpenStore, SqliteNeedsAnAbsolutePath) {
  for (const char* url : {"sqlite://relative.db", "sqlite://", "sqlite:///", "sqlite:///tmp/"}) {
    const std::string error = error_of(url);
    EXPECT_NE(error.find("absolute"), std::string::npos) << url << ": " << error;
  }
}

TEST(OpenStore, SqliteInAMissingDirectoryFails) {
  const std::string error = error_of("sqlite:///nonexistent-kiln-dir/a/state.db");
  EXPECT_NE(error.find("cannot open"), std::string::npos) << error;
}

TEST(OpenStore, SqliteFileThatIsNotADatabaseFails) {
  const std::string dir = make_temp_dir("kiln-store");
  const std::string path = dir + "/junk.db";
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("this is not an SQLite database, just text long enough to have a header.......\n", f);
  fclose(f);
  const std::string error = error_of("sqlite://" + path);
  EXPECT_NE(error.find("sqlite"), std::string::npos) << error;
  EXPECT_NE(error, "(opened)");
  std::filesystem::remove_all(dir);
}

TEST(OpenStore, UnreachablePostgresIsAClearError) {
  const int port = unused_port();
  ASSERT_GT(port, 0);
  const std::string error =
      error_of("postgresql://kiln@127.0.0.1:" + std::to_string(port) + "/kiln");
  EXPECT_NE(error.find("postgresql: cannot connect"), std::string::npos) << error;
  EXPECT_NE(error.find(std::to_string(port)), std::string::npos) << error;
}

TEST(OpenStore, MalformedPostgresUrlIsAClearError) {
  const std::string error = error_of("postgresql://kiln@127.0.0.1:notaport/kiln");
  EXPECT_NE(error.find("postgresql"), std::string::npos) << error;
  EXPECT_NE(error, "(opened)");
}

TEST(OpenStore, PostgresDatabaseThatDoesNotExistIsAClearError) {
  ASSERT_EQ(postgres_error(), "");
  std::string ignored;
  std::string url = create_test_database(ignored);
  ASSERT_FALSE(url.empty()) << ignored;
  drop_test_database(url);
  const std::string error = error_of(url);
  EXPECT_NE(error.find("does not exist"), std::string::npos) << error;
}

}  // namespace
}  // namespace kiln::service::test
