#include "support/test_database.hpp"

#include <libpq-fe.h>

#include <unistd.h>
#include <atomic>
#include <random>
#include <stdexcept>

#include "support/test_support.hpp"

namespace atrium::test {

bool pg_admin(const std::string& url, const std::string& sql, std::string* error) {
  PGconn* conn = PQconnectdb(url.c_str());
  bool ok = PQstatus(conn) == CONNECTION_OK;
  if (ok) {
    PGresult* res = PQexec(conn, sql.c_str());
    ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok && error != nullptr) *error = PQresultErrorMessage(res);
    PQclear(res);
  } else if (error != nullptr) {
    *error = PQerrorMessage(conn);
  }
  PQfinish(conn);
  return ok;
}

std::optional<std::string> pg_value(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  std::optional<std::string> out;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* res = PQexec(conn, sql.c_str());
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0) {
      out = std::string(PQgetvalue(res, 0, 0));
    }
    PQclear(res);
  }
  PQfinish(conn);
  return out;
}

std::unique_ptr<TestDatabase> TestDatabase::create(storage::Backend backend, int pool_size) {
  std::unique_ptr<TestDatabase> t(new TestDatabase());
  t->backend_ = backend;
  if (backend == storage::Backend::sqlite) {
    t->url_ = "sqlite:" + temp_dir("db") + "/atrium.db";
  } else {
    auto admin = postgres_url();
    if (!admin) return nullptr;
    static std::atomic<int> counter{0};
    std::random_device rd;
    t->name_ =
        "t_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" + std::to_string(rd() % 100000);
    t->admin_url_ = *admin;
    std::string error;
    if (!pg_admin(*admin, "CREATE DATABASE " + t->name_, &error)) throw std::runtime_error(error);
    const auto slash = admin->rfind('/');
    t->url_ = admin->substr(0, slash + 1) + t->name_;
  }
  storage::DatabaseOptions o;
  o.url = t->url_;
  o.pool_size = pool_size;
  auto db = storage::open_database(o);
  if (!db) throw std::runtime_error(db.error().message);
  t->db_ = std::move(*db);
  return t;
}

std::unique_ptr<storage::Database> TestDatabase::open_again(int pool_size) const {
  storage::DatabaseOptions o;
  o.url = url_;
  o.pool_size = pool_size;
  auto db = storage::open_database(o);
  if (!db) throw std::runtime_error(db.error().message);
  return std::move(*db);
}

TestDatabase::~TestDatabase() {
  db_.reset();
  if (backend_ == storage::Backend::postgres)
    pg_admin(admin_url_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
}

}  // namespace atrium::test
