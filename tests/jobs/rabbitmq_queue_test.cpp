// RabbitMQ-only behaviour of the job queue (the cross-backend contract is in queue_test.cpp): topology and
// persistence, publisher confirms, delay buckets, redelivery after a lost connection, dead letters, priorities,
// idempotency keys and an unreachable broker. Needs ATRIUM_TEST_AMQP_URL (scripts/services.sh starts a private
// RabbitMQ); skipped without it, failed without it under CI.
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "core/json.hpp"
#include "jobs/rabbitmq_queue.hpp"
#include "storage/database.hpp"
#include "support/test_support.hpp"

namespace atrium::jobs {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

std::optional<std::string> amqp_url() {
  const char* url = std::getenv("ATRIUM_TEST_AMQP_URL");
  if (url == nullptr || *url == '\0') return std::nullopt;
  return std::string(url);
}

// A plain AMQP connection to look at the broker behind the queue's back.
class Raw {
 public:
  explicit Raw(const std::string& url) {
    std::vector<char> buffer(url.begin(), url.end());
    buffer.push_back('\0');
    amqp_connection_info info;
    amqp_default_connection_info(&info);
    if (amqp_parse_url(buffer.data(), &info) != AMQP_STATUS_OK) return;
    state_ = amqp_new_connection();
    amqp_socket_t* socket = amqp_tcp_socket_new(state_);
    const timeval tv{5, 0};
    if (amqp_socket_open_noblock(socket, info.host, info.port, &tv) != AMQP_STATUS_OK) {
      close();
      return;
    }
    amqp_set_rpc_timeout(state_, &tv);
    if (amqp_login(state_, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password).reply_type !=
        AMQP_RESPONSE_NORMAL) {
      close();
      return;
    }
    open_channel();
  }
  ~Raw() { close(); }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;

  bool ok() const { return state_ != nullptr; }

  // Ready messages; -1 when the queue does not exist.
  std::int64_t depth(const std::string& queue) {
    const auto* r = amqp_queue_declare(state_, 1, amqp_cstring_bytes(queue.c_str()), 1, 0, 0, 0, amqp_empty_table);
    if (r == nullptr) {
      reopen_channel();
      return -1;
    }
    return r->message_count;
  }

  // The AMQP reply code of redeclaring a queue non-durable with no arguments (406 = it exists, declared otherwise).
  int redeclare_queue_transient(const std::string& queue) {
    const auto* r = amqp_queue_declare(state_, 1, amqp_cstring_bytes(queue.c_str()), 0, 0, 0, 0, amqp_empty_table);
    return r != nullptr ? 200 : close_code();
  }
  int redeclare_queue_durable_plain(const std::string& queue) {
    const auto* r = amqp_queue_declare(state_, 1, amqp_cstring_bytes(queue.c_str()), 0, 1, 0, 0, amqp_empty_table);
    return r != nullptr ? 200 : close_code();
  }
  int redeclare_exchange_transient(const std::string& exchange, const char* type) {
    const auto* r = amqp_exchange_declare(state_, 1, amqp_cstring_bytes(exchange.c_str()), amqp_cstring_bytes(type), 0,
                                          0, 0, 0, amqp_empty_table);
    return r != nullptr ? 200 : close_code();
  }
  void declare_plain_queue(const std::string& queue) {
    amqp_queue_declare(state_, 1, amqp_cstring_bytes(queue.c_str()), 0, 1, 0, 0, amqp_empty_table);
  }
  void delete_queue(const std::string& queue) {
    if (amqp_queue_delete(state_, 1, amqp_cstring_bytes(queue.c_str()), 0, 0) == nullptr) reopen_channel();
  }
  void delete_exchange(const std::string& exchange) {
    if (amqp_exchange_delete(state_, 1, amqp_cstring_bytes(exchange.c_str()), 0) == nullptr) reopen_channel();
  }

  struct Message {
    int delivery_mode = 0;
    int priority = -1;
    std::string message_id;
    std::string content_type;
    std::string body;
  };
  // basic.get, then nack-requeue: the message stays.
  std::optional<Message> peek(const std::string& queue) {
    const amqp_rpc_reply_t r = amqp_basic_get(state_, 1, amqp_cstring_bytes(queue.c_str()), 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL || r.reply.id != AMQP_BASIC_GET_OK_METHOD) return std::nullopt;
    const auto tag = static_cast<const amqp_basic_get_ok_t*>(r.reply.decoded)->delivery_tag;
    amqp_message_t m;
    if (amqp_read_message(state_, 1, &m, 0).reply_type != AMQP_RESPONSE_NORMAL) return std::nullopt;
    Message out;
    const auto& p = m.properties;
    if (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) out.delivery_mode = p.delivery_mode;
    if (p._flags & AMQP_BASIC_PRIORITY_FLAG) out.priority = p.priority;
    if (p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) out.message_id = text(p.message_id);
    if (p._flags & AMQP_BASIC_CONTENT_TYPE_FLAG) out.content_type = text(p.content_type);
    out.body = text(m.body);
    amqp_destroy_message(&m);
    amqp_basic_nack(state_, 1, tag, 0, 1);
    return out;
  }

 private:
  static std::string text(amqp_bytes_t b) { return std::string(static_cast<const char*>(b.bytes), b.len); }
  void open_channel() { amqp_channel_open(state_, 1); }
  int close_code() {
    const amqp_rpc_reply_t r = amqp_get_rpc_reply(state_);
    int code = -1;
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
      code = static_cast<const amqp_channel_close_t*>(r.reply.decoded)->reply_code;
    }
    reopen_channel();
    return code;
  }
  void reopen_channel() {
    const amqp_rpc_reply_t r = amqp_get_rpc_reply(state_);
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
      amqp_channel_close_ok_t ok{};
      amqp_send_method(state_, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
      open_channel();
    }
  }
  void close() {
    if (state_ == nullptr) return;
    amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(state_);
    state_ = nullptr;
  }
  amqp_connection_state_t state_ = nullptr;
};

TEST(RabbitDelayBucket, RoundsUpToTheLadder) {
  EXPECT_EQ(rabbit_delay_bucket(0ms), 0ms);
  EXPECT_EQ(rabbit_delay_bucket(-5ms), 0ms);
  EXPECT_EQ(rabbit_delay_bucket(1ms), 1s);
  EXPECT_EQ(rabbit_delay_bucket(1s), 1s);
  EXPECT_EQ(rabbit_delay_bucket(1001ms), 5s);
  EXPECT_EQ(rabbit_delay_bucket(7s), 15s);
  EXPECT_EQ(rabbit_delay_bucket(31s), 1min);
  EXPECT_EQ(rabbit_delay_bucket(90s), 2min);
  EXPECT_EQ(rabbit_delay_bucket(3min), 5min);
  EXPECT_EQ(rabbit_delay_bucket(11min), 30min);
  EXPECT_EQ(rabbit_delay_bucket(45min), 1h);
  EXPECT_EQ(rabbit_delay_bucket(3h), 6h);
  EXPECT_EQ(rabbit_delay_bucket(7h), 12h);
  EXPECT_EQ(rabbit_delay_bucket(24h), 24h);
  EXPECT_EQ(rabbit_delay_bucket(72h), 24h);  // longer delays wait 24 h at a time
  for (std::size_t i = 1; i < k_rabbit_delay_ladder.size(); ++i) {
    EXPECT_LT(k_rabbit_delay_ladder[i - 1], k_rabbit_delay_ladder[i]);
  }
}

TEST(RabbitUnreachable, RefusedPortIsUnavailableAtOnce) {
  auto db = storage::open_database({.url = "sqlite:" + test::temp_dir("rabbit-refused") + "/keys.db"});
  ASSERT_TRUE(db) << db.error().message;
  const auto t0 = Steady::now();
  auto q = open_rabbitmq_queue({.url = "amqp://guest:guest@127.0.0.1:" + std::to_string(test::closed_port()) + "/%2f"},
                               **db, SystemClock::instance());
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code, Errc::unavailable) << q.error().message;
  EXPECT_LT(Steady::now() - t0, 2s);
}

TEST(RabbitUnreachable, SilentPeerTimesOut) {
  // Accepts TCP connections (the kernel does, from the backlog) but never speaks AMQP.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  auto db = storage::open_database({.url = "sqlite:" + test::temp_dir("rabbit-silent") + "/keys.db"});
  ASSERT_TRUE(db) << db.error().message;
  const auto t0 = Steady::now();
  auto q = open_rabbitmq_queue({.url = "amqp://guest:guest@127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/%2f",
                                .connect_timeout = 300ms},
                               **db, SystemClock::instance());
  ::close(fd);
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code, Errc::unavailable) << q.error().message;
  EXPECT_LT(Steady::now() - t0, 3s);
}

TEST(RabbitUnreachable, MalformedUrlIsInvalid) {
  auto db = storage::open_database({.url = "sqlite:" + test::temp_dir("rabbit-url") + "/keys.db"});
  ASSERT_TRUE(db) << db.error().message;
  auto q = open_rabbitmq_queue({.url = "http://127.0.0.1/"}, **db, SystemClock::instance());
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code, Errc::invalid_argument);
  q = open_rabbitmq_queue({.url = "amqp://127.0.0.1:1/%2f", .prefix = "bad prefix"}, **db, SystemClock::instance());
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code, Errc::invalid_argument);
}

class RabbitQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = amqp_url();
    ATRIUM_MISSING_SERVICE(!url, "ATRIUM_TEST_AMQP_URL");
    url_ = *url;
    static std::atomic<int> counter{0};
    prefix_ = "atrium-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name();
    auto db = storage::open_database({.url = "sqlite:" + test::temp_dir("rabbit-keys") + "/keys.db"});
    ASSERT_TRUE(db) << db.error().message;
    keys_ = std::move(*db);
    auto created = keys_->transact([](storage::Transaction& tx) {
      return tx.execute_script(
          "CREATE TABLE job_keys (idempotency_key TEXT PRIMARY KEY, job_id TEXT NOT NULL, "
          "published INTEGER NOT NULL DEFAULT 0, created_at BIGINT NOT NULL)");
    });
    ASSERT_TRUE(created) << created.error().message;
    queue_ = open();
    ASSERT_NE(queue_, nullptr);
  }

  void TearDown() override {
    queue_.reset();
    if (url_.empty()) return;
    Raw raw(url_);
    if (!raw.ok()) return;
    for (const char* q : {"default", "other", "bad"}) raw.delete_queue(prefix_ + ".q." + q);
    raw.delete_queue(prefix_ + ".dead");
    for (const auto bucket : k_rabbit_delay_ladder) {
      raw.delete_queue(prefix_ + ".delay." + std::to_string(bucket.count()));
      raw.delete_exchange(prefix_ + ".delay." + std::to_string(bucket.count()));
    }
    raw.delete_exchange(prefix_ + ".jobs");
  }

  std::unique_ptr<JobQueue> open(int prefetch = 16) {
    auto q =
        open_rabbitmq_queue({.url = url_, .prefix = prefix_, .prefetch = prefetch}, *keys_, SystemClock::instance());
    EXPECT_TRUE(q) << q.error().message;
    return q ? std::move(*q) : nullptr;
  }

  JobQueue& q() { return *queue_; }

  std::string enqueue(NewJob job) {
    auto r = q().enqueue(job);
    EXPECT_TRUE(r) << r.error().message;
    return r ? r->id : std::string();
  }
  static NewJob job(std::string type = "test.echo", int priority = 0) {
    NewJob j;
    j.type = std::move(type);
    j.tenant_id = "tenant-1";
    j.payload = Json{{"n", 1}};
    j.priority = priority;
    return j;
  }

  std::unique_ptr<Consumer> consumer(const std::string& queue = "default") {
    auto c = q().consumer(queue);
    EXPECT_TRUE(c) << c.error().message;
    return c ? std::move(*c) : nullptr;
  }

  static Delivery take(Consumer& c, milliseconds wait = 5s) {
    auto d = c.next(wait);
    EXPECT_TRUE(d) << d.error().message;
    if (!d || !*d) {
      ADD_FAILURE() << "no job within " << wait.count() << " ms";
      return {};
    }
    return **d;
  }

  std::string work(const std::string& queue = "default") const { return prefix_ + ".q." + queue; }

  std::string url_;
  std::string prefix_;
  std::unique_ptr<storage::Database> keys_;
  std::unique_ptr<JobQueue> queue_;
};

TEST_F(RabbitQueueTest, TopologyIsDurableAndMessagesPersistent) {
  NewJob j = job("test.persist", 7);
  const std::string id = enqueue(j);
  Raw raw(url_);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw.depth(work()), 1);

  // Declared durable (and the work queue with x-max-priority): redeclaring otherwise is refused (406).
  EXPECT_EQ(raw.redeclare_queue_transient(work()), 406);
  EXPECT_EQ(raw.redeclare_queue_durable_plain(work()), 406);
  EXPECT_EQ(raw.redeclare_queue_transient(prefix_ + ".dead"), 406);
  EXPECT_EQ(raw.redeclare_queue_transient(prefix_ + ".delay.1000"), 406);
  EXPECT_EQ(raw.redeclare_queue_transient(prefix_ + ".delay.86400000"), 406);
  EXPECT_EQ(raw.redeclare_exchange_transient(prefix_ + ".jobs", "direct"), 406);
  EXPECT_EQ(raw.redeclare_exchange_transient(prefix_ + ".delay.5000", "fanout"), 406);

  auto m = raw.peek(work());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->delivery_mode, 2);  // persistent
  EXPECT_EQ(m->priority, 7);
  EXPECT_EQ(m->message_id, id);
  EXPECT_EQ(m->content_type, "application/json");
  auto body = Json::parse(m->body);
  EXPECT_EQ(body["id"], id);
  EXPECT_EQ(body["type"], "test.persist");
  EXPECT_EQ(body["tenant_id"], "tenant-1");
  EXPECT_EQ(body["payload"], (Json{{"n", 1}}));
  EXPECT_EQ(body["attempts"], 0);

  // The message outlives the connection that published it: a new queue object (new connections) receives it.
  queue_.reset();
  queue_ = open();
  auto c = consumer();
  const Delivery d = take(*c);
  EXPECT_EQ(d.job.id, id);
  EXPECT_EQ(d.job.type, "test.persist");
  EXPECT_EQ(d.job.tenant_id, "tenant-1");
  EXPECT_EQ(d.job.priority, 7);
  // The peek's nack-requeue flagged the message redelivered, which counts as a lost run: RabbitMQ cannot tell a
  // peek from a consumer that died.
  EXPECT_EQ(d.job.attempts, 2);
  EXPECT_EQ(d.job.queue, "default");
  ASSERT_TRUE(c->complete(d));
}

TEST_F(RabbitQueueTest, EnqueueReturnsOnlyOnceConfirmed) {
  Raw raw(url_);
  ASSERT_TRUE(raw.ok());
  for (int i = 0; i < 20; ++i) enqueue(job());
  // Confirmed means routed and stored: all of them are in the work queue when enqueue returns.
  EXPECT_EQ(raw.depth(work()), 20);
  auto stats = q().stats();
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->counts["default"]["*"]["queued"], 20);
  EXPECT_EQ(stats->dead, 0);
}

TEST_F(RabbitQueueTest, WorkQueueDeletedBehindItsBackIsRedeclared) {
  enqueue(job());
  Raw raw(url_);
  ASSERT_TRUE(raw.ok());
  raw.delete_queue(work());
  ASSERT_EQ(raw.depth(work()), -1);
  // The publisher believes the queue exists; the unroutable publish comes back (mandatory) and is repeated after
  // declaring it again, instead of being dropped.
  const std::string id = enqueue(job());
  EXPECT_EQ(raw.depth(work()), 1);
  auto c = consumer();
  EXPECT_EQ(take(*c).job.id, id);
}

TEST_F(RabbitQueueTest, MismatchedTopologyFailsTheEnqueue) {
  Raw raw(url_);
  ASSERT_TRUE(raw.ok());
  raw.declare_plain_queue(work("bad"));  // without x-max-priority
  NewJob j = job();
  j.queue = "bad";
  auto r = q().enqueue(j);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::internal) << r.error().message;
  // The publisher recovers for other queues.
  enqueue(job());
  EXPECT_EQ(raw.depth(work()), 1);
}

TEST_F(RabbitQueueTest, AFailedPublishLetsTheNextEnqueueWithItsKeyPublishAtOnce) {
  Raw raw(url_);
  ASSERT_TRUE(raw.ok());
  raw.declare_plain_queue(work("bad2"));  // without x-max-priority: every publish to it fails
  NewJob j = job();
  j.queue = "bad2";
  j.idempotency_key = "retried-after-failure";
  auto first = q().enqueue(j);
  ASSERT_FALSE(first);
  // A retry right away must try to publish again (and fail the same way here), not report the job as enqueued.
  auto second = q().enqueue(j);
  ASSERT_FALSE(second) << "the key of a failed publish was taken as a publish in progress";
  EXPECT_EQ(second.error().code, Errc::internal);
}

TEST_F(RabbitQueueTest, RetryWithDelayComesBackAfterTheDelay) {
  const std::string id = enqueue(job());
  auto c = consumer();
  const Delivery first = take(*c);
  ASSERT_EQ(first.job.id, id);
  EXPECT_EQ(first.job.attempts, 1);
  const auto t0 = Steady::now();
  ASSERT_TRUE(c->retry(first, 1s, "boom"));

  auto early = c->next(300ms);
  ASSERT_TRUE(early);
  EXPECT_FALSE(*early);
  auto stats = q().stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->counts["*"]["*"]["scheduled"], 1);
  EXPECT_EQ(stats->counts["default"]["*"]["queued"], 0);

  const Delivery again = take(*c, 10s);
  EXPECT_GE(Steady::now() - t0, 950ms);
  EXPECT_EQ(again.job.id, id);
  EXPECT_EQ(again.job.attempts, 2);
  EXPECT_EQ(again.job.last_error, "boom");
  EXPECT_EQ(again.job.tenant_id, "tenant-1");
  ASSERT_TRUE(c->complete(again));
}

TEST_F(RabbitQueueTest, FutureRunAtWaitsInItsDelayBucket) {
  NewJob j = job();
  j.run_at = std::chrono::system_clock::now() + 800ms;  // the 1 s bucket
  const auto t0 = Steady::now();
  const std::string id = enqueue(j);
  Raw raw(url_);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw.depth(prefix_ + ".delay.1000"), 1);
  auto c = consumer();
  auto early = c->next(200ms);
  ASSERT_TRUE(early);
  EXPECT_FALSE(*early);
  const Delivery d = take(*c, 10s);
  EXPECT_GE(Steady::now() - t0, 750ms);
  EXPECT_EQ(d.job.id, id);
  EXPECT_EQ(d.job.attempts, 1);
  ASSERT_TRUE(c->complete(d));
}

TEST_F(RabbitQueueTest, ZeroDelayRetryIsImmediate) {
  const std::string id = enqueue(job());
  auto c = consumer();
  const Delivery d = take(*c);
  ASSERT_TRUE(c->retry(d, 0ms, "again"));
  const Delivery again = take(*c, 2s);
  EXPECT_EQ(again.job.id, id);
  EXPECT_EQ(again.job.attempts, 2);
  EXPECT_EQ(again.job.last_error, "again");
}

TEST_F(RabbitQueueTest, CrashedConsumerProcessRedeliversWithTheLostRunCounted) {
  const std::string id = enqueue(job());
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child takes the job and dies without settling it: no ack, no connection.close.
    ::close(pipe_fds[0]);
    auto c = q().consumer("default");
    char ok = 'n';
    if (c) {
      auto d = (*c)->next(5s);
      if (d && *d && (*d)->job.id == id && (*d)->job.attempts == 1) ok = 'y';
    }
    (void)!::write(pipe_fds[1], &ok, 1);
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  char ok = 'n';
  EXPECT_EQ(::read(pipe_fds[0], &ok, 1), 1);
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_EQ(ok, 'y') << "the child did not receive the job";

  auto c = consumer();
  const Delivery d = take(*c);
  EXPECT_EQ(d.job.id, id);
  EXPECT_EQ(d.job.attempts, 2);  // the lost run and this one
  ASSERT_TRUE(c->complete(d));
  auto none = c->next(300ms);
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
}

TEST_F(RabbitQueueTest, DestroyedConsumerRedeliversUnsettledAndReturnsPrefetchedUncounted) {
  const std::string a = enqueue(job());
  const std::string b = enqueue(job());
  const std::string c3 = enqueue(job());
  auto first = consumer();
  const Delivery held = take(*first);  // handed out, never settled
  EXPECT_EQ(held.job.id, a);
  // b and c were prefetched by `first` too, never handed out.
  first.reset();

  auto second = consumer();
  std::map<std::string, int> attempts;
  for (int i = 0; i < 3; ++i) {
    const Delivery d = take(*second);
    attempts[d.job.id] = d.job.attempts;
    ASSERT_TRUE(second->complete(d));
  }
  EXPECT_EQ(attempts[a], 2);  // its run was lost with the consumer
  EXPECT_EQ(attempts[b], 1);
  EXPECT_EQ(attempts[c3], 1);
}

TEST_F(RabbitQueueTest, ReleaseIsNotCounted) {
  const std::string id = enqueue(job());
  auto c = consumer();
  const Delivery d = take(*c);
  EXPECT_EQ(d.job.attempts, 1);
  ASSERT_TRUE(c->release(d));
  const Delivery again = take(*c);
  EXPECT_EQ(again.job.id, id);
  EXPECT_EQ(again.job.attempts, 1);
  ASSERT_TRUE(c->extend(again));  // a no-op on RabbitMQ
  ASSERT_TRUE(c->complete(again));
}

TEST_F(RabbitQueueTest, SettlingTwiceOrAnotherConsumersDeliveryIsInvalid) {
  enqueue(job());
  auto c = consumer();
  const Delivery d = take(*c);
  ASSERT_TRUE(c->complete(d));
  auto twice = c->complete(d);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, Errc::invalid_argument);
  auto other = consumer();
  auto foreign = other->retry(d, 0ms, "x");
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().code, Errc::invalid_argument);
}

TEST_F(RabbitQueueTest, BuriedJobsShowInDeadJobs) {
  const std::string a = enqueue(job("test.one"));
  const std::string b = enqueue(job("test.two"));
  auto c = consumer();
  const Delivery da = take(*c);
  ASSERT_TRUE(c->bury(da, "first failure"));
  std::this_thread::sleep_for(5ms);  // distinct died_at
  const Delivery db = take(*c);
  ASSERT_TRUE(c->bury(db, "second failure"));

  auto dead = q().dead_jobs(10);
  ASSERT_TRUE(dead) << dead.error().message;
  ASSERT_EQ(dead->size(), 2u);
  EXPECT_EQ((*dead)[0].job.id, b);  // newest first
  EXPECT_EQ((*dead)[0].job.last_error, "second failure");
  EXPECT_EQ((*dead)[0].job.type, "test.two");
  EXPECT_EQ((*dead)[0].job.attempts, 1);
  EXPECT_EQ((*dead)[0].job.queue, "default");
  EXPECT_EQ((*dead)[1].job.id, a);
  EXPECT_EQ((*dead)[1].job.last_error, "first failure");
  EXPECT_GE((*dead)[0].died_at, (*dead)[1].died_at);
  EXPECT_GT((*dead)[1].died_at, TimePoint{});

  // A peek: the dead letters are all still there.
  auto newest = q().dead_jobs(1);
  ASSERT_TRUE(newest);
  ASSERT_EQ(newest->size(), 1u);
  EXPECT_EQ((*newest)[0].job.id, b);
  auto stats = q().stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->dead, 2);
  EXPECT_EQ(stats->counts["default"]["*"]["queued"], 0);
}

TEST_F(RabbitQueueTest, RetryDeadAndDiscardDead) {
  const std::string a = enqueue(job());
  const std::string b = enqueue(job());
  const std::string keep = enqueue(job());
  auto c = consumer();
  for (int i = 0; i < 3; ++i) {
    const Delivery d = take(*c);
    ASSERT_TRUE(c->bury(d, "failed " + d.job.id));
  }

  auto retried = q().retry_dead(a);
  ASSERT_TRUE(retried) << retried.error().message;
  EXPECT_TRUE(*retried);
  const Delivery back = take(*c);
  EXPECT_EQ(back.job.id, a);
  EXPECT_EQ(back.job.attempts, 1);  // reset to 0, then this run
  ASSERT_TRUE(c->complete(back));

  auto discarded = q().discard_dead(b);
  ASSERT_TRUE(discarded);
  EXPECT_TRUE(*discarded);
  auto again = q().discard_dead(b);
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  auto unknown = q().retry_dead("01890000-0000-7000-8000-000000000000");
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(*unknown);

  auto dead = q().dead_jobs(10);
  ASSERT_TRUE(dead);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].job.id, keep);  // the others scanned past went back
  auto none = c->next(300ms);
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
}

TEST_F(RabbitQueueTest, HigherPriorityFirst) {
  const std::string p0 = enqueue(job("test.p", 0));
  const std::string p5 = enqueue(job("test.p", 5));
  const std::string p9 = enqueue(job("test.p", 9));
  const std::string p1 = enqueue(job("test.p", 1));
  auto c = consumer();
  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) {
    const Delivery d = take(*c);
    order.push_back(d.job.id);
    ASSERT_TRUE(c->complete(d));
  }
  EXPECT_EQ(order, (std::vector<std::string>{p9, p5, p1, p0}));
}

TEST_F(RabbitQueueTest, IdempotentEnqueuePublishesOnce) {
  NewJob j = job();
  j.idempotency_key = "order-42";
  auto first = q().enqueue(j);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->created);
  auto second = q().enqueue(j);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_FALSE(second->created);
  EXPECT_EQ(second->id, first->id);
  Raw raw(url_);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw.depth(work()), 1);
  auto c = consumer();
  const Delivery d = take(*c);
  EXPECT_EQ(d.job.id, first->id);
  EXPECT_EQ(d.job.idempotency_key, "order-42");
}

TEST_F(RabbitQueueTest, UnpublishedKeyIsPublishedUnderItsJobId) {
  // A crash between the key insert and the publish left this row.
  const std::string id = "01890000-0000-7000-8000-0000000000aa";
  auto inserted = keys_->transact([&](storage::Transaction& tx) -> Result<void> {
    auto r = tx.execute({"", "INSERT INTO job_keys (idempotency_key, job_id, created_at) VALUES ($1, $2, $3)"},
                        {std::string("crashed"), id, std::int64_t{1}});
    if (!r) return std::unexpected(r.error());
    return {};
  });
  ASSERT_TRUE(inserted);
  NewJob j = job();
  j.idempotency_key = "crashed";
  auto r = q().enqueue(j);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->id, id);
  EXPECT_FALSE(r->created);
  auto published = storage::transact_value<std::int64_t>(*keys_, [](storage::Transaction& tx) -> Result<std::int64_t> {
    auto rs = tx.execute({"", "SELECT published FROM job_keys WHERE idempotency_key = 'crashed'"});
    if (!rs) return std::unexpected(rs.error());
    return rs->int_at(0, 0).value_or(-1);
  });
  ASSERT_TRUE(published);
  EXPECT_EQ(*published, 1);
  // Now published: a further enqueue does not publish again.
  ASSERT_TRUE(q().enqueue(j));
  Raw raw(url_);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw.depth(work()), 1);
  auto c = consumer();
  EXPECT_EQ(take(*c).job.id, id);
}

TEST_F(RabbitQueueTest, AYoungUnpublishedKeyIsLeftToTheEnqueueThatIsPublishingIt) {
  // A concurrent enqueue inserted this key a moment ago and is publishing: a second enqueue must not publish a
  // second copy.
  const std::string id = "01890000-0000-7000-8000-0000000000ab";
  const std::int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  auto inserted = keys_->transact([&](storage::Transaction& tx) -> Result<void> {
    auto r = tx.execute({"", "INSERT INTO job_keys (idempotency_key, job_id, created_at) VALUES ($1, $2, $3)"},
                        {std::string("in-flight"), id, now_ms});
    if (!r) return std::unexpected(r.error());
    return {};
  });
  ASSERT_TRUE(inserted);
  NewJob j = job();
  j.idempotency_key = "in-flight";
  auto r = q().enqueue(j);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->id, id);
  EXPECT_FALSE(r->created);
  Raw raw(url_);
  ASSERT_TRUE(raw.ok());
  EXPECT_LE(raw.depth(work()), 0) << "no message (-1: the work queue was not even declared)";
}

TEST_F(RabbitQueueTest, ConcurrentEnqueuesShareThePublisher) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        if (!q().enqueue(job())) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  Raw raw(url_);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw.depth(work()), 100);
}

TEST_F(RabbitQueueTest, ConsumerReconnectsAfterLosingItsQueue) {
  enqueue(job());
  auto c = consumer();
  const Delivery held = take(*c);
  Raw raw(url_);
  ASSERT_TRUE(raw.ok());
  raw.delete_queue(work());  // RabbitMQ cancels the consumer
  auto lost = c->next(2s);
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().code, Errc::unavailable) << lost.error().message;
  auto settle = c->complete(held);
  ASSERT_FALSE(settle);
  EXPECT_EQ(settle.error().code, Errc::conflict) << settle.error().message;

  const std::string id = enqueue(job());
  const Delivery d = take(*c);  // reconnects, declares the queue again, consumes
  EXPECT_EQ(d.job.id, id);
  ASSERT_TRUE(c->complete(d));
}

TEST_F(RabbitQueueTest, StatsCountQueuesSeparately) {
  enqueue(job());
  enqueue(job());
  NewJob other = job();
  other.queue = "other";
  enqueue(other);
  auto stats = q().stats();
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->counts["default"]["*"]["queued"], 2);
  EXPECT_EQ(stats->counts["other"]["*"]["queued"], 1);
  EXPECT_EQ(stats->counts["*"]["*"]["scheduled"], 0);
  EXPECT_EQ(stats->dead, 0);
}

}  // namespace
}  // namespace atrium::jobs
