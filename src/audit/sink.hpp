#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace atrium::audit {

// Where exported audit entries go. Called from one exporter thread at a time (not thread-safe otherwise).
class Sink {
 public:
  virtual ~Sink() = default;
  virtual std::string_view name() const = 0;  // "file" or "syslog": metrics label and the export cursor's key
  // Delivers `lines` in order. Returns an error when any line may not have been delivered; the caller then
  // retries the whole batch later, so after an error a prefix of the batch may arrive twice.
  virtual Result<void> write(std::span<const std::string> lines) = 0;
};

struct FileSinkOptions {
  std::string path;                    // JSON lines appended here
  std::int64_t max_bytes = 100 << 20;  // rotate when the next batch would pass this size
  int max_files = 10;                  // keep path.1 ... path.<max_files> (path.1 newest); older ones are removed
};

// JSON lines in a file (mode 0600), one entry and '\n' per line, fdatasync'ed before write() returns. Rotation
// is the sink's own: before a batch that would take a non-empty file past max_bytes, path.N-1 is renamed to
// path.N (dropping the old path.<max_files>), ..., path to path.1, and a new path is started; a single batch
// larger than max_bytes still goes whole into one file. The size is tracked from the file's size at open, so the
// file must not be truncated or rotated by anything else while the sink is open. A batch that fails part-way is
// cut back off the file (best effort), so a retry does not leave a torn line.
// Creates the parent directories and opens the file at once. Errors: invalid_argument (empty path, max_bytes < 1,
// max_files < 1); unavailable with the path and the system's reason (here and from write()).
Result<std::unique_ptr<Sink>> make_file_sink(const FileSinkOptions& options);

struct SyslogSinkOptions {
  // udp://host:port | tcp://host:port | tls://host:port  (RFC 5426 / RFC 6587 octet counting / RFC 5425)
  std::string url;
  // tls: CA bundle to verify the server (empty: system default paths); the host name is verified and sent as SNI
  std::string ca_file;
  std::string app_name = "atrium";
  std::string hostname;                     // empty: gethostname()
  std::chrono::milliseconds timeout{5000};  // connect and send
};

// Each line becomes one format_syslog() message, its TIMESTAMP taken from the line's "timestamp" member ("-" when
// that is missing or not an RFC 3339 time). udp: one datagram per message on a connected socket to the first
// address the host resolves to (a message must fit in one datagram, about 64 KiB; an ICMP "port unreachable"
// only fails a later send). tcp and tls: "LEN SP MSG" frames on one connection kept between batches; before each batch
// a peer that closed the connection is noticed and the connection remade. TLS is 1.2 or later and verifies the
// certificate chain against `ca_file` and the host (DNS name or IP address; DNS names are sent as SNI).
//
// Validates the URL, app_name (1-48 printable ASCII characters), hostname and timeout only (invalid_argument);
// connects on the first write(). write() errors are unavailable, naming host:port; after one the connection is
// closed and remade by the next write(). Delivery means handed to the kernel: syslog has no acknowledgements, so
// a receiver that dies while a batch is in flight can lose that batch's tail. `timeout` bounds connecting, the TLS
// handshake and each stalled send (not a whole batch); host names are resolved without a timeout.
Result<std::unique_ptr<Sink>> make_syslog_sink(const SyslogSinkOptions& options);

// One RFC 5424 message: "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG" with facility 13 (log audit)
// and severity 6 (informational), i.e. PRI 110, MSGID "audit", no structured data, MSG = the JSON line.
// TIMESTAMP is the given RFC 3339 time. An empty header field is written "-"; bytes outside printable ASCII in
// one are replaced by '_', and HOSTNAME and APP-NAME are cut to RFC 5424's 255 and 48 characters.
std::string format_syslog(std::string_view timestamp, std::string_view hostname, std::string_view app_name, int pid,
                          std::string_view msg);

}  // namespace atrium::audit
