#pragma once

#include <gtest/gtest.h>

#include "support/test_database.hpp"
#include "support/test_support.hpp"

namespace atrium::test {

// Fixture base for suites every backend must pass: TEST_P bodies get `db()` for a fresh database.
class BackendTest : public ::testing::TestWithParam<storage::Backend> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam() == storage::Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    database_ = TestDatabase::create(GetParam());
  }
  storage::Database& db() { return database_->db(); }
  TestDatabase& test_database() { return *database_; }

 private:
  std::unique_ptr<TestDatabase> database_;
};

inline std::string backend_test_name(const ::testing::TestParamInfo<storage::Backend>& info) {
  return std::string(storage::backend_name(info.param));
}

#define ATRIUM_INSTANTIATE_BACKENDS(Suite)                                                                          \
  INSTANTIATE_TEST_SUITE_P(                                                                                         \
      Backends, Suite, ::testing::Values(::atrium::storage::Backend::sqlite, ::atrium::storage::Backend::postgres), \
      ::atrium::test::backend_test_name)

}  // namespace atrium::test
