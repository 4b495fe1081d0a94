#include "webhooks/sender.hpp"

#include "support/http_receiver.hpp"
#include "support/syslog_receiver.hpp"
#include "support/test_support.hpp"
#include "webhooks/signature.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace atrium::webhooks {
namespace {

using namespace std::chrono_literals;
using test::HttpReceiver;

constexpr char kBody[] = R"({"event":"project.created","id":"evt_1"})";

SendOptions loopback_options() {
  SendOptions options;
  options.allow_private_addresses = true;
  options.connect_timeout = 2s;
  options.total_timeout = 5s;
  return options;
}

// ---------------------------------------------------------------------------------------------------------------
// is_private_address

TEST(WebhookAddressTest, PrivateLoopbackLinkLocalAndMappedAddressesArePrivate) {
  for (const std::string ip : {"10.0.0.1",
                               "10.255.255.255",
                               "172.16.0.1",
                               "172.31.255.254",
                               "192.168.0.1",
                               "192.168.1.20",
                               "127.0.0.1",
                               "127.1.2.3",
                               "169.254.169.254",
                               "100.64.0.1",
                               "100.127.255.255",
                               "0.0.0.0",
                               "0.1.2.3",
                               "224.0.0.1",
                               "239.255.255.250",
                               "255.255.255.255",
                               "240.0.0.1",
                               "192.0.0.8",
                               "198.18.0.1",
                               "::",
                               "::1",
                               "fc00::",
                               "fd12:3456::1",
                               "fe80::1",
                               "febf::1",
                               "fec0::1",
                               "ff02::1",
                               "::ffff:127.0.0.1",
                               "::ffff:10.1.2.3",
                               "::ffff:169.254.169.254",
                               "::ffff:7f00:1",
                               "::127.0.0.1",
                               "64:ff9b::a00:1",
                               "2002:c0a8:0101::1",
                               "::ffff:0:192.168.0.1",
                               "fbff::1"}) {  // outside 2000::/3, not allocated for global unicast
    EXPECT_TRUE(is_private_address(ip)) << ip;
  }
}

TEST(WebhookAddressTest, DocumentationRangesAreRefused) {
  for (const std::string ip :
       {"192.0.2.0", "192.0.2.1", "192.0.2.255", "198.51.100.0", "198.51.100.7", "198.51.100.255", "203.0.113.0",
        "203.0.113.7", "203.0.113.255", "2001:db8::", "2001:db8::1", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        "3fff::", "3fff::1", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff"}) {
    EXPECT_TRUE(is_private_address(ip)) << ip;
  }
}

// The first and last address of every refused range, and one inside.
TEST(WebhookAddressTest, EverySpecialPurposeRangeThatIsNotGloballyReachableIsRefused) {
  for (const std::string ip : {
           "0.0.0.0",
           "0.255.255.255",  // 0/8
           "10.0.0.0",
           "10.255.255.255",  // 10/8
           "100.64.0.0",
           "100.100.100.100",
           "100.127.255.255",  // 100.64/10
           "127.0.0.0",
           "127.255.255.255",  // 127/8
           "169.254.0.0",
           "169.254.255.255",  // 169.254/16
           "172.16.0.0",
           "172.20.1.1",
           "172.31.255.255",  // 172.16/12
           "192.0.0.0",
           "192.0.0.9",
           "192.0.0.170",
           "192.0.0.255",  // 192.0.0/24
           "192.88.99.0",
           "192.88.99.1",
           "192.88.99.255",  // 192.88.99/24
           "192.168.0.0",
           "192.168.255.255",  // 192.168/16
           "198.18.0.0",
           "198.19.255.255",  // 198.18/15
           "224.0.0.0",
           "232.1.2.3",
           "239.255.255.255",  // 224/4
           "240.0.0.0",
           "250.1.2.3",
           "255.255.255.254",  // 240/4
           "255.255.255.255",  // broadcast
           "::",
           "::1",  // unspecified, loopback
           "::2",
           "::8.8.8.8",
           "::ffff",  // IPv4-compatible ::/96
           "64:ff9b:1::",
           "64:ff9b:1::808:808",
           "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",  // 64:ff9b:1::/48
           "100::",
           "100::1",
           "100::ffff:ffff:ffff:ffff",  // 100::/64 discard-only
           "100:0:0:1::1",              // 100:0:0:1::/64 dummy
           "2001::",
           "2001::1",
           "2001:0:4136:e378:8000:63bf:3fff:fdd2",  // Teredo 2001::/32
           "2001:1::1",
           "2001:2::1",
           "2001:3::1",
           "2001:4:112::1",  // within 2001::/23
           "2001:10::1",
           "2001:1f:ffff::1",  // ORCHID 2001:10::/28
           "2001:20::1",
           "2001:2f:ffff::1",                         // ORCHIDv2 2001:20::/28
           "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",  // end of 2001::/23
           "3fff::1",                                 // 3fff::/20
           "5f00::",
           "5f00::1",
           "5f00:ffff::1",  // 5f00::/16
           "fc00::",
           "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",  // fc00::/7
           "fe80::",
           "febf:ffff::1",  // fe80::/10
           "fec0::1",
           "feff::1",  // fec0::/10
           "ff00::",
           "ff02::1",
           "ff0e::1",
           "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",  // ff00::/8
           "::ffff:0:0",
           "::ffff:0.0.0.1",  // ::ffff:0:0/96 mapping 0/8
           "1::1",
           "1000::1",
           "4000::1",
           "8000::1",
           "e000::1",  // outside 2000::/3
       }) {
    EXPECT_TRUE(is_private_address(ip)) << ip;
  }
}

// IPv4-mapped, NAT64 and 6to4 forms of refused IPv4 addresses reach those IPv4 addresses: refused too.
TEST(WebhookAddressTest, EmbeddedForbiddenIpv4AddressesAreRefused) {
  for (const std::string v4 : {"10.1.2.3", "127.0.0.1", "169.254.169.254", "172.16.5.4", "192.168.1.1", "100.64.0.1",
                               "0.0.0.0", "192.0.2.1", "198.51.100.1", "203.0.113.1", "192.0.0.1", "192.88.99.1",
                               "198.18.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255"}) {
    in_addr a{};
    ASSERT_EQ(inet_pton(AF_INET, v4.c_str(), &a), 1) << v4;
    const auto* b = reinterpret_cast<const unsigned char*>(&a);
    std::array<unsigned char, 16> six_to_four{0x20, 0x02, b[0], b[1], b[2], b[3]};
    six_to_four[15] = 1;
    std::array<char, INET6_ADDRSTRLEN> text{};
    ASSERT_NE(inet_ntop(AF_INET6, six_to_four.data(), text.data(), text.size()), nullptr);
    for (const std::string& ip : {"::ffff:" + v4, "64:ff9b::" + v4, std::string(text.data())}) {
      EXPECT_TRUE(is_private_address(ip)) << ip;
    }
  }
  for (const std::string ip : {"::ffff:a00:1", "64:ff9b::c0a8:101", "64:ff9b::a9fe:a9fe",
                               "2002:a00:1::", "2002:7f00:1::1", "2002:c000:201::1", "2002:a9fe:a9fe:1234::1"}) {
    EXPECT_TRUE(is_private_address(ip)) << ip;
  }
}

TEST(WebhookAddressTest, PublicAddressesAreAllowed) {
  for (const std::string ip :
       {"8.8.8.8",      "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1", "192.0.1.255",
        "192.0.3.0",    "198.51.99.255",   "198.51.101.0",   "203.0.112.255",    "203.0.114.0",     "192.88.98.255",
        "192.88.100.0", "198.17.255.255",  "198.20.0.0",     "223.255.255.255",  "2001:200::1",     "2001:db7:ffff::1",
        "2001:db9::1",  "3ffe::1",         "3fff:1000::1",   "2400:cb00::1"}) {
    EXPECT_FALSE(is_private_address(ip)) << ip;
  }
}

TEST(WebhookAddressTest, PublicAddressesAreNot) {
  for (const std::string ip : {"8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1",
                               "169.253.0.1", "192.169.0.1", "11.0.0.1", "223.255.255.255", "2606:4700::1",
                               "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"}) {
    EXPECT_FALSE(is_private_address(ip)) << ip;
  }
}

TEST(WebhookAddressTest, TextThatIsNotAnAddressFailsClosed) {
  for (const std::string text : {"", "localhost", "example.com", "127.1", "0x7f.0.0.1", "2130706433", "1.2.3.4.5",
                                 "fe80::1%eth0", "[::1]", " 8.8.8.8"}) {
    EXPECT_TRUE(is_private_address(text)) << text;
  }
}

// The host's own addresses, listed here with getifaddrs independently of the guard.
struct InterfaceAddress {
  std::string name;  // the interface: "eth0"
  int family = 0;
  std::string text;  // inet_ntop
};

std::vector<InterfaceAddress> interface_addresses() {
  std::vector<InterfaceAddress> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    std::array<char, INET6_ADDRSTRLEN> text{};
    const int family = i->ifa_addr->sa_family;
    if (family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, text.data(), text.size());
    } else if (family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr, text.data(), text.size());
    } else {
      continue;
    }
    out.push_back({i->ifa_name, family, text.data()});
  }
  ::freeifaddrs(list);
  return out;
}

bool is_loopback(const InterfaceAddress& a) {
  return a.text == "::1" || (a.family == AF_INET && a.text.rfind("127.", 0) == 0);
}

TEST(WebhookAddressTest, HostAddressesListsEveryInterfaceAddress) {
  const auto mine = interface_addresses();
  ASSERT_FALSE(mine.empty());
  const auto listed = host_addresses();
  for (const auto& a : mine) {
    EXPECT_NE(std::find(listed.begin(), listed.end(), a.text), listed.end()) << a.name << " " << a.text;
  }
  if (std::any_of(mine.begin(), mine.end(), [](const auto& a) { return a.text == "127.0.0.1"; })) {
    EXPECT_NE(std::find(listed.begin(), listed.end(), "127.0.0.1"), listed.end());
  }
  if (std::all_of(mine.begin(), mine.end(), is_loopback)) {
    std::cout << "[ NOTE     ] only loopback interfaces on this machine\n";
    EXPECT_TRUE(
        std::any_of(listed.begin(), listed.end(), [](const auto& a) { return a == "127.0.0.1" || a == "::1"; }));
  }
}

// Services bound to 0.0.0.0 or :: answer on every interface address (eth0's included): all refused, whatever the
// address (also a public one), with its IPv4-mapped, NAT64 and 6to4 forms.
TEST(WebhookAddressTest, EveryInterfaceAddressOfTheHostIsRefused) {
  int non_loopback = 0;
  for (const auto& a : interface_addresses()) {
    if (!is_loopback(a)) ++non_loopback;
    EXPECT_TRUE(is_private_address(a.text)) << a.name << " " << a.text;
    if (a.family != AF_INET) continue;
    in_addr v4{};
    ASSERT_EQ(inet_pton(AF_INET, a.text.c_str(), &v4), 1);
    const auto* b = reinterpret_cast<const unsigned char*>(&v4);
    const std::array<unsigned char, 16> six_to_four{0x20, 0x02, b[0], b[1], b[2], b[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    std::array<char, INET6_ADDRSTRLEN> text{};
    ASSERT_NE(inet_ntop(AF_INET6, six_to_four.data(), text.data(), text.size()), nullptr);
    for (const std::string& form : {"::ffff:" + a.text, "64:ff9b::" + a.text, std::string(text.data())}) {
      EXPECT_TRUE(is_private_address(form)) << a.name << " " << form;
    }
  }
  if (non_loopback == 0) std::cout << "[ NOTE     ] only loopback interfaces on this machine\n";
}

// ---------------------------------------------------------------------------------------------------------------
// validate_target_url

TEST(WebhookTargetUrlTest, AcceptsHttpAndHttpsUrls) {
  for (const std::string url :
       {"https://hooks.example.com/atrium", "http://hooks.example.com:8080/a?b=c#d", "HTTPS://Example.COM",
        "http://[2606:4700::1]:443/x", "https://203.0.113.7/", "http://hooks.example.com:65535/", "http://h/a@b"}) {
    const auto result = validate_target_url(url);
    EXPECT_TRUE(result) << url << ": " << result.error().message;
  }
  const std::string prefix = "https://hooks.example.com/";
  EXPECT_TRUE(validate_target_url(prefix + std::string(2048 - prefix.size(), 'a')));
}

TEST(WebhookTargetUrlTest, RefusesOtherSchemesMissingHostsUserinfoBadPortsAndLongUrls) {
  struct Case {
    std::string url;
    std::string reason;
  };
  const std::string prefix = "https://hooks.example.com/";
  for (const auto& [url, reason] : std::vector<Case>{
           {"ftp://example.com/file", "scheme must be http or https"},
           {"file:///etc/passwd", "scheme must be http or https"},
           {"gopher://example.com/", "scheme must be http or https"},
           {"example.com/hook", "scheme must be http or https"},
           {"//example.com/hook", "scheme must be http or https"},
           {"http://", "no host"},
           {"https:///hook", "no host"},
           {"http:/example.com/hook", "no host"},
           {"https://user:password@example.com/", "userinfo"},
           {"https://user@example.com/", "userinfo"},
           {"https://@example.com/", "userinfo"},
           {"https://:secret@example.com/", "userinfo"},
           {"https://example.com:0/", "port must be 1-65535"},
           {"https://example.com:65536/", "port must be 1-65535"},
           {"https://example.com:-1/", "port must be 1-65535"},
           {"https://exa mple.com/", "whitespace or control"},
           {"https://example.com/\r\nX-Injected: 1", "whitespace or control"},
           {"", "empty"},
           {prefix + std::string(2049 - prefix.size(), 'a'), "longer than 2048"},
       }) {
    const auto result = validate_target_url(url);
    ASSERT_FALSE(result) << url;
    EXPECT_EQ(result.error().code, Errc::invalid_argument) << url;
    EXPECT_NE(result.error().message.find(reason), std::string::npos) << url << ": " << result.error().message;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Sender::post against the test receiver

TEST(WebhookSenderTest, PostsJsonWithHeadersAndReturnsTheAnswer) {
  HttpReceiver receiver;
  ASSERT_TRUE(receiver.listening());
  receiver.set_response(200, "thanks");
  const Sender sender(loopback_options());
  const std::string signature = sign("whsec_x", 1'700'000'000, kBody);
  const auto result =
      sender.post(receiver.url("/hooks/atrium?tenant=t1"), kBody,
                  {{"Atrium-Signature", signature}, {"Atrium-Event", "project.created"}, {"X-Empty", ""}});
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.response_body, "thanks");
  EXPECT_GE(result.duration.count(), 0);
  EXPECT_LT(result.duration, 5s);

  ASSERT_TRUE(receiver.wait_for(1, 5s));
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& request = requests[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.target, "/hooks/atrium?tenant=t1");
  EXPECT_EQ(request.body, kBody);
  EXPECT_EQ(request.header("Content-Type"), "application/json");
  EXPECT_EQ(request.header("content-length"), std::to_string(std::string_view(kBody).size()));
  EXPECT_EQ(request.header("user-agent"), "Atrium-Webhooks/1");
  EXPECT_EQ(request.header("atrium-signature"), signature);
  EXPECT_EQ(request.header("atrium-event"), "project.created");
  ASSERT_TRUE(request.headers.contains("x-empty"));
  EXPECT_EQ(request.header("x-empty"), "");
  EXPECT_FALSE(request.headers.contains("expect"));
  EXPECT_TRUE(verify(request.header("atrium-signature"), "whsec_x", request.body, 1'700'000'000));
}

TEST(WebhookSenderTest, ServerErrorIsAnAnswerNotAFailure) {
  HttpReceiver receiver;
  receiver.set_response(500, "boom");
  SendOptions options = loopback_options();
  options.user_agent = "Atrium-Test/2";
  const Sender sender(options);
  const auto result = sender.post(receiver.url("/h"), "{}", {});
  EXPECT_EQ(result.status, 500);
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.response_body, "boom");
  ASSERT_TRUE(receiver.wait_for(1, 5s));
  EXPECT_EQ(receiver.requests()[0].body, "{}");
  EXPECT_EQ(receiver.requests()[0].header("user-agent"), "Atrium-Test/2");
}

TEST(WebhookSenderTest, CallerContentTypeReplacesTheDefault) {
  HttpReceiver receiver;
  const Sender sender(loopback_options());
  const auto result = sender.post(receiver.url(), kBody, {{"content-type", "application/cloudevents+json"}});
  ASSERT_EQ(result.status, 200) << result.error;
  ASSERT_TRUE(receiver.wait_for(1, 5s));
  EXPECT_EQ(receiver.requests()[0].header("content-type"), "application/cloudevents+json");
}

TEST(WebhookSenderTest, ReceiverDownThenUpFailsThenSucceeds) {
  HttpReceiver receiver;
  receiver.set_status(500);
  const Sender sender(loopback_options());
  EXPECT_EQ(sender.post(receiver.url(), "1", {}).status, 500);

  receiver.stop();
  const auto down = sender.post(receiver.url(), "2", {});
  EXPECT_EQ(down.status, 0);
  EXPECT_EQ(down.error.rfind("connect: ", 0), 0u) << down.error;

  ASSERT_TRUE(receiver.start()) << "port " << receiver.port() << " was taken meanwhile";
  receiver.set_status(200);
  EXPECT_EQ(sender.post(receiver.url(), "3", {}).status, 200);
  ASSERT_TRUE(receiver.wait_for(2, 5s));
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].body, "1");
  EXPECT_EQ(requests[1].body, "3");
}

TEST(WebhookSenderTest, LoopbackIsRefusedUnlessAllowed) {
  HttpReceiver receiver;
  SendOptions options = loopback_options();
  options.allow_private_addresses = false;
  const Sender strict(options);
  const std::string port = std::to_string(receiver.port());
  struct Case {
    std::string url;
    std::string address;
  };
  for (const auto& [url, address] : std::vector<Case>{
           {receiver.url(), "127.0.0.1"},
           {"http://localhost:" + port + "/", "127.0.0.1"},  // a name resolving to loopback
           {"http://0x7f.1:" + port + "/", "127.0.0.1"},     // an obfuscated loopback literal
           {"http://[::1]:" + port + "/", "::1"},
           {"http://[::ffff:127.0.0.1]:" + port + "/", "127.0.0.1"},
           {"http://169.254.169.254/latest/meta-data/", "169.254.169.254"},
           {"http://10.0.0.1:" + port + "/", "10.0.0.1"},
       }) {
    const auto result = strict.post(url, kBody, {});
    EXPECT_EQ(result.status, 0) << url;
    EXPECT_EQ(result.error.rfind("address not allowed: ", 0), 0u) << url << ": " << result.error;
    EXPECT_NE(result.error.find(address), std::string::npos) << url << ": " << result.error;
  }
  EXPECT_EQ(receiver.connections(), 0);  // refused before connecting, not after
  EXPECT_TRUE(receiver.requests().empty());

  const Sender lenient(loopback_options());
  EXPECT_EQ(lenient.post(receiver.url(), kBody, {}).status, 200);
  EXPECT_EQ(lenient.post("http://localhost:" + port + "/", kBody, {}).status, 200);
  EXPECT_TRUE(receiver.wait_for(2, 5s));
}

// The first non-loopback, non-link-local address of `family` on this host's interfaces, "" when there is none.
std::string interface_address(int family) {
  for (const auto& a : interface_addresses()) {
    if (a.family == family && !is_loopback(a) && a.text.rfind("fe80:", 0) != 0) return a.text;
  }
  return {};
}

// A receiver bound to 0.0.0.0 answers on eth0's address: the webhook sender must not reach it there (it did: a
// tenant's webhook could reach any service of Atrium's host listening on all interfaces).
TEST(WebhookSenderTest, HostInterfaceAddressIsRefusedBeforeConnecting) {
  const std::string address = interface_address(AF_INET);
  if (address.empty()) GTEST_SKIP() << "no non-loopback IPv4 interface address";
  HttpReceiver receiver(0, INADDR_ANY);
  ASSERT_TRUE(receiver.listening());
  const std::string url = "http://" + address + ":" + std::to_string(receiver.port()) + "/hook";
  SendOptions options = loopback_options();
  options.allow_private_addresses = false;
  const Sender strict(options);
  for (const std::string& target :
       {url, "http://[::ffff:" + address + "]:" + std::to_string(receiver.port()) + "/hook"}) {
    const auto result = strict.post(target, kBody, {});
    EXPECT_EQ(result.status, 0) << target;
    EXPECT_EQ(result.error.rfind("address not allowed: ", 0), 0u) << target << ": " << result.error;
    EXPECT_NE(result.error.find(address), std::string::npos) << target << ": " << result.error;
  }
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(receiver.connections(), 0);  // refused before connecting
  EXPECT_TRUE(receiver.requests().empty());

  // The same URL does reach the receiver with the explicit opt-in (which allows every non-public target).
  const Sender lenient(loopback_options());
  const auto allowed = lenient.post(url, kBody, {});
  EXPECT_EQ(allowed.status, 200) << allowed.error;
  EXPECT_TRUE(receiver.wait_for(1, 5s));
}

TEST(WebhookSenderTest, HostIpv6InterfaceAddressIsRefusedBeforeConnecting) {
  const std::string address = interface_address(AF_INET6);
  if (address.empty()) GTEST_SKIP() << "no non-loopback, non-link-local IPv6 interface address";
  // A listener on [::]:<free port>; a connection to it would be queued for accept().
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in6 any{};
  any.sin6_family = AF_INET6;
  any.sin6_addr = in6addr_any;
  socklen_t length = sizeof any;
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&any), sizeof any), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&any), &length), 0);
  const std::string url = "http://[" + address + "]:" + std::to_string(ntohs(any.sin6_port)) + "/hook";
  const auto pending = [fd] {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 100) > 0 && (p.revents & POLLIN) != 0;
  };

  SendOptions options = loopback_options();
  options.allow_private_addresses = false;
  const auto result = Sender(options).post(url, kBody, {});
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.error, "address not allowed: " + address);
  EXPECT_FALSE(pending());  // no connection arrived

  // With the opt-in the connection is made (it then times out: nothing answers).
  options.allow_private_addresses = true;
  options.total_timeout = 300ms;
  (void)Sender(options).post(url, kBody, {});
  EXPECT_TRUE(pending());
  ::close(fd);
}

TEST(WebhookSenderTest, RedirectIsReturnedNotFollowed) {
  HttpReceiver receiver;
  receiver.set_response(302, "moved", {{"Location", receiver.url("/elsewhere")}});
  const Sender sender(loopback_options());
  const auto result = sender.post(receiver.url("/hook"), kBody, {});
  EXPECT_EQ(result.status, 302);
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.response_body, "moved");
  std::this_thread::sleep_for(200ms);
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].target, "/hook");
}

TEST(WebhookSenderTest, ConnectionRefusedGivesStatusZeroAndAnError) {
  const Sender sender(loopback_options());
  const auto result = sender.post("http://127.0.0.1:" + std::to_string(test::closed_port()) + "/", kBody, {});
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.error.rfind("connect: ", 0), 0u) << result.error;
  EXPECT_TRUE(result.response_body.empty());
  EXPECT_LT(result.duration, 2s);
}

TEST(WebhookSenderTest, SlowReceiverHitsTheTotalTimeout) {
  HttpReceiver receiver;
  receiver.set_delay(10s);
  SendOptions options = loopback_options();
  options.total_timeout = 300ms;
  const Sender sender(options);
  const auto result = sender.post(receiver.url(), kBody, {});
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.error.rfind("timeout: ", 0), 0u) << result.error;
  EXPECT_GE(result.duration, 290ms);
  EXPECT_LT(result.duration, 5s);
  EXPECT_TRUE(receiver.wait_for(1, 5s));  // the request arrived; the answer did not
}

TEST(WebhookSenderTest, ResponseBodyIsTruncatedToTheLimit) {
  HttpReceiver receiver;
  receiver.set_response(200, std::string(100'000, 'x'));
  SendOptions options = loopback_options();
  options.max_response_bytes = 100;
  const Sender sender(options);
  const auto result = sender.post(receiver.url(), kBody, {});
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.response_body, std::string(100, 'x'));

  receiver.set_response(201, std::string(100, 'y'));
  const auto exact = sender.post(receiver.url(), kBody, {});
  EXPECT_EQ(exact.status, 201);
  EXPECT_EQ(exact.response_body, std::string(100, 'y'));
}

TEST(WebhookSenderTest, InvalidUrlsAndHeadersAreRefusedWithoutSending) {
  HttpReceiver receiver;
  const Sender sender(loopback_options());
  struct Case {
    std::string url;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string error;
  };
  for (const auto& [url, headers, error] : std::vector<Case>{
           {"ftp://127.0.0.1:" + std::to_string(receiver.port()) + "/", {}, "scheme must be http or https"},
           {"http://user:pw@127.0.0.1:" + std::to_string(receiver.port()) + "/", {}, "userinfo"},
           {receiver.url(), {{"X-Evil", "a\r\nX-Injected: 1"}}, "invalid header value"},
           {receiver.url(), {{"X-Evil", std::string("a\0b", 3)}}, "invalid header value"},
           {receiver.url(), {{"Bad Name", "v"}}, "invalid header name"},
           {receiver.url(), {{"", "v"}}, "invalid header name"},
           {receiver.url(), {{"Host", "internal.example"}}, "set by the sender"},
           {receiver.url(), {{"content-length", "1"}}, "set by the sender"},
           {receiver.url(), {{"Transfer-Encoding", "chunked"}}, "set by the sender"},
       }) {
    const auto result = sender.post(url, kBody, headers);
    EXPECT_EQ(result.status, 0) << url;
    EXPECT_NE(result.error.find(error), std::string::npos) << url << ": " << result.error;
  }
  EXPECT_EQ(receiver.connections(), 0);
}

TEST(WebhookSenderTest, ConcurrentPostsFromManyThreads) {
  HttpReceiver receiver;
  const Sender sender(loopback_options());
  constexpr int kThreads = 8;
  constexpr int kEach = 5;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (sender.post(receiver.url("/t" + std::to_string(t)), std::to_string(i), {}).status == 200) ++ok;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);
  EXPECT_TRUE(receiver.wait_for(kThreads * kEach, 5s));
}

// An HTTPS receiver with a self-signed certificate: the sender must refuse it (no CA store trusts it).
TEST(WebhookSenderTest, HttpsVerifiesTheCertificate) {
  if (std::system("openssl version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no openssl command";
  char dir_template[] = "/tmp/atrium-webhook-tls-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::filesystem::path dir = dir_template;
  const std::string cert = (dir / "cert.pem").string();
  const std::string key = (dir / "key.pem").string();
  const std::string command =
      "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -addext "
      "subjectAltName=DNS:localhost,IP:127.0.0.1 -days 1 -keyout '" +
      key + "' -out '" + cert + "' >/dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0);
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_server_method()), &SSL_CTX_free);
  ASSERT_TRUE(ctx);
  ASSERT_EQ(SSL_CTX_use_certificate_file(ctx.get(), cert.c_str(), SSL_FILETYPE_PEM), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM), 1);
  test::Receiver tls_receiver(0, ctx.get());
  ASSERT_TRUE(tls_receiver.listening());

  const Sender sender(loopback_options());
  const auto result = sender.post("https://127.0.0.1:" + std::to_string(tls_receiver.port()) + "/", kBody, {});
  tls_receiver.stop();
  std::filesystem::remove_all(dir);
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.error.rfind("tls: ", 0), 0u) << result.error;
  EXPECT_NE(result.error.find("certificate"), std::string::npos) << result.error;
}

// ---------------------------------------------------------------------------------------------------------------
// The receiver itself: keep-alive, Connection: close and restarts, over a raw socket.

std::string exchange(int fd, const std::string& request, std::size_t responses) {
  EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  std::string got;
  std::size_t seen = 0;
  char buffer[4096];
  while (seen < responses) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    got.append(buffer, static_cast<std::size_t>(n));
    seen = 0;
    for (auto at = got.find("HTTP/1.1 "); at != std::string::npos; at = got.find("HTTP/1.1 ", at + 1)) ++seen;
  }
  return got;
}

TEST(HttpReceiverTest, ServesKeepAliveRequestsThenHonoursConnectionClose) {
  HttpReceiver receiver;
  receiver.set_response(202, "yes");
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  test::set_timeouts(fd, 5s);
  const sockaddr_in addr = test::loopback(receiver.port());
  ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  // Two pipelined requests on one connection, the second asking to close it.
  const std::string requests =
      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\nhello"
      "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  const std::string answers = exchange(fd, requests, 2);
  EXPECT_EQ(answers.find("HTTP/1.1 202 Accepted\r\n"), 0u) << answers;
  EXPECT_NE(answers.find("Connection: close\r\n"), std::string::npos) << answers;
  char byte;
  EXPECT_EQ(::recv(fd, &byte, 1, 0), 0);  // closed after the second answer
  ::close(fd);

  ASSERT_TRUE(receiver.wait_for(2, 5s));
  const auto got = receiver.requests();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].target, "/a");
  EXPECT_EQ(got[0].body, "hello");
  EXPECT_EQ(got[0].header("X-MULTI"), "1, 2");
  EXPECT_EQ(got[1].target, "/b");
  EXPECT_EQ(got[1].body, "");
  EXPECT_EQ(receiver.connections(), 1);
}

TEST(HttpReceiverTest, StopsAndStartsAgainOnTheSamePort) {
  HttpReceiver receiver;
  const auto port = receiver.port();
  const Sender sender(loopback_options());
  EXPECT_EQ(sender.post(receiver.url(), "a", {}).status, 200);
  receiver.stop();
  receiver.stop();  // idempotent
  EXPECT_FALSE(receiver.listening());
  ASSERT_TRUE(receiver.start());
  EXPECT_EQ(receiver.port(), port);
  EXPECT_EQ(sender.post(receiver.url(), "b", {}).status, 200);
  EXPECT_FALSE(receiver.wait_for(3, 50ms));
  EXPECT_EQ(receiver.requests().size(), 2u);
  receiver.clear();
  EXPECT_TRUE(receiver.requests().empty());
}

}  // namespace
}  // namespace atrium::webhooks
