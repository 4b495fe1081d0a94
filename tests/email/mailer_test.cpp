#include "email/mailer.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/ids.hpp"
#include "support/smtp_receiver.hpp"

namespace atrium::email {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::smtp::decode_base64;

// 2026-01-15T10:15:30.250Z, a Thursday.
const std::chrono::system_clock::time_point k_date =
    std::chrono::sys_days{std::chrono::year(2026) / 1 / 15} + 10h + 15min + 30s + 250ms;

// ---------------------------------------------------------------------------------------------------------------
// A small independent MIME reader, to check what the mailer wrote.

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct Parsed {
  std::vector<std::pair<std::string, std::string>> headers;  // unfolded values, leading space removed
  std::vector<std::string> raw_header_lines;                 // as written (folded)
  std::string body;

  std::vector<std::string> all(const std::string& name) const {
    std::vector<std::string> values;
    for (const auto& [n, v] : headers) {
      if (lower(n) == lower(name)) values.push_back(v);
    }
    return values;
  }
  std::string get(const std::string& name) const {
    const auto values = all(name);
    return values.size() == 1 ? values.front() : "<" + std::to_string(values.size()) + " " + name + " headers>";
  }
};

Parsed parse(const std::string& raw) {
  Parsed p;
  const auto split = raw.find("\r\n\r\n");
  const std::string head = raw.substr(0, split);
  p.body = split == std::string::npos ? "" : raw.substr(split + 4);
  std::size_t start = 0;
  while (start <= head.size()) {
    auto end = head.find("\r\n", start);
    if (end == std::string::npos) end = head.size();
    const std::string line = head.substr(start, end - start);
    p.raw_header_lines.push_back(line);
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t') && !p.headers.empty()) {
      p.headers.back().second += line;  // unfolding removes the CRLF only
    } else {
      const auto colon = line.find(':');
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
      p.headers.emplace_back(line.substr(0, colon), value);
    }
    start = end + 2;
  }
  return p;
}

std::string decode_qp(const std::string& in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '=') {
      out.push_back(in[i]);
    } else if (in.compare(i + 1, 2, "\r\n") == 0) {
      i += 2;  // soft line break
    } else {
      out.push_back(static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    }
  }
  return out;
}

struct EncodedWord {
  std::size_t pos = 0, length = 0;
  char encoding = 0;  // 'B' or 'Q'
  std::string text;
};

// The RFC 2047 encoded-words "=?charset?B|Q?text?=" in a header value.
std::vector<EncodedWord> encoded_words_in(const std::string& value) {
  std::vector<EncodedWord> words;
  for (std::size_t pos = value.find("=?"); pos != std::string::npos; pos = value.find("=?", pos + 1)) {
    const auto charset_end = value.find('?', pos + 2);
    if (charset_end == std::string::npos || charset_end + 2 >= value.size() || value[charset_end + 2] != '?') continue;
    const char encoding = static_cast<char>(std::toupper(static_cast<unsigned char>(value[charset_end + 1])));
    const auto end = value.find("?=", charset_end + 3);
    if ((encoding != 'B' && encoding != 'Q') || end == std::string::npos) continue;
    words.push_back({pos, end + 2 - pos, encoding, value.substr(charset_end + 3, end - charset_end - 3)});
    pos = end + 1;
  }
  return words;
}

// RFC 2047 decoding; whitespace between two adjacent encoded-words is dropped.
std::string decode_words(const std::string& value) {
  std::string out;
  std::size_t pos = 0;
  bool previous_was_word = false;
  for (auto& w : encoded_words_in(value)) {
    const std::string between = value.substr(pos, w.pos - pos);
    if (!(previous_was_word && between.find_first_not_of(" \t") == std::string::npos)) out += between;
    if (w.encoding == 'B') {
      out += decode_base64(w.text);
    } else {
      std::replace(w.text.begin(), w.text.end(), '_', ' ');
      out += decode_qp(w.text);
    }
    pos = w.pos + w.length;
    previous_was_word = true;
  }
  return out + value.substr(pos);
}

std::string decode_body(const Parsed& part) {
  const std::string cte = lower(part.get("Content-Transfer-Encoding"));
  if (cte == "base64") return decode_base64(part.body);
  if (cte == "quoted-printable") return decode_qp(part.body);
  return part.body;
}

std::string boundary_of(const std::string& content_type) {
  const auto start = content_type.find("boundary=\"");
  if (start == std::string::npos) return "";
  const auto end = content_type.find('"', start + 10);
  return end == std::string::npos ? "" : content_type.substr(start + 10, end - start - 10);
}

// The body parts of a multipart body (RFC 2046 5.1.1).
std::vector<Parsed> split_multipart(const std::string& body, const std::string& boundary) {
  std::vector<Parsed> parts;
  const std::string delimiter = "\r\n--" + boundary;
  const std::string padded = "\r\n" + body;
  auto at = padded.find(delimiter + "\r\n");
  while (at != std::string::npos) {
    const auto start = at + delimiter.size() + 2;
    const auto next = padded.find(delimiter, start);
    if (next == std::string::npos) break;
    parts.push_back(parse(padded.substr(start, next - start)));
    if (padded.compare(next + delimiter.size(), 2, "--") == 0) break;
    at = next;
  }
  return parts;
}

// Every line ends with CRLF (no bare CR or LF) and holds at most 998 octets.
::testing::AssertionResult well_formed_lines(const std::string& raw) {
  std::size_t line = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\r' && (i + 1 == raw.size() || raw[i + 1] != '\n')) {
      return ::testing::AssertionFailure() << "bare CR at " << i;
    }
    if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) return ::testing::AssertionFailure() << "bare LF at " << i;
    if (raw[i] == '\r' || raw[i] == '\n') {
      line = 0;
    } else if (++line > 998) {
      return ::testing::AssertionFailure() << "line longer than 998 octets at " << i;
    }
  }
  if (!raw.ends_with("\r\n")) return ::testing::AssertionFailure() << "does not end with CRLF";
  return ::testing::AssertionSuccess();
}

// Well-formed UTF-8 (whole characters only); enough for the tests.
bool utf8_ok(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 9;
    if (n == 9 || i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n + 1;
  }
  return true;
}

// Bare LFs as CRLF.
std::string crlf(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) out += '\r';
    out += s[i];
  }
  return out;
}

// The UUID in "<uuid@domain>", or "".
std::string message_id_uuid(const std::string& value, const std::string& domain) {
  if (value.size() != 36 + domain.size() + 3 || value.front() != '<' || !value.ends_with("@" + domain + ">")) return "";
  const std::string id = value.substr(1, 36);
  return is_uuid(id) ? id : "";
}

Message sample() {
  Message m;
  m.from = {"noreply@atrium.example", "Atrium"};
  m.to = {{"ada@example.com", "Ada Lovelace"}, {"bob@example.org", ""}};
  m.reply_to = Address{"support@atrium.example", "Support"};
  m.subject = "Welcome to Atrium";
  m.text = "Hello Ada,\nwelcome.\n";
  m.html = "<p>Hello Ada,<br>welcome.</p>";
  m.headers = {{"X-Atrium-Tenant", "tenant-42"}};
  return m;
}

// ---------------------------------------------------------------------------------------------------------------
// render

TEST(EmailRender, EscapesValuesInHtmlButNotInTextOrSubject) {
  const Template t{"Hi {{name}}", "Dear {{ name }}, you have {{count}} items ({{flag}}){{nothing}}.",
                   "<p>Dear {{name}}</p><a href=\"{{url}}\">go</a>"};
  const Json vars = {{"name", "<b>Ada & \"Bob\"</b>'s"},
                     {"count", 3},
                     {"flag", true},
                     {"nothing", nullptr},
                     {"url", "https://x.example/?a=1&b=\"2\""}};
  const auto m = render(t, vars, {"from@example.com", "From"}, {{"to@example.com", ""}});
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_EQ(m->subject, "Hi <b>Ada & \"Bob\"</b>'s");
  EXPECT_EQ(m->text, "Dear <b>Ada & \"Bob\"</b>'s, you have 3 items (true).");
  EXPECT_EQ(m->html,
            "<p>Dear &lt;b&gt;Ada &amp; &quot;Bob&quot;&lt;/b&gt;&#39;s</p>"
            "<a href=\"https://x.example/?a=1&amp;b=&quot;2&quot;\">go</a>");
  EXPECT_EQ(m->from.email, "from@example.com");
  ASSERT_EQ(m->to.size(), 1u);
  EXPECT_EQ(m->to[0].email, "to@example.com");
}

TEST(EmailRender, ValuesAreNotScannedAgain) {
  const auto m = render({"", "{{a}}", "{{a}}"}, Json{{"a", "{{b}}"}}, {"f@example.com", ""}, {{"t@example.com", ""}});
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_EQ(m->text, "{{b}}");
  EXPECT_EQ(m->html, "{{b}}");
}

TEST(EmailRender, UnknownPlaceholderIsInvalidArgumentNamingIt) {
  const Json vars = {{"name", "Ada"}};
  for (const Template& t : {Template{"{{subject_line}}", "", ""}, Template{"", "Hi {{missing_one}}", ""},
                            Template{"", "", "<p>{{ missing.two }}</p>"}}) {
    const auto m = render(t, vars, {"f@example.com", ""}, {{"t@example.com", ""}});
    ASSERT_FALSE(m.has_value());
    EXPECT_EQ(m.error().code, Errc::invalid_argument);
    const std::string expected = !t.subject.empty() ? "subject_line" : !t.text.empty() ? "missing_one" : "missing.two";
    EXPECT_NE(m.error().message.find("\"" + expected + "\""), std::string::npos) << m.error().message;
  }
}

TEST(EmailRender, MalformedPlaceholdersAndVariablesAreInvalidArgument) {
  const Json vars = {{"name", "Ada"}};
  for (const std::string text : {"{{name", "{{}}", "{{ }}", "{{{{name}}}}", "{{first name}}", "{{na<me}}"}) {
    const auto m = render({"", text, ""}, vars, {"f@example.com", ""}, {{"t@example.com", ""}});
    ASSERT_FALSE(m.has_value()) << text;
    EXPECT_EQ(m.error().code, Errc::invalid_argument) << text;
  }
  for (const Json& bad :
       {Json::array({"Ada"}), Json("Ada"), Json{{"name", Json::array({1})}}, Json{{"name", Json{{"first", "Ada"}}}}}) {
    const auto m = render({"", "{{name}}", ""}, bad, {"f@example.com", ""}, {{"t@example.com", ""}});
    ASSERT_FALSE(m.has_value()) << bad.dump();
    EXPECT_EQ(m.error().code, Errc::invalid_argument);
  }
  // A single brace and a lone "}}" are text.
  const auto m = render({"", "{name} }} {{name}}", ""}, vars, {"f@example.com", ""}, {{"t@example.com", ""}});
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_EQ(m->text, "{name} }} Ada");
}

TEST(EmailRender, LineBreaksAreStrippedFromTheSubjectOnly) {
  const Json vars = {{"v", "Hello\r\nBcc: victim@example.com\nX: y"}};
  const auto m = render({"Re: {{v}}", "{{v}}", "{{v}}"}, vars, {"f@example.com", ""}, {{"t@example.com", ""}});
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_EQ(m->subject, "Re: HelloBcc: victim@example.comX: y");
  EXPECT_EQ(m->text, "Hello\r\nBcc: victim@example.com\nX: y");
  const auto raw = to_rfc5322(*m, k_date, "id1");
  ASSERT_TRUE(raw.has_value()) << raw.error().message;
  const auto p = parse(*raw);
  EXPECT_TRUE(p.all("Bcc").empty());
  EXPECT_TRUE(p.all("X").empty());
  EXPECT_EQ(decode_words(p.get("Subject")), m->subject);
}

// ---------------------------------------------------------------------------------------------------------------
// addresses and header injection

TEST(EmailAddress, Validation) {
  for (const char* good : {"ada@example.com", "a.b+tag@sub.example.co.uk", "x@atrium.localhost", "o'neil@example.com",
                           "1234567890@123.example", "a_b-c@x-y.example"}) {
    EXPECT_TRUE(valid_address(good)) << good;
  }
  const std::vector<std::string> bad_addresses{"",
                                               "ada",
                                               "ada@",
                                               "@example.com",
                                               "ada@@example.com",
                                               "a@b@example.com",
                                               "ada@example.com\r\nBcc: x@y.z",
                                               "ada@example.com\n",
                                               "ada\r@example.com",
                                               "ada @example.com",
                                               "<ada@example.com>",
                                               "ada@example.com>",
                                               "\"ada\"@example.com",
                                               "ada,bob@example.com",
                                               ".ada@example.com",
                                               "ada.@example.com",
                                               "a..da@example.com",
                                               "ada@.example.com",
                                               "ada@example..com",
                                               "ada@-example.com",
                                               "ada@example-.com",
                                               "ada@exa_mple.com",
                                               "ada@exa mple.com",
                                               "x@localhost",  // dotless domains are refused
                                               std::string("ada\0@example.com", 16),
                                               "ädä@example.com",
                                               std::string(65, 'a') + "@example.com",
                                               "a@" + std::string(250, 'b') + ".com"};
  for (const auto& bad : bad_addresses) {
    EXPECT_FALSE(valid_address(bad)) << bad;
  }
}

TEST(EmailRfc5322, HeaderInjectionIsRejected) {
  auto expect_rejected = [](const Message& m, const std::string& what) {
    const auto raw = to_rfc5322(m, k_date, "id1");
    ASSERT_FALSE(raw.has_value()) << what;
    EXPECT_EQ(raw.error().code, Errc::invalid_argument) << what;
  };
  auto m = sample();
  m.subject = "Hi\r\nBcc: victim@example.com";
  expect_rejected(m, "CRLF in subject");
  m.subject = "Hi\nBcc: victim@example.com";
  expect_rejected(m, "LF in subject");
  m.subject = "Hi\rthere";
  expect_rejected(m, "CR in subject");
  m.subject = std::string("Hi\0there", 8);
  expect_rejected(m, "NUL in subject");
  m = sample();
  m.to[0].email = "ada@example.com\r\nBcc: victim@example.com";
  expect_rejected(m, "CRLF in To address");
  m = sample();
  m.to[1].email = "bob@example.org>, <victim@example.com";
  expect_rejected(m, "two addresses in one");
  m = sample();
  m.from.email = "a@b@example.com";
  expect_rejected(m, "two @ in From");
  m = sample();
  m.from.email = "noreply";
  expect_rejected(m, "no @ in From");
  m = sample();
  m.reply_to->email = "x@example.com\nBcc: victim@example.com";
  expect_rejected(m, "LF in Reply-To");
  m = sample();
  m.to[0].name = "Ada\r\nBcc: victim@example.com";
  expect_rejected(m, "CRLF in a name");
  m = sample();
  m.from.name = "Atrium\n";
  expect_rejected(m, "LF in From name");
  m = sample();
  m.headers = {{"X-Atrium-Tenant", "t\r\nBcc: victim@example.com"}};
  expect_rejected(m, "CRLF in a header value");
  m.headers = {{"X-Atrium: Bcc", "x"}};
  expect_rejected(m, "colon in a header name");
  m.headers = {{"X Atrium", "x"}};
  expect_rejected(m, "space in a header name");
  for (const char* reserved : {"Bcc", "to", "From", "Subject", "Content-Type", "content-transfer-encoding",
                               "Message-ID", "MIME-Version", "Date", "Reply-To", "Sender", "Cc"}) {
    m.headers = {{reserved, "x"}};
    expect_rejected(m, reserved);
  }
  m = sample();
  m.subject = "\xC3\x28 invalid UTF-8";
  expect_rejected(m, "invalid UTF-8 subject");
}

TEST(EmailRfc5322, RejectsMessagesWithoutRecipientBodyOrGoodId) {
  auto m = sample();
  m.to.clear();
  auto raw = to_rfc5322(m, k_date, "id1");
  ASSERT_FALSE(raw.has_value());
  EXPECT_EQ(raw.error().code, Errc::invalid_argument);
  m = sample();
  m.text.clear();
  m.html.clear();
  raw = to_rfc5322(m, k_date, "id1");
  ASSERT_FALSE(raw.has_value());
  EXPECT_EQ(raw.error().code, Errc::invalid_argument);
  for (const char* id : {"", "a b", "a>b", "id\r\n", "a@b", ".a", "a..b"}) {
    raw = to_rfc5322(sample(), k_date, id);
    ASSERT_FALSE(raw.has_value()) << id;
    EXPECT_EQ(raw.error().code, Errc::invalid_argument);
  }
}

TEST(EmailRfc5322, NamesWithSpecialsAreQuotedAndCannotAddRecipients) {
  auto m = sample();
  m.to = {{"ada@example.com", "Ada\", <victim@example.com>, \"x \\ y"}};
  const auto raw = to_rfc5322(m, k_date, "id1");
  ASSERT_TRUE(raw.has_value()) << raw.error().message;
  const auto p = parse(*raw);
  EXPECT_EQ(p.get("To"), "\"Ada\\\", <victim@example.com>, \\\"x \\\\ y\" <ada@example.com>");
}

// ---------------------------------------------------------------------------------------------------------------
// RFC 5322 structure

TEST(EmailRfc5322, HeadersDateMessageIdAndExtras) {
  const auto raw = to_rfc5322(sample(), k_date, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
  ASSERT_TRUE(raw.has_value()) << raw.error().message;
  EXPECT_TRUE(well_formed_lines(*raw));
  const auto p = parse(*raw);
  EXPECT_EQ(p.get("Date"), "Thu, 15 Jan 2026 10:15:30 +0000");
  EXPECT_EQ(p.get("Message-ID"), "<0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b@atrium.example>");
  EXPECT_EQ(p.get("From"), "\"Atrium\" <noreply@atrium.example>");
  EXPECT_EQ(p.get("To"), "\"Ada Lovelace\" <ada@example.com>, bob@example.org");
  EXPECT_EQ(p.get("Reply-To"), "\"Support\" <support@atrium.example>");
  EXPECT_EQ(p.get("Subject"), "Welcome to Atrium");
  EXPECT_EQ(p.get("MIME-Version"), "1.0");
  EXPECT_EQ(p.get("X-Atrium-Tenant"), "tenant-42");
  EXPECT_TRUE(p.all("Bcc").empty());
  // Same input, same bytes.
  EXPECT_EQ(*raw, *to_rfc5322(sample(), k_date, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"));
  // No Reply-To unless given.
  auto m = sample();
  m.reply_to.reset();
  EXPECT_TRUE(parse(*to_rfc5322(m, k_date, "x")).all("Reply-To").empty());
}

TEST(EmailRfc5322, NonAsciiSubjectNamesAndHeadersAreEncodedWords) {
  auto m = sample();
  m.subject = "Grüße aus Köln — 東京からこんにちは ✓ and a long tail so that it needs more than one encoded word 🎉🎉";
  m.from.name = "Zoë Ångström";
  m.to = {{"ada@example.com", "Ада Лавлейс"}, {"bob@example.org", "Bob"}};
  m.headers = {{"X-Atrium-Note", "naïve café"}};
  const auto raw = to_rfc5322(m, k_date, "id1");
  ASSERT_TRUE(raw.has_value()) << raw.error().message;
  EXPECT_TRUE(well_formed_lines(*raw));
  const auto p = parse(*raw);
  for (const auto& line : p.raw_header_lines) {
    EXPECT_TRUE(std::all_of(line.begin(), line.end(), [](char c) { return c >= 0x20 && c <= 0x7E; })) << line;
    EXPECT_LE(line.size(), 998u);
  }
  const std::string subject = p.get("Subject");
  EXPECT_NE(subject.find("=?UTF-8?B?"), std::string::npos);
  EXPECT_EQ(decode_words(subject), m.subject);
  const auto words = encoded_words_in(subject);
  EXPECT_GT(words.size(), 1u);
  for (const auto& w : words) {
    EXPECT_LE(w.length, 75u) << subject.substr(w.pos, w.length);                      // RFC 2047 2
    EXPECT_TRUE(utf8_ok(decode_base64(w.text))) << "splits a character: " << w.text;  // RFC 2047 6.3
  }
  EXPECT_EQ(decode_words(p.get("From")), "Zoë Ångström <noreply@atrium.example>");
  EXPECT_EQ(decode_words(p.get("To")), "Ада Лавлейс <ada@example.com>, \"Bob\" <bob@example.org>");
  EXPECT_EQ(decode_words(p.get("X-Atrium-Note")), "naïve café");
}

TEST(EmailRfc5322, LongAsciiSubjectIsFoldedAndUnfoldsToTheOriginal) {
  auto m = sample();
  m.subject.clear();
  for (int i = 0; i < 40; ++i) m.subject += (i ? " word" : "word") + std::to_string(i);
  const auto raw = to_rfc5322(m, k_date, "id1");
  ASSERT_TRUE(raw.has_value()) << raw.error().message;
  const auto p = parse(*raw);
  int subject_lines = 0;
  bool in_subject = false;
  for (const auto& line : p.raw_header_lines) {
    if (line.starts_with("Subject:"))
      in_subject = true;
    else if (!line.starts_with(" "))
      in_subject = false;
    if (in_subject) {
      ++subject_lines;
      EXPECT_LE(line.size(), 78u) << line;
    }
  }
  EXPECT_GT(subject_lines, 2);
  EXPECT_EQ(p.get("Subject"), m.subject);
  // A word too long to fold is encoded rather than written past the line limit.
  m.subject = "x " + std::string(2000, 'y');
  const auto long_word = to_rfc5322(m, k_date, "id1");
  ASSERT_TRUE(long_word.has_value());
  EXPECT_TRUE(well_formed_lines(*long_word));
  EXPECT_EQ(decode_words(parse(*long_word).get("Subject")), m.subject);
}

TEST(EmailRfc5322, MultipartAlternativeHasTextThenHtmlBothDecodable) {
  auto m = sample();
  m.text = "Hello Zoë,\n.leading dot\nFrom here\ntrailing space \nequals = sign\n" + std::string(1500, 'a') +
           "\n\ttab\r\nold mac\rline\n";
  m.html = "<p>Привет, мир!</p>\n<p>";
  for (int i = 0; i < 30; ++i) m.html += "Это письмо почти целиком на русском языке. ";  // one long line
  m.html += "</p>";
  const auto raw = to_rfc5322(m, k_date, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
  ASSERT_TRUE(raw.has_value()) << raw.error().message;
  EXPECT_TRUE(well_formed_lines(*raw));
  const auto p = parse(*raw);
  const std::string type = p.get("Content-Type");
  EXPECT_TRUE(type.starts_with("multipart/alternative;")) << type;
  const std::string boundary = boundary_of(type);
  ASSERT_FALSE(boundary.empty()) << type;
  EXPECT_NE(p.body.find("--" + boundary + "\r\n"), std::string::npos);
  EXPECT_NE(p.body.find("\r\n--" + boundary + "--\r\n"), std::string::npos);
  const auto parts = split_multipart(p.body, boundary);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].get("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(parts[1].get("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(parts[0].get("Content-Transfer-Encoding"), "quoted-printable");
  EXPECT_EQ(parts[1].get("Content-Transfer-Encoding"), "base64");  // mostly Cyrillic
  EXPECT_EQ(decode_body(parts[0]), crlf("Hello Zoë,\n.leading dot\nFrom here\ntrailing space \nequals = sign\n" +
                                        std::string(1500, 'a') + "\n\ttab\nold mac\nline\n"));
  EXPECT_EQ(decode_body(parts[1]), crlf(m.html));
  // No encoded line starts with '.', so the text is the same whether or not the sender dot-stuffs; QP lines
  // stay within 76 characters and end with no whitespace.
  std::istringstream lines(parts[0].body);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_FALSE(line.starts_with(".")) << line;
    EXPECT_LE(line.size(), 77u) << line;  // 76 + the CR
    ASSERT_TRUE(line.ends_with('\r')) << line;
    EXPECT_FALSE(line.ends_with(" \r") || line.ends_with("\t\r")) << line;  // would be stripped in transit
  }
}

TEST(EmailRfc5322, SinglePartMessagesAreNotMultipart) {
  auto m = sample();
  m.html.clear();
  m.text = "no newline at the end";
  auto raw = to_rfc5322(m, k_date, "id1");
  ASSERT_TRUE(raw.has_value()) << raw.error().message;
  EXPECT_TRUE(well_formed_lines(*raw));
  auto p = parse(*raw);
  EXPECT_EQ(p.get("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(decode_body(p), m.text);
  m = sample();
  m.text.clear();
  m.html = "<p>日本語のメール</p>";
  raw = to_rfc5322(m, k_date, "id1");
  ASSERT_TRUE(raw.has_value()) << raw.error().message;
  EXPECT_TRUE(well_formed_lines(*raw));
  p = parse(*raw);
  EXPECT_EQ(p.get("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(decode_body(p), m.html);
}

// ---------------------------------------------------------------------------------------------------------------
// SMTP

class EmailSmtpTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(receiver.listening()); }
  std::unique_ptr<Transport> transport(SmtpOptions options = {}) {
    if (options.url.empty()) options.url = receiver.url();
    if (options.timeout == std::chrono::milliseconds(10000)) options.timeout = 5s;
    return smtp_transport(options, clock);
  }
  ManualClock clock{k_date};
  test::smtp::Receiver receiver;
};

TEST_F(EmailSmtpTest, MessageArrivesWithEnvelopeHeadersAndBody) {
  auto m = sample();
  m.subject = "Grüße, Ada";
  m.text = "Hello Ada,\n.a line starting with a dot\n..two dots\n.\nthe line above was a lone dot\n";
  const auto sent = transport()->send(m);
  ASSERT_TRUE(sent.has_value()) << sent.error().message;
  const auto got = receiver.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].mail_from, "noreply@atrium.example");
  EXPECT_EQ(got[0].recipients, (std::vector<std::string>{"ada@example.com", "bob@example.org"}));
  EXPECT_TRUE(well_formed_lines(got[0].data));
  const auto p = parse(got[0].data);
  EXPECT_EQ(p.get("Date"), "Thu, 15 Jan 2026 10:15:30 +0000");  // from the injected clock
  const std::string id = message_id_uuid(p.get("Message-ID"), "atrium.example");
  ASSERT_FALSE(id.empty()) << p.get("Message-ID");
  EXPECT_EQ(p.get("From"), "\"Atrium\" <noreply@atrium.example>");
  EXPECT_EQ(p.get("To"), "\"Ada Lovelace\" <ada@example.com>, bob@example.org");
  EXPECT_EQ(decode_words(p.get("Subject")), "Grüße, Ada");
  EXPECT_EQ(p.get("X-Atrium-Tenant"), "tenant-42");
  const auto parts = split_multipart(p.body, boundary_of(p.get("Content-Type")));
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(decode_body(parts[0]), crlf(m.text));
  EXPECT_EQ(decode_body(parts[1]), m.html);
  // Exactly what to_rfc5322 makes for the same clock reading and id.
  EXPECT_EQ(got[0].data, *to_rfc5322(m, k_date, id));
  const auto commands = receiver.commands();
  ASSERT_FALSE(commands.empty());
  EXPECT_EQ(commands.back(), "QUIT");
}

TEST_F(EmailSmtpTest, PermanentRejectionIsInvalidArgumentWithTheServersReply) {
  receiver.set_mode(test::smtp::Mode::reject_recipients);
  const auto sent = transport()->send(sample());
  ASSERT_FALSE(sent.has_value());
  EXPECT_EQ(sent.error().code, Errc::invalid_argument) << sent.error().message;
  EXPECT_NE(sent.error().message.find("550 5.1.1"), std::string::npos) << sent.error().message;
  EXPECT_NE(sent.error().message.find("User unknown"), std::string::npos) << sent.error().message;
  EXPECT_TRUE(receiver.received().empty());
}

TEST_F(EmailSmtpTest, TransientFailureIsUnavailable) {
  receiver.set_mode(test::smtp::Mode::transient);
  const auto sent = transport()->send(sample());
  ASSERT_FALSE(sent.has_value());
  EXPECT_EQ(sent.error().code, Errc::unavailable) << sent.error().message;
  EXPECT_NE(sent.error().message.find("421"), std::string::npos) << sent.error().message;
  // The server recovers: the same transport delivers.
  receiver.set_mode(test::smtp::Mode::accept);
  const auto again = transport()->send(sample());
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_EQ(receiver.wait_for(1).size(), 1u);
}

TEST_F(EmailSmtpTest, ServerDownIsUnavailableAndSendingResumesWhenItIsBack) {
  const auto t = transport();
  receiver.stop();
  const auto down = t->send(sample());
  ASSERT_FALSE(down.has_value());
  EXPECT_EQ(down.error().code, Errc::unavailable) << down.error().message;
  ASSERT_TRUE(receiver.start());
  const auto up = t->send(sample());
  ASSERT_TRUE(up.has_value()) << up.error().message;
  EXPECT_EQ(receiver.wait_for(1).size(), 1u);
}

TEST_F(EmailSmtpTest, AuthenticatesWithTheConfiguredCredentials) {
  receiver.require_auth("mailer", "s3cret");
  SmtpOptions good;
  good.username = "mailer";
  good.password = "s3cret";
  const auto sent = transport(good)->send(sample());
  ASSERT_TRUE(sent.has_value()) << sent.error().message;
  EXPECT_EQ(receiver.wait_for(1).size(), 1u);
  SmtpOptions bad = good;
  bad.password = "wrong";
  const auto refused = transport(bad)->send(sample());
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Errc::unavailable) << refused.error().message;
  EXPECT_NE(refused.error().message.find("535"), std::string::npos) << refused.error().message;
  // Without credentials the server refuses MAIL with a permanent 530.
  const auto anonymous = transport()->send(sample());
  ASSERT_FALSE(anonymous.has_value());
  EXPECT_EQ(anonymous.error().code, Errc::invalid_argument) << anonymous.error().message;
  EXPECT_EQ(receiver.received().size(), 1u);
}

TEST_F(EmailSmtpTest, RequiredStarttlsThatTheServerDoesNotOfferFails) {
  SmtpOptions options;
  options.starttls = true;
  const auto sent = transport(options)->send(sample());
  ASSERT_FALSE(sent.has_value());
  EXPECT_EQ(sent.error().code, Errc::unavailable) << sent.error().message;
  EXPECT_TRUE(receiver.received().empty());
}

TEST_F(EmailSmtpTest, InvalidMessagesAndUrlsAreRejectedBeforeConnecting) {
  auto m = sample();
  m.to[0].email = "ada@example.com\r\nRCPT TO:<victim@example.com>";
  auto sent = transport()->send(m);
  ASSERT_FALSE(sent.has_value());
  EXPECT_EQ(sent.error().code, Errc::invalid_argument);
  SmtpOptions http;
  http.url = "http://127.0.0.1:" + std::to_string(receiver.port());
  sent = transport(http)->send(sample());
  ASSERT_FALSE(sent.has_value());
  EXPECT_EQ(sent.error().code, Errc::invalid_argument);
  EXPECT_EQ(receiver.connections(), 0);
}

TEST_F(EmailSmtpTest, ConcurrentSendsAllArrive) {
  const auto t = transport();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < 5; ++j) {
        auto m = sample();
        m.subject = "message " + std::to_string(i) + "-" + std::to_string(j);
        if (!t->send(m)) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const auto got = receiver.wait_for(20);
  ASSERT_EQ(got.size(), 20u);
  std::vector<std::string> subjects, ids;
  for (const auto& r : got) {
    const auto p = parse(r.data);
    subjects.push_back(p.get("Subject"));
    ids.push_back(p.get("Message-ID"));
  }
  std::sort(subjects.begin(), subjects.end());
  EXPECT_EQ(std::unique(subjects.begin(), subjects.end()), subjects.end());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::unique(ids.begin(), ids.end()), ids.end());
}

// The receiver itself, driven by hand: command sequencing, RSET, NOOP, HELO and dot-unstuffing.
class LineClient {
 public:
  explicit LineClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~LineClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  LineClient(const LineClient&) = delete;
  LineClient& operator=(const LineClient&) = delete;
  bool connected() const { return fd_ >= 0; }

  // The reply's last line (a multi-line reply's earlier lines are skipped); "" on timeout or close.
  std::string reply() {
    for (;;) {
      const auto end = buffer_.find("\r\n");
      if (end != std::string::npos) {
        const std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 2);
        if (line.size() >= 4 && line[3] == '-') continue;
        return line;
      }
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return "";
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  std::string command(const std::string& line) {
    const std::string bytes = line + "\r\n";
    if (::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size())) return "";
    return reply();
  }

 private:
  int fd_ = -1;
  std::string buffer_;
};

TEST(SmtpReceiver, SpeaksEnoughSmtpAndUnstuffsDots) {
  test::smtp::Receiver receiver;
  ASSERT_TRUE(receiver.listening());
  LineClient c(receiver.port());
  ASSERT_TRUE(c.connected());
  EXPECT_TRUE(c.reply().starts_with("220 "));
  EXPECT_TRUE(c.command("MAIL FROM:<a@example.com>").starts_with("503 "));  // no HELO yet
  EXPECT_TRUE(c.command("HELO client.example").starts_with("250 "));
  EXPECT_TRUE(c.command("RCPT TO:<b@example.com>").starts_with("503 "));  // no MAIL yet
  EXPECT_TRUE(c.command("MAIL FROM:<a@example.com>").starts_with("250 "));
  EXPECT_TRUE(c.command("RCPT TO:<dropped@example.com>").starts_with("250 "));
  EXPECT_TRUE(c.command("RSET").starts_with("250 "));
  EXPECT_TRUE(c.command("DATA").starts_with("503 "));  // RSET forgot the recipients
  EXPECT_TRUE(c.command("NOOP").starts_with("250 "));
  EXPECT_TRUE(c.command("EHLO client.example").starts_with("250 "));
  EXPECT_TRUE(c.command("MAIL FROM:<a@example.com> SIZE=100").starts_with("250 "));
  EXPECT_TRUE(c.command("RCPT TO:<b@example.com>").starts_with("250 "));
  EXPECT_TRUE(c.command("rcpt to: <c@example.com>").starts_with("250 "));
  EXPECT_TRUE(c.command("DATA").starts_with("354 "));
  EXPECT_TRUE(c.command("Subject: x\r\n\r\n..one dot\r\n...two dots\r\nlast\r\n.").starts_with("250 "));
  EXPECT_TRUE(c.command("VRFY b").starts_with("502 "));
  EXPECT_TRUE(c.command("QUIT").starts_with("221 "));
  const auto got = receiver.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].helo, "client.example");
  EXPECT_EQ(got[0].mail_from, "a@example.com");
  EXPECT_EQ(got[0].recipients, (std::vector<std::string>{"b@example.com", "c@example.com"}));
  EXPECT_EQ(got[0].data, "Subject: x\r\n\r\n.one dot\r\n..two dots\r\nlast\r\n");
  // stop() ends the service; start() listens on the same port again.
  const auto port = receiver.port();
  receiver.stop();
  EXPECT_FALSE(LineClient(port).connected());
  ASSERT_TRUE(receiver.start());
  EXPECT_EQ(receiver.port(), port);
  LineClient again(port);
  ASSERT_TRUE(again.connected());
  EXPECT_TRUE(again.reply().starts_with("220 "));
}

// ---------------------------------------------------------------------------------------------------------------
// .eml directory

class TempDir {
 public:
  TempDir() {
    std::random_device random;
    path_ = fs::temp_directory_path() /
            ("atrium-mailer-test-" + std::to_string(::getpid()) + "-" + std::to_string(random()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(EmailEmlDirectory, WritesOneParseableFilePerMessageAndNoTemporaries) {
  const TempDir temp;
  const fs::path dir = temp.path() / "outbox" / "nested";  // created on first send
  ManualClock clock(k_date);
  const auto transport = eml_directory_transport(dir.string(), clock);
  auto first = sample();
  first.subject = "Grüße";
  ASSERT_TRUE(transport->send(first).has_value());
  clock.advance(1500ms);
  auto second = sample();
  second.html.clear();
  ASSERT_TRUE(transport->send(second).has_value());
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files.size(), 2u);  // no temporary file left
  // <UTC timestamp>-<uuid>.eml
  const std::string first_name = files[0].filename().string();
  const std::string second_name = files[1].filename().string();
  ASSERT_EQ(first_name.size(), 20u + 1 + 36 + 4) << first_name;
  ASSERT_EQ(second_name.size(), 20u + 1 + 36 + 4) << second_name;
  EXPECT_EQ(first_name.substr(0, 21), "20260115T101530.250Z-");
  EXPECT_EQ(second_name.substr(0, 21), "20260115T101531.750Z-");
  EXPECT_TRUE(first_name.ends_with(".eml"));
  EXPECT_TRUE(second_name.ends_with(".eml"));
  const std::string first_id = first_name.substr(21, 36);
  const std::string second_id = second_name.substr(21, 36);
  EXPECT_TRUE(is_uuid(first_id)) << first_name;
  EXPECT_TRUE(is_uuid(second_id)) << second_name;

  const std::string content = read_file(files[0]);
  EXPECT_EQ(content, *to_rfc5322(first, k_date, first_id));  // the same bytes SMTP would carry
  EXPECT_TRUE(well_formed_lines(content));
  const auto p = parse(content);
  EXPECT_EQ(p.get("Message-ID"), "<" + first_id + "@atrium.example>");
  EXPECT_EQ(decode_words(p.get("Subject")), "Grüße");
  const auto parts = split_multipart(p.body, boundary_of(p.get("Content-Type")));
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(decode_body(parts[0]), crlf(first.text));
  EXPECT_EQ(decode_body(parts[1]), first.html);
  const auto second_parsed = parse(read_file(files[1]));
  EXPECT_EQ(second_parsed.get("Date"), "Thu, 15 Jan 2026 10:15:31 +0000");
  EXPECT_EQ(second_parsed.get("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(decode_body(second_parsed), crlf(second.text));
  EXPECT_EQ(read_file(files[1]), *to_rfc5322(second, k_date + 1500ms, second_id));
  struct stat st {};
  ASSERT_EQ(::stat(files[0].c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);  // mail can hold sign-in links
}

TEST(EmailEmlDirectory, InvalidMessageWritesNothingAndUnwritableDirectoryIsUnavailable) {
  const TempDir temp;
  ManualClock clock(k_date);
  auto m = sample();
  m.subject = "a\r\nBcc: victim@example.com";
  const auto invalid = eml_directory_transport(temp.path().string(), clock)->send(m);
  ASSERT_FALSE(invalid.has_value());
  EXPECT_EQ(invalid.error().code, Errc::invalid_argument);
  EXPECT_TRUE(fs::is_empty(temp.path()));
  // A regular file where the directory should be: neither root nor anyone can write there.
  const fs::path file = temp.path() / "not-a-directory";
  std::ofstream(file) << "x";
  const auto blocked = eml_directory_transport((file / "outbox").string(), clock)->send(sample());
  ASSERT_FALSE(blocked.has_value());
  EXPECT_EQ(blocked.error().code, Errc::unavailable) << blocked.error().message;
}

}  // namespace
}  // namespace atrium::email
