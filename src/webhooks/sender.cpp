#include "webhooks/sender.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

namespace atrium::webhooks {
namespace {

constexpr std::size_t kMaxUrlBytes = 2048;

bool curl_ready() {
  static std::once_flag once;
  static CURLcode init = CURLE_FAILED_INIT;
  std::call_once(once, [] { init = curl_global_init(CURL_GLOBAL_DEFAULT); });
  return init == CURLE_OK;
}

struct UrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
using UrlHandle = std::unique_ptr<CURLU, UrlDeleter>;

struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct ListDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

// A part of a parsed URL; present is false when the URL has none.
struct UrlPart {
  bool present = false;
  std::string value;
};

UrlPart url_part(CURLU* url, CURLUPart part) {
  char* text = nullptr;
  if (curl_url_get(url, part, &text, 0) != CURLUE_OK || text == nullptr) return {};
  UrlPart out{true, text};
  curl_free(text);
  return out;
}

// The URL parsed by libcurl itself (so the checked URL is exactly the one used), or the reason it is refused.
Result<UrlHandle> parse_target(std::string_view url) {
  if (url.empty()) return fail(Errc::invalid_argument, "URL is empty");
  if (url.size() > kMaxUrlBytes) return fail(Errc::invalid_argument, "URL is longer than 2048 bytes");
  for (const char c : url) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7F) {
      return fail(Errc::invalid_argument, "URL contains whitespace or control characters");
    }
  }
  const std::string text(url);
  if (!curl_ready()) return fail(Errc::internal, "libcurl failed to initialise");
  UrlHandle handle(curl_url());
  if (!handle) return fail(Errc::internal, "out of memory");
  // A scheme libcurl does not support fails here; one it does support (ftp, file...) fails below.
  if (const CURLUcode rc = curl_url_set(handle.get(), CURLUPART_URL, text.c_str(), 0); rc != CURLUE_OK) {
    if (rc == CURLUE_UNSUPPORTED_SCHEME || rc == CURLUE_BAD_SCHEME) {
      return fail(Errc::invalid_argument, "URL scheme must be http or https");
    }
    if (rc == CURLUE_NO_HOST) return fail(Errc::invalid_argument, "URL has no host");
    if (rc == CURLUE_BAD_PORT_NUMBER) return fail(Errc::invalid_argument, "URL port must be 1-65535");
    return fail(Errc::invalid_argument, std::string("URL is malformed: ") + curl_url_strerror(rc));
  }
  const UrlPart scheme = url_part(handle.get(), CURLUPART_SCHEME);
  if (scheme.value != "http" && scheme.value != "https") {
    return fail(Errc::invalid_argument, "URL scheme must be http or https");
  }
  // libcurl reads "http:/x" and "http:///x" as http://x/; insist on exactly "//" before the authority.
  if (const auto colon = url.find(':');
      url.substr(colon, 3) != "://" || url.size() == colon + 3 || url[colon + 3] == '/') {
    return fail(Errc::invalid_argument, "URL has no host");
  }
  if (url_part(handle.get(), CURLUPART_USER).present || url_part(handle.get(), CURLUPART_PASSWORD).present ||
      url_part(handle.get(), CURLUPART_OPTIONS).present) {
    return fail(Errc::invalid_argument, "URL must not contain userinfo");
  }
  if (const UrlPart host = url_part(handle.get(), CURLUPART_HOST); !host.present || host.value.empty()) {
    return fail(Errc::invalid_argument, "URL has no host");
  }
  if (const UrlPart port = url_part(handle.get(), CURLUPART_PORT); port.present) {
    unsigned number = 0;
    const char* end = port.value.data() + port.value.size();
    const auto [last, ec] = std::from_chars(port.value.data(), end, number);
    if (ec != std::errc{} || last != end || number < 1 || number > 65535) {
      return fail(Errc::invalid_argument, "URL port must be 1-65535");
    }
  }
  return handle;
}

// The destination guard. The ranges are those of the IANA IPv4 and IPv6 Special-Purpose Address Registries that are
// not globally reachable (plus multicast, and IPv6 outside 2000::/3), written as prefix/length pairs and parsed with
// inet_pton once. https://www.iana.org/assignments/iana-ipv4-special-registry and .../iana-ipv6-special-registry
struct Range {
  const char* prefix;
  unsigned length;
};

constexpr std::array kRefusedV4 = {
    Range{"0.0.0.0", 8},           // "this network", unspecified
    Range{"10.0.0.0", 8},          // private (RFC 1918)
    Range{"100.64.0.0", 10},       // shared address space (CGNAT)
    Range{"127.0.0.0", 8},         // loopback
    Range{"169.254.0.0", 16},      // link-local (cloud metadata at 169.254.169.254)
    Range{"172.16.0.0", 12},       // private (RFC 1918)
    Range{"192.0.0.0", 24},        // IETF protocol assignments
    Range{"192.0.2.0", 24},        // documentation (TEST-NET-1)
    Range{"192.88.99.0", 24},      // deprecated 6to4 relay anycast
    Range{"192.168.0.0", 16},      // private (RFC 1918)
    Range{"198.18.0.0", 15},       // benchmarking
    Range{"198.51.100.0", 24},     // documentation (TEST-NET-2)
    Range{"203.0.113.0", 24},      // documentation (TEST-NET-3)
    Range{"224.0.0.0", 4},         // multicast
    Range{"240.0.0.0", 4},         // reserved
    Range{"255.255.255.255", 32},  // limited broadcast
};

constexpr std::array kRefusedV6 = {
    Range{"::", 96},           // ::/128 unspecified, ::1/128 loopback and the deprecated IPv4-compatible ::/96
    Range{"64:ff9b:1::", 48},  // local-use IPv4/IPv6 translation
    Range{"100::", 64},        // discard-only
    Range{"100:0:0:1::", 64},  // dummy prefix
    Range{"2001::", 23},       // IETF protocol assignments: Teredo 2001::/32, 2001:2::/48, ORCHID 2001:10::/28...
    Range{"2001:db8::", 32},   // documentation
    Range{"3fff::", 20},       // documentation
    Range{"5f00::", 16},       // segment routing (SRv6) SIDs
    Range{"fc00::", 7},        // unique-local
    Range{"fe80::", 10},       // link-local
    Range{"fec0::", 10},       // deprecated site-local
    Range{"ff00::", 8},        // multicast
};

// IPv6 ranges whose addresses carry an IPv4 address, which is what is reached: refused when that one is.
struct EmbeddingRange {
  const char* prefix;
  unsigned length;
  std::size_t v4_at;  // the byte offset of the IPv4 address
};

constexpr std::array kEmbeddingV6 = {
    EmbeddingRange{"::ffff:0:0", 96, 12},  // IPv4-mapped
    EmbeddingRange{"64:ff9b::", 96, 12},   // NAT64 well-known prefix
    EmbeddingRange{"2002::", 16, 2},       // 6to4
};

constexpr Range kGlobalUnicastV6{"2000::", 3};  // IPv6 outside it is not allocated for global unicast: refused

using V4 = std::array<unsigned char, 4>;
using V6 = std::array<unsigned char, 16>;

template <std::size_t N>
struct Prefix {
  std::array<unsigned char, N> bytes{};
  unsigned length = 0;
};

template <std::size_t N>
bool within(const unsigned char* address, const Prefix<N>& prefix) {
  const unsigned whole = prefix.length / 8;
  if (std::memcmp(address, prefix.bytes.data(), whole) != 0) return false;
  const unsigned rest = prefix.length % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<unsigned char>(0xFF << (8 - rest));
  return (address[whole] & mask) == (prefix.bytes[whole] & mask);
}

template <std::size_t N>
Prefix<N> parse_prefix(const char* text, unsigned length) {
  Prefix<N> prefix;
  prefix.length = length;
  if (inet_pton(N == 4 ? AF_INET : AF_INET6, text, prefix.bytes.data()) != 1 || length > N * 8) {
    std::fprintf(stderr, "webhooks: invalid address range %s/%u in the destination guard\n", text, length);
    std::abort();  // a typo in the tables above: the tests fail at once
  }
  return prefix;
}

struct Ranges {
  std::vector<Prefix<4>> refused_v4;
  std::vector<Prefix<16>> refused_v6;
  std::vector<std::pair<Prefix<16>, std::size_t>> embedding_v6;
  Prefix<16> global_unicast_v6;
};

const Ranges& ranges() {
  static const Ranges parsed = [] {
    Ranges r;
    for (const auto& [text, length] : kRefusedV4) r.refused_v4.push_back(parse_prefix<4>(text, length));
    for (const auto& [text, length] : kRefusedV6) r.refused_v6.push_back(parse_prefix<16>(text, length));
    for (const auto& [text, length, at] : kEmbeddingV6) {
      r.embedding_v6.emplace_back(parse_prefix<16>(text, length), at);
    }
    r.global_unicast_v6 = parse_prefix<16>(kGlobalUnicastV6.prefix, kGlobalUnicastV6.length);
    return r;
  }();
  return parsed;
}

// The addresses of this host's interfaces, read with getifaddrs at most kHostAddressesTtl ago.
struct HostAddresses {
  std::vector<V4> v4;
  std::vector<V6> v6;
};

constexpr auto kHostAddressesTtl = std::chrono::seconds(1);

// nullptr when getifaddrs fails (the guard then refuses every address: fail closed).
std::shared_ptr<const HostAddresses> read_host_addresses() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return nullptr;
  auto out = std::make_shared<HostAddresses>();
  for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      V4 bytes;
      std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, bytes.size());
      out->v4.push_back(bytes);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      V6 bytes;
      std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr, bytes.size());
      out->v6.push_back(bytes);
    }
  }
  ::freeifaddrs(list);
  return out;
}

std::shared_ptr<const HostAddresses> host_address_set() {
  static std::mutex mutex;
  static std::shared_ptr<const HostAddresses> cached;
  static std::chrono::steady_clock::time_point read_at;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex);
  if (!cached || now - read_at >= kHostAddressesTtl) {
    cached = read_host_addresses();
    read_at = now;
  }
  return cached;
}

template <std::size_t N>
bool contains(const std::vector<std::array<unsigned char, N>>& list, const unsigned char* address) {
  return std::any_of(list.begin(), list.end(),
                     [address](const auto& entry) { return std::memcmp(entry.data(), address, N) == 0; });
}

bool refused_v4(const unsigned char* a, const HostAddresses& host) {
  const auto& refused = ranges().refused_v4;
  if (std::any_of(refused.begin(), refused.end(), [a](const auto& p) { return within(a, p); })) return true;
  return contains(host.v4, a);
}

bool refused_v6(const unsigned char* a, const HostAddresses& host) {
  const Ranges& r = ranges();
  if (std::any_of(r.refused_v6.begin(), r.refused_v6.end(), [a](const auto& p) { return within(a, p); })) {
    return true;
  }
  if (contains(host.v6, a)) return true;
  for (const auto& [prefix, at] : r.embedding_v6) {
    if (within(a, prefix)) return refused_v4(a + at, host);
  }
  return !within(a, r.global_unicast_v6);
}

// The address libcurl is about to connect to, as text; "" when it is not an IP address.
std::string address_text(const curl_sockaddr* address) {
  sockaddr_storage storage{};
  std::memcpy(&storage, &address->addr, std::min<std::size_t>(address->addrlen, sizeof storage));
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (address->family == AF_INET && address->addrlen >= sizeof(sockaddr_in)) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(storage);
    if (inet_ntop(AF_INET, &in.sin_addr, text.data(), text.size()) != nullptr) return text.data();
  } else if (address->family == AF_INET6 && address->addrlen >= sizeof(sockaddr_in6)) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(storage);
    if (inet_ntop(AF_INET6, &in6.sin6_addr, text.data(), text.size()) != nullptr) return text.data();
  }
  return {};
}

// State shared with libcurl's callbacks for one call.
struct Transfer {
  bool allow_private = false;
  int attempts = 0;
  std::vector<std::string> refused;
  std::size_t max_body = 0;
  bool truncated = false;
  std::string body;
};

// Every socket libcurl opens goes through here, with the resolved address it will connect() to.
curl_socket_t open_socket(void* clientp, curlsocktype purpose, curl_sockaddr* address) {
  auto& transfer = *static_cast<Transfer*>(clientp);
  ++transfer.attempts;
  const std::string ip = address_text(address);
  if (purpose != CURLSOCKTYPE_IPCXN || ip.empty() || (!transfer.allow_private && is_private_address(ip))) {
    transfer.refused.push_back(ip.empty() ? "(not an IP address)" : ip);
    return CURL_SOCKET_BAD;
  }
  return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* userp) {
  auto& transfer = *static_cast<Transfer*>(userp);
  const std::size_t bytes = size * count;
  const std::size_t room = transfer.max_body - transfer.body.size();
  if (bytes > room) {
    transfer.body.append(data, room);
    transfer.truncated = true;
    return 0;  // stop reading: libcurl ends the transfer with CURLE_WRITE_ERROR
  }
  transfer.body.append(data, bytes);
  return bytes;
}

bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// "" when the header may be sent, else why not.
std::string header_problem(const std::string& name, const std::string& value) {
  if (name.empty() || !std::all_of(name.begin(), name.end(), is_token_char)) {
    return "invalid header name \"" + name + "\"";
  }
  if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
    return "invalid header value for " + name + " (CR, LF or NUL)";
  }
  static constexpr std::array<std::string_view, 8> kReserved = {
      "host", "content-length", "transfer-encoding", "connection", "expect", "keep-alive", "te", "upgrade"};
  if (std::find(kReserved.begin(), kReserved.end(), lower(name)) != kReserved.end()) {
    return "header " + name + " is set by the sender";
  }
  return {};
}

std::string describe(CURLcode code, const char* detail) {
  std::string category = "transfer";
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT: category = "timeout"; break;
    case CURLE_COULDNT_RESOLVE_HOST: category = "dns"; break;
    case CURLE_COULDNT_CONNECT: category = "connect"; break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE: category = "tls"; break;
    default: break;
  }
  return category + ": " + (detail[0] != '\0' ? std::string(detail) : std::string(curl_easy_strerror(code)));
}

long clamp_ms(std::chrono::milliseconds ms) {  // libcurl reads 0 as "no limit"
  return static_cast<long>(std::clamp<std::chrono::milliseconds::rep>(ms.count(), 1, 24L * 3600 * 1000));
}

}  // namespace

Result<void> validate_target_url(std::string_view url) {
  auto parsed = parse_target(url);
  if (!parsed) return std::unexpected(std::move(parsed.error()));
  return {};
}

bool is_private_address(const std::string& ip) {
  const auto host = host_address_set();
  if (!host) return true;  // the host's addresses are unknown: fail closed
  in_addr v4{};
  if (inet_pton(AF_INET, ip.c_str(), &v4) == 1) return refused_v4(reinterpret_cast<const unsigned char*>(&v4), *host);
  in6_addr v6{};
  if (inet_pton(AF_INET6, ip.c_str(), &v6) == 1) return refused_v6(v6.s6_addr, *host);
  return true;
}

std::vector<std::string> host_addresses() {
  std::vector<std::string> out;
  const auto host = host_address_set();
  if (!host) return out;
  std::array<char, INET6_ADDRSTRLEN> text{};
  for (const V4& a : host->v4) {
    if (inet_ntop(AF_INET, a.data(), text.data(), text.size()) != nullptr) out.emplace_back(text.data());
  }
  for (const V6& a : host->v6) {
    if (inet_ntop(AF_INET6, a.data(), text.data(), text.size()) != nullptr) out.emplace_back(text.data());
  }
  return out;
}

Sender::Sender(SendOptions options) : options_(std::move(options)) { curl_ready(); }

Sender::~Sender() = default;

SendResult Sender::post(const std::string& url, const std::string& body,
                        const std::vector<std::pair<std::string, std::string>>& headers) const {
  const auto started = std::chrono::steady_clock::now();
  SendResult result;
  const auto finish = [&](std::string error) {
    result.error = std::move(error);
    if (!result.error.empty()) {
      result.status = 0;
      result.response_body.clear();
    }
    result.duration = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    return std::move(result);
  };
  try {
    auto target = parse_target(url);
    if (!target) return finish(target.error().message);

    bool has_content_type = false;
    std::unique_ptr<curl_slist, ListDeleter> list;
    const auto add = [&list](const std::string& line) {
      curl_slist* grown = curl_slist_append(list.get(), line.c_str());
      if (grown == nullptr) return false;
      (void)list.release();
      list.reset(grown);
      return true;
    };
    for (const auto& [name, value] : headers) {
      if (std::string problem = header_problem(name, value); !problem.empty()) return finish(problem);
      if (lower(name) == "content-type") has_content_type = true;
      // "Name;" is libcurl's spelling of a header with an empty value ("Name:" would remove it).
      if (!add(value.empty() ? name + ";" : name + ": " + value)) return finish("out of memory");
    }
    if (!has_content_type && !add("Content-Type: application/json")) return finish("out of memory");
    if (!add("Expect:")) return finish("out of memory");  // no 100-continue round trip

    std::unique_ptr<CURL, EasyDeleter> easy(curl_easy_init());
    if (!easy) return finish("libcurl failed to initialise");
    Transfer transfer;
    transfer.allow_private = options_.allow_private_addresses;
    transfer.max_body = options_.max_response_bytes;
    std::array<char, CURL_ERROR_SIZE> detail{};
    CURL* h = easy.get();
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, detail.data());
    curl_easy_setopt(h, CURLOPT_CURLU, target->get());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");  // ignore http_proxy/https_proxy: the checked address is the peer
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &transfer);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, clamp_ms(options_.connect_timeout));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, clamp_ms(options_.total_timeout));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
    curl_easy_setopt(h, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list.get());
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());

    const CURLcode code = curl_easy_perform(h);
    if (code != CURLE_OK && !(code == CURLE_WRITE_ERROR && transfer.truncated)) {
      if (!transfer.refused.empty() && transfer.refused.size() == static_cast<std::size_t>(transfer.attempts)) {
        std::string addresses;
        for (const auto& ip : transfer.refused) addresses += (addresses.empty() ? "" : ", ") + ip;
        return finish("address not allowed: " + addresses);
      }
      return finish(describe(code, detail.data()));
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status < 100 || status > 599) return finish("transfer: no valid HTTP status in the answer");
    result.status = static_cast<int>(status);
    result.response_body = std::move(transfer.body);
    return finish({});
  } catch (const std::exception& e) {  // allocation failure
    return finish(std::string("internal: ") + e.what());
  }
}

}  // namespace atrium::webhooks
