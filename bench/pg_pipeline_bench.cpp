// The raw-libpq floor of an authenticated tenant read (bench/http_projects.sh runs it beside the HTTP load): each
// of C connections, on its own thread, sends what Atrium sends PostgreSQL for one GET /v1/projects?limit=20 at the
// shared level, in one pipeline per request — BEGIN READ ONLY, the tenant scope (set_config), the page query,
// COMMIT — and reads every result, for D seconds after a warm-up. No HTTP, no JSON, no authentication: what is left
// when everything but the database round trip is taken away.
//
// With --scope write-plain the transaction is a read-write one (BEGIN) with the same scope, and with --scope write
// a read-write one whose scope is what Atrium sends for a write since tenants can move between levels:
// public.atrium_write_scope (migrations/tenant/postgres/0006: the tenant set, its write lock taken shared, the
// fence looked up). The two side by side price the fence on every write transaction.
//
// Usage: atrium_pg_pipeline_bench --url URL --tenant ID [--connections C] [--seconds D] [--warmup W] [--limit N]
//                                 [--scope read|write-plain|write]
// Prints one line: "requests <n> seconds <s> per_second <r> rows_per_request <k>".
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr const char* k_scope = "SELECT set_config('app.tenant_id', $1, true)";
constexpr const char* k_write_scope = "SELECT public.atrium_write_scope($1::text, 'shared')";
// projects_page (src/projects/project_store.cpp), as Atrium prepares it.
constexpr const char* k_page =
    "SELECT id, name, description, created_at, updated_at FROM projects WHERE tenant_id = $1 AND id > $2 ORDER BY "
    "id LIMIT $3";
constexpr const char* k_min_id = "00000000-0000-0000-0000-000000000000";

struct Options {
  std::string url;
  std::string tenant;
  int connections = 64;
  double seconds = 10;
  double warmup = 2;
  int limit = 20;
  std::string scope = "read";  // read, write-plain or write
};

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "pg_pipeline_bench: %s\n", message.c_str());
  std::exit(1);
}

bool ok(PGresult* r) {
  const auto s = PQresultStatus(r);
  return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

// One request: the four commands in one pipeline, then every result. Returns the page's row count, or -1.
int request(PGconn* c, const Options& o, const std::string& limit) {
  const char* scope_params[] = {o.tenant.c_str()};
  const char* page_params[] = {o.tenant.c_str(), k_min_id, limit.c_str()};
  const char* begin = o.scope == "read" ? "BEGIN READ ONLY" : "BEGIN";
  if (PQsendQueryParams(c, begin, 0, nullptr, nullptr, nullptr, nullptr, 0) != 1 ||
      PQsendQueryPrepared(c, "scope", 1, scope_params, nullptr, nullptr, 0) != 1 ||
      PQsendQueryPrepared(c, "page", 3, page_params, nullptr, nullptr, 0) != 1 ||
      PQsendQueryParams(c, "COMMIT", 0, nullptr, nullptr, nullptr, nullptr, 0) != 1 || PQpipelineSync(c) != 1) {
    return -1;
  }
  int rows = -1;
  bool good = true;
  for (int command = 0; command < 4;) {
    PGresult* r = PQgetResult(c);
    if (r == nullptr) {
      if (PQstatus(c) != CONNECTION_OK) return -1;
      continue;
    }
    good = good && ok(r);
    if (command == 2) rows = PQntuples(r);
    PQclear(r);
    ++command;
  }
  PGresult* sync = nullptr;
  while (sync == nullptr) {  // the null that ends the last command's results, then the sync marker
    sync = PQgetResult(c);
    if (sync == nullptr && PQstatus(c) != CONNECTION_OK) return -1;
  }
  good = good && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
  PQclear(sync);
  return good ? rows : -1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--url")
      o.url = value;
    else if (flag == "--tenant")
      o.tenant = value;
    else if (flag == "--connections")
      o.connections = std::atoi(value.c_str());
    else if (flag == "--seconds")
      o.seconds = std::atof(value.c_str());
    else if (flag == "--warmup")
      o.warmup = std::atof(value.c_str());
    else if (flag == "--limit")
      o.limit = std::atoi(value.c_str());
    else if (flag == "--scope")
      o.scope = value;
    else
      die("unknown flag " + flag);
  }
  if (o.url.empty() || o.tenant.empty() || o.connections < 1 || o.seconds <= 0 || o.limit < 1 ||
      (o.scope != "read" && o.scope != "write-plain" && o.scope != "write")) {
    die("usage: --url URL --tenant ID [--connections C] [--seconds D] [--warmup W] [--limit N] "
        "[--scope read|write-plain|write]");
  }
  const std::string limit = std::to_string(o.limit + 1);  // Atrium asks for one more row to know a next page exists

  std::vector<PGconn*> conns;
  for (int i = 0; i < o.connections; ++i) {
    PGconn* c = PQconnectdb(o.url.c_str());
    if (PQstatus(c) != CONNECTION_OK) die(std::string("connect: ") + PQerrorMessage(c));
    const char* scope = o.scope == "write" ? k_write_scope : k_scope;
    for (auto [name, sql, n] : {std::tuple{"scope", scope, 1}, std::tuple{"page", k_page, 3}}) {
      PGresult* r = PQprepare(c, name, sql, n, nullptr);
      if (!ok(r)) die(std::string("prepare: ") + PQerrorMessage(c));
      PQclear(r);
    }
    if (PQenterPipelineMode(c) != 1) die("pipeline mode refused");
    conns.push_back(c);
  }

  std::atomic<bool> measuring{false};
  std::atomic<bool> stop{false};
  std::atomic<long long> done{0};
  std::atomic<int> rows_seen{-1};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (PGconn* c : conns) {
    threads.emplace_back([&, c] {
      long long mine = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const int rows = request(c, o, limit);
        if (rows < 0) {
          failed = true;
          stop = true;
          break;
        }
        rows_seen = rows;
        if (measuring.load(std::memory_order_relaxed)) ++mine;
      }
      done += mine;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
  const auto begin = std::chrono::steady_clock::now();
  measuring = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  measuring = false;
  const auto end = std::chrono::steady_clock::now();
  stop = true;
  for (auto& t : threads) t.join();
  for (PGconn* c : conns) PQfinish(c);
  if (failed) die("a request failed");
  const double seconds = std::chrono::duration<double>(end - begin).count();
  std::printf("requests %lld seconds %.2f per_second %.0f rows_per_request %d\n", done.load(), seconds,
              static_cast<double>(done.load()) / seconds, rows_seen.load());
  return 0;
}
