// Data protection (docs/data-protection.md): AES-256-GCM, the local key service, and fields encrypted at rest with
// the tenant's data keys — at every isolation level on both backends, read back from the raw files and dumps.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "email/settings.hpp"
#include "identity/user_store.hpp"
#include "observability/metrics.hpp"
#include "protection/aead.hpp"
#include "protection/key_service.hpp"
#include "protection/keyring.hpp"
#include "storage/database.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"
#include "tenancy/idempotency.hpp"
#include "webhooks/endpoints.hpp"

namespace atrium::test {
namespace {

using protection::aead_open;
using protection::aead_seal;
using tenancy::SealedField;
using tenancy::TenantTransaction;

const audit::Context k_who{.actor_type = audit::ActorType::system, .actor_id = "test"};
constexpr SealedField k_probe{"email_settings", "from_name"};

TEST(Aead, SealsWithFreshNoncesAndRefusesAnyChange) {
  const std::string key = protection::random_bytes(32);
  const std::string a = aead_seal(key, "hello", "ctx");
  const std::string b = aead_seal(key, "hello", "ctx");
  EXPECT_NE(a, b);  // a fresh 96-bit nonce each time
  EXPECT_EQ(a.size(), 12 + 5 + 16);
  EXPECT_EQ(aead_open(key, a, "ctx").value(), "hello");
  EXPECT_FALSE(aead_open(key, a, "other context"));
  EXPECT_FALSE(aead_open(protection::random_bytes(32), a, "ctx"));
  for (std::size_t i = 0; i < a.size(); ++i) {
    std::string t = a;
    t[i] = static_cast<char>(t[i] ^ 1);
    EXPECT_FALSE(aead_open(key, t, "ctx")) << "byte " << i;
  }
  EXPECT_FALSE(aead_open(key, a.substr(0, 20), "ctx"));
  EXPECT_EQ(aead_open(key, aead_seal(key, "", ""), "").value(), "");
}

TEST(Aead, KeysAlternatingOnEachThreadNeverMix) {
  // Each thread's contexts keep the last key's schedule: values sealed under alternating keys must open under their
  // own key only, whatever ran on the thread before.
  const std::string k1 = protection::random_bytes(32);
  const std::string k2 = protection::random_bytes(32);
  std::atomic<int> wrong{0};
  auto work = [&](int seed) {
    for (int i = 0; i < 500; ++i) {
      const std::string& key = (i + seed) % 3 == 0 ? k1 : k2;
      const std::string& other = &key == &k1 ? k2 : k1;
      const std::string text = "value " + std::to_string(i);
      const std::string sealed = aead_seal(key, text, "ctx");
      if (aead_open(other, sealed, "ctx")) ++wrong;
      auto opened = aead_open(key, sealed, "ctx");
      if (!opened || *opened != text) ++wrong;
    }
  };
  std::thread a(work, 0);
  std::thread b(work, 1);
  a.join();
  b.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(Aead, Base64urlRoundTrips) {
  for (std::size_t n = 0; n < 70; ++n) {
    const std::string bytes = protection::random_bytes(n);
    const std::string text = protection::base64url(bytes);
    EXPECT_EQ(text.find_first_of("+/="), std::string::npos);
    EXPECT_EQ(protection::from_base64url(text).value(), bytes);
  }
  EXPECT_FALSE(protection::from_base64url("ab+c"));
  EXPECT_FALSE(protection::from_base64url("a"));
}

TEST(LocalKeyService, WrapsRotatesTrimsAndDestroys) {
  const std::string dir = temp_dir("kms");
  const std::string master = protection::random_bytes(32);
  auto kms = protection::make_local_key_service(dir, master).value();
  const std::string name = "0190f1a2-0000-7000-8000-000000000001";
  EXPECT_EQ(kms->latest_version(name).value(), 0);
  auto w1 = kms->wrap(name, "data-key-1", "c1").value();
  EXPECT_TRUE(w1.starts_with("v1:"));
  EXPECT_EQ(kms->unwrap(name, w1, "c1").value(), "data-key-1");
  EXPECT_EQ(kms->unwrap(name, w1, "c2").error().code, Errc::unauthenticated);
  // The key file holds the key sealed under the master key, never in the clear, and only the master key opens it.
  auto other = protection::make_local_key_service(dir, protection::random_bytes(32)).value();
  EXPECT_EQ(other->unwrap(name, w1, "c1").error().code, Errc::unauthenticated);

  EXPECT_EQ(kms->rotate(name).value(), 2);
  auto w2 = kms->wrap(name, "data-key-2", "c1").value();
  EXPECT_TRUE(w2.starts_with("v2:"));
  EXPECT_EQ(kms->unwrap(name, w1, "c1").value(), "data-key-1");  // older versions open until trimmed
  ASSERT_TRUE(kms->trim(name, 2));
  EXPECT_EQ(kms->unwrap(name, w1, "c1").error().code, Errc::not_found);
  EXPECT_EQ(kms->unwrap(name, w2, "c1").value(), "data-key-2");
  EXPECT_FALSE(kms->trim(name, 3));  // never leaves a key without a version

  ASSERT_TRUE(kms->destroy(name));
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(dir) / (name + ".key")));
  EXPECT_EQ(kms->unwrap(name, w2, "c1").error().code, Errc::not_found);
  EXPECT_TRUE(kms->destroy(name));  // idempotent
  EXPECT_EQ(kms->wrap("../escape", "x", "c").error().code, Errc::invalid_argument);
}

// The keyring keeps the unwrapped data keys of at most protection.key_cache_tenants tenants: the least recently used
// leave (their keys overwritten) and are unwrapped again from the data_keys table on their next use.
TEST(KeyringCache, KeepsTheMostRecentlyUsedTenantsAndReloadsTheOthers) {
  const std::string dir = temp_dir("keyring-cache");
  auto db = storage::open_database({.url = "sqlite:" + dir + "/keys.db"}).value();
  ASSERT_TRUE(protection::Keyring::prepare(*db));
  auto kms = protection::make_local_key_service(dir + "/kms", protection::random_bytes(32)).value();
  ManualClock clock(std::chrono::system_clock::time_point(std::chrono::hours(24 * 20000)));
  metrics::Registry registry;
  protection::Keyring keyring(*db, *kms, clock,
                              {.encrypt = true, .cache_ttl = std::chrono::minutes(1), .cache_tenants = 2}, &registry);
  const auto loads = [&] {  // protection_data_key_loads_total, as /metrics shows it
    const std::string text = registry.render();
    const std::string name = "\nprotection_data_key_loads_total ";
    const auto at = text.find(name);
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + name.size()));
  };
  const std::vector<std::string> tenants = {"0190f1a2-0000-7000-8000-00000000000a",
                                            "0190f1a2-0000-7000-8000-00000000000b",
                                            "0190f1a2-0000-7000-8000-00000000000c"};
  std::vector<std::string> sealed;
  for (const auto& t : tenants) sealed.push_back(keyring.seal(t, k_probe, "row-1", "secret of " + t).value());
  EXPECT_EQ(keyring.cached_tenants(), 2U);
  EXPECT_EQ(loads(), 3);  // each tenant's first key, created and unwrapped once

  // The third and second are cached: opening them loads nothing.
  EXPECT_EQ(keyring.open(tenants[2], k_probe, "row-1", sealed[2]).value(), "secret of " + tenants[2]);
  EXPECT_EQ(keyring.open(tenants[1], k_probe, "row-1", sealed[1]).value(), "secret of " + tenants[1]);
  EXPECT_EQ(loads(), 3);
  // The first left when the third came: it is unwrapped again, and the least recently used (the third) leaves.
  EXPECT_EQ(keyring.open(tenants[0], k_probe, "row-1", sealed[0]).value(), "secret of " + tenants[0]);
  EXPECT_EQ(loads(), 4);
  EXPECT_EQ(keyring.cached_tenants(), 2U);
  EXPECT_EQ(keyring.open(tenants[1], k_probe, "row-1", sealed[1]).value(), "secret of " + tenants[1]);
  EXPECT_EQ(loads(), 4);
  EXPECT_EQ(keyring.open(tenants[2], k_probe, "row-1", sealed[2]).value(), "secret of " + tenants[2]);
  EXPECT_EQ(loads(), 5);
  keyring.forget(tenants[2]);
  EXPECT_EQ(keyring.cached_tenants(), 1U);
}

// Every byte under `root` (SQLite: the control plane, its WAL, tenant files, the key store).
std::string all_file_bytes(const std::string& root) {
  std::string out;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    out += s.str();
  }
  return out;
}

// pg_dump of `database` as the superuser: what a backup of it holds.
std::string pg_dump(const std::string& database) {
  const std::string cmd = "pg_dump --no-owner '" + with_database(postgres_url().value(), database) + "' 2>&1";
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buffer[65536];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, p)) > 0) out.append(buffer, n);
  ::pclose(p);
  return out;
}

class FieldsAtRest : public TwoTenantTest {
 protected:
  // What a backup of everything holds: every file of the data directory (SQLite), or a dump of the control-plane
  // database and of the tenant's own database (PostgreSQL).
  std::string backup() {
    if (GetParam().backend == storage::Backend::sqlite) return all_file_bytes(tp_->config().storage.data_dir);
    std::string out = pg_dump(database_of(tp_->admin_url()));
    EXPECT_NE(out.find("CREATE TABLE"), std::string::npos) << out.substr(0, 500);
    if (a_.isolation == tenancy::Isolation::database) out += pg_dump(tenancy::tenant_database_name(a_.id));
    return out;
  }

  // The tenant's personal and secret fields, written through the modules that own them; returns the plaintexts.
  std::vector<std::string> write_personal_fields() {
    billing::AccountUpdate account;
    account.legal_name = "Qzx Legal Name GmbH";
    account.email = "qzx-billing@alpha.test";
    account.address = std::vector<std::string>{"Qzxstrasse 17", "10115 Berlin"};
    account.country = "DE";
    account.currency = "EUR";
    account.tax_ids = std::vector<std::string>{"DE999888777"};
    account.payment_method = "pm_card_visa";
    EXPECT_TRUE(platform().billing->put_account(a_.id, account, true, k_who));
    auto invoice = platform().billing->create_invoice(
        a_.id, {.lines = {{.description = "Setup", .quantity = 1, .unit_amount = 5000}}, .memo = ""}, k_who);
    EXPECT_TRUE(invoice) << (invoice ? "" : invoice.error().message);
    std::string secret;
    EXPECT_TRUE(platform().tenant_data->transact(a_, [&](TenantTransaction& tx) -> Result<void> {
      auto e = webhooks::store::create(tx, clock_, "https://hooks.example/qzx", "", {"*"});
      if (!e) return std::unexpected(e.error());
      secret = e->secret;
      auto s = email::settings_store::put(tx, clock_, {"Qzx Sender Name", "qzx-reply@alpha.test", ""});
      if (!s) return std::unexpected(s.error());
      // The answer kept for a retried request with an Idempotency-Key repeats what the route answered.
      return tenancy::store_answer(tx, "retry-1",
                                   {.operation = "POST /v1/webhook-endpoints",
                                    .request_hash = "h",
                                    .status = 201,
                                    .body = R"({"secret":")" + secret + R"("})"},
                                   clock_.now());
    }));
    EXPECT_TRUE(secret.starts_with("whsec_"));
    // A person's account (platform-wide: sealed under the master key's account key, not the tenant's).
    auto member =
        platform().users->add_member(a_.id, "Qzx-Person@Alpha.test", "Qzx Person Name", std::string("qzx-password"),
                                     identity::Role::member, platform().audit->recorder(k_who));
    EXPECT_TRUE(member) << (member ? "" : member.error().message);
    // And an invitation: a person's address before it has an account.
    auto invited = platform().invitations->invite(a_.id, "Qzx-Invitee@Alpha.test", identity::Role::viewer,
                                                  member ? member->user.id : "", platform().audit->recorder(k_who));
    EXPECT_TRUE(invited) << (invited ? "" : invited.error().message);
    return {"Qzx Legal Name GmbH", "qzx-billing@alpha.test", "Qzxstrasse 17",
            "DE999888777",         "pm_card_visa",           secret,
            "Qzx Sender Name",     "qzx-reply@alpha.test",   "qzx-person@alpha",
            "Qzx Person Name",     "qzx-invitee@alpha"};
  }
};

TEST_P(FieldsAtRest, NoPersonalOrSecretFieldIsStoredInTheClear) {
  const auto plaintexts = write_personal_fields();
  // Read back through the modules: the same values.
  auto account = platform().billing->get_account(a_.id).value();
  EXPECT_EQ(account.legal_name, "Qzx Legal Name GmbH");
  EXPECT_EQ(account.email, "qzx-billing@alpha.test");
  EXPECT_EQ(account.address, (std::vector<std::string>{"Qzxstrasse 17", "10115 Berlin"}));
  EXPECT_EQ(account.tax_ids, std::vector<std::string>{"DE999888777"});
  EXPECT_EQ(account.payment_method, "pm_card_visa");
  auto invoices = platform().billing->list_invoices(a_.id, "").value();
  ASSERT_EQ(invoices.size(), 1U);
  EXPECT_EQ(invoices[0].customer.value("legal_name", ""), "Qzx Legal Name GmbH");
  EXPECT_EQ(platform().billing->get_invoice(a_.id, invoices[0].id)->customer.value("email", ""),
            "qzx-billing@alpha.test");
  ASSERT_TRUE(platform().tenant_data->transact(a_, [&](TenantTransaction& tx) -> Result<void> {
    auto s = email::settings_store::get(tx);
    EXPECT_EQ(s->from_name, "Qzx Sender Name");
    EXPECT_EQ(s->reply_to, "qzx-reply@alpha.test");
    auto list = webhooks::store::list(tx).value();
    EXPECT_EQ(webhooks::store::get(tx, list.at(0).id, true)->secret, plaintexts[5]);
    auto answer = tenancy::find_answer(tx, "retry-1").value();
    EXPECT_NE(answer->body.find(plaintexts[5]), std::string::npos);
    return {};
  }));

  auto person = platform().users->find_by_email("qzx-person@alpha.test");
  ASSERT_TRUE(person) << person.error().message;
  EXPECT_EQ(person->email, "qzx-person@alpha.test");
  EXPECT_EQ(person->name, "Qzx Person Name");
  auto invitations = platform().invitations->list(a_.id);
  ASSERT_TRUE(invitations) << invitations.error().message;
  ASSERT_EQ(invitations->size(), 1U);
  EXPECT_EQ(invitations->front().email, "qzx-invitee@alpha.test");

  // Read the storage itself: none of them appears, in any table, file or WAL — the audit entries included.
  const std::string raw = backup();
  ASSERT_GT(raw.size(), 1000U);
  EXPECT_NE(raw.find("enc1:"), std::string::npos);
  for (const auto& p : plaintexts) EXPECT_EQ(raw.find(p), std::string::npos) << p << " is stored in the clear";
}

TEST_P(FieldsAtRest, ACiphertextMovedToAnotherRowColumnOrTenantFailsToOpen) {
  std::string sealed;
  ASSERT_TRUE(platform().tenant_data->transact(a_, [&](TenantTransaction& tx) -> Result<void> {
    sealed = tx.seal(k_probe, "row-1", "personal").value();
    EXPECT_TRUE(sealed.starts_with("enc1:1:"));
    EXPECT_EQ(tx.open(k_probe, "row-1", sealed).value(), "personal");
    auto other_row = tx.open(k_probe, "row-2", sealed);
    EXPECT_FALSE(other_row);
    if (!other_row) {
      EXPECT_NE(other_row.error().message.find("does not belong to this tenant, row and column"), std::string::npos);
    }
    EXPECT_FALSE(tx.open({"email_settings", "reply_to"}, "row-1", sealed));
    std::string tampered = sealed;
    tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
    EXPECT_FALSE(tx.open(k_probe, "row-1", tampered));
    return {};
  }));
  ASSERT_TRUE(platform().tenant_data->transact(b_, [&](TenantTransaction& tx) -> Result<void> {
    auto r = tx.open(k_probe, "row-1", sealed);  // bravo's key, and bravo's id in the associated data
    EXPECT_FALSE(r);
    return {};
  }));

  // The same through the tables: alpha's sealed webhook secret copied over bravo's endpoint's.
  write_personal_fields();
  std::string alpha_secret;
  ASSERT_TRUE(platform().tenant_data->transact(a_, [&](TenantTransaction& tx) -> Result<void> {
    auto rs = tx.execute({"test_secret_of", "SELECT secret FROM webhook_endpoints WHERE tenant_id = $1"});
    alpha_secret = rs->text_at(0, 0).value();
    return {};
  }));
  std::string bravo_endpoint;
  ASSERT_TRUE(platform().tenant_data->transact(b_, [&](TenantTransaction& tx) -> Result<void> {
    bravo_endpoint = webhooks::store::create(tx, clock_, "https://hooks.example/b", "", {"*"})->id;
    auto up = tx.execute({"test_secret_set", "UPDATE webhook_endpoints SET secret = $2 WHERE tenant_id = $1"},
                         {storage::Value(alpha_secret)});
    EXPECT_EQ(up->affected_rows, 1);
    auto got = webhooks::store::get(tx, bravo_endpoint, true);
    EXPECT_FALSE(got);
    if (!got) {
      EXPECT_NE(got.error().message.find("webhook_endpoints.secret"), std::string::npos);
    }
    return {};
  }));
}

// users.email and users.name: sealed, bound to their user and column, found by the keyed blind index; accounts
// stored before (plaintext, no index) are indexed and sealed by protect_stored_accounts, once.
TEST_P(FieldsAtRest, UserAccountsAreSealedFoundByTheirBlindIndexAndBoundToTheirRow) {
  auto& users = *platform().users;
  const auto who = platform().audit->recorder(k_who);
  auto ann = users.add_member(a_.id, "Ann.Qzx@Example.test", "Ann Qzx", std::string("ann-password"),
                              identity::Role::member, who);
  auto bob = users.add_member(b_.id, "bob.qzx@example.test", "Bob Qzx", std::string("bob-password"),
                              identity::Role::member, who);
  ASSERT_TRUE(ann && bob);
  // Found by any spelling of the address (normalised before it is indexed).
  EXPECT_EQ(users.find_by_email("ANN.QZX@example.TEST")->id, ann->user.id);
  EXPECT_EQ(users.find_by_email("nobody.qzx@example.test").error().code, Errc::not_found);
  // A second account for the same address is refused by the index.
  EXPECT_EQ(users.create_user("ann.qzx@example.test", "", "ann-password-2", false, who).error().code,
            Errc::unique_violation);

  auto control = [&](const storage::Statement& st, std::vector<storage::Value> params) {
    Result<storage::ResultSet> out = fail(Errc::internal, "not run");
    EXPECT_TRUE(platform().tenant_data->transact_platform([&](tenancy::PlatformTransaction& ptx) -> Result<void> {
      out = ptx.control().execute(st, params);
      return {};
    }));
    EXPECT_TRUE(out) << st.name << ": " << out.error().message;
    return out.value_or(storage::ResultSet{});
  };
  const storage::Statement row{"test_user_row", "SELECT email, name, email_index FROM users WHERE id = $1"};
  auto stored = control(row, {storage::Value(ann->user.id)});
  const std::string sealed_email = stored.text_at(0, 0).value();
  EXPECT_TRUE(sealed_email.starts_with("enc1:m1:")) << sealed_email;
  EXPECT_TRUE(stored.text_at(0, 1).value().starts_with("enc1:m1:"));
  EXPECT_TRUE(stored.text_at(0, 2).value().starts_with("h1:"));
  EXPECT_EQ(stored.text_at(0, 2).value(), users.protection().email_index("ann.qzx@example.test"));
  EXPECT_EQ(sealed_email.find("ann"), std::string::npos);

  // Ann's sealed address copied onto Bob's row (moved off hers first: the column is unique) does not open as Bob's.
  const storage::Statement set_email{"test_user_set_email", "UPDATE users SET email = $2 WHERE id = $1"};
  control(set_email, {storage::Value(ann->user.id), storage::Value("moving")});
  control(set_email, {storage::Value(bob->user.id), storage::Value(sealed_email)});
  auto moved = users.get(bob->user.id);
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().code, Errc::unauthenticated);
  EXPECT_NE(moved.error().message.find("users.email of " + bob->user.id + " does not open"), std::string::npos)
      << moved.error().message;

  control(set_email,
          {storage::Value(bob->user.id),
           storage::Value(users.protection().seal(identity::k_users_email, bob->user.id, "bob.qzx@example.test"))});
  control(set_email, {storage::Value(ann->user.id), storage::Value(sealed_email)});
  EXPECT_EQ(users.get(ann->user.id)->email, "ann.qzx@example.test");

  // An account as an older version stored it: plaintext, no index.
  const auto store_as_before = [&](const std::string& id, const std::string& email, const std::string& name) {
    control({"test_user_as_before",
             "INSERT INTO users (id, email, name, password_hash, is_super_admin, created_at, updated_at) VALUES ($1, "
             "$2, $3, $4, $5, $6, $6)"},
            {storage::Value(id), storage::Value(email), storage::Value(name), storage::Value("!none"),
             storage::Value(false), storage::Value(std::string("2026-01-01T00:00:00Z"))});
  };
  const std::string legacy = "0190f1a2-0000-7000-8000-0000000000ee";
  store_as_before(legacy, "old.qzx@example.test", "Old Qzx");
  EXPECT_EQ(users.get(legacy)->email, "old.qzx@example.test");         // read as it is
  EXPECT_EQ(users.find_by_email("Old.Qzx@example.test")->id, legacy);  // found as stored (a rolling upgrade)
  // And one an older instance made for an address a newer one had already indexed: the start-up pass leaves it
  // unindexed (logged) instead of failing, and the address keeps finding the indexed account.
  const std::string twin = "0190f1a2-0000-7000-8000-0000000000ef";
  store_as_before(twin, "ann.qzx@example.test", "Twin");
  EXPECT_EQ(users.protect_stored_accounts().value(), 1);
  EXPECT_EQ(users.protect_stored_accounts().value(), 0);
  EXPECT_EQ(users.find_by_email("ann.qzx@example.test")->id, ann->user.id);
  EXPECT_EQ(users.find_by_email("Old.Qzx@example.test")->id, legacy);
  EXPECT_EQ(users.get(legacy)->name, "Old Qzx");
  stored = control(row, {storage::Value(legacy)});
  EXPECT_TRUE(stored.text_at(0, 0).value().starts_with("enc1:m1:"));
  EXPECT_TRUE(stored.text_at(0, 1).value().starts_with("enc1:m1:"));
  EXPECT_EQ(users.get(bob->user.id)->email, "bob.qzx@example.test");
}

// The start-up pass over stored accounts reads only those it must protect: its scans are planned on the partial
// index users_unprotected (or, indexing only, users_email_index's NULLs), never on every account, with thousands of
// protected accounts stored.
TEST_P(FieldsAtRest, TheStartUpPassOverAccountsReadsOnlyThoseItMustProtect) {
  const bool postgres = GetParam().backend == storage::Backend::postgres;
  ASSERT_TRUE(platform().tenant_data->transact_platform([&](tenancy::PlatformTransaction& ptx) -> Result<void> {
    storage::Transaction& tx = ptx.control();
    const storage::Statement fill =
        postgres
            ? storage::Statement{"test_users_fill_pg",
                                 "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) "
                                 "SELECT gen_random_uuid(), 'enc1:m1:e' || g, 'enc1:m1:n' || g, '!none', now(), "
                                 "now() FROM generate_series(1, 5000) g"}
            : storage::Statement{"test_users_fill_sqlite",
                                 "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 5000) "
                                 "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) "
                                 "SELECT printf('0190f1a2-0000-7000-8000-%012d', n), 'enc1:m1:e' || n, "
                                 "'enc1:m1:n' || n, '!none', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z' FROM g"};
    if (auto r = tx.execute(fill); !r) return std::unexpected(r.error());
    const storage::Statement index_them{"test_users_index_them",
                                        "UPDATE users SET email_index = 'h1:' || email WHERE email_index IS NULL"};
    if (auto r = tx.execute(index_them); !r) return std::unexpected(r.error());
    if (auto r = tx.execute({"test_users_analyze", "ANALYZE users"}); !r) return std::unexpected(r.error());
    for (const bool sealing : {true, false}) {
      const storage::Statement scan = identity::UserStore::protection_scan(sealing);
      const std::string sql = std::string(postgres ? "EXPLAIN " : "EXPLAIN QUERY PLAN ") + std::string(scan.sql);
      auto plan = tx.execute({"test_users_scan_plan", sql}, {storage::Value("00000000-0000-0000-0000-000000000000")});
      if (!plan) return std::unexpected(plan.error());
      std::string text;
      for (std::size_t i = 0; i < plan->rows.size(); ++i)
        text += plan->text_at(i, postgres ? 0 : 3).value_or("") + "\n";
      // Indexing only (email_index IS NULL) implies the partial index's predicate too; either index reads only
      // the accounts still to do.
      EXPECT_TRUE(text.find("users_unprotected") != std::string::npos ||
                  (!sealing && text.find("users_email_index") != std::string::npos))
          << scan.name << ":\n"
          << text;
      EXPECT_EQ(text.find(postgres ? "Seq Scan" : "SCAN users"), std::string::npos) << scan.name << ":\n" << text;
    }
    return {};
  }));
  EXPECT_EQ(platform().users->protect_stored_accounts().value(), 0);
}

TEST_P(FieldsAtRest, PurgeShredsTheKeysSoABackupOpensNothingAndTheAuditLogStillVerifies) {
  write_personal_fields();
  std::string bravo_sealed;
  ASSERT_TRUE(platform().tenant_data->transact(b_, [&](TenantTransaction& tx) -> Result<void> {
    bravo_sealed = tx.seal(k_probe, "row", "bravo's").value();  // bravo's first data key, and its KEK
    return {};
  }));
  std::string stored_email;
  ASSERT_TRUE(platform().tenant_data->transact_control_plane(a_.id, [&](TenantTransaction& tx) -> Result<void> {
    auto rs = tx.execute({"test_account_email", "SELECT email FROM billing_accounts WHERE tenant_id = $1"});
    stored_email = rs->text_at(0, 0).value();
    return {};
  }));
  ASSERT_TRUE(tenancy::is_sealed(stored_email));
  const auto keys_before = platform().keyring->keys(a_.id).value();
  ASSERT_EQ(keys_before.size(), 1U);
  const std::string before_purge = backup();
  ASSERT_NE(before_purge.find(stored_email), std::string::npos);  // the backup holds the ciphertext

  ASSERT_TRUE(platform().update_tenant(a_.id, {.status = tenancy::TenantStatus::deleted}, k_who));
  ASSERT_TRUE(platform().purge_tenant(a_.id, k_who));
  EXPECT_TRUE(platform().keyring->keys(a_.id)->empty());

  // A restore of the backup brings the wrapped data keys and the ciphertext back; the key-encryption key that
  // wrapped them is gone from the key service, so nothing opens.
  auto opened = platform().keyring->open(a_.id, {"billing_accounts", "email"}, a_.id, stored_email);
  ASSERT_FALSE(opened);
  EXPECT_NE(opened.error().message.find("cannot be decrypted"), std::string::npos) << opened.error().message;
  auto kms = protection::make_local_key_service(
                 (std::filesystem::path(tp_->config().storage.data_dir) / "keys" / "kms").string(),
                 identity::load_key_encryption_key("", tp_->config().storage.data_dir).value())
                 .value();
  EXPECT_EQ(kms->latest_version(a_.id).value(), 0);
  EXPECT_GT(kms->latest_version(b_.id).value(), 0);  // bravo's keys untouched
  ASSERT_TRUE(platform().tenant_data->transact(b_, [&](TenantTransaction& tx) -> Result<void> {
    EXPECT_EQ(tx.open(k_probe, "row", bravo_sealed).value(), "bravo's");
    return {};
  }));

  auto report = platform().audit->verify(std::nullopt).value();
  EXPECT_TRUE(report.findings.empty());
  EXPECT_GT(report.entries, 0);
}

TEST_P(FieldsAtRest, RowsWrittenBeforeEncryptionAreReadAndThenSealedByReencryption) {
  // A value stored in the clear (written before encryption was turned on) still reads.
  ASSERT_TRUE(platform().tenant_data->transact(a_, [&](TenantTransaction& tx) -> Result<void> {
    EXPECT_TRUE(email::settings_store::put(tx, clock_, {"Old Sender", "", ""}));
    auto up = tx.execute({"test_clear_from_name", "UPDATE email_settings SET from_name = $2 WHERE tenant_id = $1"},
                         {storage::Value(std::string("Old Sender"))});
    EXPECT_EQ(up->affected_rows, 1);
    EXPECT_EQ(email::settings_store::get(tx)->from_name, "Old Sender");
    return {};
  }));
  auto summary =
      protection::reencrypt(*platform().tenant_data, *platform().keyring, a_, app::Platform::sealed_columns());
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_GE(summary->resealed, 1);
  ASSERT_TRUE(platform().tenant_data->transact(a_, [&](TenantTransaction& tx) -> Result<void> {
    auto rs = tx.execute({"test_from_name", "SELECT from_name FROM email_settings WHERE tenant_id = $1"});
    EXPECT_TRUE(rs->text_at(0, 0)->starts_with("enc1:"));
    EXPECT_EQ(email::settings_store::get(tx)->from_name, "Old Sender");
    return {};
  }));
  // A second pass has nothing to do.
  EXPECT_EQ(protection::reencrypt(*platform().tenant_data, *platform().keyring, a_, app::Platform::sealed_columns())
                ->resealed,
            0);
}

INSTANTIATE_TEST_SUITE_P(Levels, FieldsAtRest, all_isolation_cases(), isolation_case_name);

// Key rotation while requests read and write: KEK rotation re-wraps, data-key rotation re-encrypts, nothing fails,
// and afterwards no value is under the old data key and the old KEK version is gone.
class RotationUnderLoad : public ::testing::TestWithParam<IsolationCase> {};

TEST_P(RotationUnderLoad, NoRequestFailsAndNothingIsLeftUnderTheOldKeys) {
  Config config;
  config.protection.key_cache_ttl_ms = 0;  // every instance sees a rotation at once (no wait before dropping keys)
  auto tp = TestPlatform::create(GetParam().backend, config);
  if (!tp) GTEST_SKIP() << "PostgreSQL not configured";
  app::Platform& p = tp->platform();
  const auto tenant = create_test_tenant(p, "rotating", GetParam().isolation);
  billing::AccountUpdate account{.legal_name = "Rotating Ltd", .email = "billing@rotating.test", .currency = "EUR"};
  ASSERT_TRUE(p.billing->put_account(tenant.id, account, true, k_who));

  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<int> operations{0};
  std::vector<std::thread> load;
  for (int w = 0; w < 3; ++w) {
    load.emplace_back([&, w] {
      for (int i = 0; !stop.load(); ++i) {
        const std::string name = "Sender " + std::to_string(w) + "-" + std::to_string(i);
        auto r = p.tenant_data->transact(tenant, [&](TenantTransaction& tx) -> Result<void> {
          if (auto s = email::settings_store::put(tx, SystemClock::instance(), {name, "", ""}); !s) {
            return std::unexpected(s.error());
          }
          auto s = email::settings_store::get(tx);
          if (!s) return std::unexpected(s.error());
          if (s->from_name != name) return fail(Errc::internal, "read back " + s->from_name);
          return {};
        });
        auto a = p.billing->get_account(tenant.id);
        if (!r || !a || a->legal_name != "Rotating Ltd") {
          ++failures;
          ADD_FAILURE() << (!r ? r.error().message : !a ? a.error().message : a->legal_name);
        }
        ++operations;
      }
    });
  }
  while (operations.load() < 20) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto kek = p.keyring->rotate_kek(tenant.id);
  ASSERT_TRUE(kek) << kek.error().message;
  EXPECT_EQ(*kek, 2);
  auto dek = p.keyring->rotate_data_key(tenant.id);
  ASSERT_TRUE(dek) << dek.error().message;
  EXPECT_EQ(*dek, 2);
  const int before = operations.load();
  while (operations.load() < before + 20) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto pass = protection::reencrypt(*p.tenant_data, *p.keyring, tenant, app::Platform::sealed_columns());
  ASSERT_TRUE(pass) << pass.error().message;
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto final_pass = protection::reencrypt(*p.tenant_data, *p.keyring, tenant, app::Platform::sealed_columns());
  ASSERT_TRUE(final_pass);
  EXPECT_EQ(final_pass->old_versions_left, 0);
  EXPECT_EQ(final_pass->resealed, 0) << "every value was under data key 2 already";
  ASSERT_EQ(p.keyring->drop_retired(tenant.id).value(), 1);
  const auto keys = p.keyring->keys(tenant.id).value();
  ASSERT_EQ(keys.size(), 1U);
  EXPECT_EQ(keys[0].version, 2);
  EXPECT_EQ(keys[0].kek_version, 2);
  p.keyring->forget(tenant.id);  // as a fresh instance: everything opens from the database alone
  EXPECT_EQ(p.billing->get_account(tenant.id)->email, "billing@rotating.test");
}

INSTANTIATE_TEST_SUITE_P(Levels, RotationUnderLoad, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
