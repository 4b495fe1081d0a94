#pragma once

#include <memory>
#include <string>

#include "storage/database.hpp"

namespace atrium::test {

// A database of its own for one test: a fresh SQLite file, or a fresh PostgreSQL database on the server the
// test command started (dropped again in the destructor).
class TestDatabase {
 public:
  // nullptr + GTEST_SKIP-worthy when PostgreSQL is asked for but not configured (see services_required()).
  static std::unique_ptr<TestDatabase> create(storage::Backend backend, int pool_size = 4);
  ~TestDatabase();

  storage::Database& db() { return *db_; }
  const std::string& url() const { return url_; }
  // Opens another pool on the same database (as a second Atrium instance would).
  std::unique_ptr<storage::Database> open_again(int pool_size = 4) const;

 private:
  TestDatabase() = default;
  storage::Backend backend_ = storage::Backend::sqlite;
  std::string url_;
  std::string admin_url_;
  std::string name_;
  std::unique_ptr<storage::Database> db_;
};

// Runs one SQL command outside a transaction on the PostgreSQL server at `url` (CREATE/DROP DATABASE, ...).
// Returns false and fills *error on failure.
bool pg_admin(const std::string& url, const std::string& sql, std::string* error = nullptr);
// The first column of the first row `sql` answers on the server at `url`; nullopt without a row (or on an error).
std::optional<std::string> pg_value(const std::string& url, const std::string& sql);

}  // namespace atrium::test
