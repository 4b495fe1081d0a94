#include "billing/jobs.hpp"

#include "core/log.hpp"

namespace atrium::billing {

void register_jobs(jobs::HandlerRegistry& handlers, Billing& billing) {
  handlers.add("billing.run", [&billing](jobs::JobContext&) -> Result<void> {
    auto stats = billing.run();
    if (!stats) return std::unexpected(stats.error());
    log::info("billing run done", {{"renewed", stats->renewed},
                                   {"invoices", stats->invoices},
                                   {"charged", stats->charged},
                                   {"failed", stats->failed},
                                   {"retried", stats->retried},
                                   {"cancelled", stats->cancelled}});
    return {};
  });
}

}  // namespace atrium::billing
