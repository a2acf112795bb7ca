#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "kiln/service/store.hpp"

namespace kiln::service::test {

enum class Backend { sqlite, postgres };

// Every store test runs against both backends: a fresh SQLite file in a
// temporary directory, or a fresh database on the private PostgreSQL server.
class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // A new connection to this test's database (another "process").
  std::unique_ptr<Store> open();

  std::string m_url;
  std::string m_dir;
};

std::string backend_name(const ::testing::TestParamInfo<Backend>& info);

}  // namespace kiln::service::test

namespace kiln::service::test {

// The value of a store call that must succeed; a failure ends the test
// (GoogleTest reports the exception with the store's message).
template <typename T>
T must(expected<T, std::string> result) {
  if (!result) {
    throw std::runtime_error("store call failed: " + result.error());
  }
  return std::move(*result);
}

inline void must(expected<void, std::string> result) {
  if (!result) {
    throw std::runtime_error("store call failed: " + result.error());
  }
}

}  // namespace kiln::service::test
