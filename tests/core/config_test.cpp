#include "core/config.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "support/test_support.hpp"

namespace atrium {
namespace {

std::string write_file(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(Config, DefaultsAreTheDocumentedOnes) {
  auto c = load_config("", {}, {});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->server.listen, "127.0.0.1:8080");
  EXPECT_EQ(c->server.max_body_bytes, 1 << 20);
  EXPECT_EQ(c->server.max_header_bytes, 16 << 10);
  EXPECT_EQ(c->server.max_json_depth, 64);
  EXPECT_EQ(c->storage.data_dir, "./data");
  EXPECT_TRUE(c->storage.database_url.empty());
  EXPECT_TRUE(c->storage.migrate_on_start);
}

TEST(Config, EnvironmentOverridesFileAndFlagsOverrideEnvironment) {
  const auto dir = test::temp_dir("config");
  const auto path =
      write_file(dir, "a.toml", "[server]\nio_threads = 3\nlisten = \"127.0.0.1:9000\"\n[log]\naccess_log = false\n");
  auto c = load_config(path, {"ATRIUM_SERVER_IO_THREADS=5", "ATRIUM_LOG_LEVEL=debug", "PATH=/bin"},
                       {{"server.listen", "127.0.0.1:9100"}});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->server.io_threads, 5);
  EXPECT_EQ(c->server.listen, "127.0.0.1:9100");
  EXPECT_EQ(c->log.level, "debug");
  EXPECT_FALSE(c->log.access_log);
}

TEST(Config, UnknownTomlKeyIsNamed) {
  const auto dir = test::temp_dir("config");
  const auto path = write_file(dir, "a.toml", "[server]\nlisten_port = 3\n");
  auto c = load_config(path, {}, {});
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("server.listen_port"), std::string::npos) << c.error().message;
}

TEST(Config, UnknownSectionIsRefused) {
  const auto dir = test::temp_dir("config");
  auto c = load_config(write_file(dir, "a.toml", "[servre]\nlisten = \"x\"\n"), {}, {});
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("servre"), std::string::npos);
}

TEST(Config, WrongTomlTypeIsNamed) {
  const auto dir = test::temp_dir("config");
  auto c = load_config(write_file(dir, "a.toml", "[server]\nio_threads = \"four\"\n"), {}, {});
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("server.io_threads"), std::string::npos);
}

TEST(Config, TomlSyntaxErrorNamesTheLine) {
  const auto dir = test::temp_dir("config");
  auto c = load_config(write_file(dir, "a.toml", "[server]\n\nlisten = \n"), {}, {});
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find(":3:"), std::string::npos) << c.error().message;
}

TEST(Config, UnknownEnvironmentKeyInKnownSectionIsRefused) {
  auto c = load_config("", {"ATRIUM_SERVER_NOPE=1"}, {});
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("ATRIUM_SERVER_NOPE"), std::string::npos);
}

TEST(Config, EnvironmentVariablesOfOtherToolsAreIgnored) {
  auto c = load_config("", {"ATRIUM_TEST_POSTGRES_URL=postgresql://x", "ATRIUM_BINARY=/x"}, {});
  EXPECT_TRUE(c) << c.error().message;
}

TEST(Config, BadIntegerAndOutOfRangeAreNamed) {
  for (const char* env :
       {"ATRIUM_SERVER_IO_THREADS=abc", "ATRIUM_SERVER_IO_THREADS=9999", "ATRIUM_SERVER_IO_THREADS=4x"}) {
    auto c = load_config("", {env}, {});
    ASSERT_FALSE(c) << env;
    EXPECT_NE(c.error().message.find("server.io_threads"), std::string::npos) << c.error().message;
  }
}

TEST(Config, BadBooleanIsNamed) {
  auto c = load_config("", {"ATRIUM_STORAGE_MIGRATE_ON_START=maybe"}, {});
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("storage.migrate_on_start"), std::string::npos);
}

TEST(Config, CrossKeyRulesAreChecked) {
  EXPECT_FALSE(load_config("", {}, {{"server.listen", "localhost"}}));
  EXPECT_FALSE(load_config("", {}, {{"server.listen", "127.0.0.1:70000"}}));
  EXPECT_FALSE(load_config("", {}, {{"server.tls_cert", "/etc/hostname"}}));  // key missing
  EXPECT_FALSE(load_config("", {}, {{"server.tls_cert", "/nonexistent"}, {"server.tls_key", "/nonexistent"}}));
  EXPECT_FALSE(load_config("", {}, {{"log.level", "loud"}}));
  EXPECT_FALSE(load_config("", {}, {{"storage.database_url", "mysql://x"}}));
  EXPECT_TRUE(load_config("", {}, {{"server.listen", "[::1]:8080"}}));
  EXPECT_TRUE(load_config("", {}, {{"server.listen", "api.example.com:443"}}));
  // An IPv6 address needs brackets (found by fuzz_config: "::1:8080" read as host "::1"), and a host is a name or
  // an address, nothing else.
  for (const char* bad : {"::1:8080", "[::1]]:8080", "a b:80", ":80", "host\t:80", "[]:80", "h[x]:80"}) {
    auto c = load_config("", {}, {{"server.listen", bad}});
    ASSERT_FALSE(c) << bad;
    EXPECT_NE(c.error().message.find("server.listen"), std::string::npos) << c.error().message;
  }
}

TEST(Config, RenderListsEveryKeyAndRedactsPasswords) {
  auto c =
      load_config("", {}, {{"storage.database_url", "postgresql://app:s3cret@db.internal:5432/atrium?password=two"}});
  ASSERT_TRUE(c);
  const std::string text = render_config(*c);
  for (const auto& key : config_keys()) EXPECT_NE(text.find(key + " = "), std::string::npos) << key;
  EXPECT_EQ(text.find("s3cret"), std::string::npos) << text;
  EXPECT_EQ(text.find("two"), std::string::npos) << text;
  EXPECT_NE(text.find("postgresql://app:***@db.internal:5432/atrium"), std::string::npos) << text;
}

// Every key's default as docs/configuration.md states it (the first `...` of the table's default column) is the one
// `atrium config check` renders for an empty configuration: a default changed in the code or in the docs alone fails.
// Among them the ones no other test would notice: the webhook retry schedule, the rate-limit defaults, the retention
// periods.
TEST(Config, EveryDocumentedDefaultIsTheEffectiveOne) {
  std::ifstream doc(std::string(ATRIUM_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(doc) << "docs/configuration.md is missing";
  auto c = load_config("", {}, {});
  ASSERT_TRUE(c) << c.error().message;
  std::map<std::string, std::string> effective;
  std::istringstream rendered(render_config(*c));
  for (std::string line; std::getline(rendered, line);) {
    if (const auto eq = line.find(" = "); eq != std::string::npos) effective[line.substr(0, eq)] = line.substr(eq + 3);
  }
  // Rows "| `key` | type | ... `default` ... | meaning |" of the tables.
  std::map<std::string, std::string> documented;
  for (std::string line; std::getline(doc, line);) {
    if (!line.starts_with("| `")) continue;
    const auto key_end = line.find('`', 3);
    const auto key_cell_end = line.find(" | ", key_end);
    const auto type_end = key_cell_end == std::string::npos ? key_cell_end : line.find(" | ", key_cell_end + 3);
    const auto default_end = type_end == std::string::npos ? type_end : line.find(" | ", type_end + 3);
    if (key_end == std::string::npos || default_end == std::string::npos) continue;
    const std::string cell = line.substr(type_end + 3, default_end - type_end - 3);
    const auto open = cell.find('`');
    const auto close = open == std::string::npos ? open : cell.find('`', open + 1);
    if (close == std::string::npos) continue;
    documented[line.substr(3, key_end - 3)] = cell.substr(open + 1, close - open - 1);
  }
  for (const auto& key : config_keys()) {
    SCOPED_TRACE(key);
    ASSERT_TRUE(documented.count(key)) << "no default in the docs' table";
    ASSERT_TRUE(effective.count(key)) << "not rendered";
    EXPECT_EQ(documented[key], effective[key]);
  }
  EXPECT_EQ(documented.size(), config_keys().size()) << "the docs' tables list keys the configuration does not have";
  EXPECT_EQ(effective.at("webhooks.retry_schedule"), R"("30s,2m,10m,30m,1h,3h,6h,12h,24h,24h")");
  EXPECT_EQ(effective.at("gateway.default_requests_per_second"), "100");
  EXPECT_EQ(effective.at("gateway.default_burst"), "200");
  EXPECT_EQ(effective.at("audit.retention_days"), "365");
  EXPECT_EQ(effective.at("webhooks.retain_deliveries_days"), "30");
  EXPECT_EQ(effective.at("billing.retain_invoices_years"), "10");
}

TEST(Config, DocumentationListsEveryKey) {
  std::ifstream doc(std::string(ATRIUM_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(doc) << "docs/configuration.md is missing";
  const std::string text((std::istreambuf_iterator<char>(doc)), std::istreambuf_iterator<char>());
  for (const auto& key : config_keys()) EXPECT_NE(text.find("`" + key + "`"), std::string::npos) << key;
}

}  // namespace
}  // namespace atrium
