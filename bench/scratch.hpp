// Scratch resources for the benchmark programs in bench/ (atrium_jobs_bench, atrium_billing_bench): a temporary
// directory and a fresh PostgreSQL database, each removed on every exit path but a signal, and the progress line
// helper. Header-only; each program includes it once.
#pragma once

#include <errno.h>  // program_invocation_short_name (GNU)
#include <libpq-fe.h>
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace atrium::bench {

// A progress or error line on stderr, tagged with the program's name.
inline void note(const std::string& message) {
  std::fprintf(stderr, "[%s] %s\n", program_invocation_short_name, message.c_str());
}

// `chars` random lower-case hex digits (for scratch object names).
inline std::string random_hex(int chars) {
  std::random_device rd;
  std::string out;
  static constexpr char k_digits[] = "0123456789abcdef";
  for (int i = 0; i < chars; ++i) out += k_digits[rd() % 16];
  return out;
}

// A fresh directory under $TMPDIR (or /tmp) named <prefix>.XXXXXX, removed with its contents in the destructor.
class TempDir {
 public:
  static Result<std::unique_ptr<TempDir>> create(std::string_view prefix) {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" + std::string(prefix) + ".XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (::mkdtemp(buffer.data()) == nullptr) return fail(Errc::internal, "mkdtemp " + pattern + " failed");
    auto dir = std::unique_ptr<TempDir>(new TempDir());
    dir->path_ = buffer.data();
    return dir;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  TempDir() = default;
  std::string path_;
};

// One command outside a transaction on the PostgreSQL server at `url`.
inline Result<void> pg_admin(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  Result<void> out;
  if (PQstatus(conn) != CONNECTION_OK) {
    out = fail(Errc::unavailable, std::string("cannot connect to PostgreSQL: ") + PQerrorMessage(conn));
  } else {
    PGresult* res = PQexec(conn, sql.c_str());
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
      out = fail(Errc::internal, sql + ": " + PQresultErrorMessage(res));
    }
    PQclear(res);
  }
  PQfinish(conn);
  return out;
}

// `url` with its database name replaced by `name` (postgresql://user@host:port/db?params).
inline Result<std::string> with_database(const std::string& url, const std::string& name) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos || !(url.starts_with("postgresql://") || url.starts_with("postgres://"))) {
    return fail(Errc::invalid_argument, "the PostgreSQL URL must start with postgresql:// (got " + url + ")");
  }
  const auto query = url.find('?', scheme + 3);
  const std::string head = url.substr(0, query);
  const std::string tail = query == std::string::npos ? "" : url.substr(query);
  const auto slash = head.find('/', scheme + 3);
  return (slash == std::string::npos ? head : head.substr(0, slash)) + "/" + name + tail;
}

// `url` with its user (and password, if any) replaced by `user`, without a password.
inline Result<std::string> with_user(const std::string& url, const std::string& user) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos || !(url.starts_with("postgresql://") || url.starts_with("postgres://"))) {
    return fail(Errc::invalid_argument, "the PostgreSQL URL must start with postgresql:// (got " + url + ")");
  }
  const auto authority = scheme + 3;
  const auto end = url.find_first_of("/?", authority);
  const auto at = url.rfind('@', end == std::string::npos ? std::string::npos : end);
  const auto host = at == std::string::npos || at < authority ? authority : at + 1;
  return url.substr(0, authority) + user + "@" + url.substr(host);
}

// A fresh database on the server (owned by `owner` when given), dropped in the destructor.
class PgScratch {
 public:
  static Result<std::unique_ptr<PgScratch>> create(const std::string& server_url, const std::string& owner = "") {
    auto s = std::unique_ptr<PgScratch>(new PgScratch());
    s->server_url_ = server_url;
    const std::string name = "atrium_bench_" + random_hex(12);  // [a-z0-9_]: safe unquoted
    auto url = with_database(server_url, name);
    if (!url) return std::unexpected(url.error());
    const std::string create = "CREATE DATABASE " + name + (owner.empty() ? "" : " OWNER " + owner);
    if (auto r = pg_admin(server_url, create); !r) return std::unexpected(r.error());
    s->name_ = name;
    s->url_ = *url;
    return s;
  }
  PgScratch(const PgScratch&) = delete;
  PgScratch& operator=(const PgScratch&) = delete;
  ~PgScratch() {
    if (name_.empty()) return;
    if (auto r = pg_admin(server_url_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)"); !r) {
      note("could not drop database " + name_ + ": " + r.error().message);
    }
  }
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }

 private:
  PgScratch() = default;
  std::string server_url_;
  std::string name_;
  std::string url_;
};

}  // namespace atrium::bench
