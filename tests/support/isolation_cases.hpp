#pragma once

// Parameters for tests that run on every backend, or every backend and isolation level.

#include <gtest/gtest.h>

#include <string>

#include "storage/database.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::test {

struct IsolationCase {
  storage::Backend backend;
  tenancy::Isolation isolation;
};

// "sqlite_shared", "postgres_database", ...
inline std::string isolation_case_name(const ::testing::TestParamInfo<IsolationCase>& info) {
  return std::string(storage::backend_name(info.param.backend)) + "_" +
         std::string(tenancy::isolation_name(info.param.isolation));
}

// Every backend × every isolation level.
inline auto all_isolation_cases() {
  using storage::Backend;
  using tenancy::Isolation;
  return ::testing::Values(
      IsolationCase{Backend::sqlite, Isolation::shared}, IsolationCase{Backend::sqlite, Isolation::schema},
      IsolationCase{Backend::sqlite, Isolation::database}, IsolationCase{Backend::postgres, Isolation::shared},
      IsolationCase{Backend::postgres, Isolation::schema}, IsolationCase{Backend::postgres, Isolation::database});
}

// Both backends: INSTANTIATE_TEST_SUITE_P(Backends, Suite, all_backends(), backend_name).
inline auto all_backends() { return ::testing::Values(storage::Backend::sqlite, storage::Backend::postgres); }

// "sqlite", "postgres".
inline std::string backend_name(const ::testing::TestParamInfo<storage::Backend>& info) {
  return std::string(storage::backend_name(info.param));
}

}  // namespace atrium::test
