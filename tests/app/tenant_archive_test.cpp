// A tenant's export and restore (app/tenant_archive.hpp) on every backend and isolation level: a tenant with a row
// in each of its tables is exported, deleted and purged, and imported again — everything it had reads back the
// same through the API (sealed fields open, members sign in, API keys work, the audit chain verifies), in the
// Atrium it came from and in another one with other keys. An altered, cut-off or wrongly keyed archive writes
// nothing; neither does one whose tenant still exists.
#include "app/tenant_archive.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include "analytics/analytics.hpp"
#include "app/archive_tables.hpp"
#include "audit/audit_log.hpp"
#include "core/failpoint.hpp"
#include "metering/metering.hpp"
#include "protection/archive_file.hpp"
#include "protection/keyring.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"
#include "tenancy/tenant_store.hpp"
#include "tenancy/tenant_tables.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;
using tenancy::Isolation;
using tenancy::Tenant;

const std::string k_key(32, '\x5a');

// What a tenant's members see of it through the API, GET by GET.
const std::vector<std::string> k_views = {
    "/v1/projects?limit=100",
    "/v1/webhook-endpoints",
    "/v1/email-settings",
    "/v1/analytics/dashboards",
    "/v1/billing-account",
    "/v1/api-keys",
    "/v1/invitations",
    "/v1/users",
    "/v1/domains",
    "/v1/subscriptions",
    "/v1/invoices",
    "/v1/usage/summary?metric=api.calls&from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z",
    "/v1/settings",
};

class TenantArchiveTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    tp_ = open_platform();
    ASSERT_TRUE(tp_);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    root_ = client_->sign_in("root@atrium.test", "root-password");
    alpha_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
    bravo_ = create_test_tenant(platform(), "bravo", GetParam().isolation);
    owner_ = client_->sign_in("owner@alpha.test", "password-alpha", "alpha");
    fill(*client_, root_, owner_);
    path_ = std::filesystem::path(tp_->config().storage.data_dir) / "alpha.archive";
  }

  std::unique_ptr<TestPlatform> open_platform() {
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    config.gateway.default_requests_per_second = 0;
    return TestPlatform::create(GetParam().backend, config);
  }

  app::Platform& platform() { return tp_->platform(); }

  // A row in the tenant's tables of both planes: its store (projects, a webhook endpoint with its sealed secret,
  // sealed email settings, a dashboard, idempotency keys), and the control plane (a second member, an API key, an
  // invitation, a custom domain, a billing account with sealed fields, a subscription and its invoice, usage).
  static void fill(ApiClient& client, const std::string& root, const std::string& owner) {
    auto ok = [](const ApiResponse& r, int status) { ASSERT_EQ(r.status, status) << r.raw_body; };
    for (int i = 0; i < 3; ++i) {
      ok(client.call(Method::post, "/v1/projects", Json{{"name", "alpha-" + std::to_string(i)}}, owner,
                     {{"Idempotency-Key", "project-" + std::to_string(i)}}),
         201);
    }
    ok(client.call(Method::post, "/v1/webhook-endpoints",
                   Json{{"url", "http://127.0.0.1:9/hook"}, {"event_types", {"project.created"}}}, owner),
       201);
    ok(client.call(Method::put, "/v1/email-settings", Json{{"from_name", "Alpha"}, {"reply_to", "help@alpha.test"}},
                   owner),
       200);
    ok(client.call(Method::post, "/v1/analytics/dashboards",
                   Json{{"name", "board"},
                        {"widgets",
                         {{{"title", "Active"},
                           {"metric", "active_users"},
                           {"chart", "line"},
                           {"range_days", 30},
                           {"group_by", "day"}}}}},
                   owner),
       201);
    ok(client.call(Method::post, "/v1/users", Json{{"email", "invitee@alpha.test"}}, owner), 202);
    ok(client.call(Method::post, "/v1/domains", Json{{"hostname", "app.alpha.example"}}, owner), 201);
    ok(client.call(Method::put, "/v1/billing-account",
                   Json{{"legal_name", "Alpha Ltd"},
                        {"email", "billing@alpha.test"},
                        {"address", Json::array({"1 Main Street"})},
                        {"currency", "USD"},
                        {"payment_method", "pm_card_visa"}},
                   owner),
       200);
    ok(client.call(Method::post, "/v1/plans",
                   Json{{"code", "basic"},
                        {"name", "Basic"},
                        {"tier", "starter"},
                        {"currency", "USD"},
                        {"interval", "monthly"},
                        {"base_price", 1000},
                        {"trial_days", 0}},
                   root),
       201);
    ok(client.call(Method::post, "/v1/subscriptions", Json{{"plan", "basic"}}, owner), 201);
    const std::string now = format_rfc3339(std::chrono::system_clock::now());
    ok(client.call(Method::post, "/v1/usage",
                   Json{{"metric", "api.calls"}, {"quantity", 3}, {"timestamp", now}, {"idempotency_key", "u1"}},
                   owner),
       202);
  }

  // The tenant as its owner sees it, view by view.
  std::map<std::string, Json> views(ApiClient& client, const std::string& token) {
    std::map<std::string, Json> out;
    for (const auto& path : k_views) {
      auto r = client.call(Method::get, path, std::nullopt, token);
      EXPECT_EQ(r.status, 200) << path << " " << r.raw_body;
      out[path] = r.body;
    }
    return out;
  }

  void delete_and_purge(app::Platform& platform, const std::string& id) {
    ApiClient client(platform);
    const std::string root = client.sign_in("root@atrium.test", "root-password");
    auto r = client.call(Method::delete_, "/v1/admin/tenants/" + id + "?purge=true", std::nullopt, root);
    ASSERT_EQ(r.status, 204) << r.raw_body;
  }

  void expect_audit_clean(app::Platform& platform) {
    auto report = platform.audit->verify(std::nullopt);
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_TRUE(report->findings.empty()) << report->findings.front().problem;
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  std::string root_;
  Tenant alpha_;
  Tenant bravo_;
  std::string owner_;
  std::string path_;
};

// Export, delete and purge, import: the tenant is back as it was, at its level and at every other.
TEST_P(TenantArchiveTest, ExportPurgeImportGivesBackTheSameData) {
  const auto before = views(*client_, owner_);
  const auto member =
      client_->call(Method::post, "/v1/api-keys", Json{{"name", "ci"}, {"permissions", {"projects:read"}}}, owner_);
  ASSERT_EQ(member.status, 201) << member.raw_body;
  const std::string api_key = member.body.value("secret", "");
  ASSERT_FALSE(api_key.empty()) << member.raw_body;
  const auto with_key = views(*client_, owner_);

  auto exported = app::export_tenant(platform(), alpha_.id, path_, k_key);
  ASSERT_TRUE(exported) << exported.error().message;
  EXPECT_EQ(exported->tables.size(), app::control_tables().size() + tenancy::tenant_tables().size());
  // One transaction for both planes where the tenant's data shares the control plane's database.
  EXPECT_EQ(exported->one_instant, platform().tenant_data->shares_control_plane(alpha_));
  EXPECT_GE(exported->users, 1);
  EXPECT_GE(exported->data_keys, 1);
  EXPECT_GT(exported->audit_entries, 5);
  // Nothing of the tenant is readable in the file without the key.
  {
    std::ifstream in(path_, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const char* plain : {"alpha-0", "Alpha Ltd", "billing@alpha.test", "owner@alpha.test", "invitee@alpha.test"}) {
      EXPECT_EQ(bytes.find(plain), std::string::npos) << plain;
    }
  }
  delete_and_purge(platform(), alpha_.id);
  EXPECT_NE(client_->call(Method::get, "/v1/projects", std::nullopt, owner_).status, 200);

  // Back at another level than it had (the next one round), on this platform.
  const Isolation level = GetParam().isolation == Isolation::shared   ? Isolation::database
                          : GetParam().isolation == Isolation::schema ? Isolation::shared
                                                                      : Isolation::schema;
  auto imported = app::import_tenant(platform(), path_, k_key, {.isolation = level});
  ASSERT_TRUE(imported) << imported.error().message;
  EXPECT_EQ(imported->isolation, level);
  // The tables read back after the import are the archive's, table by table (rows and SHA-256).
  std::vector<app::ArchiveTable> expected;
  for (const auto& t : exported->tables) {
    if (t.table != "audit_outbox" && t.table != "event_outbox") expected.push_back(t);
  }
  std::vector<app::ArchiveTable> found;
  for (const auto& t : imported->tables) {
    if (t.table != "audit_outbox" && t.table != "event_outbox") found.push_back(t);
  }
  EXPECT_EQ(found, expected);
  auto t = platform().tenants->get(alpha_.id);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->isolation, level);
  EXPECT_EQ(t->status, tenancy::TenantStatus::active);
  EXPECT_EQ(t->slug, "alpha");

  // Members sign in with their passwords; every view is what it was (sealed fields open again); the API key works.
  const std::string owner = client_->sign_in("owner@alpha.test", "password-alpha", "alpha");
  ASSERT_FALSE(owner.empty());
  EXPECT_EQ(views(*client_, owner), with_key);
  auto by_key = client_->call(Method::get, "/v1/projects", std::nullopt, api_key);
  EXPECT_EQ(by_key.status, 200) << by_key.raw_body;
  // An idempotency key used before the export still replays its first answer.
  auto replay =
      client_->call(Method::post, "/v1/projects", Json{{"name", "alpha-0"}}, owner, {{"Idempotency-Key", "project-0"}});
  EXPECT_EQ(replay.status, 201);
  EXPECT_EQ(replay.body.value("id", ""), before.at("/v1/projects?limit=100")["data"][0].value("id", ""));
  // Writes go on; the chain tells the export's history, the purge and the import, and verifies.
  EXPECT_EQ(client_->call(Method::post, "/v1/projects", Json{{"name", "after"}}, owner).status, 201);
  auto imports = platform().audit->list({.chain_id = alpha_.id, .action = "tenant.imported", .limit = 10});
  ASSERT_TRUE(imports) << imports.error().message;
  EXPECT_EQ(imports->entries.size(), 1u);
  auto purges = platform().audit->list({.chain_id = alpha_.id, .action = "tenant.purged", .limit = 10});
  ASSERT_TRUE(purges) << purges.error().message;
  EXPECT_EQ(purges->entries.size(), 1u);
  expect_audit_clean(platform());
  // The neighbour saw none of it.
  const std::string bravo = client_->sign_in("owner@bravo.test", "password-bravo", "bravo");
  auto bravo_projects = client_->call(Method::get, "/v1/projects", std::nullopt, bravo);
  ASSERT_EQ(bravo_projects.status, 200);
  EXPECT_TRUE(bravo_projects.body["data"].empty());
}

// While the import writes the tenant it is held back: it serves nobody, and what this process still held for it
// from before its deletion (activity marks, usage) is dropped, not written into it beside the archive's rows.
TEST_P(TenantArchiveTest, NothingWritesIntoTheTenantWhileTheImportDoes) {
  const auto active_marks = [&]() -> std::int64_t {
    const Instant now = std::chrono::system_clock::now();
    auto n = platform().metering->aggregate(alpha_.id, "event:user.active", metering::Aggregation::count,
                                            now - std::chrono::hours(24 * 400), now + std::chrono::hours(1));
    EXPECT_TRUE(n) << n.error().message;
    return n.value_or(-1);
  };
  const auto before = views(*client_, owner_);
  ASSERT_TRUE(platform().analytics->activity().flush());
  const std::int64_t marks = active_marks();
  ASSERT_GT(marks, 0);
  ASSERT_TRUE(app::export_tenant(platform(), alpha_.id, path_, k_key));
  platform().analytics->activity().active(alpha_.id, "a-user-before-the-deletion");
  delete_and_purge(platform(), alpha_.id);

  int during = 0;
  auto progress = [&](std::string_view step, int, int) {
    if (step != "tables") return;
    ++during;
    auto t = platform().tenants->get(alpha_.id);
    ASSERT_TRUE(t) << t.error().message;
    EXPECT_EQ(t->status, tenancy::TenantStatus::deleted) << "held back while its rows are written";
    metering::UsageBatch batch;
    batch.push_back({.event = metering::UsageEvent{.idempotency_key = "during-the-import",
                                                   .metric = "api.calls",
                                                   .quantity = 1,
                                                   .timestamp = std::chrono::system_clock::now()},
                     .unreadable = {}});
    auto refused = platform().metering->ingest(alpha_.id, std::move(batch));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::not_found) << refused.error().message;
    EXPECT_TRUE(platform().analytics->activity().flush()) << "the marks of a tenant that is gone are dropped";
  };
  auto imported = app::import_tenant(platform(), path_, k_key, {.progress = progress});
  ASSERT_TRUE(imported) << imported.error().message;
  EXPECT_EQ(during, 1);
  auto t = platform().tenants->get(alpha_.id);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->status, tenancy::TenantStatus::active);
  // Nothing came later either: the marks were dropped, not kept for the next flush.
  ASSERT_TRUE(platform().analytics->activity().flush());
  EXPECT_EQ(active_marks(), marks);
  const std::string owner = client_->sign_in("owner@alpha.test", "password-alpha", "alpha");
  EXPECT_EQ(views(*client_, owner), before);
}

// Into another Atrium (its own database, master key and key service) on the same backend, at the level it had.
TEST_P(TenantArchiveTest, ImportIntoAnotherPlatformWithOtherKeys) {
  const auto before = views(*client_, owner_);
  auto exported = app::export_tenant(platform(), alpha_.id, path_, k_key);
  ASSERT_TRUE(exported) << exported.error().message;

  auto other = open_platform();
  ASSERT_TRUE(other);
  // Both platforms here share one PostgreSQL server, where the tenant's database (named by its id) is the source's:
  // the import refuses to write into it, and goes to the schema level instead.
  Isolation level = GetParam().isolation;
  if (GetParam().backend == Backend::postgres && level == Isolation::database) {
    auto refused = app::import_tenant(other->platform(), path_, k_key);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::conflict) << refused.error().message;
    EXPECT_FALSE(other->platform().tenants->get(alpha_.id));
    level = Isolation::schema;
  }
  auto imported = app::import_tenant(other->platform(), path_, k_key, {.isolation = level});
  ASSERT_TRUE(imported) << imported.error().message;
  EXPECT_EQ(imported->isolation, level);
  EXPECT_EQ(imported->users, exported->users);  // none of them had an account there
  EXPECT_EQ(imported->audit_entries, exported->audit_entries);
  ApiClient client(other->platform());
  const std::string owner = client.sign_in("owner@alpha.test", "password-alpha", "alpha");
  ASSERT_FALSE(owner.empty());
  // The plan its subscription names came with it (the other Atrium had none): every view is the same.
  EXPECT_EQ(imported->catalog_added, 1);
  auto after = views(client, owner);
  EXPECT_EQ(after, before);
  EXPECT_EQ(after.at("/v1/billing-account"), before.at("/v1/billing-account"));
  EXPECT_EQ(after.at("/v1/email-settings"), before.at("/v1/email-settings"));
  EXPECT_EQ(after.at("/v1/webhook-endpoints"), before.at("/v1/webhook-endpoints"));
  EXPECT_EQ(after.at("/v1/invitations"), before.at("/v1/invitations"));
  EXPECT_EQ(after.at("/v1/projects?limit=100"), before.at("/v1/projects?limit=100"));
  EXPECT_EQ(after.at("/v1/users"), before.at("/v1/users"));
  EXPECT_EQ(after.at("/v1/domains"), before.at("/v1/domains"));
  EXPECT_EQ(after.at("/v1/invoices"), before.at("/v1/invoices"));
  expect_audit_clean(other->platform());
  // The source keeps its tenant: an archive is a copy.
  EXPECT_EQ(views(*client_, owner_), before);
}

// An archive altered anywhere, cut off, or opened with another key is refused before anything is written; so is
// an import over a tenant that still exists.
TEST_P(TenantArchiveTest, ABadArchiveOrAnExistingTenantWritesNothing) {
  auto exported = app::export_tenant(platform(), alpha_.id, path_, k_key);
  ASSERT_TRUE(exported) << exported.error().message;
  // Over the live tenant: conflict.
  auto over = app::import_tenant(platform(), path_, k_key);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, Errc::conflict) << over.error().message;

  delete_and_purge(platform(), alpha_.id);
  std::ifstream in(path_, std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  auto attempt = [&](const std::string& bytes, const std::string& key) {
    const std::string bad = path_ + ".bad";
    std::ofstream(bad, std::ios::binary | std::ios::trunc) << bytes;
    return app::import_tenant(platform(), bad, key);
  };
  std::string flipped = good;
  flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 1);
  for (const auto& [what, result] : std::vector<std::pair<std::string, Result<app::ArchiveReport>>>{
           {"altered", attempt(flipped, k_key)},
           {"cut off", attempt(good.substr(0, good.size() - 100), k_key)},
           {"another key", attempt(good, std::string(32, '\x11'))}}) {
    ASSERT_FALSE(result) << what;
    EXPECT_EQ(result.error().code, Errc::unauthenticated) << what << ": " << result.error().message;
  }
  auto wrong = attempt("not an archive\n", k_key);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, Errc::invalid_argument);
  // Still purged: nothing came back, and the chain verifies.
  auto t = platform().tenants->get(alpha_.id);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->status, tenancy::TenantStatus::deleted);
  auto keys = platform().keyring->keys(alpha_.id);
  ASSERT_TRUE(keys);
  EXPECT_TRUE(keys->empty());
  expect_audit_clean(platform());
  // An import that fails after writing removes what it wrote: the tenant is deleted and purged again.
  {
    atrium::ScopedFailure failure("tenant_import.after_tables");
    auto failed = app::import_tenant(platform(), path_, k_key);
    ASSERT_FALSE(failed);
    EXPECT_NE(failed.error().message.find("injected"), std::string::npos) << failed.error().message;
  }
  t = platform().tenants->get(alpha_.id);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->status, tenancy::TenantStatus::deleted);
  keys = platform().keyring->keys(alpha_.id);
  ASSERT_TRUE(keys);
  EXPECT_TRUE(keys->empty());
  EXPECT_NE(client_->password_grant("owner@alpha.test", "password-alpha", "alpha").status, 200);
  // The intact archive still imports.
  auto imported = app::import_tenant(platform(), path_, k_key);
  ASSERT_TRUE(imported) << imported.error().message;
  const std::string owner = client_->sign_in("owner@alpha.test", "password-alpha", "alpha");
  ASSERT_FALSE(owner.empty());
  auto projects = client_->call(Method::get, "/v1/projects", std::nullopt, owner);
  ASSERT_EQ(projects.status, 200);
  EXPECT_EQ(projects.body["data"].size(), 3u);
  expect_audit_clean(platform());
}

INSTANTIATE_TEST_SUITE_P(Levels, TenantArchiveTest, all_isolation_cases(), isolation_case_name);

// The archive carries every control-plane table that holds a tenant's rows, but those another module carries or
// that hold nothing to restore: each left out is named here with its reason.
TEST(TenantArchiveTables, EveryControlPlaneTableWithATenantIsCarriedOrNamedAsLeftOut) {
  for (const Backend backend : {Backend::sqlite, Backend::postgres}) {
    if (backend == Backend::postgres && !postgres_url()) {
      ATRIUM_MISSING_SERVICE(true, "ATRIUM_TEST_POSTGRES_URL");
    }
    SCOPED_TRACE(std::string(storage::backend_name(backend)));
    auto tp = TestPlatform::create(backend);
    ASSERT_TRUE(tp);
    storage::DatabaseOptions options;
    options.url =
        backend == Backend::postgres ? tp->admin_url() : "sqlite:" + tp->config().storage.data_dir + "/atrium.db";
    auto db = storage::open_database(options);
    ASSERT_TRUE(db) << db.error().message;
    const storage::Statement catalog =
        backend == Backend::postgres
            ? storage::Statement{"catalog_tenant_tables",
                                 "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
                                 "AND column_name = 'tenant_id'"}
            : storage::Statement{"catalog_tenant_tables",
                                 "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c "
                                 "WHERE m.type = 'table' AND c.name = 'tenant_id'"};
    std::set<std::string> found;
    ASSERT_TRUE((*db)->transact([&](storage::Transaction& tx) -> Result<void> {
      auto rs = tx.execute(catalog);
      if (!rs) return std::unexpected(rs.error());
      for (std::size_t i = 0; i < rs->rows.size(); ++i) found.insert(rs->text_at(i, 0).value_or(""));
      return {};
    }));
    std::set<std::string> carried;
    for (const auto& t : app::control_tables()) carried.insert(std::string(t.name));
    // The shared level's tenant tables live in the control-plane database too.
    for (const auto& t : tenancy::tenant_tables()) carried.insert(std::string(t.name));
    const std::set<std::string> left_out = {
        "audit_logs",      // carried entry by entry by the audit log (restore_chain), with its own checks
        "data_keys",       // carried by the keyring, re-wrapped under the importing platform's key service
        "refresh_tokens",  // sessions: members sign in again
        "jobs",            // queued work of the moment (mails, deliveries): not a tenant's data
        "pending_events",  // domain events waiting for the relay: published where they were written
        "outbox_marks",    // the relay's bookkeeping
        "tenant_writes",   // the cleanup's bookkeeping (when the store was last written)
        "tenant_fences",   // a move's bookkeeping
    };
    for (const auto& table : found) {
      EXPECT_TRUE(carried.contains(table) || left_out.contains(table)) << table << " is neither carried nor left out";
    }
  }
}

// The archive file: records come back as written, and the format line, the order and the end are authenticated.
TEST(ArchiveFile, RecordsRoundTripAndAnyChangeIsRefused) {
  const auto dir = std::filesystem::temp_directory_path() / ("atrium-archive-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "a.archive").string();
  auto writer = protection::ArchiveWriter::create(path, k_key);
  ASSERT_TRUE(writer);
  // Enough to span several chunks.
  const std::string payload(5000, 'x');
  for (int i = 0; i < 600; ++i) ASSERT_TRUE((*writer)->write(std::to_string(i) + payload));
  EXPECT_FALSE(std::filesystem::exists(path));  // only once complete
  ASSERT_TRUE((*writer)->finish());
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto reader = protection::ArchiveReader::open(path, k_key);
  ASSERT_TRUE(reader);
  for (int i = 0; i < 600; ++i) {
    auto r = (*reader)->next();
    ASSERT_TRUE(r && *r) << i;
    EXPECT_EQ(**r, std::to_string(i) + payload);
  }
  auto end = (*reader)->next();
  ASSERT_TRUE(end);
  EXPECT_FALSE(*end);
  EXPECT_FALSE((*reader)->is_signed());
  std::filesystem::remove_all(dir);
}

// Every record of an archive at `path`, or the error that stopped the reading.
Result<int> read_all(const std::string& path, std::optional<protection::ArchiveSigningKey> verifier) {
  auto reader = protection::ArchiveReader::open(path, k_key, std::move(verifier));
  if (!reader) return std::unexpected(reader.error());
  int n = 0;
  while (true) {
    auto r = (*reader)->next();
    if (!r) return std::unexpected(r.error());
    if (!*r) return n;
    ++n;
  }
}

// A signature (Ed25519, keys made by the openssl command as docs/data-protection.md says) lets an importer holding
// only the public key refuse an archive written by anyone else — whoever holds the archive key included.
TEST(ArchiveFile, ASignedArchiveVerifiesWithItsPublicKeyAndNothingElse) {
  const auto dir = std::filesystem::temp_directory_path() / ("atrium-archive-sig-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = [&](const char* name) { return (dir / name).string(); };
  for (const char* who : {"ours", "theirs"}) {
    const std::string key = file(who);
    ASSERT_EQ(std::system(("openssl genpkey -algorithm ed25519 -out " + key + ".pem 2>/dev/null && openssl pkey -in " +
                           key + ".pem -pubout -out " + key + ".pub.pem 2>/dev/null")
                              .c_str()),
              0);
  }
  auto ours = protection::ArchiveSigningKey::load_private(file("ours.pem"));
  ASSERT_TRUE(ours) << ours.error().message;
  auto ours_public = protection::ArchiveSigningKey::load_public(file("ours.pub.pem")).value();
  auto theirs_public = protection::ArchiveSigningKey::load_public(file("theirs.pub.pem")).value();
  // A public key cannot sign, a private key file is not a public one, and a non-Ed25519 key is refused.
  EXPECT_FALSE(protection::ArchiveWriter::create(file("x.archive"), k_key, ours_public));
  EXPECT_FALSE(protection::ArchiveSigningKey::load_public(file("ours.pem")));
  ASSERT_EQ(std::system(("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " + file("ec.pem") +
                         " 2>/dev/null")
                            .c_str()),
            0);
  auto ec = protection::ArchiveSigningKey::load_private(file("ec.pem"));
  ASSERT_FALSE(ec);
  EXPECT_NE(ec.error().message.find("Ed25519"), std::string::npos) << ec.error().message;

  const auto write = [&](const std::string& path, std::optional<protection::ArchiveSigningKey> signer) {
    auto writer = protection::ArchiveWriter::create(path, k_key, std::move(signer));
    ASSERT_TRUE(writer) << writer.error().message;
    const std::string payload(5000, 'y');
    for (int i = 0; i < 300; ++i) ASSERT_TRUE((*writer)->write(std::to_string(i) + payload));
    ASSERT_TRUE((*writer)->finish());
  };
  const std::string signed_path = file("signed.archive");
  const std::string unsigned_path = file("unsigned.archive");
  write(signed_path, *ours);
  write(unsigned_path, std::nullopt);

  EXPECT_EQ(read_all(signed_path, ours_public).value(), 300);
  EXPECT_EQ(read_all(signed_path, std::nullopt).value(), 300);  // no key given: read, the signature not checked
  auto reader = protection::ArchiveReader::open(signed_path, k_key, ours_public).value();
  while (reader->next().value()) {
  }
  EXPECT_TRUE(reader->is_signed());
  EXPECT_TRUE(reader->signature_checked());

  const auto refused = [&](const std::string& path, const protection::ArchiveSigningKey& key,
                           const char* why) -> std::string {
    auto r = read_all(path, key);
    if (r) {
      ADD_FAILURE() << why << ": read " << *r << " records";
      return "";
    }
    EXPECT_EQ(r.error().code, Errc::unauthenticated) << why;
    return r.error().message;
  };
  EXPECT_NE(refused(signed_path, theirs_public, "another signer").find("signature does not verify"), std::string::npos);
  EXPECT_NE(refused(unsigned_path, ours_public, "unsigned").find("not signed"), std::string::npos);

  // A signature that does not match the file: the unsigned archive's chunks with the signed one's signature (what
  // a holder of the archive key, who cannot sign, could make), and a signature with one bit changed.
  std::ifstream signed_in(signed_path, std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(signed_in)), std::istreambuf_iterator<char>());
  std::ifstream unsigned_in(unsigned_path, std::ios::binary);
  const std::string plain((std::istreambuf_iterator<char>(unsigned_in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(good.size(), plain.size() + 68);
  const auto save = [&](const std::string& bytes) {
    const std::string path = file("altered.archive");
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    return path;
  };
  refused(save(plain + good.substr(plain.size())), ours_public, "a signature taken from another archive");
  std::string flipped = good;
  flipped.back() = static_cast<char>(flipped.back() ^ 1);
  refused(save(flipped), ours_public, "a changed signature");
  refused(save(good + "x"), ours_public, "a byte after the signature");
  refused(save(good.substr(0, good.size() - 1)), ours_public, "a signature cut short");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace atrium::test
