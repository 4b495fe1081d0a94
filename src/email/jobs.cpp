#include "email/jobs.hpp"

#include "email/settings.hpp"

namespace atrium::email {

namespace {

// The message a job carries, from its payload.
Result<Message> message_of(const Json& m, const std::string& default_from) {
  Message message;
  auto from = parse_address(m.value("from", default_from));
  if (!from) return std::unexpected(from.error());
  message.from = *from;
  for (const auto& to : m.value("to", Json::array()))
    message.to.push_back({to.value("email", ""), to.value("name", "")});
  if (m.contains("reply_to") && m["reply_to"].is_string()) message.reply_to = Address{m["reply_to"], ""};
  message.subject = m.value("subject", "");
  message.text = m.value("text", "");
  message.html = m.value("html", "");
  return message;
}

Result<void> send(const MailJobs& deps, jobs::JobContext& ctx) {
  auto message = message_of(ctx.job().payload, deps.default_from);
  if (!message) return std::unexpected(message.error());
  const std::string& tenant_id = ctx.job().tenant_id;
  if (!tenant_id.empty()) {
    message->headers.emplace_back("X-Atrium-Tenant", tenant_id);
    auto tenant = deps.tenants.get(tenant_id);
    if (!tenant) return std::unexpected(tenant.error());
    auto r = deps.data.transact(*tenant,
                                [&](tenancy::TenantTransaction& tx) -> Result<void> {
                                  auto settings = settings_store::get(tx);
                                  if (!settings) return std::unexpected(settings.error());
                                  apply(*settings, *message);
                                  return {};
                                },
                                {.read_only = true});
    if (!r) return r;
  }
  return deps.transport.send(*message);
}

}  // namespace

void register_jobs(jobs::HandlerRegistry& handlers, MailJobs deps) {
  handlers.add("email.send", [deps = std::move(deps)](jobs::JobContext& ctx) { return send(deps, ctx); });
}

Result<void> enqueue(jobs::JobQueue& queue, const std::string& tenant_id, const Message& message,
                     const std::string& key) {
  jobs::NewJob job;
  job.queue = "email";
  job.type = "email.send";
  job.tenant_id = tenant_id;
  Json to = Json::array();
  for (const auto& a : message.to) to.push_back({{"email", a.email}, {"name", a.name}});
  job.payload = {{"to", to}, {"subject", message.subject}, {"text", message.text}, {"html", message.html}};
  if (!message.from.email.empty()) {
    job.payload["from"] =
        message.from.name.empty() ? message.from.email : message.from.name + " <" + message.from.email + ">";
  }
  if (message.reply_to) job.payload["reply_to"] = message.reply_to->email;
  job.idempotency_key = key.empty() ? "" : "email:" + key;
  job.max_attempts = 20;
  auto r = queue.enqueue(job);
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<Address> parse_address(std::string_view text) {
  Address a;
  const auto lt = text.find('<');
  if (lt != std::string_view::npos && text.back() == '>') {
    std::string_view name = text.substr(0, lt);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    a.name = std::string(name);
    a.email = std::string(text.substr(lt + 1, text.size() - lt - 2));
  } else {
    a.email = std::string(text);
  }
  if (!valid_address(a.email)) return fail(Errc::invalid_argument, "email.from: not a valid address");
  return a;
}

}  // namespace atrium::email
