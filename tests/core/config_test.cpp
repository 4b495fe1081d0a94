#include "core/config.hpp"

#include <gtest/gtest.h>

#include <fstream>

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

TEST(Config, DocumentationListsEveryKey) {
  std::ifstream doc(std::string(ATRIUM_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(doc) << "docs/configuration.md is missing";
  const std::string text((std::istreambuf_iterator<char>(doc)), std::istreambuf_iterator<char>());
  for (const auto& key : config_keys()) EXPECT_NE(text.find("`" + key + "`"), std::string::npos) << key;
}

}  // namespace
}  // namespace atrium
