// SIEM export through a running platform, on both backends: entries reach a syslog receiver; while it is down
// requests go on and the backlog is visible in the metrics; when it is back every entry arrives exactly once.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/syslog_receiver.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;

class AuditExportTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam() == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
  }

  void open(const Config& config) {
    tp_ = TestPlatform::create(GetParam(), config);
    ASSERT_TRUE(tp_);
    ASSERT_TRUE(platform().start_audit_services());
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    auto root =
        client_->call(Method::post, "/v1/auth/token",
                      Json{{"grant_type", "password"}, {"email", "root@atrium.test"}, {"password", "root-password"}});
    ASSERT_EQ(root.status, 200);
    auto tenant = client_->call(Method::post, "/v1/admin/tenants",
                                Json{{"slug", "acme"},
                                     {"name", "Acme"},
                                     {"owner_email", "owner@acme.test"},
                                     {"owner_password", "owner-password"}},
                                root.body.value("access_token", ""));
    ASSERT_EQ(tenant.status, 201);
    auto owner = client_->call(Method::post, "/v1/auth/token",
                               Json{{"grant_type", "password"},
                                    {"email", "owner@acme.test"},
                                    {"password", "owner-password"},
                                    {"tenant", "acme"}});
    ASSERT_EQ(owner.status, 200);
    token_ = owner.body.value("access_token", "");
  }

  app::Platform& platform() { return tp_->platform(); }

  void create_projects(int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(client_->call(Method::post, "/v1/projects", Json{{"name", "p" + std::to_string(i)}}, token_).status,
                201);
    }
  }

  std::set<std::string> stored_ids() {
    std::set<std::string> ids;
    audit::Query q;
    q.limit = 500;
    while (true) {
      auto page = platform().audit->list(q);
      EXPECT_TRUE(page);
      if (!page) return ids;
      for (const auto& e : page->entries) ids.insert(e.id);
      if (!page->next_cursor) return ids;
      q.cursor = page->next_cursor;
    }
  }

  // The value of a sample in /metrics, e.g. atrium_audit_export_pending{sink="syslog"}.
  double metric(const std::string& sample) {
    const std::string text = platform().registry.render();
    const auto at = text.find("\n" + sample + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + sample.size() + 2));
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  std::string token_;
};

std::string entry_id(const std::string& syslog_message) {
  const auto json = syslog_message.find('{');
  if (json == std::string::npos) return "<no json>";
  auto parsed = Json::parse(syslog_message.substr(json), nullptr, false);
  return parsed.is_object() ? parsed.value("id", "<no id>") : "<bad json>";
}

TEST_P(AuditExportTest, ASinkThatWasDownReceivesEveryEntryOnce) {
  auto receiver = std::make_unique<Receiver>();
  ASSERT_TRUE(receiver->listening());
  const std::uint16_t port = receiver->port();
  Config config;
  config.audit.syslog_url = "tcp://127.0.0.1:" + std::to_string(port);
  config.audit.export_interval_ms = 20;
  config.audit.export_batch = 7;  // several batches per chain
  open(config);
  create_projects(10);

  auto first = receiver->wait_for(stored_ids().size());
  ASSERT_EQ(first.size(), stored_ids().size());

  // The receiver goes away; requests carry on and their entries wait in the database.
  receiver.reset();
  create_projects(15);
  const std::string pending = "atrium_audit_export_pending{sink=\"syslog\"}";
  const std::string failures = "atrium_audit_export_failures_total{sink=\"syslog\"}";
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((metric(pending) < 15 || metric(failures) < 1) && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(metric(pending), 15);
  EXPECT_GE(metric(failures), 1);

  // Back on the same port: the backlog arrives, and nothing twice.
  Receiver back(port);
  ASSERT_TRUE(back.listening());
  const auto all = stored_ids();
  auto second = back.wait_for(all.size() - first.size());
  std::vector<std::string> ids;
  for (const auto& m : first) ids.push_back(entry_id(m));
  for (const auto& m : second) ids.push_back(entry_id(m));
  EXPECT_EQ(ids.size(), all.size()) << "an entry was lost or sent twice";
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), all);
  while (metric(pending) != 0 && std::chrono::steady_clock::now() < give_up + std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(metric(pending), 0);
}

TEST_P(AuditExportTest, TheFileSinkGetsEachEntryAsAJsonLineInChainOrder) {
  const auto dir = std::filesystem::path(temp_dir("audit-file"));
  Config config;
  config.audit.file_path = (dir / "siem" / "audit.jsonl").string();
  config.audit.export_interval_ms = 20;
  open(config);
  create_projects(5);
  const auto all = stored_ids();

  std::vector<Json> lines;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (lines.size() < all.size() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    lines.clear();
    std::ifstream in(config.audit.file_path);
    for (std::string line; std::getline(in, line);) lines.push_back(Json::parse(line, nullptr, false));
  }
  ASSERT_EQ(lines.size(), all.size());
  std::map<std::string, std::int64_t> last_seq;
  std::set<std::string> ids;
  for (const auto& l : lines) {
    ASSERT_TRUE(l.is_object());
    ids.insert(l.value("id", ""));
    const std::string chain = l["chain"]["id"];
    const std::int64_t seq = l["chain"]["seq"];
    EXPECT_EQ(seq, last_seq[chain] + 1) << "chain " << chain << " out of order";
    last_seq[chain] = seq;
  }
  EXPECT_EQ(ids, all);
}

INSTANTIATE_TEST_SUITE_P(Backends, AuditExportTest, all_backends(), backend_name);

}  // namespace
}  // namespace atrium::test
