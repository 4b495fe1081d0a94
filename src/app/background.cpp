#include "app/background.hpp"

#include <unistd.h>
#include <charconv>

#include "analytics/analytics.hpp"
#include "app/cleanup.hpp"
#include "app/platform.hpp"
#include "billing/billing.hpp"
#include "billing/jobs.hpp"
#include "billing/money.hpp"
#include "churn/service.hpp"
#include "core/ids.hpp"
#include "core/log.hpp"
#include "email/jobs.hpp"
#include "email/settings.hpp"
#include "identity/invitations.hpp"
#include "identity/user_store.hpp"
#include "jobs/rabbitmq_queue.hpp"
#include "jobs/sql_queue.hpp"
#include "metering/metering.hpp"
#include "projects/project_store.hpp"
#include "reports/jobs.hpp"
#include "reports/reports.hpp"
#include "storage/database.hpp"
#include "tenancy/idempotency.hpp"
#include "tenancy/tenant_data.hpp"
#include "warehouse/warehouse.hpp"
#include "webhooks/endpoints.hpp"
#include "webhooks/jobs.hpp"

namespace atrium::app {

using tenancy::TenantTransaction;

Result<std::map<std::string, int>> parse_concurrency(std::string_view text) {
  std::map<std::string, int> out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? text.size() - start : comma - start);
    const auto eq = item.find('=');
    int n = -1;
    if (eq != std::string_view::npos) {
      auto [p, ec] = std::from_chars(item.data() + eq + 1, item.data() + item.size(), n);
      if (ec != std::errc() || p != item.data() + item.size()) n = -1;
    }
    const std::string queue(item.substr(0, eq == std::string_view::npos ? 0 : eq));
    if (n < 0 || n > 256 || !jobs::valid_queue_name(queue)) {
      return fail(Errc::invalid_argument, "jobs.concurrency: \"" + std::string(item) + "\" is not <queue>=<0-256>");
    }
    out[queue] = n;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

Background::Background(Platform& platform) : platform_(platform) {}

Background::~Background() { stop_workers(); }

Result<std::unique_ptr<Background>> Background::open(Platform& platform) {
  const Config& config = platform.config();
  std::unique_ptr<Background> b(new Background(platform));
  auto concurrency = parse_concurrency(config.jobs.concurrency);
  if (!concurrency) return std::unexpected(concurrency.error());
  b->concurrency_ = std::move(*concurrency);
  auto schedule = webhooks::parse_schedule(config.webhooks.retry_schedule);
  if (!schedule) return fail(Errc::invalid_argument, "webhooks.retry_schedule: " + schedule.error().message);
  b->webhook_schedule_ = std::move(*schedule);
  if (!config.webhooks.platform_url.empty()) {
    if (auto v = webhooks::validate_target_url(config.webhooks.platform_url); !v) {
      return fail(Errc::invalid_argument, "webhooks.platform_url: " + v.error().message);
    }
    if (config.webhooks.platform_secret.size() < 16) {
      return fail(Errc::invalid_argument,
                  "webhooks.platform_secret: required with webhooks.platform_url (at least 16 characters)");
    }
  }
  if (auto from = email::parse_address(config.email.from); !from) return std::unexpected(from.error());

  if (config.jobs.queue_url.empty()) {
    // The queue is platform work across tenants: the owner's pool in the platform scope (docs/security.md).
    b->queue_ = jobs::make_sql_queue(platform.tenant_data->platform_database(), platform.clock(),
                                     {.lease = std::chrono::milliseconds(config.jobs.lease_ms),
                                      .poll_interval = std::chrono::milliseconds(config.jobs.poll_interval_ms)});
  } else {
    auto q = jobs::open_rabbitmq_queue({.url = config.jobs.queue_url, .prefix = config.jobs.queue_prefix},
                                       platform.db(), platform.clock());
    if (!q) return fail(q.error().code, "jobs.queue_url: " + q.error().message);
    b->queue_ = std::move(*q);
  }
  if (config.email.smtp_url.empty()) {
    b->mail_ = email::eml_directory_transport(config.storage.data_dir + "/mail", platform.clock());
  } else {
    b->mail_ = email::smtp_transport({.url = config.email.smtp_url,
                                      .username = config.email.smtp_username,
                                      .password = config.email.smtp_password,
                                      .starttls = config.email.smtp_starttls},
                                     platform.clock());
  }
  b->register_handlers();
  // Queue depth by state, read from the queue at each scrape.
  platform.registry.add_collector([q = b->queue_.get()](std::string& out) {
    auto stats = q->stats();
    if (!stats) return;
    out += "# HELP atrium_jobs_queue_depth Jobs not yet done, by queue, type and state.\n";
    out += "# TYPE atrium_jobs_queue_depth gauge\n";
    for (const auto& [queue, types] : stats->counts) {
      for (const auto& [type, states] : types) {
        for (const auto& [state, n] : states) {
          metrics::append_sample(out, "atrium_jobs_queue_depth", {"queue", "type", "state"}, {queue, type, state},
                                 static_cast<double>(n));
        }
      }
    }
  });
  return b;
}

namespace {

// An endpoint was disabled after every attempt of a delivery failed: its owners are mailed.
void tell_owners_endpoint_disabled(Platform& p, Background& background, const tenancy::Tenant& tenant,
                                   const std::string& endpoint_id, const std::string& url, const std::string& error) {
  auto members = p.users->list_members(tenant.id, std::nullopt, 100);
  if (!members) return;
  std::vector<email::Address> owners;
  for (const auto& member : members->members) {
    if (member.role == identity::Role::owner) owners.push_back({member.user.email, member.user.name});
  }
  if (owners.empty()) return;
  auto rendered =
      email::render(*email::builtin_template("webhook_endpoint_disabled"),
                    {{"tenant_name", tenant.name}, {"url", url}, {"endpoint_id", endpoint_id}, {"error", error}}, {},
                    std::move(owners));
  if (!rendered) {
    log::warn("endpoint-disabled email not rendered", {{"error", rendered.error().message}});
    return;
  }
  if (auto s = background.send_email(tenant.id, *rendered, "endpoint-disabled:" + endpoint_id); !s) {
    log::warn("endpoint-disabled email not queued", {{"error", s.error().message}});
  }
}

}  // namespace

// Each module registers its own job types; the platform's own (heartbeat, outbox sweep, cleanup) are here.
void Background::register_handlers() {
  Platform& p = platform_;
  const Clock& clock = p.clock();
  const Config& config = p.config();
  handlers_.add("system.heartbeat", [](jobs::JobContext&) -> Result<void> { return {}; });
  handlers_.add("system.outbox_sweep", [&p](jobs::JobContext&) -> Result<void> {
    // Stops between tenants once the process drains: what is left (and its marks) waits for the next sweep.
    auto moved = p.relay_pending_audit([&p] { return p.draining.load(); });
    if (!moved) return std::unexpected(moved.error());
    return {};
  });
  handlers_.add("system.cleanup", [&p, &clock](jobs::JobContext&) -> Result<void> {
    auto done = clean_up(p, clock);
    if (!done) return std::unexpected(done.error());
    return {};
  });
  handlers_.add("analytics.etl", [&p](jobs::JobContext&) -> Result<void> {
    auto wh = p.warehouse();
    if (!wh) return std::unexpected(wh.error());
    auto stats = (*wh)->run_etl();
    if (!stats) return std::unexpected(stats.error());
    log::info("warehouse ETL run", {{"from_day", stats->from_day},
                                    {"to_day", stats->to_day},
                                    {"source_rows", stats->source_rows},
                                    {"duration_ms", stats->duration.count()}});
    return {};
  });
  const auto committed = [&p](const tenancy::Tenant& tenant) { p.flush_audit_after_commit(tenant); };
  billing::register_jobs(handlers_, *p.billing);
  email::register_jobs(
      handlers_,
      {.tenants = *p.tenants, .data = *p.tenant_data, .transport = *mail_, .default_from = config.email.from});
  reports::register_jobs(handlers_, {.tenants = *p.tenants,
                                     .data = *p.tenant_data,
                                     .audit = *p.audit,
                                     .clock = clock,
                                     .committed = committed,
                                     .control = &p.db(),
                                     .build_platform = [&p](const reports::Report& report) -> Result<reports::Csv> {
                                       auto request = analytics::export_request(report.type, report.parameters);
                                       if (!request) return std::unexpected(request.error());
                                       return p.analytics->export_csv(*request);
                                     }});
  webhooks::SendOptions send;
  send.connect_timeout = std::chrono::milliseconds(std::min<std::int64_t>(config.webhooks.timeout_ms, 5000));
  send.total_timeout = std::chrono::milliseconds(config.webhooks.timeout_ms);
  send.allow_private_addresses = config.webhooks.allow_private_targets;
  webhooks::register_jobs(handlers_, {.tenants = *p.tenants,
                                      .data = *p.tenant_data,
                                      .clock = clock,
                                      .send = std::move(send),
                                      .schedule = webhook_schedule_,
                                      .committed = committed,
                                      .disabled =
                                          [this, &p](const tenancy::Tenant& tenant, const std::string& endpoint_id,
                                                     const std::string& url, const std::string& error) {
                                            tell_owners_endpoint_disabled(p, *this, tenant, endpoint_id, url, error);
                                          },
                                      .platform_url = config.webhooks.platform_url,
                                      .platform_secret = config.webhooks.platform_secret});
  // The daily churn batch: every customer scored with the active model; a tenant crossing into high risk emits the
  // platform event churn.risk_high in the batch's transaction (posted to webhooks.platform_url).
  handlers_.add("churn.score", [&p, &clock, this](jobs::JobContext&) -> Result<void> {
    auto batch = p.churn->score_all([&clock](storage::Transaction& tx, const churn::Score& s) -> Result<void> {
      auto e = events::emit(tx, clock, "", "churn.risk_high", churn::to_json(s));
      if (!e) return std::unexpected(e.error());
      return {};
    });
    if (!batch && batch.error().code == Errc::conflict) {
      log::info("churn batch skipped", {{"reason", batch.error().message}});
      return {};
    }
    if (!batch) return std::unexpected(batch.error());
    if (!batch->became_high.empty()) events_committed();
    log::info("churn batch scored", {{"tenants", batch->scored},
                                     {"high", batch->high},
                                     {"became_high", static_cast<std::int64_t>(batch->became_high.size())}});
    return {};
  });
}

// The billing account's address, or the tenant's owners when it has none.
Result<std::vector<email::Address>> Background::billing_contacts(const tenancy::Tenant& tenant) {
  Platform& p = platform_;
  std::vector<email::Address> to;
  auto account = p.billing->get_account(tenant.id);
  if (account && !account->email.empty()) {
    to.push_back(email::Address{account->email, account->legal_name});
    return to;
  }
  auto members = p.users->list_members(tenant.id, std::nullopt, 100);
  if (!members) return std::unexpected(members.error());
  for (const auto& member : members->members) {
    if (member.role == identity::Role::owner) to.push_back(email::Address{member.user.email, member.user.name});
  }
  return to;
}

Result<Json> Background::send_mail(const std::string& tenant_id, std::string_view kind, const std::string& note,
                                   const std::string& key) {
  auto tenant = platform_.tenants->get(tenant_id);
  if (!tenant) return std::unexpected(tenant.error());
  const email::Template* t = email::builtin_template("churn_" + std::string(kind));
  if (t == nullptr) return fail(Errc::invalid_argument, "no mail for the intervention " + std::string(kind));
  auto to = billing_contacts(*tenant);
  if (!to) return std::unexpected(to.error());
  if (to->empty()) return fail(Errc::not_found, "the tenant has no billing address and no owner to write to");
  Json recipients = Json::array();
  for (const auto& a : *to) recipients.push_back(a.email);
  auto rendered = email::render(*t, {{"tenant_name", tenant->name}, {"note", note}}, {}, std::move(*to));
  if (!rendered) return std::unexpected(rendered.error());
  if (auto sent = send_email(tenant->id, *rendered, key); !sent) return std::unexpected(sent.error());
  return Json{{"mail", rendered->subject}, {"to", std::move(recipients)}};
}

Result<Json> Background::grant_credit(const std::string& tenant_id, int percent, const std::string& note,
                                      const audit::Context& who) {
  auto invoices = platform_.billing->list_invoices(tenant_id, "paid");
  if (!invoices) return std::unexpected(invoices.error());
  const billing::Invoice* last = nullptr;
  for (const auto& inv : *invoices) {
    if (!inv.subscription_id || inv.test_clock_id || inv.totals.total <= 0) continue;
    if (last == nullptr || inv.created_at > last->created_at) last = &inv;
  }
  if (last == nullptr) return fail(Errc::conflict, "the tenant has no paid subscription invoice to credit");
  // Minor units, rounded half up: percent of the invoice's total.
  const std::int64_t amount = (last->totals.total * percent + 50) / 100;
  billing::NewCreditNote credit{.invoice_id = last->id,
                                .amount = amount,
                                .method = "credit_balance",
                                .reason = "other",
                                .memo = note.empty() ? "Retention credit" : "Retention credit: " + note.substr(0, 400)};
  auto created = platform_.billing->create_credit_note(tenant_id, credit, who);
  if (!created) return std::unexpected(created.error());
  return Json{{"creditNote", created->id},
              {"invoice", last->id},
              {"amount", amount},
              {"currency", last->currency},
              {"percent", percent}};
}

Result<Json> Background::extend_grace(const std::string& tenant_id, int days, const audit::Context& who) {
  auto extended = platform_.billing->extend_dunning(tenant_id, std::int64_t{days} * 24, who);
  if (!extended) return std::unexpected(extended.error());
  Json invoices = Json::array();
  for (const auto& inv : *extended) {
    invoices.push_back({{"invoice", inv.id},
                        {"number", inv.number.value_or("")},
                        {"dunningGraceHours", inv.dunning_grace_hours},
                        {"nextPaymentAttempt",
                         inv.next_payment_attempt ? Json(format_rfc3339(*inv.next_payment_attempt)) : Json(nullptr)}});
  }
  return Json{{"days", days}, {"invoices", std::move(invoices)}};
}

Result<void> Background::start_workers() {
  if (runner_) return {};
  Platform& p = platform_;
  const auto& jc = p.config().jobs;
  jobs::RunnerOptions options{.concurrency = concurrency_,
                              .backoff_base = std::chrono::milliseconds(jc.backoff_base_ms),
                              .backoff_max = std::chrono::milliseconds(jc.backoff_max_ms),
                              .idle_wait = std::chrono::milliseconds(500),
                              .heartbeat = std::chrono::milliseconds(std::max<std::int64_t>(jc.lease_ms / 3, 100))};
  for (const char* q : {"default", "webhooks", "email", "reports"}) {
    auto it = concurrency_.find(q);
    if (it == concurrency_.end() || it->second == 0) {
      log::warn("no worker threads for a queue Atrium uses here; its jobs wait for another worker process",
                {{"queue", q}, {"setting", "jobs.concurrency"}});
    }
  }
  runner_ = std::make_unique<jobs::Runner>(*queue_, handlers_, p.db(), p.clock(), p.registry, options);
  if (auto r = runner_->start(); !r) return r;

  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string instance = std::string(host) + ":" + std::to_string(::getpid()) + ":" + new_uuid_v7(p.clock());
  // The relay reads every tenant's pending events: platform work, on the owner's pool in the platform scope.
  relay_ = std::make_unique<events::Relay>(
      p.tenant_data->platform_database(), p.clock(), [this](const events::Event& e) { return publish(e); },
      std::chrono::milliseconds(jc.relay_interval_ms), events::RelayLease{.holder = instance});
  relay_->start();

  scheduler_ = std::make_unique<jobs::Scheduler>(p.db(), *queue_, p.clock(), p.registry,
                                                 jobs::SchedulerOptions{.instance_id = instance});
  auto add = [&](std::string name, const std::string& cron, std::string type) -> Result<void> {
    if (cron.empty()) return {};
    jobs::NewJob job;
    job.type = std::move(type);
    job.max_attempts = 3;
    if (auto r = scheduler_->add({std::move(name), cron, jc.time_zone, job}); !r) return r;
    return {};
  };
  // Outboxes of tenants with their own database or file are moved after each commit; this catches what a failed
  // move left behind, without waiting for the tenant's next change.
  if (auto r = add("system.outbox_sweep", "* * * * *", "system.outbox_sweep"); !r) return r;
  if (auto r = add("system.cleanup", jc.cleanup_cron, "system.cleanup"); !r) {
    return fail(r.error().code, "jobs.cleanup_cron: " + r.error().message);
  }
  if (auto r = add("billing.run", p.config().billing.run_cron, "billing.run"); !r) {
    return fail(r.error().code, "billing.run_cron: " + r.error().message);
  }
  if (auto r = add("analytics.etl", p.config().analytics.etl_cron, "analytics.etl"); !r) {
    return fail(r.error().code, "analytics.etl_cron: " + r.error().message);
  }
  if (auto r = add("churn.score", p.config().churn.score_cron, "churn.score"); !r) {
    return fail(r.error().code, "churn.score_cron: " + r.error().message);
  }
  if (auto r = add("system.heartbeat", jc.heartbeat_cron, "system.heartbeat"); !r) {
    return fail(r.error().code, "jobs.heartbeat_cron: " + r.error().message);
  }
  scheduler_->start();
  return {};
}

void Background::stop_taking_jobs() {
  if (runner_) runner_->stop_taking();
}

bool Background::stop_workers() {
  if (scheduler_) scheduler_->stop();
  if (relay_) relay_->stop();
  bool clean = true;
  if (runner_) clean = runner_->stop(std::chrono::milliseconds(platform_.config().jobs.shutdown_grace_ms));
  return clean;
}

void Background::events_committed() {
  if (relay_) relay_->wake();
}

Result<void> Background::publish(const events::Event& event) {
  Platform& p = platform_;
  if (event.tenant_id.empty()) {  // a platform event: to the platform's own endpoint, when there is one
    if (p.config().webhooks.platform_url.empty()) return {};
    return webhooks::enqueue_platform_delivery(*queue_, webhook_schedule_.size(), event.id, event.type,
                                               events::to_json(event).dump());
  }
  auto tenant = p.tenants->get(event.tenant_id);
  if (!tenant && tenant.error().code == Errc::not_found) return {};
  if (!tenant) return std::unexpected(tenant.error());
  if (tenant->status == tenancy::TenantStatus::deleted) return {};
  const std::string body = events::to_json(event).dump();
  std::vector<webhooks::Delivery> deliveries;
  auto r = p.tenant_data->transact(*tenant, [&](TenantTransaction& tx) -> Result<void> {
    deliveries.clear();
    auto endpoints = webhooks::store::matching(tx, event.type);
    if (!endpoints) return std::unexpected(endpoints.error());
    for (const auto& e : *endpoints) {
      // An endpoint gets the events that happened after it was created (both ids are time-ordered UUIDv7s).
      if (e.id > event.id) continue;
      auto d = webhooks::store::add_delivery(tx, p.clock(), e.id, event.id, event.type, body);
      if (!d) return std::unexpected(d.error());
      deliveries.push_back(std::move(*d));
    }
    return {};
  });
  if (!r) return r;
  for (const auto& d : deliveries) {
    if (d.status != "pending" || d.attempts > 0) continue;
    if (auto e = enqueue_delivery(tenant->id, d.id, d.redeliveries); !e) return e;
  }
  if (event.type == "payment.failed") return send_dunning_email(event);
  if (event.type == "quota.threshold_reached") return send_quota_email(event, *tenant);
  return {};
}

// Quota thresholds: one mail per event to the billing account's address, or to the owners when it has none.
Result<void> Background::send_quota_email(const events::Event& event, const tenancy::Tenant& tenant) {
  const Json& d = event.data;
  auto contacts = billing_contacts(tenant);
  if (!contacts) return std::unexpected(contacts.error());
  std::vector<email::Address> to = std::move(*contacts);
  if (to.empty()) return {};
  const bool hard = d.value("enforcement", "") == "hard";
  const int threshold = d.value("threshold", 0);
  std::string consequence;
  if (threshold >= 100) {
    consequence = hard ? "The limit is reached: what would go beyond it is refused until the period ends."
                       : "Usage beyond the limit is allowed and billed as overage on the next invoice.";
  } else {
    consequence = hard ? "At the limit, what would go beyond it is refused until the period ends."
                       : "Usage beyond the limit will be billed as overage on the next invoice.";
  }
  auto rendered = email::render(*email::builtin_template("quota_threshold"),
                                {{"tenant_name", tenant.name},
                                 {"quota", d.value("quota", "")},
                                 {"threshold", std::to_string(threshold)},
                                 {"used", std::to_string(d.value("used", std::int64_t{0}))},
                                 {"limit", std::to_string(d.value("limit", std::int64_t{0}))},
                                 {"period_end", d.value("period_end", "")},
                                 {"consequence", consequence}},
                                {}, std::move(to));
  if (!rendered) return std::unexpected(rendered.error());
  return send_email(tenant.id, *rendered, "event:" + event.id);
}

// Dunning reminders: one mail per failed charge to the billing account's address, keyed by the event so a
// republished event mails once.
Result<void> Background::send_dunning_email(const events::Event& event) {
  const Json& d = event.data;
  // The account's address now (the event carries none: it is personal data, encrypted at rest).
  auto account = platform_.billing->get_account(event.tenant_id);
  if (!account && account.error().code == Errc::not_found) return {};
  if (!account) return std::unexpected(account.error());
  const std::string to = account->email;
  if (to.empty()) return {};
  std::string next_step;
  if (d.value("final", false)) {
    next_step = "This was the last attempt: the subscription has been cancelled or marked unpaid, as the plan says.";
  } else if (d.contains("deadline") && d["deadline"].is_string()) {
    next_step = "This payment method cannot be charged again. Unless the payment method changes before " +
                d["deadline"].get<std::string>() + ", the subscription will be cancelled or marked unpaid.";
  } else if (d.contains("next_payment_attempt") && d["next_payment_attempt"].is_string()) {
    next_step = "We will try again at " + d["next_payment_attempt"].get<std::string>() + ".";
  }
  const std::string currency = d.value("currency", "");
  auto rendered = email::render(*email::builtin_template("billing_payment_failed"),
                                {{"number", d.value("number", "")},
                                 {"amount", billing::format_decimal(d.value("amount", std::int64_t{0}), currency)},
                                 {"currency", currency},
                                 {"failure_code", d.value("failure_code", "")},
                                 {"message", d.value("message", "")},
                                 {"next_step", next_step}},
                                {}, {email::Address{to, ""}});
  if (!rendered) return std::unexpected(rendered.error());
  return send_email(event.tenant_id, *rendered, "event:" + event.id);
}

Result<void> Background::send_invitation(const tenancy::Tenant& tenant, const identity::IssuedInvitation& issued) {
  const identity::Invitation& i = issued.invitation;
  auto rendered = email::render(*email::builtin_template("invitation"),
                                {{"tenant_name", tenant.name},
                                 {"role", std::string(identity::role_name(i.role))},
                                 {"token", issued.token},
                                 {"expires_at", format_rfc3339(i.expires_at)}},
                                {}, {email::Address{i.email, ""}});
  if (!rendered) return std::unexpected(rendered.error());
  return send_email(tenant.id, *rendered, "invitation:" + i.id);
}

Result<void> Background::enqueue_delivery(const std::string& tenant_id, const std::string& delivery_id,
                                          std::int64_t redeliveries) {
  return webhooks::enqueue_delivery(*queue_, webhook_schedule_.size(), tenant_id, delivery_id, redeliveries);
}

Result<void> Background::send_email(const std::string& tenant_id, const email::Message& message,
                                    const std::string& key) {
  return email::enqueue(*queue_, tenant_id, message, key);
}

}  // namespace atrium::app
