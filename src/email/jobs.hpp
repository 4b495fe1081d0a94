#pragma once

// Mail through the job queue: "email.send" jobs carry one message; the handler adds the tenant's display name and
// Reply-To (email settings) when the mail goes out, so a settings change reaches mail already queued.

#include <string>
#include <string_view>

#include "email/mailer.hpp"
#include "jobs/queue.hpp"
#include "jobs/runner.hpp"
#include "tenancy/tenant_data.hpp"
#include "tenancy/tenant_store.hpp"

namespace atrium::email {

struct MailJobs {
  tenancy::TenantStore& tenants;
  tenancy::TenantData& data;
  Transport& transport;
  std::string default_from;  // email.from, when the message names no sender
};

// Registers "email.send". What `deps` refers to must outlive the handlers.
void register_jobs(jobs::HandlerRegistry& handlers, MailJobs deps);

// Queues `message` for the tenant ("" = platform mail) on the "email" queue; `key` (when not empty) makes it once
// only. Up to 20 attempts: with the default backoff, about 14 hours of SMTP outage.
Result<void> enqueue(jobs::JobQueue& queue, const std::string& tenant_id, const Message& message,
                     const std::string& key);

// Parses "Name <addr@host>" or "addr@host".
Result<Address> parse_address(std::string_view text);

}  // namespace atrium::email
