#include "webhooks/sender.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
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

bool private_v4(std::uint32_t a) {  // host byte order
  const auto in = [a](std::uint32_t network, int bits) { return (a >> (32 - bits)) == (network >> (32 - bits)); };
  return in(0x00000000, 8)      // 0.0.0.0/8 "this network", unspecified
         || in(0x0A000000, 8)   // 10/8
         || in(0x64400000, 10)  // 100.64/10 CGNAT
         || in(0x7F000000, 8)   // 127/8 loopback
         || in(0xA9FE0000, 16)  // 169.254/16 link-local (cloud metadata)
         || in(0xAC100000, 12)  // 172.16/12
         || in(0xC0000000, 24)  // 192.0.0/24 IETF protocol assignments
         || in(0xC0A80000, 16)  // 192.168/16
         || in(0xC6120000, 15)  // 198.18/15 benchmarking
         || in(0xE0000000, 4)   // 224/4 multicast
         || in(0xF0000000, 4);  // 240/4 reserved, 255.255.255.255 broadcast
}

std::uint32_t v4_at(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

bool private_v6(const unsigned char* b) {
  const auto zeros = [b](int from, int to) {
    return std::all_of(b + from, b + to, [](unsigned char x) { return x == 0; });
  };
  if (zeros(0, 12)) return true;  // ::, ::1 and the deprecated IPv4-compatible ::/96
  if (zeros(0, 10) && b[10] == 0xFF && b[11] == 0xFF) return private_v4(v4_at(b + 12));  // ::ffff:0:0/96 mapped
  if (zeros(0, 8) && b[8] == 0xFF && b[9] == 0xFF && b[10] == 0 && b[11] == 0) {
    return private_v4(v4_at(b + 12));  // ::ffff:0:0:0/96 translated
  }
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B && zeros(4, 12)) {
    return private_v4(v4_at(b + 12));  // 64:ff9b::/96 NAT64
  }
  if (b[0] == 0x20 && b[1] == 0x02) return private_v4(v4_at(b + 2));  // 2002::/16 6to4
  if ((b[0] & 0xFE) == 0xFC) return true;                             // fc00::/7 unique-local
  if (b[0] == 0xFE && (b[1] & 0xC0) == 0x80) return true;             // fe80::/10 link-local
  if (b[0] == 0xFE && (b[1] & 0xC0) == 0xC0) return true;             // fec0::/10 site-local
  if (b[0] == 0xFF) return true;                                      // ff00::/8 multicast
  return false;
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
  in_addr v4{};
  if (inet_pton(AF_INET, ip.c_str(), &v4) == 1) return private_v4(ntohl(v4.s_addr));
  in6_addr v6{};
  if (inet_pton(AF_INET6, ip.c_str(), &v6) == 1) return private_v6(v6.s6_addr);
  return true;
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
