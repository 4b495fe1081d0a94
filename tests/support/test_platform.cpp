#include "support/test_platform.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <random>
#include <stdexcept>

#include "core/clock.hpp"
#include "core/hash.hpp"
#include "events/outbox.hpp"
#include "storage/migrations.hpp"
#include "support/test_database.hpp"
#include "support/test_support.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::test {

namespace {

// postgresql://user@host:port/db -> the same with another user and database.
std::string with_user_and_db(const std::string& url, const std::string& user, const std::string& db) {
  const auto scheme = url.find("://");
  const auto at = url.find('@', scheme + 3);
  const auto slash = url.find('/', at == std::string::npos ? scheme + 3 : at);
  const std::string host = url.substr(at == std::string::npos ? scheme + 3 : at + 1,
                                      slash == std::string::npos ? std::string::npos : slash - (at + 1));
  return url.substr(0, scheme + 3) + user + "@" + host + "/" + db;
}

void ensure_roles(const std::string& server) {
  // Concurrent test processes may race to create the roles; a duplicate is fine.
  pg_admin(server,
           "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'atrium_owner') THEN "
           "CREATE ROLE atrium_owner LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS; END IF; "
           "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'atrium_app') THEN "
           "CREATE ROLE atrium_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB; END IF; END $$");
}

// The control plane with every migration applied, as a template that each PostgreSQL test platform's database is
// copied from: CREATE DATABASE ... TEMPLATE copies files, where applying the migrations anew costs hundreds of
// statements per test. Platform::open then finds nothing pending. Copied with STRATEGY FILE_COPY: PostgreSQL 15's
// default (WAL_LOG) writes every block of the copy to the WAL, which cost the server ~0.3 s of CPU per test platform
// against ~0.05 s (the test server runs with fsync off, so the checkpoints FILE_COPY makes are cheap).
//
// One template per server and migration set, shared by the test processes (ctest runs each suite as one): named by
// a hash of the migrations, built under another name and renamed when complete, so a process never copies a
// half-built one; a process that loses the race to rename drops its own. It stays on the server (scripts/test.sh's
// server is private and thrown away; on a long-lived one, each change of the migrations leaves one tpl_ database).
const std::string& migrated_template(const std::string& server) {
  static std::string name;
  static std::once_flag once;
  std::call_once(once, [&] {
    using storage::MigrationSet;
    std::string set;
    for (auto which : {MigrationSet::control_plane, MigrationSet::tenant}) {
      for (const auto& m : storage::builtin_migrations(storage::Backend::postgres, which)) {
        set += std::to_string(m.version) + ":" + std::string(m.name) + ":" + sha256_hex(m.sql) + "\n";
      }
    }
    name = "tpl_" + sha256_hex(set).substr(0, 24);
    if (pg_value(server, "SELECT 1 FROM pg_database WHERE datname = '" + name + "'")) return;
    std::random_device rd;
    const std::string building = "tplb_" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 100000);
    std::string error;
    if (!pg_admin(server, "CREATE DATABASE " + building + " OWNER atrium_owner", &error)) {
      throw std::runtime_error(error);
    }
    {
      auto db = storage::open_database({.url = with_user_and_db(server, "atrium_owner", building), .pool_size = 1});
      if (!db) throw std::runtime_error("template: " + db.error().message);
      const auto& clock = SystemClock::instance();
      auto control = storage::migrate(
          **db, storage::builtin_migrations(storage::Backend::postgres, MigrationSet::control_plane), clock);
      auto shared =
          storage::migrate(**db, storage::builtin_migrations(storage::Backend::postgres, MigrationSet::tenant), clock,
                           {}, MigrationSet::tenant);
      if (!control || !shared) {
        throw std::runtime_error("template: " + (control ? shared.error() : control.error()).message);
      }
    }  // closed: a database is renamed or copied only while nobody is connected to it
    if (!pg_admin(server, "ALTER DATABASE " + building + " RENAME TO " + name, &error)) {
      // Another process renamed its copy first: use that one.
      pg_admin(server, "DROP DATABASE IF EXISTS " + building + " WITH (FORCE)");
      if (!pg_value(server, "SELECT 1 FROM pg_database WHERE datname = '" + name + "'")) {
        throw std::runtime_error("template: " + error);
      }
    }
  });
  return name;
}

}  // namespace

std::unique_ptr<TestPlatform> TestPlatform::create(storage::Backend backend, const Config& base, const Clock* clock) {
  std::unique_ptr<TestPlatform> t(new TestPlatform());
  t->backend_ = backend;
  t->config_ = base;
  t->config_.storage.data_dir = temp_dir("platform");
  t->config_.identity.password_cost = "minimum";
  // Signing keys on P-256: a test platform creates its key at start, and RSA-2048's key generation (the production
  // default, RS256) took over half of a start's CPU in the sanitizer build (perf: libcrypto's prime search). The
  // RS256 path is tested where it is asked for (IdentityApiTest's rotation, the e2e tests through the binary).
  if (t->config_.identity.jwt_algorithm == Config{}.identity.jwt_algorithm) t->config_.identity.jwt_algorithm = "ES256";
  t->config_.log.access_log = false;
  if (backend == storage::Backend::postgres) {
    auto server = postgres_url();
    if (!server) return nullptr;
    t->server_url_ = *server;
    ensure_roles(*server);
    static std::atomic<int> counter{0};
    std::random_device rd;
    t->database_ =
        "p_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" + std::to_string(rd() % 100000);
    std::string error;
    if (!pg_admin(*server,
                  "CREATE DATABASE " + t->database_ + " TEMPLATE " + migrated_template(*server) +
                      " STRATEGY FILE_COPY OWNER atrium_owner",
                  &error)) {
      throw std::runtime_error(error);
    }
    t->admin_url_ = with_user_and_db(*server, "atrium_owner", t->database_);
    t->app_url_ = with_user_and_db(*server, "atrium_app", t->database_);
    t->config_.storage.admin_database_url = t->admin_url_;
    t->config_.storage.database_url = t->app_url_;
  }
  app::Platform::Options options;
  options.rate_limits_use_redis_time = clock == nullptr;
  auto p = app::Platform::open(t->config_, clock != nullptr ? *clock : SystemClock::instance(), options);
  if (!p) throw std::runtime_error("platform: " + p.error().message);
  t->platform_ = std::move(*p);
  return t;
}

TestPlatform::~TestPlatform() {
  std::vector<std::string> tenant_databases;
  if (platform_ && backend_ == storage::Backend::postgres) {
    std::optional<std::string> cursor;
    while (true) {
      auto page = platform_->tenants->list(cursor, 100);
      if (!page) break;
      for (const auto& tenant : page->tenants) {
        if (tenant.isolation == tenancy::Isolation::database) {
          tenant_databases.push_back(tenancy::tenant_database_name(tenant.id));
        }
      }
      if (!page->next_cursor) break;
      cursor = page->next_cursor;
    }
  }
  platform_.reset();
  if (backend_ == storage::Backend::postgres) {
    for (const auto& db : tenant_databases) pg_admin(server_url_, "DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
    pg_admin(server_url_, "DROP DATABASE IF EXISTS " + database_ + " WITH (FORCE)");
  }
}

tenancy::Tenant create_test_tenant(app::Platform& platform, const std::string& slug, tenancy::Isolation isolation) {
  app::Platform::NewTenantRequest r;
  r.tenant.slug = slug;
  r.tenant.name = slug;
  r.tenant.isolation = isolation;
  r.owner_email = "owner@" + slug + ".test";
  r.owner_password = "password-" + slug;
  auto t = platform.create_tenant(r, {});
  EXPECT_TRUE(t) << t.error().message;
  return t.value_or(tenancy::Tenant{});
}

std::string add_test_member(app::Platform& platform, const std::string& tenant_id, const std::string& email,
                            const std::string& password, identity::Role role) {
  auto m = platform.users->add_member(tenant_id, email, "", password, role, platform.audit->recorder({}));
  EXPECT_TRUE(m) << m.error().message;
  return m ? m->user.id : "";
}

std::optional<std::string> take_invitation_token(app::Platform& platform, const std::string& email) {
  if (!platform.background) return std::nullopt;
  auto consumer = platform.background->queue().consumer("email");
  if (!consumer) return std::nullopt;
  while (true) {
    auto d = (*consumer)->next(std::chrono::seconds(2));
    if (!d || !*d) return std::nullopt;
    const Json payload = (**d).job.payload;
    (void)(*consumer)->complete(**d);
    const auto& to = payload.value("to", Json::array());
    if (to.empty() || to[0].value("email", "") != email) continue;
    const std::string text = payload.value("text", "");
    const auto at = text.find("inv_");
    if (at == std::string::npos) continue;
    const auto end = text.find_first_of(" \r\n", at);
    return text.substr(at, end == std::string::npos ? std::string::npos : end - at);
  }
}

bool settled(app::Platform& platform, const std::vector<std::string>& queues, std::chrono::milliseconds timeout) {
  if (!platform.workers()) return true;
  events::Relay relay(
      platform.tenant_data->platform_database(), platform.clock(),
      [&](const events::Event& e) { return platform.workers()->publish(e); }, std::chrono::seconds(1));
  auto quiet = [&] {
    auto relayed = relay.run_once();
    if (!relayed || *relayed > 0) return false;
    auto stats = platform.workers()->queue().stats();
    if (!stats) return false;
    for (const auto& queue : queues) {
      auto q = stats->counts.find(queue);
      if (q == stats->counts.end()) continue;
      for (const auto& [type, states] : q->second) {
        for (const char* state : {"queued", "scheduled", "running"}) {
          if (auto n = states.find(state); n != states.end() && n->second > 0) return false;
        }
      }
    }
    return true;
  };
  return eventually(
      [&] {
        if (!quiet()) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return quiet();
      },
      timeout);
}

void TwoTenantTest::SetUp() {
  ATRIUM_MISSING_SERVICE(GetParam().backend == storage::Backend::postgres && !postgres_url(),
                         "ATRIUM_TEST_POSTGRES_URL");
  tp_ = TestPlatform::create(GetParam().backend, Config{}, &clock_);
  ASSERT_TRUE(tp_);
  a_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
  b_ = create_test_tenant(platform(), "bravo", GetParam().isolation);
  ASSERT_FALSE(a_.id.empty());
  ASSERT_FALSE(b_.id.empty());
}

}  // namespace atrium::test
