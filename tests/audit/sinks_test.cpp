#include "audit/sink.hpp"

#include "support/syslog_receiver.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace atrium::audit {
namespace {

namespace fs = std::filesystem;
using test::local_port;
using test::loopback;
using test::Receiver;
using test::set_timeouts;
using namespace std::chrono_literals;

// Safety limit for every wait in these tests; nothing is asserted about how long anything takes.
constexpr auto k_wait = 10s;

std::string describe(const Result<void>& result) {
  return result ? std::string("ok") : std::string(errc_name(result.error().code)) + ": " + result.error().message;
}

// A fresh directory under the system temp directory, removed with its contents at the end of the scope.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device random;
    path_ = fs::temp_directory_path() / ("atrium-sinks-test-" + std::to_string(::getpid()) + "-" +
                                         std::to_string(random()) + "-" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Audit lines of equal length (for sequence numbers below 10000).
std::string entry(int seq) {
  std::string number = std::to_string(seq);
  number.insert(0, 4 - std::min<std::size_t>(number.size(), 4), '0');
  return R"({"id":"e-)" + number + R"(","timestamp":"2026-11-27T10:15:30.123Z","action":"project.created"})";
}

std::vector<std::string> entries(int first, int count) {
  std::vector<std::string> out;
  for (int i = first; i < first + count; ++i) out.push_back(entry(i));
  return out;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::size_t count_files(const fs::path& dir) {
  return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

// The message a syslog sink with hostname "test-host" sends for `line` from this process.
std::string expected_message(const std::string& line, std::string_view timestamp = "2026-11-27T10:15:30.123Z") {
  return format_syslog(timestamp, "test-host", "atrium", static_cast<int>(::getpid()), line);
}

std::vector<std::string> expected_messages(const std::vector<std::string>& lines) {
  std::vector<std::string> out;
  for (const auto& line : lines) out.push_back(expected_message(line));
  return out;
}

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

std::unique_ptr<Sink> syslog_sink(const std::string& url, const std::string& ca_file = "") {
  SyslogSinkOptions options;
  options.url = url;
  options.ca_file = ca_file;
  options.hostname = "test-host";
  options.timeout = 5s;
  auto sink = make_syslog_sink(options);
  EXPECT_TRUE(sink) << sink.error().message;
  return sink ? std::move(*sink) : nullptr;
}

// ---------------------------------------------------------------------------------------------------------------
// format_syslog

TEST(AuditFormatSyslog, ProducesTheRfc5424Message) {
  EXPECT_EQ(format_syslog("2026-11-27T10:15:30.123Z", "web-1", "atrium", 4242, R"({"id":"e-1","n":1})"),
            R"(<110>1 2026-11-27T10:15:30.123Z web-1 atrium 4242 audit - {"id":"e-1","n":1})");
}

TEST(AuditFormatSyslog, EmptyFieldsAreNilAndSpacesAreReplaced) {
  EXPECT_EQ(format_syslog("", "", "my app", 7, "{}"), "<110>1 - - my_app 7 audit - {}");
  EXPECT_EQ(format_syslog("-", std::string(300, 'h'), std::string(60, 'a'), 1, "{}"),
            "<110>1 - " + std::string(255, 'h') + " " + std::string(48, 'a') + " 1 audit - {}");
}

// ---------------------------------------------------------------------------------------------------------------
// File sink

TEST(AuditFileSink, AppendsLinesToANewFileInNewDirectories) {
  const TempDir dir;
  const std::string path = dir.file("a/b/audit.jsonl");
  auto sink = make_file_sink({.path = path});
  ASSERT_TRUE(sink) << sink.error().message;
  EXPECT_EQ((*sink)->name(), "file");
  ASSERT_TRUE((*sink)->write(entries(0, 2))) << "first batch";
  ASSERT_TRUE((*sink)->write(entries(2, 3))) << "second batch";
  EXPECT_TRUE((*sink)->write({}));
  EXPECT_EQ(read_lines(path), entries(0, 5));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(AuditFileSink, RotatesAtMaxBytes) {
  const TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  const auto line_bytes = static_cast<std::int64_t>(entry(0).size() + 1);
  auto sink = make_file_sink({.path = path, .max_bytes = 3 * line_bytes, .max_files = 10});
  ASSERT_TRUE(sink) << sink.error().message;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE((*sink)->write(entries(i, 1))) << i;

  // Three lines fit in a file: 10 lines make path.3 (oldest) ... path.1 and path.
  EXPECT_EQ(count_files(dir.path()), 4u);
  EXPECT_FALSE(fs::exists(path + ".4"));
  std::vector<std::string> all;
  for (const std::string& name : {path + ".3", path + ".2", path + ".1", path}) {
    const auto lines = read_lines(name);
    EXPECT_LE(static_cast<std::int64_t>(fs::file_size(name)), 3 * line_bytes) << name;
    all.insert(all.end(), lines.begin(), lines.end());
  }
  EXPECT_EQ(all, entries(0, 10));  // every line once, older files holding older lines
  EXPECT_EQ(read_lines(path + ".1"), entries(6, 3));
  EXPECT_EQ(read_lines(path), entries(9, 1));
}

TEST(AuditFileSink, KeepsAtMostMaxFilesRotatedFiles) {
  const TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  const auto line_bytes = static_cast<std::int64_t>(entry(0).size() + 1);
  auto sink = make_file_sink({.path = path, .max_bytes = 3 * line_bytes, .max_files = 2});
  ASSERT_TRUE(sink) << sink.error().message;
  for (int i = 0; i < 10; i += 2) ASSERT_TRUE((*sink)->write(entries(i, 2))) << i;

  // Batches of two: each file holds one batch; only path.1 and path.2 are kept besides path.
  EXPECT_EQ(count_files(dir.path()), 3u);
  EXPECT_FALSE(fs::exists(path + ".3"));
  EXPECT_EQ(read_lines(path + ".2"), entries(4, 2));
  EXPECT_EQ(read_lines(path + ".1"), entries(6, 2));
  EXPECT_EQ(read_lines(path), entries(8, 2));
}

TEST(AuditFileSink, CountsAnExistingFileAndKeepsOversizedBatchesWhole) {
  const TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  const auto line_bytes = static_cast<std::int64_t>(entry(0).size() + 1);
  const FileSinkOptions options{.path = path, .max_bytes = 3 * line_bytes, .max_files = 3};
  {
    auto sink = make_file_sink(options);
    ASSERT_TRUE(sink) << sink.error().message;
    ASSERT_TRUE((*sink)->write(entries(0, 2)));
  }
  auto sink = make_file_sink(options);
  ASSERT_TRUE(sink) << sink.error().message;
  ASSERT_TRUE((*sink)->write(entries(2, 2)));  // 2 + 2 lines > 3: the earlier file is rotated first
  EXPECT_EQ(read_lines(path + ".1"), entries(0, 2));
  EXPECT_EQ(read_lines(path), entries(2, 2));
  ASSERT_TRUE((*sink)->write(entries(4, 5)));  // larger than max_bytes: rotated, then written whole
  EXPECT_EQ(read_lines(path + ".2"), entries(0, 2));
  EXPECT_EQ(read_lines(path + ".1"), entries(2, 2));
  EXPECT_EQ(read_lines(path), entries(4, 5));
}

TEST(AuditFileSink, RefusesInvalidOptions) {
  const TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  for (const FileSinkOptions& options : {FileSinkOptions{.path = ""}, FileSinkOptions{.path = path, .max_bytes = 0},
                                         FileSinkOptions{.path = path, .max_files = 0}}) {
    const auto sink = make_file_sink(options);
    ASSERT_FALSE(sink) << options.path;
    EXPECT_EQ(sink.error().code, Errc::invalid_argument);
  }
}

TEST(AuditFileSink, ErrorsNameThePath) {
  const TempDir dir;
  std::ofstream(dir.file("plain")) << "not a directory";
  const std::string path = dir.file("plain/audit.jsonl");
  const auto sink = make_file_sink({.path = path});
  ASSERT_FALSE(sink);
  EXPECT_EQ(sink.error().code, Errc::unavailable);
  EXPECT_NE(sink.error().message.find(path), std::string::npos) << sink.error().message;
}

TEST(AuditFileSink, ReportsAFullDisk) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no writable /dev/full";
  auto sink = make_file_sink({.path = "/dev/full"});
  ASSERT_TRUE(sink) << sink.error().message;
  const auto written = (*sink)->write(entries(0, 1));
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().code, Errc::unavailable);
  EXPECT_NE(written.error().message.find("/dev/full"), std::string::npos) << written.error().message;
  EXPECT_NE(written.error().message.find(std::strerror(ENOSPC)), std::string::npos) << written.error().message;
}

// ---------------------------------------------------------------------------------------------------------------
// Syslog sink

TEST(AuditSyslogSink, RefusesInvalidUrls) {
  for (const std::string url :
       {"ftp://x", "udp://host", "tcp://:0", "tcp://:514", "tcp://host:0", "tcp://host:65536", "tcp://host:5x",
        "tls://[::1", "tcp://::1:514", "udp://host:514/path", "host:514", "tcp://user@host:514", ""}) {
    const auto sink = make_syslog_sink({.url = url});
    ASSERT_FALSE(sink) << url;
    EXPECT_EQ(sink.error().code, Errc::invalid_argument) << url;
  }
  for (const std::string url : {"udp://127.0.0.1:514", "tcp://[::1]:6514", "tls://logs.example.com:6514"}) {
    const auto sink = make_syslog_sink({.url = url});
    ASSERT_TRUE(sink) << url << ": " << sink.error().message;
    EXPECT_EQ((*sink)->name(), "syslog");
  }
  EXPECT_FALSE(make_syslog_sink({.url = "udp://127.0.0.1:514", .app_name = "has space"}));
  EXPECT_FALSE(make_syslog_sink({.url = "udp://127.0.0.1:514", .timeout = 0ms}));
}

TEST(AuditSyslogSink, UdpSendsOneDatagramPerLine) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  const sockaddr_in addr = loopback(0);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  set_timeouts(fd, k_wait);
  auto sink = syslog_sink("udp://127.0.0.1:" + std::to_string(local_port(fd)));
  ASSERT_TRUE(sink);

  const std::vector<std::string> lines = {
      R"({"id":"a","timestamp":"2026-11-27T10:15:30.123Z"})",
      R"({"id":"b"})",                                               // no timestamp: "-"
      R"({"id":"c","timestamp":"2026-11-27t10:15:30.123456789z"})",  // cut to microseconds, upper-cased
      R"({"id":"d","timestamp":"2026-11-27T11:15:30+01:00"})",
      R"({"id":"e","timestamp":"yesterday"})",
      "not JSON",
  };
  const std::vector<std::string> expected = {
      expected_message(lines[0]),
      expected_message(lines[1], "-"),
      expected_message(lines[2], "2026-11-27T10:15:30.123456Z"),
      expected_message(lines[3], "2026-11-27T11:15:30+01:00"),
      expected_message(lines[4], "-"),
      expected_message(lines[5], "-"),
  };
  const auto written = sink->write(lines);
  ASSERT_TRUE(written) << describe(written);
  for (const auto& want : expected) {
    char buffer[65536];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    ASSERT_GT(n, 0) << "no datagram for " << want;
    EXPECT_EQ(std::string(buffer, static_cast<std::size_t>(n)), want);
  }
  ::close(fd);
}

TEST(AuditSyslogSink, UdpReportsARefusingPort) {
  // A port nothing is bound to answers with ICMP port unreachable, which fails a later send on the socket.
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const sockaddr_in addr = loopback(0);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  const std::uint16_t port = local_port(fd);
  ::close(fd);
  auto sink = syslog_sink("udp://127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(sink);
  // The ICMP message may be processed late (or rate-limited) on a busy host: keep sending until one send fails.
  std::optional<Error> error;
  const auto give_up = std::chrono::steady_clock::now() + k_wait;
  for (int i = 0; !error && std::chrono::steady_clock::now() < give_up; ++i) {
    if (auto written = sink->write(entries(i % 1000, 2)); !written) error = written.error();
    if (!error) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(error) << "every send succeeded";
  EXPECT_EQ(error->code, Errc::unavailable);
  EXPECT_NE(error->message.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << error->message;
}

TEST(AuditSyslogSink, TcpDeliversOctetCountedFramesInOrder) {
  Receiver receiver;
  ASSERT_TRUE(receiver.listening());
  auto sink = syslog_sink("tcp://127.0.0.1:" + std::to_string(receiver.port()));
  ASSERT_TRUE(sink);
  const auto lines = entries(0, 20);
  for (int i = 0; i < 20; i += 5) {
    const auto written = sink->write(std::span(lines).subspan(i, 5));
    ASSERT_TRUE(written) << describe(written);
  }
  const auto messages = receiver.wait_for(20);
  EXPECT_EQ(messages, expected_messages(lines));
  ASSERT_EQ(messages.size(), lines.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto msg = messages[i].find(" audit - ");
    ASSERT_NE(msg, std::string::npos) << messages[i];
    EXPECT_EQ(nlohmann::json::parse(messages[i].substr(msg + 9)), nlohmann::json::parse(lines[i]));
  }
  EXPECT_EQ(receiver.connections(), 1);  // one connection for every batch
}

TEST(AuditSyslogSink, TcpReconnectsWhenTheReceiverClosedTheConnection) {
  Receiver receiver;
  ASSERT_TRUE(receiver.listening());
  auto sink = syslog_sink("tcp://127.0.0.1:" + std::to_string(receiver.port()));
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->write(entries(0, 3)));
  ASSERT_EQ(receiver.wait_for(3).size(), 3u);
  receiver.drop_connections();
  // Written into the closed connection these would be lost without an error; the sink notices and reconnects.
  const auto written = sink->write(entries(3, 3));
  ASSERT_TRUE(written) << describe(written);
  EXPECT_EQ(receiver.wait_for(6), expected_messages(entries(0, 6)));
  EXPECT_EQ(receiver.connections(), 2);
}

TEST(AuditSyslogSink, TcpFailsWhileTheReceiverIsDownAndRecoversOnRetry) {
  auto first = std::make_unique<Receiver>();
  ASSERT_TRUE(first->listening());
  const std::uint16_t port = first->port();
  auto sink = syslog_sink("tcp://127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->write(entries(0, 4)));
  EXPECT_EQ(first->wait_for(4), expected_messages(entries(0, 4)));
  first->stop();  // closes the connection and stops listening

  const auto batch = entries(4, 4);
  const auto failed = sink->write(batch);
  ASSERT_FALSE(failed) << "written into a closed connection";
  EXPECT_EQ(failed.error().code, Errc::unavailable);
  EXPECT_NE(failed.error().message.find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << failed.error().message;

  Receiver second(port);
  ASSERT_TRUE(second.listening()) << "port " << port << " was taken meanwhile";
  const auto retried = sink->write(batch);  // the caller retries the failed batch
  ASSERT_TRUE(retried) << describe(retried);
  EXPECT_EQ(second.wait_for(4), expected_messages(batch));
}

// Self-signed certificates made with the openssl command, and a TLS server context for each.
class AuditSyslogTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("openssl version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no openssl command";
    ASSERT_TRUE(make_cert("localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1"));
    ASSERT_TRUE(make_cert("other", "subjectAltName=DNS:other.example"));
    localhost_ = server_context("localhost");
    other_ = server_context("other");
    ASSERT_TRUE(localhost_ && other_);
  }

  bool make_cert(const std::string& name, const std::string& san) {
    const std::string command = "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=" + name + " -addext " + san +
                                " -days 1 -keyout '" + key(name) + "' -out '" + cert(name) + "' >/dev/null 2>&1";
    return std::system(command.c_str()) == 0;
  }

  SslCtxPtr server_context(const std::string& name) {
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx || SSL_CTX_use_certificate_file(ctx.get(), cert(name).c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx.get(), key(name).c_str(), SSL_FILETYPE_PEM) != 1) {
      return nullptr;
    }
    return ctx;
  }

  std::string cert(const std::string& name) const { return dir_.file(name + ".crt"); }
  std::string key(const std::string& name) const { return dir_.file(name + ".key"); }

  TempDir dir_;
  SslCtxPtr localhost_;
  SslCtxPtr other_;
};

TEST_F(AuditSyslogTlsTest, DeliversToAVerifiedServer) {
  Receiver receiver(0, localhost_.get());
  ASSERT_TRUE(receiver.listening());
  const auto once = expected_messages(entries(0, 6));
  auto expected = once;
  for (const std::string host : {"localhost", "127.0.0.1"}) {
    auto sink = syslog_sink("tls://" + host + ":" + std::to_string(receiver.port()), cert("localhost"));
    ASSERT_TRUE(sink);
    const auto first = sink->write(entries(0, 3));
    ASSERT_TRUE(first) << host << ": " << describe(first);
    const auto second = sink->write(entries(3, 3));  // same connection (after the server's session tickets)
    ASSERT_TRUE(second) << host << ": " << describe(second);
    EXPECT_EQ(receiver.wait_for(expected.size()), expected) << host;
    expected.insert(expected.end(), once.begin(), once.end());
  }
  EXPECT_EQ(receiver.connections(), 2);
}

TEST_F(AuditSyslogTlsTest, ReconnectsWhenTheServerClosedTheConnection) {
  Receiver receiver(0, localhost_.get());
  ASSERT_TRUE(receiver.listening());
  auto sink = syslog_sink("tls://localhost:" + std::to_string(receiver.port()), cert("localhost"));
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->write(entries(0, 2)));
  ASSERT_EQ(receiver.wait_for(2).size(), 2u);
  receiver.drop_connections();
  const auto written = sink->write(entries(2, 2));
  ASSERT_TRUE(written) << describe(written);
  EXPECT_EQ(receiver.wait_for(4), expected_messages(entries(0, 4)));
  EXPECT_EQ(receiver.connections(), 2);
}

TEST_F(AuditSyslogTlsTest, RefusesAServerSignedByAnotherCa) {
  Receiver receiver(0, localhost_.get());
  ASSERT_TRUE(receiver.listening());
  auto sink = syslog_sink("tls://localhost:" + std::to_string(receiver.port()), cert("other"));
  ASSERT_TRUE(sink);
  const auto written = sink->write(entries(0, 1));
  ASSERT_FALSE(written) << "delivered to an unverified server";
  EXPECT_EQ(written.error().code, Errc::unavailable);
  EXPECT_NE(written.error().message.find("certificate"), std::string::npos) << written.error().message;
}

TEST_F(AuditSyslogTlsTest, RefusesACertificateForAnotherHost) {
  Receiver receiver(0, other_.get());  // trusted (its own CA) but issued to other.example
  ASSERT_TRUE(receiver.listening());
  auto sink = syslog_sink("tls://localhost:" + std::to_string(receiver.port()), cert("other"));
  ASSERT_TRUE(sink);
  const auto written = sink->write(entries(0, 1));
  ASSERT_FALSE(written) << "delivered to a server with another host's certificate";
  EXPECT_EQ(written.error().code, Errc::unavailable);
}

TEST_F(AuditSyslogTlsTest, ReportsAMissingCaFile) {
  Receiver receiver(0, localhost_.get());
  ASSERT_TRUE(receiver.listening());
  const std::string missing = dir_.file("missing.crt");
  auto sink = syslog_sink("tls://localhost:" + std::to_string(receiver.port()), missing);
  ASSERT_TRUE(sink);  // not read until the first connection
  const auto written = sink->write(entries(0, 1));
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().code, Errc::unavailable);
  EXPECT_NE(written.error().message.find(missing), std::string::npos) << written.error().message;
}

}  // namespace
}  // namespace atrium::audit
