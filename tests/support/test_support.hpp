#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace atrium::test {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// A deliberately low-level HTTP client over a blocking loopback socket, so tests can send malformed, slow or
// pipelined bytes. Every read has a deadline; nothing blocks forever.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port);
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Returns false when the peer has closed or reset the connection.
  bool send(const std::string& bytes);
  // Reads one response (Content-Length framed; pass has_body=false for a response to HEAD). nullopt on timeout
  // or when the connection closes first.
  std::optional<RawResponse> read_response(std::chrono::milliseconds timeout = std::chrono::seconds(10),
                                           bool has_body = true);
  // True when the server closes the connection within the timeout.
  bool wait_closed(std::chrono::milliseconds timeout);

 private:
  bool fill(std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
};

// One request on a fresh connection ("Connection: close").
std::optional<RawResponse> http_get(std::uint16_t port, const std::string& path);

// A fresh empty directory under the system temp directory.
std::string temp_dir(const std::string& name);

// The raw text of every mail the embedded transport delivered to `<data_dir>/mail` (whole .eml files only: a
// message being written is a hidden temporary file until it is renamed), in file-name (time) order.
std::vector<std::string> delivered_mails(const std::string& data_dir);

// Whether every service must be there: ATRIUM_TEST_REQUIRE_SERVICES=1, which scripts/test.sh (and so CI) sets.
// Then a test that needs a service that is not configured fails instead of skipping, and the test command fails
// the run if any test skipped at all (tests/allowed_skips.txt lists the exceptions).
bool services_required();

// In a test body or SetUp: when `missing` holds, the service `variable` names is not configured; the test fails
// if services are required, else skips.
#define ATRIUM_MISSING_SERVICE(missing, variable)                                                            \
  do {                                                                                                       \
    if (missing) {                                                                                           \
      if (::atrium::test::services_required()) FAIL() << variable " is not set (scripts/test.sh starts it)"; \
      GTEST_SKIP() << variable " is not set";                                                                \
    }                                                                                                        \
  } while (0)

// The PostgreSQL server the test command started (ATRIUM_TEST_POSTGRES_URL), or nullopt.
std::optional<std::string> postgres_url();

// A PostgreSQL URL with its database replaced by `database`, and the database a URL names.
std::string with_database(const std::string& url, const std::string& database);
std::string database_of(const std::string& url);

// The Redis server the test command started (ATRIUM_TEST_REDIS_URL), or nullopt.
std::optional<std::string> redis_url();

// A loopback TCP port nothing listens on (bound, then released).
std::uint16_t closed_port();

// A positive outcome within a deadline: polls `pred` every 20 ms until it holds or `timeout` passes, and returns its
// last answer. For "nothing more arrives", wait for the product to settle instead (test_platform.hpp's settled()).
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

}  // namespace atrium::test
