#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/json.hpp"

namespace atrium::email {

struct Address {
  std::string email;  // ASCII addr-spec, e.g. "ada@example.com" (see valid_address)
  std::string name;   // display name, UTF-8, optional
};

// One outgoing email. `text` and/or `html` (UTF-8); at least one must be non-empty.
struct Message {
  Address from;
  std::vector<Address> to;
  std::optional<Address> reply_to;
  std::string subject;
  std::string text;
  std::string html;
  // Extra header fields, e.g. {"X-Atrium-Tenant", id}. Names are 1-76 printable ASCII characters without ':', not one
  // the mailer writes itself (Date, From, To, Cc, Bcc, Reply-To, Sender, Subject, Message-ID, MIME-Version,
  // Content-*). Values are UTF-8 without CR, LF or NUL.
  std::vector<std::pair<std::string, std::string>> headers;
};

// A message template. "{{name}}" is replaced by the member `name` of a flat JSON object; spaces inside the braces
// are ignored ("{{ name }}"), names are [A-Za-z0-9_.-]+. Every "{{" opens a placeholder; there is no escape, so a
// template cannot hold a literal "{{" ("{{{{" is malformed, not an escape). Substituted values are not scanned again.
struct Template {
  std::string subject;
  std::string text;
  std::string html;
};

// Renders `t` with `vars` (a JSON object whose members are strings, numbers, booleans or null; null renders as
// ""). In `html` values are HTML-escaped (& < > " '); in `text` and `subject` they go in as they are, except that CR
// and LF are removed from the rendered subject. invalid_argument for an unknown placeholder (the message names
// it), a malformed one, or `vars` that is not a flat object. The result is not validated: to_rfc5322 does that.
Result<Message> render(const Template& t, const Json& vars, Address from, std::vector<Address> to);

// valid_email_address (core/email_address.hpp), the one address check: an ASCII addr-spec "local@domain" with a
// dot-atom local part and a dotted LDH domain, at most 254 characters. No whitespace, control characters, quotes or
// angle brackets: an accepted address cannot break a header or an SMTP command.
bool valid_address(std::string_view email);

// The RFC 5322 text of `m`, with CRLF line endings and no line over 998 octets (header fields folded at 78 where
// they can be): Date (`date`, in UTC), From, Reply-To, To, Message-ID "<message_id@domain of From>", Subject,
// MIME-Version, the extra headers, then the body. Display names and the subject are RFC 2047 encoded-words
// (UTF-8, B) when they are not plain printable ASCII. One body part is sent as text/plain or text/html; both as
// multipart/alternative (text first, then html). Bodies are charset=utf-8, line breaks normalised to CRLF,
// quoted-printable, or base64 when most of the body is not ASCII. invalid_argument when an address is not
// valid_address, a name/subject/header contains CR, LF or NUL or is not UTF-8, a header name is not allowed,
// there is no recipient or no body, or `message_id` is not a dot-atom (e.g. a UUID) - header injection through
// any field is impossible.
Result<std::string> to_rfc5322(const Message& m, std::chrono::system_clock::time_point date,
                               std::string_view message_id);

// Where mail goes. Implementations are thread-safe; send() blocks until the message is handed over. Each send
// stamps Date from the clock and a fresh Message-ID (a UUIDv7); invalid messages are invalid_argument.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual Result<void> send(const Message& m) = 0;
};

struct SmtpOptions {
  // smtp://host:port (plain, or STARTTLS, see below) or smtps://host:port (TLS from the start). A path is sent
  // as the EHLO name ("smtp://mx:25/app.example.com"); without one libcurl sends the host name.
  std::string url;
  std::string username, password;  // AUTH when username is set (in the clear on smtp:// without starttls)
  bool starttls = false;           // require STARTTLS on smtp:// (the send fails if the server does not offer it)
  std::chrono::milliseconds timeout{10000};  // connect, and the whole send
};

// Sends over SMTP with libcurl, one connection per message, envelope from = From and recipients = To (every
// recipient must be accepted, or nothing is sent). Errors: unavailable when the server cannot be reached, times
// out, answers 4xx (transient), refuses TLS or authentication; invalid_argument when it rejects the message with
// a 5xx (the server's reply is in the error message) or the URL is not smtp(s)://. TLS peers are verified with
// the system CA store. `clock` must outlive the transport.
std::unique_ptr<Transport> smtp_transport(SmtpOptions o, const Clock& clock);

// Writes each message to <dir>/<UTC timestamp>-<message id>.eml, e.g. "20260115T101530.123Z-<uuid>.eml", so
// names sort by time: written to a hidden temporary name in `dir`, fsynced, renamed, then the directory fsynced.
// Creates `dir` (and parents) when missing. Filesystem failures are unavailable (no temporary file is left).
// For the embedded mode and development. `clock` must outlive the transport.
std::unique_ptr<Transport> eml_directory_transport(std::string dir, const Clock& clock);

}  // namespace atrium::email
