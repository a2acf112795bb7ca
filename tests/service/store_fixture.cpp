#include "store_fixture.hpp"

#include <filesystem>

#include "postgres_server.hpp"

namespace kiln::service::test {

void StoreTest::SetUp() {
  if (GetParam() == Backend::sqlite) {
    m_dir = make_temp_dir("kiln-store");
    ASSERT_FALSE(m_dir.empty());
    m_url = "sqlite://" + m_dir + "/state.db";
  } else {
    std::string error;
    m_url = create_test_database(error);
    ASSERT_FALSE(m_url.empty()) << "PostgreSQL test database: " << error;
  }
}

void StoreTest::TearDown() {
  if (GetParam() == Backend::postgres && !m_url.empty()) {
    drop_test_database(m_url);
  }
  if (!m_dir.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(m_dir, ignored);
  }
}

std::unique_ptr<Store> StoreTest::open() {
  auto store = open_store(m_url);
  EXPECT_TRUE(store.has_value()) << (store ? "" : store.error());
  return store ? std::move(*store) : nullptr;
}

std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::sqlite ? "sqlite" : "postgres";
}

}  // namespace kiln::service::test
