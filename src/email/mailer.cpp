#include "email/mailer.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>

#include "core/email_address.hpp"
#include "core/ids.hpp"
#include "core/sigpipe.hpp"
#include "core/text.hpp"

namespace atrium::email {

namespace {

constexpr std::size_t k_fold_at = 78;  // RFC 5322 2.1.1: lines SHOULD be at most 78 characters

bool is_alpha_digit(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

bool has_line_break_or_nul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------------------------
// Templates

void append_html_escaped(std::string& out, std::string_view s) {
  for (const char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
}

bool is_placeholder_name(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (!is_alpha_digit(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

std::string value_text(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();  // numbers and booleans
}

Result<std::string> substitute(std::string_view tmpl, const Json& vars, bool html, std::string_view where) {
  std::string out;
  out.reserve(tmpl.size());
  std::size_t pos = 0;
  for (;;) {
    const auto open = tmpl.find("{{", pos);
    if (open == std::string_view::npos) {
      out.append(tmpl.substr(pos));
      return out;
    }
    out.append(tmpl.substr(pos, open - pos));
    const auto close = tmpl.find("}}", open + 2);
    if (close == std::string_view::npos) {
      return fail(Errc::invalid_argument, "unterminated placeholder \"{{\" in the template " + std::string(where));
    }
    std::string_view name = tmpl.substr(open + 2, close - open - 2);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (!is_placeholder_name(name)) {
      return fail(Errc::invalid_argument, "malformed placeholder \"" +
                                              std::string(tmpl.substr(open, close + 2 - open)) + "\" in the template " +
                                              std::string(where));
    }
    const auto it = vars.find(name);
    if (it == vars.end()) {
      return fail(Errc::invalid_argument,
                  "unknown placeholder \"" + std::string(name) + "\" in the template " + std::string(where));
    }
    const std::string value = value_text(*it);
    if (html) {
      append_html_escaped(out, value);
    } else {
      out += value;
    }
    pos = close + 2;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Encodings

std::string base64(std::string_view in) {
  std::string out(sodium_base64_ENCODED_LEN(in.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(in.data()), in.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

// RFC 2047 B encoded-words, each at most 75 characters and holding whole UTF-8 characters (6.3).
std::vector<std::string> encoded_words(std::string_view utf8) {
  constexpr std::size_t k_max_bytes = 45;  // "=?UTF-8?B?" + 60 base64 characters + "?=" = 72
  std::vector<std::string> words;
  std::size_t pos = 0;
  while (pos < utf8.size()) {
    std::size_t end = std::min(utf8.size(), pos + k_max_bytes);
    while (end < utf8.size() && end > pos && (static_cast<unsigned char>(utf8[end]) & 0xC0) == 0x80) --end;
    words.push_back("=?UTF-8?B?" + base64(utf8.substr(pos, end - pos)) + "?=");
    pos = end;
  }
  return words;
}

std::vector<std::string> split_spaces(std::string_view s) {
  std::vector<std::string> words;
  std::size_t start = 0;
  for (;;) {
    const auto space = s.find(' ', start);
    words.emplace_back(s.substr(start, space == std::string_view::npos ? std::string_view::npos : space - start));
    if (space == std::string_view::npos) return words;
    start = space + 1;
  }
}

// Printable ASCII that survives folding at its spaces unchanged and cannot be mistaken for an encoded-word.
bool is_plain_text(std::string_view s, std::size_t longest_word) {
  if (s.empty()) return true;
  if (s.front() == ' ' || s.back() == ' ' || s.find("  ") != std::string_view::npos ||
      s.find("=?") != std::string_view::npos) {
    return false;
  }
  std::size_t word = 0;
  for (const char c : s) {
    if (c < 0x20 || c > 0x7E) return false;
    word = c == ' ' ? 0 : word + 1;
    if (word > longest_word) return false;
  }
  return true;
}

// An unstructured field body (Subject, extra headers) as foldable words.
std::vector<std::string> unstructured_words(std::string_view value) {
  if (value.empty()) return {};
  if (is_plain_text(value, k_fold_at - 2)) return split_spaces(value);
  return encoded_words(value);
}

// Appends "Name: word word ...\r\n", folding before a word that would take the line past 78 characters.
void append_field(std::string& out, std::string_view name, const std::vector<std::string>& words) {
  std::string line(name);
  line += ':';
  for (const auto& word : words) {
    if (line.size() + 1 + word.size() > k_fold_at && line.size() > name.size() + 1) {
      out += line;
      out += "\r\n";
      line.clear();
    }
    line += ' ';
    line += word;
  }
  out += line;
  out += "\r\n";
}

// A mailbox as words: the display name (a quoted-string, or encoded-words) and "<addr-spec>".
std::vector<std::string> mailbox_words(const Address& a) {
  if (a.name.empty()) return {a.email};
  std::vector<std::string> words;
  bool ascii = true;
  for (const char c : a.name) {
    if (c < 0x20 || c > 0x7E) ascii = false;
  }
  std::string quoted = "\"";
  for (const char c : a.name) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  quoted += '"';
  if (ascii && quoted.size() <= k_fold_at - 2) {
    words.push_back(std::move(quoted));
  } else {
    words = encoded_words(a.name);
  }
  words.push_back("<" + a.email + ">");
  return words;
}

std::vector<std::string> address_list_words(const std::vector<Address>& list) {
  std::vector<std::string> words;
  for (std::size_t i = 0; i < list.size(); ++i) {
    auto mailbox = mailbox_words(list[i]);
    if (i + 1 < list.size()) mailbox.back() += ',';
    for (auto& w : mailbox) words.push_back(std::move(w));
  }
  return words;
}

std::string rfc5322_date(std::chrono::system_clock::time_point t) {
  static constexpr std::array<const char*, 7> days{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t secs = std::chrono::system_clock::to_time_t(std::chrono::floor<std::chrono::seconds>(t));
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%s, %02d %s %04d %02d:%02d:%02d +0000",
                days[static_cast<std::size_t>(tm.tm_wday)], tm.tm_mday, months[static_cast<std::size_t>(tm.tm_mon)],
                tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buffer;
}

std::vector<std::string_view> split_lines(std::string_view body) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '\r' || body[i] == '\n') {
      lines.push_back(body.substr(start, i - start));
      if (body[i] == '\r' && i + 1 < body.size() && body[i + 1] == '\n') ++i;
      start = i + 1;
    }
  }
  lines.push_back(body.substr(start));
  return lines;
}

// RFC 2045 6.7, lines of at most 76 characters. CR, LF and CRLF become hard (CRLF) line breaks; a '.' that would
// start an output line is encoded too, so the text is safe for SMTP whoever sends it.
std::string quoted_printable(std::string_view body) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(body.size() + body.size() / 8);
  const auto lines = split_lines(body);
  for (std::size_t l = 0; l < lines.size(); ++l) {
    const auto line = lines[l];
    std::size_t column = 0;
    for (std::size_t i = 0; i < line.size(); ++i) {
      const auto c = static_cast<unsigned char>(line[i]);
      const bool last = i + 1 == line.size();
      const bool literal =
          ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last)) && !(c == '.' && column == 0);
      char token[3] = {static_cast<char>(c), 0, 0};
      std::size_t width = 1;
      if (!literal) {
        token[0] = '=';
        token[1] = hex[c >> 4];
        token[2] = hex[c & 15];
        width = 3;
      }
      // Room for the token and a soft break "=" after it, unless it ends the line.
      if (column + width > (last ? 76 : 75)) {
        out += "=\r\n";
        column = 0;
        if (c == '.') {  // now at the start of a line
          token[0] = '=';
          token[1] = '2';
          token[2] = 'E';
          width = 3;
        }
      }
      out.append(token, width);
      column += width;
    }
    if (l + 1 < lines.size()) out += "\r\n";
  }
  return out;
}

std::string base64_lines(std::string_view body) {
  const std::string encoded = base64(body);
  std::string out;
  out.reserve(encoded.size() + encoded.size() / 38 + 2);
  for (std::size_t i = 0; i < encoded.size(); i += 76) {
    out.append(encoded, i, 76);
    out += "\r\n";
  }
  return out;
}

std::string normalize_line_breaks(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  const auto lines = split_lines(body);
  for (std::size_t l = 0; l < lines.size(); ++l) {
    out.append(lines[l]);
    if (l + 1 < lines.size()) out += "\r\n";
  }
  return out;
}

// Content-Type, Content-Transfer-Encoding, a blank line and the encoded body.
void append_part(std::string& out, std::string_view type, std::string_view body) {
  std::size_t non_ascii = 0;
  for (const char c : body) non_ascii += static_cast<unsigned char>(c) >= 0x80 ? 1 : 0;
  out += "Content-Type: ";
  out += type;
  out += "; charset=utf-8\r\n";
  if (non_ascii * 2 > body.size()) {
    out += "Content-Transfer-Encoding: base64\r\n\r\n";
    out += base64_lines(normalize_line_breaks(body));
  } else {
    out += "Content-Transfer-Encoding: quoted-printable\r\n\r\n";
    out += quoted_printable(body);
  }
}

// The whole message ends with CRLF, as it will when sent over SMTP; for a quoted-printable body that does not,
// a soft line break adds the CRLF without changing the decoded text.
void end_with_crlf(std::string& out) {
  if (!out.ends_with("\r\n")) out += "=\r\n";
}

bool is_reserved_header(std::string_view name) {
  std::string lower;
  for (const char c : name) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  static constexpr std::array<std::string_view, 10> reserved{
      "date", "from", "sender", "to", "cc", "bcc", "reply-to", "subject", "message-id", "mime-version"};
  for (const auto r : reserved) {
    if (lower == r) return true;
  }
  return lower.starts_with("content-");
}

Result<void> check_address(const Address& a, std::string_view field) {
  if (!valid_address(a.email)) {
    return fail(Errc::invalid_argument, std::string(field) + " address is not a valid email address");
  }
  if (has_line_break_or_nul(a.name) || !valid_utf8(a.name)) {
    return fail(Errc::invalid_argument, std::string(field) + " name contains CR, LF, NUL or invalid UTF-8");
  }
  return {};
}

Result<void> check_message(const Message& m, std::string_view message_id) {
  if (!is_dot_atom(message_id) || message_id.size() > 200) {
    return fail(Errc::invalid_argument, "the Message-ID must be a dot-atom of at most 200 characters");
  }
  if (auto ok = check_address(m.from, "From"); !ok) return ok;
  if (m.to.empty()) return fail(Errc::invalid_argument, "the message has no recipient");
  for (const auto& a : m.to) {
    if (auto ok = check_address(a, "To"); !ok) return ok;
  }
  if (m.reply_to) {
    if (auto ok = check_address(*m.reply_to, "Reply-To"); !ok) return ok;
  }
  if (has_line_break_or_nul(m.subject) || !valid_utf8(m.subject)) {
    return fail(Errc::invalid_argument, "the subject contains CR, LF, NUL or invalid UTF-8");
  }
  for (const auto& [name, value] : m.headers) {
    if (name.empty() || name.size() > 76) return fail(Errc::invalid_argument, "a header name is empty or too long");
    for (const char c : name) {
      if (c < 33 || c > 126 || c == ':') {
        return fail(Errc::invalid_argument, "the header name \"" + name + "\" is not printable ASCII without ':'");
      }
    }
    if (is_reserved_header(name)) {
      return fail(Errc::invalid_argument, "the header " + name + " is written by the mailer");
    }
    if (has_line_break_or_nul(value) || !valid_utf8(value)) {
      return fail(Errc::invalid_argument, "the header " + name + " contains CR, LF, NUL or invalid UTF-8");
    }
  }
  if (m.text.empty() && m.html.empty()) return fail(Errc::invalid_argument, "the message has no text and no html");
  if (!valid_utf8(m.text) || !valid_utf8(m.html)) {
    return fail(Errc::invalid_argument, "the message body is not valid UTF-8");
  }
  return {};
}

std::string boundary_for(std::string_view message_id) {
  // QP and base64 never produce "=_", so the boundary cannot occur in an encoded part.
  std::uint64_t h = 14695981039346656037ULL;  // FNV-1a
  for (const char c : message_id) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string("=_atrium_alt_") + hex;
}

// ---------------------------------------------------------------------------------------------------------------
// SMTP

// curl_global_init is reference-counted, so other modules calling it too is fine.
bool curl_ready() {
  static std::once_flag once;
  static CURLcode init = CURLE_FAILED_INIT;
  std::call_once(once, [] { init = curl_global_init(CURL_GLOBAL_DEFAULT); });
  return init == CURLE_OK;
}

struct Upload {
  std::string_view data;
  std::size_t pos = 0;
};

std::size_t read_upload(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto* upload = static_cast<Upload*>(user);
  const std::size_t n = std::min(size * count, upload->data.size() - upload->pos);
  std::memcpy(buffer, upload->data.data() + upload->pos, n);
  upload->pos += n;
  return n;
}

// The server's last 4xx/5xx reply (all lines of a multi-line one), for error messages: after a failure libcurl
// still sends QUIT, so the last reply is usually "221". Only what the server sent is looked at, never the
// commands (which include AUTH credentials).
struct Replies {
  std::string current;
  bool complete = true;
  std::string failure;
};

int on_debug(CURL*, curl_infotype type, char* data, std::size_t size, void* user) {
  if (type != CURLINFO_HEADER_IN) return 0;
  auto* replies = static_cast<Replies*>(user);
  std::string_view text(data, size);
  while (!text.empty()) {
    const auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    if (line.empty()) continue;
    if (replies->complete) replies->current.clear();
    if (!replies->current.empty()) replies->current += " / ";
    replies->current.append(line.substr(0, 512));
    replies->complete = line.size() < 4 || line[3] != '-';
    if (replies->complete && (line[0] == '4' || line[0] == '5')) replies->failure = replies->current;
  }
  return 0;
}

bool has_smtp_scheme(std::string_view url) {
  std::string lower;
  for (const char c : url.substr(0, 8)) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return lower.starts_with("smtp://") || lower.starts_with("smtps://");
}

class SmtpTransport final : public Transport {
 public:
  SmtpTransport(SmtpOptions options, const Clock& clock) : options_(std::move(options)), clock_(clock) {}

  Result<void> send(const Message& m) override {
    auto text = to_rfc5322(m, clock_.now(), new_uuid_v7(clock_));
    if (!text) return std::unexpected(std::move(text.error()));
    if (!has_smtp_scheme(options_.url)) {
      return fail(Errc::invalid_argument, "the SMTP URL must start with smtp:// or smtps://");
    }
    if (!curl_ready()) return fail(Errc::internal, "libcurl failed to initialise");
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
    if (!curl) return fail(Errc::internal, "curl_easy_init failed");
    curl_slist* list = nullptr;
    for (const auto& a : m.to) {
      curl_slist* grown = curl_slist_append(list, ("<" + a.email + ">").c_str());
      if (grown == nullptr) {
        curl_slist_free_all(list);
        return fail(Errc::internal, "out of memory");
      }
      list = grown;
    }
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> recipients(list, &curl_slist_free_all);
    const std::string from = "<" + m.from.email + ">";
    Upload upload{*text};
    Replies replies;
    char error[CURL_ERROR_SIZE] = {};
    CURL* h = curl.get();
    curl_easy_setopt(h, CURLOPT_URL, options_.url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.timeout.count()));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
    curl_easy_setopt(h, CURLOPT_USE_SSL, options_.starttls ? static_cast<long>(CURLUSESSL_ALL) : 0L);
    if (!options_.username.empty()) {
      curl_easy_setopt(h, CURLOPT_USERNAME, options_.username.c_str());
      curl_easy_setopt(h, CURLOPT_PASSWORD, options_.password.c_str());
    }
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, from.c_str());
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, recipients.get());
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(text->size()));
    curl_easy_setopt(h, CURLOPT_READFUNCTION, &read_upload);
    curl_easy_setopt(h, CURLOPT_READDATA, &upload);
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, &on_debug);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, &replies);
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);  // feeds on_debug; nothing is printed
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
    CURLcode rc = CURLE_OK;
    {
      const SigpipeGuard guard;  // TLS writes to a closed connection
      rc = curl_easy_perform(h);
    }
    if (rc == CURLE_OK) return {};
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    const std::string detail = error[0] != '\0' ? std::string(error) : std::string(curl_easy_strerror(rc));
    const std::string reply = replies.failure.empty() ? detail : replies.failure;
    if (rc == CURLE_LOGIN_DENIED) return fail(Errc::unavailable, "SMTP authentication failed: " + reply);
    if (code >= 500 && code <= 599) return fail(Errc::invalid_argument, "SMTP server rejected the message: " + reply);
    if (code >= 400 && code <= 499) return fail(Errc::unavailable, "SMTP server deferred the message: " + reply);
    if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
      return fail(Errc::invalid_argument, "bad SMTP URL: " + detail);
    }
    return fail(Errc::unavailable, "SMTP send failed: " + detail);
  }

 private:
  const SmtpOptions options_;
  const Clock& clock_;
};

// ---------------------------------------------------------------------------------------------------------------
// .eml directory

std::string file_timestamp(std::chrono::system_clock::time_point t) {
  const auto secs = std::chrono::floor<std::chrono::seconds>(t);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - secs).count();
  const std::time_t tt = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%04d%02d%02dT%02d%02d%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buffer;
}

Result<void> io_error(std::string_view what, const std::string& path, int err) {
  return fail(Errc::unavailable, std::string(what) + " " + path + ": " + std::strerror(err));
}

class EmlDirectoryTransport final : public Transport {
 public:
  EmlDirectoryTransport(std::string dir, const Clock& clock) : dir_(std::move(dir)), clock_(clock) {}

  Result<void> send(const Message& m) override {
    const auto now = clock_.now();
    const std::string id = new_uuid_v7(clock_);
    auto text = to_rfc5322(m, now, id);
    if (!text) return std::unexpected(std::move(text.error()));
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) return fail(Errc::unavailable, "cannot create " + dir_ + ": " + ec.message());
    const std::string name = file_timestamp(now) + "-" + id + ".eml";
    const std::string final_path = (std::filesystem::path(dir_) / name).string();
    const std::string temp_path = (std::filesystem::path(dir_) / ("." + name + ".tmp")).string();
    const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return io_error("cannot create", temp_path, errno);
    auto abandon = [&](std::string_view what) {
      const int err = errno;
      ::close(fd);
      ::unlink(temp_path.c_str());
      return io_error(what, temp_path, err);
    };
    std::string_view rest = *text;
    while (!rest.empty()) {
      const ssize_t n = ::write(fd, rest.data(), rest.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return abandon("cannot write");
      }
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
    if (::fsync(fd) != 0) return abandon("cannot fsync");
    if (::close(fd) != 0) {
      const int err = errno;
      ::unlink(temp_path.c_str());
      return io_error("cannot close", temp_path, err);
    }
    if (::rename(temp_path.c_str(), final_path.c_str()) != 0) {
      const int err = errno;
      ::unlink(temp_path.c_str());
      return io_error("cannot rename", temp_path, err);
    }
    const int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return io_error("cannot open", dir_, errno);
    const int synced = ::fsync(dir_fd);
    const int err = errno;
    ::close(dir_fd);
    if (synced != 0) return io_error("cannot fsync", dir_, err);
    return {};
  }

 private:
  const std::string dir_;
  const Clock& clock_;
};

}  // namespace

Result<Message> render(const Template& t, const Json& vars, Address from, std::vector<Address> to) {
  if (!vars.is_object()) return fail(Errc::invalid_argument, "template variables must be a JSON object");
  for (const auto& [key, value] : vars.items()) {
    if (value.is_object() || value.is_array() || value.is_binary()) {
      return fail(Errc::invalid_argument, "template variable \"" + key + "\" is not a string, number, boolean or null");
    }
  }
  Message m;
  auto subject = substitute(t.subject, vars, false, "subject");
  if (!subject) return std::unexpected(std::move(subject.error()));
  std::erase_if(*subject, [](char c) { return c == '\r' || c == '\n'; });
  auto text = substitute(t.text, vars, false, "text");
  if (!text) return std::unexpected(std::move(text.error()));
  auto html = substitute(t.html, vars, true, "html");
  if (!html) return std::unexpected(std::move(html.error()));
  m.from = std::move(from);
  m.to = std::move(to);
  m.subject = std::move(*subject);
  m.text = std::move(*text);
  m.html = std::move(*html);
  return m;
}

bool valid_address(std::string_view email) { return valid_email_address(email); }

Result<std::string> to_rfc5322(const Message& m, std::chrono::system_clock::time_point date,
                               std::string_view message_id) {
  if (auto ok = check_message(m, message_id); !ok) return std::unexpected(std::move(ok.error()));
  std::string out;
  out.reserve(1024 + m.text.size() * 5 / 4 + m.html.size() * 5 / 4);
  append_field(out, "Date", {rfc5322_date(date)});
  append_field(out, "From", mailbox_words(m.from));
  if (m.reply_to) append_field(out, "Reply-To", mailbox_words(*m.reply_to));
  append_field(out, "To", address_list_words(m.to));
  const auto domain = std::string_view(m.from.email).substr(m.from.email.find('@') + 1);
  std::string id = "<";
  id.append(message_id).append("@").append(domain).append(">");
  append_field(out, "Message-ID", {id});
  append_field(out, "Subject", unstructured_words(m.subject));
  out += "MIME-Version: 1.0\r\n";
  for (const auto& [name, value] : m.headers) append_field(out, name, unstructured_words(value));
  if (m.text.empty() || m.html.empty()) {
    append_part(out, m.text.empty() ? "text/html" : "text/plain", m.text.empty() ? m.html : m.text);
    end_with_crlf(out);
    return out;
  }
  const std::string boundary = boundary_for(message_id);
  out += "Content-Type: multipart/alternative; boundary=\"" + boundary + "\"\r\n\r\n";
  out += "--" + boundary + "\r\n";
  append_part(out, "text/plain", m.text);
  out += "\r\n--" + boundary + "\r\n";
  append_part(out, "text/html", m.html);
  out += "\r\n--" + boundary + "--\r\n";
  return out;
}

std::unique_ptr<Transport> smtp_transport(SmtpOptions o, const Clock& clock) {
  return std::make_unique<SmtpTransport>(std::move(o), clock);
}

std::unique_ptr<Transport> eml_directory_transport(std::string dir, const Clock& clock) {
  return std::make_unique<EmlDirectoryTransport>(std::move(dir), clock);
}

}  // namespace atrium::email
