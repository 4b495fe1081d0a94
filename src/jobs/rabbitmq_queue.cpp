#include "jobs/rabbitmq_queue.hpp"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "core/ids.hpp"
#include "core/log.hpp"
#include "core/sigpipe.hpp"

namespace atrium::jobs {

using std::chrono::milliseconds;

std::chrono::milliseconds rabbit_delay_bucket(std::chrono::milliseconds delay) {
  if (delay <= milliseconds::zero()) return milliseconds::zero();
  for (const auto step : k_rabbit_delay_ladder) {
    if (delay <= step) return step;
  }
  return k_rabbit_delay_ladder.back();
}

namespace {

constexpr amqp_channel_t k_channel = 1;
constexpr int k_max_priority = 9;
constexpr int k_dead_scan_cap = 10'000;
constexpr int k_frame_max = 131'072;
constexpr JsonLimits k_body_limits{.max_depth = 256};  // the payload's own limit applies where it came in

constexpr storage::Statement k_insert_key{
    "rabbit_job_keys_insert", "INSERT INTO job_keys (idempotency_key, job_id, created_at) VALUES ($1, $2, $3)"};
constexpr storage::Statement k_key_by_key{"rabbit_job_keys_by_key",
                                          "SELECT job_id, published, created_at FROM job_keys WHERE "
                                          "idempotency_key = $1"};
// An unconfirmed key younger than this is most likely being published by a concurrent enqueue right now, so only an
// older one (its enqueuer crashed) is published again; a publish that failed resets created_at to 0 at once.
constexpr std::int64_t k_republish_after_ms = 30'000;
constexpr storage::Statement k_mark_published{"rabbit_job_keys_published",
                                              "UPDATE job_keys SET published = 1 WHERE idempotency_key = $1"};
// A publish that failed: the next enqueue with the key publishes the job (under its id) at once.
constexpr storage::Statement k_mark_unsent{"rabbit_job_keys_unsent",
                                           "UPDATE job_keys SET created_at = 0 WHERE idempotency_key = $1 AND "
                                           "published = 0"};

std::int64_t unix_ms(TimePoint t) { return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count(); }
TimePoint from_unix_ms(std::int64_t ms) {
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(milliseconds(ms)));
}

amqp_bytes_t bytes_of(std::string_view s) {
  amqp_bytes_t b;
  b.len = s.size();
  b.bytes = const_cast<char*>(s.data());
  return b;
}
std::string string_of(amqp_bytes_t b) {
  if (b.bytes == nullptr || b.len == 0) return {};
  return std::string(static_cast<const char*>(b.bytes), b.len);
}

timeval timeval_of(std::chrono::steady_clock::duration d) {
  const auto us = std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(us / 1'000'000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1'000'000);
  return tv;
}

bool valid_name(std::string_view s, std::size_t max_len, bool upper_ok) {
  if (s.empty() || s.size() > max_len) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
           (upper_ok && c >= 'A' && c <= 'Z');
  });
}

// Text for a failed RPC (library error, or the broker's channel.close / connection.close).
std::string describe(const amqp_rpc_reply_t& r) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: return "ok";
    case AMQP_RESPONSE_NONE: return "no reply (missing RPC reply type)";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: return amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const auto* m = static_cast<const amqp_connection_close_t*>(r.reply.decoded);
        return "connection closed by RabbitMQ: " + std::to_string(m->reply_code) + " " + string_of(m->reply_text);
      }
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const auto* m = static_cast<const amqp_channel_close_t*>(r.reply.decoded);
        return "channel closed by RabbitMQ: " + std::to_string(m->reply_code) + " " + string_of(m->reply_text);
      }
      return std::string("unexpected method ") + amqp_method_name(r.reply.id);
  }
  return "unknown reply";
}

// 404 from a passive declare.
bool is_not_found(const amqp_rpc_reply_t& r) {
  return r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
         static_cast<const amqp_channel_close_t*>(r.reply.decoded)->reply_code == AMQP_NOT_FOUND;
}

struct ConnInfo {
  std::string host;
  int port = 5672;
  std::string user;
  std::string password;
  std::string vhost;
};

Result<ConnInfo> parse_url(const std::string& url) {
  if (!url.starts_with("amqp://")) return fail(Errc::invalid_argument, "RabbitMQ URL must start with amqp://");
  std::vector<char> buffer(url.begin(), url.end());
  buffer.push_back('\0');
  amqp_connection_info info;
  amqp_default_connection_info(&info);
  if (amqp_parse_url(buffer.data(), &info) != AMQP_STATUS_OK || info.ssl) {
    return fail(Errc::invalid_argument, "malformed RabbitMQ URL (amqp://user:pass@host:port/vhost)");
  }
  ConnInfo c{info.host, info.port, info.user, info.password, info.vhost};
  if (c.vhost.empty()) c.vhost = "/";
  return c;
}

// One AMQP connection with channel 1 open. Any failure abandons the whole connection (the broker requeues what it
// had delivered on it); the owner reconnects.
class Connection {
 public:
  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { close(); }

  bool is_open() const { return state_ != nullptr; }
  amqp_connection_state_t get() const { return state_; }

  Result<void> open(const ConnInfo& info, milliseconds connect_timeout, milliseconds rpc_timeout,
                    const std::string& name) {
    abandon();
    state_ = amqp_new_connection();
    if (state_ == nullptr) return fail(Errc::internal, "amqp_new_connection failed");
    amqp_socket_t* socket = amqp_tcp_socket_new(state_);
    if (socket == nullptr) return broken(Errc::internal, "amqp_tcp_socket_new failed");
    const timeval connect_tv = timeval_of(connect_timeout);
    const int rc = amqp_socket_open_noblock(socket, info.host.c_str(), info.port, &connect_tv);
    if (rc != AMQP_STATUS_OK) {
      return broken(Errc::unavailable, "cannot connect to RabbitMQ at " + info.host + ":" + std::to_string(info.port) +
                                           ": " + amqp_error_string2(rc));
    }
    keepalive(amqp_socket_get_sockfd(socket));
    amqp_set_handshake_timeout(state_, &connect_tv);
    const timeval rpc_tv = timeval_of(rpc_timeout);
    amqp_set_rpc_timeout(state_, &rpc_tv);
    // consumer_cancel_notify: the broker tells a consumer whose queue went away (basic.cancel) instead of leaving
    // it waiting forever; authentication_failure_close: a refused login says so instead of just closing.
    amqp_table_entry_t capability[2];
    capability[0].key = amqp_cstring_bytes("consumer_cancel_notify");
    capability[1].key = amqp_cstring_bytes("authentication_failure_close");
    for (auto& c : capability) {
      c.value.kind = AMQP_FIELD_KIND_BOOLEAN;
      c.value.value.boolean = 1;
    }
    amqp_table_entry_t property[2];
    property[0].key = amqp_cstring_bytes("connection_name");
    property[0].value.kind = AMQP_FIELD_KIND_UTF8;
    property[0].value.value.bytes = bytes_of(name);
    property[1].key = amqp_cstring_bytes("capabilities");
    property[1].value.kind = AMQP_FIELD_KIND_TABLE;
    property[1].value.value.table = amqp_table_t{2, capability};
    amqp_table_t properties{2, property};
    // Heartbeats stay off: rabbitmq-c only sends them from inside its calls, and a worker busy with a long job
    // makes none, so the broker would drop its connection (and redeliver the job) mid-run. TCP keepalive instead.
    const amqp_rpc_reply_t login =
        amqp_login_with_properties(state_, info.vhost.c_str(), 0, k_frame_max, 0, &properties, AMQP_SASL_METHOD_PLAIN,
                                   info.user.c_str(), info.password.c_str());
    if (login.reply_type != AMQP_RESPONSE_NORMAL) {
      return broken(Errc::unavailable, "RabbitMQ login to vhost " + info.vhost + " failed: " + describe(login));
    }
    amqp_channel_open(state_, k_channel);
    return check(Errc::unavailable, "channel.open");
  }

  // The result of the last RPC; on failure abandons the connection and returns `code` with what the broker said.
  Result<void> check(Errc code, std::string_view what) {
    const amqp_rpc_reply_t r = amqp_get_rpc_reply(state_);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return {};
    return broken(server_or(code, r), std::string(what) + ": " + describe(r));
  }

  // Library errors (socket, timeout) are unavailable; a broker refusal is `code`.
  static Errc server_or(Errc code, const amqp_rpc_reply_t& r) {
    return r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION ? code : Errc::unavailable;
  }

  std::unexpected<Error> broken(Errc code, std::string message) {
    abandon();
    return fail(code, std::move(message));
  }

  // Polite close (bounded by the RPC timeout), then free.
  void close() {
    if (state_ == nullptr) return;
    SigpipeGuard guard;
    amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
    abandon();
  }

  // Drops the socket without the closing handshake.
  void abandon() {
    if (state_ == nullptr) return;
    amqp_destroy_connection(state_);
    state_ = nullptr;
  }

 private:
  static void keepalive(int fd) {
    if (fd < 0) return;
    const int on = 1, idle = 30, interval = 10, count = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  }

  amqp_connection_state_t state_ = nullptr;
};

// A table of AMQP arguments or headers that owns its keys and string values.
class Table {
 public:
  void add(std::string key, std::string value) { entries_.push_back({std::move(key), std::move(value), 0, true}); }
  void add(std::string key, std::int64_t value) { entries_.push_back({std::move(key), {}, value, false}); }
  amqp_table_t get() {
    raw_.clear();
    for (auto& e : entries_) {
      amqp_table_entry_t t;
      t.key = bytes_of(e.key);
      if (e.is_string) {
        t.value.kind = AMQP_FIELD_KIND_UTF8;
        t.value.value.bytes = bytes_of(e.text);
      } else {
        t.value.kind = AMQP_FIELD_KIND_I64;
        t.value.value.i64 = e.number;
      }
      raw_.push_back(t);
    }
    return amqp_table_t{static_cast<int>(raw_.size()), raw_.empty() ? nullptr : raw_.data()};
  }

 private:
  struct Entry {
    std::string key;
    std::string text;
    std::int64_t number;
    bool is_string;
  };
  std::vector<Entry> entries_;
  std::vector<amqp_table_entry_t> raw_;
};

// ---- message bodies ----

std::string encode(const Job& j, const std::optional<TimePoint>& died_at) {
  Json body = {{"id", j.id},
               {"queue", j.queue},
               {"type", j.type},
               {"tenant_id", j.tenant_id},
               {"payload", j.payload},
               {"idempotency_key", j.idempotency_key},
               {"priority", j.priority},
               {"run_at", unix_ms(j.run_at)},
               {"created_at", unix_ms(j.created_at)},
               {"attempts", j.attempts},
               {"max_attempts", j.max_attempts},
               {"last_error", j.last_error}};
  if (died_at) body["died_at"] = unix_ms(*died_at);
  return body.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string text_field(const Json& o, const char* key) {
  const auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}
std::int64_t int_field(const Json& o, const char* key, std::int64_t fallback) {
  const auto it = o.find(key);
  return it != o.end() && it->is_number_integer() ? it->get<std::int64_t>() : fallback;
}

struct Decoded {
  Job job;
  std::optional<TimePoint> died_at;
};

std::optional<Decoded> decode(std::string_view body, std::string* error) {
  auto doc = parse_json(body, k_body_limits, error);
  if (!doc) return std::nullopt;
  if (!doc->is_object() || text_field(*doc, "id").empty()) {
    *error = "not an Atrium job message";
    return std::nullopt;
  }
  Decoded d;
  Job& j = d.job;
  j.id = text_field(*doc, "id");
  j.queue = text_field(*doc, "queue");
  j.type = text_field(*doc, "type");
  j.tenant_id = text_field(*doc, "tenant_id");
  if (const auto it = doc->find("payload"); it != doc->end()) j.payload = *it;
  j.idempotency_key = text_field(*doc, "idempotency_key");
  j.priority = static_cast<int>(std::clamp<std::int64_t>(int_field(*doc, "priority", 0), 0, k_max_priority));
  j.created_at = from_unix_ms(int_field(*doc, "created_at", 0));
  j.run_at = from_unix_ms(int_field(*doc, "run_at", unix_ms(j.created_at)));
  j.attempts = static_cast<int>(std::clamp<std::int64_t>(int_field(*doc, "attempts", 0), 0, 1'000'000));
  j.max_attempts = static_cast<int>(std::clamp<std::int64_t>(int_field(*doc, "max_attempts", 10), 1, 1'000'000));
  j.last_error = text_field(*doc, "last_error");
  if (doc->contains("died_at")) d.died_at = from_unix_ms(int_field(*doc, "died_at", 0));
  return d;
}

// A message to publish: where to, and the job it carries (or a raw body that could not be read as one).
struct Outgoing {
  std::string exchange;
  std::string routing_key;
  std::string declare_queue;  // the work queue that must exist first ("" for none)
  Job job;
  std::optional<TimePoint> died_at;
  std::string raw_body;  // used instead of the job when set
  std::string raw_error;
};

// ---- shared state: names, the publisher, known queues ----

class Core {
 public:
  Core(RabbitOptions options, ConnInfo info, storage::Database& keys_db, const Clock& clock)
      : options_(std::move(options)), info_(std::move(info)), keys_db_(keys_db), clock_(clock) {}

  const RabbitOptions& options() const { return options_; }
  const Clock& clock() const { return clock_; }
  storage::Database& keys_db() { return keys_db_; }

  std::string jobs_exchange() const { return options_.prefix + ".jobs"; }
  std::string work_queue(std::string_view queue) const { return options_.prefix + ".q." + std::string(queue); }
  std::string delay_name(milliseconds bucket) const {
    return options_.prefix + ".delay." + std::to_string(bucket.count());
  }
  std::string dead_queue() const { return options_.prefix + ".dead"; }

  // A fresh connection (for a consumer or a dead-letter scan).
  Result<void> connect(Connection& c, const std::string& role) const {
    return c.open(info_, options_.connect_timeout, options_.publish_timeout, "atrium " + options_.prefix + " " + role);
  }

  // The fixed topology: jobs exchange, dead queue, delay buckets.
  Result<void> declare_base(Connection& c) const {
    amqp_connection_state_t s = c.get();
    amqp_exchange_declare(s, k_channel, bytes_of(jobs_exchange()), amqp_cstring_bytes("direct"), 0, 1, 0, 0,
                          amqp_empty_table);
    if (auto r = c.check(Errc::internal, "declare exchange " + jobs_exchange()); !r) return r;
    amqp_queue_declare(s, k_channel, bytes_of(dead_queue()), 0, 1, 0, 0, amqp_empty_table);
    if (auto r = c.check(Errc::internal, "declare queue " + dead_queue()); !r) return r;
    for (const auto bucket : k_rabbit_delay_ladder) {
      const std::string name = delay_name(bucket);
      amqp_exchange_declare(s, k_channel, bytes_of(name), amqp_cstring_bytes("fanout"), 0, 1, 0, 0, amqp_empty_table);
      if (auto r = c.check(Errc::internal, "declare exchange " + name); !r) return r;
      Table args;
      args.add("x-message-ttl", static_cast<std::int64_t>(bucket.count()));
      args.add("x-dead-letter-exchange", jobs_exchange());
      amqp_queue_declare(s, k_channel, bytes_of(name), 0, 1, 0, 0, args.get());
      if (auto r = c.check(Errc::internal, "declare queue " + name); !r) return r;
      amqp_queue_bind(s, k_channel, bytes_of(name), bytes_of(name), amqp_empty_bytes, amqp_empty_table);
      if (auto r = c.check(Errc::internal, "bind queue " + name); !r) return r;
    }
    return {};
  }

  Result<void> declare_work_queue(Connection& c, const std::string& queue) const {
    const std::string name = work_queue(queue);
    Table args;
    args.add("x-max-priority", static_cast<std::int64_t>(k_max_priority));
    amqp_queue_declare(c.get(), k_channel, bytes_of(name), 0, 1, 0, 0, args.get());
    if (auto r = c.check(Errc::internal, "declare queue " + name); !r) return r;
    amqp_queue_bind(c.get(), k_channel, bytes_of(name), bytes_of(jobs_exchange()), bytes_of(queue), amqp_empty_table);
    return c.check(Errc::internal, "bind queue " + name);
  }

  // Opens the publisher connection now (open_rabbitmq_queue: fail early when the broker is unreachable).
  Result<void> start() {
    std::lock_guard lock(mutex_);
    SigpipeGuard guard;
    return ensure_publisher();
  }

  // Publishes with mandatory set and waits for the confirm. A broken connection is reopened once and the publish
  // repeated (a message whose confirm was lost with its connection may then exist twice).
  Result<void> publish(const Outgoing& m) {
    std::lock_guard lock(mutex_);
    SigpipeGuard guard;
    bool retry = false;
    auto r = publish_locked(m, &retry);
    if (r || !retry) return r;
    return publish_locked(m, &retry);
  }

  void remember_queue(const std::string& queue) {
    std::lock_guard lock(mutex_);
    known_queues_.insert(queue);
  }

  // Once more on a fresh connection when the first try finds the connection broken (it died while idle).
  Result<QueueStats> stats() {
    std::lock_guard lock(mutex_);
    SigpipeGuard guard;
    auto r = stats_locked();
    if (r || r.error().code != Errc::unavailable) return r;
    return stats_locked();
  }

 private:
  Result<QueueStats> stats_locked() {
    QueueStats out;
    std::int64_t scheduled = 0;
    for (const auto bucket : k_rabbit_delay_ladder) {
      auto n = depth(delay_name(bucket));
      if (!n) return std::unexpected(n.error());
      scheduled += n->value_or(0);
    }
    out.counts["*"]["*"]["scheduled"] = scheduled;
    auto dead = depth(dead_queue());
    if (!dead) return std::unexpected(dead.error());
    out.dead = dead->value_or(0);
    for (const auto& q : known_queues_) {
      auto n = depth(work_queue(q));
      if (!n) return std::unexpected(n.error());
      out.counts[q]["*"]["queued"] = n->value_or(0);
    }
    return out;
  }

  Result<void> ensure_publisher() {
    if (publisher_.is_open()) return {};
    auto r = connect(publisher_, "publisher");
    if (!r) return r;
    amqp_confirm_select(publisher_.get(), k_channel);
    if (auto c = publisher_.check(Errc::internal, "confirm.select"); !c) return c;
    next_seq_ = 0;
    if (!base_declared_) {
      if (auto b = declare_base(publisher_); !b) return b;
      base_declared_ = true;
    }
    return {};
  }

  // Messages ready in a queue (passive declare); nullopt when the queue does not exist (the connection is then
  // reopened, as the broker closed its channel).
  Result<std::optional<std::int64_t>> depth(const std::string& queue) {
    if (auto r = ensure_publisher(); !r) return std::unexpected(r.error());
    const auto* ok = amqp_queue_declare(publisher_.get(), k_channel, bytes_of(queue), 1, 0, 0, 0, amqp_empty_table);
    if (ok != nullptr) return std::optional<std::int64_t>(ok->message_count);
    const amqp_rpc_reply_t reply = amqp_get_rpc_reply(publisher_.get());
    const bool missing = is_not_found(reply);
    if (missing) {  // redeclared by the next publish
      declared_queues_.clear();
      base_declared_ = false;
    }
    auto err = publisher_.broken(Connection::server_or(Errc::internal, reply),
                                 "queue.declare passive " + queue + ": " + describe(reply));
    if (missing) return std::optional<std::int64_t>();
    return err;
  }

  Result<void> publish_locked(const Outgoing& m, bool* retry) {
    *retry = false;
    if (auto r = ensure_publisher(); !r) return r;
    amqp_connection_state_t s = publisher_.get();
    amqp_maybe_release_buffers(s);
    if (!m.declare_queue.empty() && !declared_queues_.contains(m.declare_queue)) {
      if (auto r = declare_work_queue(publisher_, m.declare_queue); !r) {
        *retry = r.error().code == Errc::unavailable;  // a connection that died while idle
        return r;
      }
      declared_queues_.insert(m.declare_queue);
    }

    const Job& j = m.job;
    const std::string body = m.raw_body.empty() ? encode(j, m.died_at) : m.raw_body;
    Table headers;
    headers.add("atrium-queue", j.queue);
    headers.add("atrium-tenant", j.tenant_id);
    headers.add("atrium-attempts", static_cast<std::int64_t>(j.attempts));
    if (m.died_at) {
      headers.add("atrium-error", m.raw_body.empty() ? j.last_error : m.raw_error);
      headers.add("atrium-died-at", unix_ms(*m.died_at));
    }
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG |
                   AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
                   AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_APP_ID_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props.priority = static_cast<uint8_t>(std::clamp(j.priority, 0, k_max_priority));
    props.message_id = bytes_of(j.id);
    props.type = bytes_of(j.type);
    props.timestamp = static_cast<uint64_t>(std::max<std::int64_t>(0, unix_ms(j.created_at) / 1000));
    props.headers = headers.get();
    props.app_id = amqp_cstring_bytes("atrium");

    const int rc =
        amqp_basic_publish(s, k_channel, bytes_of(m.exchange), bytes_of(m.routing_key), 1, 0, &props, bytes_of(body));
    if (rc != AMQP_STATUS_OK) {
      *retry = true;
      return publisher_.broken(Errc::unavailable, std::string("publish to RabbitMQ failed: ") + amqp_error_string2(rc));
    }
    const std::uint64_t seq = ++next_seq_;
    return await_confirm(seq, m, retry);
  }

  Result<void> await_confirm(std::uint64_t seq, const Outgoing& m, bool* retry) {
    amqp_connection_state_t s = publisher_.get();
    const auto deadline = std::chrono::steady_clock::now() + options_.publish_timeout;
    std::string returned;  // basic.return's reply text: the message was unroutable
    for (;;) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) {
        return publisher_.broken(Errc::unavailable, "RabbitMQ did not confirm a publish to " + m.exchange + " within " +
                                                        std::to_string(options_.publish_timeout.count()) + " ms");
      }
      timeval tv = timeval_of(left);
      amqp_frame_t frame;
      const int rc = amqp_simple_wait_frame_noblock(s, &frame, &tv);
      if (rc == AMQP_STATUS_TIMEOUT) continue;
      if (rc != AMQP_STATUS_OK) {
        *retry = true;
        return publisher_.broken(Errc::unavailable,
                                 std::string("RabbitMQ connection lost awaiting a confirm: ") + amqp_error_string2(rc));
      }
      if (frame.frame_type != AMQP_FRAME_METHOD) continue;
      switch (frame.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
          const auto* ack = static_cast<const amqp_basic_ack_t*>(frame.payload.method.decoded);
          if (ack->delivery_tag != seq && !(ack->multiple && ack->delivery_tag >= seq)) break;
          if (returned.empty()) return {};
          // Unroutable: a queue we thought declared is gone. Forget what we declared and try once more.
          declared_queues_.clear();
          base_declared_ = false;
          publisher_.close();
          *retry = true;
          return fail(Errc::internal,
                      "RabbitMQ could not route a message to " + m.exchange + " / " + m.routing_key + ": " + returned);
        }
        case AMQP_BASIC_NACK_METHOD: {
          const auto* nack = static_cast<const amqp_basic_nack_t*>(frame.payload.method.decoded);
          if (nack->delivery_tag != seq && !(nack->multiple && nack->delivery_tag >= seq)) break;
          return fail(Errc::unavailable, "RabbitMQ refused a message (basic.nack) published to " + m.exchange);
        }
        case AMQP_BASIC_RETURN_METHOD: {
          const auto* ret = static_cast<const amqp_basic_return_t*>(frame.payload.method.decoded);
          returned = std::to_string(ret->reply_code) + " " + string_of(ret->reply_text);
          amqp_message_t message;
          const amqp_rpc_reply_t r = amqp_read_message(s, frame.channel, &message, 0);
          if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            return publisher_.broken(Errc::unavailable, "reading a returned message: " + describe(r));
          }
          amqp_destroy_message(&message);
          break;
        }
        case AMQP_CHANNEL_CLOSE_METHOD: {
          const auto* close = static_cast<const amqp_channel_close_t*>(frame.payload.method.decoded);
          return publisher_.broken(Errc::internal,
                                   "RabbitMQ closed the publisher channel: " + std::to_string(close->reply_code) + " " +
                                       string_of(close->reply_text));
        }
        case AMQP_CONNECTION_CLOSE_METHOD: {
          const auto* close = static_cast<const amqp_connection_close_t*>(frame.payload.method.decoded);
          *retry = true;
          return publisher_.broken(Errc::unavailable,
                                   "RabbitMQ closed the publisher connection: " + std::to_string(close->reply_code) +
                                       " " + string_of(close->reply_text));
        }
        default: break;  // connection.blocked / unblocked and the like
      }
    }
  }

  const RabbitOptions options_;
  const ConnInfo info_;
  storage::Database& keys_db_;
  const Clock& clock_;

  std::mutex mutex_;  // guards everything below
  Connection publisher_;
  std::uint64_t next_seq_ = 0;
  bool base_declared_ = false;
  std::set<std::string> declared_queues_;
  std::set<std::string> known_queues_;
};

// Where a job goes to wait until run_at (or its work queue when it is due).
Outgoing route(const Core& core, const Job& job, TimePoint now) {
  Outgoing m;
  m.job = job;
  m.routing_key = job.queue;
  m.declare_queue = job.queue;
  const auto bucket = rabbit_delay_bucket(std::chrono::ceil<milliseconds>(job.run_at - now));
  m.exchange = bucket > milliseconds::zero() ? core.delay_name(bucket) : core.jobs_exchange();
  return m;
}

Outgoing to_dead(const Core& core, const Job& job, TimePoint died_at) {
  Outgoing m;
  m.job = job;
  m.exchange = "";
  m.routing_key = core.dead_queue();
  m.died_at = died_at;
  return m;
}

// ---- consumer ----

class RabbitConsumer final : public Consumer {
 public:
  RabbitConsumer(std::shared_ptr<Core> core, std::string queue) : core_(std::move(core)), queue_(std::move(queue)) {}

  ~RabbitConsumer() override {
    if (!conn_.is_open()) return;
    SigpipeGuard guard;
    // Stop deliveries. What the broker had already pushed to this consumer arrives before cancel-ok and is queued
    // by rabbitmq-c; hand those back uncounted (they never ran here). Unsettled handed-out deliveries stay unacked
    // and are redelivered when the connection closes.
    amqp_basic_cancel(conn_.get(), k_channel, bytes_of(consumer_tag_));
    if (conn_.check(Errc::unavailable, "basic.cancel")) {
      for (;;) {
        amqp_maybe_release_buffers(conn_.get());
        const timeval zero{};
        amqp_envelope_t env;
        const amqp_rpc_reply_t r = amqp_consume_message(conn_.get(), &env, &zero, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) break;
        const bool ok = hand_back(env);
        amqp_destroy_envelope(&env);
        if (!ok) break;
      }
    }
    conn_.close();
  }

  Result<std::optional<Delivery>> next(milliseconds wait) override {
    SigpipeGuard guard;
    const auto deadline = std::chrono::steady_clock::now() + std::max(wait, milliseconds::zero());
    if (!conn_.is_open()) {
      if (auto r = connect(); !r) return std::unexpected(r.error());
    }
    for (;;) {
      amqp_maybe_release_buffers(conn_.get());
      const timeval tv = timeval_of(deadline - std::chrono::steady_clock::now());
      amqp_envelope_t env;
      const amqp_rpc_reply_t r = amqp_consume_message(conn_.get(), &env, &tv, 0);
      if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        auto d = accept(env);
        amqp_destroy_envelope(&env);
        if (!d) return std::unexpected(d.error());
        if (*d) return d;
        continue;  // not due yet (delayed again) or unreadable (moved to the dead letters)
      }
      if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
        return std::optional<Delivery>();
      }
      if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        amqp_frame_t frame;
        if (amqp_simple_wait_frame(conn_.get(), &frame) != AMQP_STATUS_OK) {
          return conn_.broken(Errc::unavailable, "RabbitMQ consumer connection lost");
        }
        if (frame.frame_type == AMQP_FRAME_METHOD && (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                                                      frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
                                                      frame.payload.method.id == AMQP_BASIC_CANCEL_METHOD)) {
          return conn_.broken(Errc::unavailable, std::string("RabbitMQ ended the consumer of ") + queue_ + " (" +
                                                     amqp_method_name(frame.payload.method.id) + ")");
        }
        continue;
      }
      return conn_.broken(Errc::unavailable, "RabbitMQ consumer connection lost: " + describe(r));
    }
  }

  Result<void> complete(const Delivery& d) override {
    auto it = find(d);
    if (!it) return std::unexpected(it.error());
    return ack(*it);
  }

  Result<void> retry(const Delivery& d, milliseconds delay, const std::string& error) override {
    auto it = find(d);
    if (!it) return std::unexpected(it.error());
    Job job = (*it)->second.job;
    job.last_error = error;
    const TimePoint now = core_->clock().now();
    job.run_at = now + std::max(delay, milliseconds::zero());
    if (auto r = core_->publish(route(*core_, job, now)); !r) return r;
    return ack(*it);
  }

  Result<void> bury(const Delivery& d, const std::string& error) override {
    auto it = find(d);
    if (!it) return std::unexpected(it.error());
    Job job = (*it)->second.job;
    job.last_error = error;
    if (auto r = core_->publish(to_dead(*core_, job, core_->clock().now())); !r) return r;
    return ack(*it);
  }

  Result<void> release(const Delivery& d) override {
    auto it = find(d);
    if (!it) return std::unexpected(it.error());
    Job job = (*it)->second.job;
    job.attempts = std::max(0, job.attempts - 1);  // this run did not happen
    if (auto r = core_->publish(route(*core_, job, core_->clock().now())); !r) return r;
    return ack(*it);
  }

  Result<void> extend(const Delivery& d) override {
    auto it = find(d);
    if (!it) return std::unexpected(it.error());
    return {};
  }

  Result<void> connect() {
    if (auto r = core_->connect(conn_, "consumer " + queue_); !r) return r;
    amqp_basic_qos(conn_.get(), k_channel, 0, static_cast<uint16_t>(core_->options().prefetch), 0);
    if (auto r = conn_.check(Errc::internal, "basic.qos"); !r) return r;
    if (auto r = core_->declare_work_queue(conn_, queue_); !r) return r;
    const auto* ok = amqp_basic_consume(conn_.get(), k_channel, bytes_of(core_->work_queue(queue_)), amqp_empty_bytes,
                                        0, 0, 0, amqp_empty_table);
    if (auto r = conn_.check(Errc::internal, "basic.consume"); !r) return r;
    consumer_tag_ = string_of(ok->consumer_tag);
    ++generation_;
    return {};
  }

 private:
  struct Outstanding {
    std::uint64_t amqp_tag = 0;
    std::uint64_t generation = 0;
    Job job;
  };
  using Iterator = std::map<std::uint64_t, Outstanding>::iterator;

  Result<Iterator> find(const Delivery& d) {
    const auto it = outstanding_.find(d.tag);
    if (it == outstanding_.end() || it->second.job.id != d.job.id) {
      return fail(Errc::invalid_argument, "job " + d.job.id + " was not handed out by this consumer or is settled");
    }
    if (it->second.generation != generation_ || !conn_.is_open()) {
      outstanding_.erase(it);
      return fail(Errc::conflict,
                  "the RabbitMQ connection that delivered job " + d.job.id + " was lost; RabbitMQ delivers it again");
    }
    return it;
  }

  Result<void> ack(Iterator it) {
    const std::uint64_t tag = it->second.amqp_tag;
    outstanding_.erase(it);
    SigpipeGuard guard;
    const int rc = amqp_basic_ack(conn_.get(), k_channel, tag, 0);
    if (rc != AMQP_STATUS_OK) {
      return conn_.broken(Errc::unavailable,
                          std::string("RabbitMQ ack failed (the job is delivered again): ") + amqp_error_string2(rc));
    }
    return {};
  }

  // A delivery from next(): the job to hand out, nullopt when it was dealt with here, or an error.
  Result<std::optional<Delivery>> accept(const amqp_envelope_t& env) {
    const std::string body = string_of(env.message.body);
    std::string error;
    auto decoded = decode(body, &error);
    if (!decoded) {
      // Not a job: keep it for an operator among the dead letters rather than drop it.
      Outgoing m;
      m.exchange = "";
      m.routing_key = core_->dead_queue();
      m.raw_body = body.empty() ? std::string("{}") : body;
      m.raw_error = "unreadable job message: " + error;
      m.job.id = string_of(env.message.properties.message_id);
      m.job.queue = queue_;
      m.died_at = core_->clock().now();
      if (auto r = core_->publish(m); !r) return requeue(env.delivery_tag, r.error());
      if (auto r = raw_ack(env.delivery_tag); !r) return std::unexpected(r.error());
      log::warn("rabbitmq: moved an unreadable message to the dead letters", {{"queue", queue_}, {"error", error}});
      return std::optional<Delivery>();
    }
    Job job = std::move(decoded->job);
    job.queue = queue_;
    const TimePoint now = core_->clock().now();
    if (job.run_at > now) {
      // Early (a delay past the ladder's end, or clocks that disagree): wait again, uncounted.
      if (auto r = core_->publish(route(*core_, job, now)); !r) return requeue(env.delivery_tag, r.error());
      if (auto r = raw_ack(env.delivery_tag); !r) return std::unexpected(r.error());
      return std::optional<Delivery>();
    }
    job.attempts += env.redelivered ? 2 : 1;  // a redelivery: a run was lost with a consumer's connection
    const std::uint64_t tag = ++next_tag_;
    Delivery d{job, consumer_tag_ + "/" + std::to_string(env.delivery_tag), tag};
    outstanding_.emplace(tag, Outstanding{env.delivery_tag, generation_, std::move(job)});
    return std::optional<Delivery>(std::move(d));
  }

  // Returns a prefetched delivery that was never handed out (consumer shutdown): false to stop trying.
  bool hand_back(const amqp_envelope_t& env) {
    const std::string body = string_of(env.message.body);
    std::string error;
    auto decoded = decode(body, &error);
    if (!decoded) return false;  // left unacked: redelivered, and dealt with by the next consumer
    Job job = std::move(decoded->job);
    job.queue = queue_;
    if (env.redelivered) job.attempts += 1;  // it carried a lost run; the copy would lose the flag
    if (!core_->publish(route(*core_, job, core_->clock().now()))) return false;
    return static_cast<bool>(raw_ack(env.delivery_tag));
  }

  // Gives a delivery that could not be dealt with back to the queue (not held by this consumer meanwhile).
  std::unexpected<Error> requeue(std::uint64_t amqp_tag, Error error) {
    if (amqp_basic_nack(conn_.get(), k_channel, amqp_tag, 0, 1) != AMQP_STATUS_OK) conn_.abandon();
    return std::unexpected(std::move(error));
  }

  Result<void> raw_ack(std::uint64_t amqp_tag) {
    const int rc = amqp_basic_ack(conn_.get(), k_channel, amqp_tag, 0);
    if (rc != AMQP_STATUS_OK) {
      return conn_.broken(Errc::unavailable, std::string("RabbitMQ ack failed: ") + amqp_error_string2(rc));
    }
    return {};
  }

  std::shared_ptr<Core> core_;
  const std::string queue_;
  Connection conn_;
  std::string consumer_tag_;
  std::uint64_t generation_ = 0;
  std::uint64_t next_tag_ = 0;
  std::map<std::uint64_t, Outstanding> outstanding_;
};

// ---- the queue ----

class RabbitQueue final : public JobQueue {
 public:
  explicit RabbitQueue(std::shared_ptr<Core> core) : core_(std::move(core)) {}

  std::string_view backend_name() const override { return "rabbitmq"; }

  Result<EnqueueResult> enqueue(const NewJob& n) override {
    if (auto v = validate(n); !v) return std::unexpected(v.error());
    const TimePoint now = core_->clock().now();
    Job job;
    job.id = new_uuid_v7(core_->clock());
    job.queue = n.queue;
    job.type = n.type;
    job.tenant_id = n.tenant_id;
    job.payload = n.payload;
    job.idempotency_key = n.idempotency_key;
    job.priority = n.priority;
    job.run_at = n.run_at.value_or(now);
    job.created_at = now;
    job.attempts = 0;
    job.max_attempts = n.max_attempts;
    core_->remember_queue(n.queue);

    bool created = true;
    const std::string& key = n.idempotency_key;
    if (!key.empty()) {
      auto inserted = core_->keys_db().transact([&](storage::Transaction& tx) -> Result<void> {
        auto r = tx.execute(k_insert_key, {key, job.id, unix_ms(now)});
        if (!r) return std::unexpected(r.error());
        return {};
      });
      if (!inserted) {
        if (inserted.error().code != Errc::unique_violation) {
          return fail(Errc::unavailable, "idempotency key insert failed: " + inserted.error().message);
        }
        struct Row {
          std::string job_id;
          bool published = false;
          std::int64_t created_at = 0;
        };
        auto row = storage::transact_value<Row>(
            core_->keys_db(),
            [&](storage::Transaction& tx) -> Result<Row> {
              auto r = tx.execute(k_key_by_key, {key});
              if (!r) return std::unexpected(r.error());
              if (r->empty()) return fail(Errc::conflict, "idempotency key vanished");
              return Row{r->text_at(0, 0).value_or(""), r->int_at(0, 1).value_or(0) != 0, r->int_at(0, 2).value_or(0)};
            },
            {.read_only = true});
        if (!row) return fail(Errc::unavailable, "idempotency key lookup failed: " + row.error().message);
        if (row->published || unix_ms(now) - row->created_at < k_republish_after_ms) {
          return EnqueueResult{row->job_id, false};
        }
        job.id = row->job_id;  // inserted long ago but never confirmed: publish it (again) under its id
        created = false;
      }
    }

    if (auto r = core_->publish(route(*core_, job, now)); !r) {
      if (!key.empty()) {
        (void)core_->keys_db().transact([&](storage::Transaction& tx) -> Result<void> {
          auto u = tx.execute(k_mark_unsent, {key});
          if (!u) return std::unexpected(u.error());
          return {};
        });
      }
      return std::unexpected(r.error());
    }

    if (!key.empty()) {
      auto marked = core_->keys_db().transact([&](storage::Transaction& tx) -> Result<void> {
        auto r = tx.execute(k_mark_published, {key});
        if (!r) return std::unexpected(r.error());
        return {};
      });
      if (!marked) {
        // The job is durable; only a later enqueue with this key may publish it once more.
        log::warn("rabbitmq: could not mark an idempotency key published",
                  {{"job_id", job.id}, {"error", marked.error().message}});
      }
    }
    return EnqueueResult{job.id, created};
  }

  Result<std::unique_ptr<Consumer>> consumer(const std::string& queue) override {
    if (!valid_queue_name(queue)) {
      return fail(Errc::invalid_argument, "queue name must be 1-100 characters of [a-z0-9._-]");
    }
    core_->remember_queue(queue);
    auto c = std::make_unique<RabbitConsumer>(core_, queue);
    SigpipeGuard guard;
    if (auto r = c->connect(); !r) return std::unexpected(r.error());
    return std::unique_ptr<Consumer>(std::move(c));
  }

  Result<QueueStats> stats() override { return core_->stats(); }

  Result<std::vector<DeadJob>> dead_jobs(int limit) override {
    std::vector<DeadJob> out;
    if (limit <= 0) return out;
    SigpipeGuard guard;
    Connection c;
    if (auto r = core_->connect(c, "dead-letter peek"); !r) return std::unexpected(r.error());
    for (int i = 0; i < k_dead_scan_cap; ++i) {
      auto m = get(c);
      if (!m) return std::unexpected(m.error());
      if (!*m) break;
      out.push_back((*m)->dead);
    }
    c.close();  // unacked: every message goes back to the dead queue
    std::stable_sort(out.begin(), out.end(), [](const DeadJob& a, const DeadJob& b) { return a.died_at > b.died_at; });
    if (out.size() > static_cast<std::size_t>(limit)) out.resize(static_cast<std::size_t>(limit));
    return out;
  }

  Result<bool> retry_dead(const std::string& id) override { return take_dead(id, true); }
  Result<bool> discard_dead(const std::string& id) override { return take_dead(id, false); }

 private:
  struct Got {
    std::uint64_t tag = 0;
    DeadJob dead;
    bool readable = true;
  };

  // basic.get (no auto-ack) from the dead queue; nullopt when it is empty.
  Result<std::optional<Got>> get(Connection& c) {
    amqp_maybe_release_buffers(c.get());
    const amqp_rpc_reply_t r = amqp_basic_get(c.get(), k_channel, bytes_of(core_->dead_queue()), 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      return c.broken(Connection::server_or(Errc::internal, r),
                      "basic.get " + core_->dead_queue() + ": " + describe(r));
    }
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return std::optional<Got>();
    const auto* ok = static_cast<const amqp_basic_get_ok_t*>(r.reply.decoded);
    Got g;
    g.tag = ok->delivery_tag;
    amqp_message_t message;
    const amqp_rpc_reply_t read = amqp_read_message(c.get(), k_channel, &message, 0);
    if (read.reply_type != AMQP_RESPONSE_NORMAL) {
      return c.broken(Errc::unavailable, "reading a dead letter: " + describe(read));
    }
    std::string error;
    auto decoded = decode(string_of(message.body), &error);
    if (decoded) {
      g.dead.job = std::move(decoded->job);
      g.dead.died_at = decoded->died_at.value_or(g.dead.job.created_at);
    } else {
      g.readable = false;
      g.dead.job.id = string_of(message.properties.message_id);
      g.dead.job.last_error = "unreadable job message: " + error;
    }
    amqp_destroy_message(&message);
    return std::optional<Got>(std::move(g));
  }

  Result<bool> take_dead(const std::string& id, bool retry) {
    if (id.empty()) return false;
    SigpipeGuard guard;
    Connection c;
    if (auto r = core_->connect(c, retry ? "dead-letter retry" : "dead-letter discard"); !r) {
      return std::unexpected(r.error());
    }
    std::optional<Got> found;
    std::uint64_t last_other = 0;
    for (int i = 0; i < k_dead_scan_cap; ++i) {
      auto m = get(c);
      if (!m) return std::unexpected(m.error());
      if (!*m) break;
      if ((*m)->dead.job.id == id) {
        found = std::move(**m);
        break;
      }
      last_other = (*m)->tag;
    }
    if (found && retry) {
      if (!found->readable || !valid_queue_name(found->dead.job.queue)) {
        return fail(Errc::invalid_argument, "dead letter " + id + " is not a readable job");
      }
      Job job = found->dead.job;
      job.attempts = 0;
      const TimePoint now = core_->clock().now();
      job.run_at = now;
      core_->remember_queue(job.queue);
      // On failure the connection closes below and the dead letter stays.
      if (auto r = core_->publish(route(*core_, job, now)); !r) return std::unexpected(r.error());
    }
    // Every message fetched before the one found goes back (tags are in fetch order); then the found one is acked.
    if (last_other > 0 && amqp_basic_nack(c.get(), k_channel, last_other, 1, 1) != AMQP_STATUS_OK) {
      return fail(Errc::unavailable, "RabbitMQ nack of scanned dead letters failed");
    }
    if (found && amqp_basic_ack(c.get(), k_channel, found->tag, 0) != AMQP_STATUS_OK) {
      return fail(Errc::unavailable, "RabbitMQ ack of dead letter " + id + " failed");
    }
    // connection.close is answered only after the broker has handled the acks before it.
    amqp_connection_close(c.get(), AMQP_REPLY_SUCCESS);
    c.abandon();
    return found.has_value();
  }

  std::shared_ptr<Core> core_;
};

}  // namespace

Result<std::unique_ptr<JobQueue>> open_rabbitmq_queue(const RabbitOptions& o, storage::Database& keys_db,
                                                      const Clock& clock) {
  auto info = parse_url(o.url);
  if (!info) return std::unexpected(info.error());
  if (!valid_name(o.prefix, 100, true)) {
    return fail(Errc::invalid_argument, "RabbitMQ prefix must be 1-100 characters of [A-Za-z0-9._-]");
  }
  if (o.prefetch < 1 || o.prefetch > 65535) return fail(Errc::invalid_argument, "prefetch must be 1-65535");
  if (o.publish_timeout <= milliseconds::zero() || o.connect_timeout <= milliseconds::zero()) {
    return fail(Errc::invalid_argument, "RabbitMQ timeouts must be positive");
  }
  auto core = std::make_shared<Core>(o, std::move(*info), keys_db, clock);
  if (auto r = core->start(); !r) return std::unexpected(r.error());
  return std::unique_ptr<JobQueue>(std::make_unique<RabbitQueue>(std::move(core)));
}

}  // namespace atrium::jobs
