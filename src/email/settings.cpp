#include "email/settings.hpp"

#include <utility>

namespace atrium::email {

namespace {

using storage::Value;
using tenancy::TenantStatement;

constexpr TenantStatement k_get{"email_settings_get",
                                "SELECT from_name, reply_to, updated_at FROM email_settings WHERE tenant_id = $1"};
constexpr TenantStatement k_put{
    "email_settings_put",
    "INSERT INTO email_settings (tenant_id, from_name, reply_to, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT "
    "(tenant_id) DO UPDATE SET from_name = excluded.from_name, reply_to = excluded.reply_to, updated_at = "
    "excluded.updated_at"};

constexpr TenantStatement k_from_name_select{
    "email_settings_from_name_select",
    "SELECT CAST(tenant_id AS TEXT), from_name FROM email_settings WHERE tenant_id = $1"};
constexpr TenantStatement k_from_name_update{
    "email_settings_from_name_update",
    "UPDATE email_settings SET from_name = $3 WHERE tenant_id = $1 AND CAST(tenant_id AS TEXT) = $2 AND from_name = "
    "$4"};
constexpr TenantStatement k_reply_to_select{
    "email_settings_reply_to_select",
    "SELECT CAST(tenant_id AS TEXT), reply_to FROM email_settings WHERE tenant_id = $1"};
constexpr TenantStatement k_reply_to_update{
    "email_settings_reply_to_update",
    "UPDATE email_settings SET reply_to = $3 WHERE tenant_id = $1 AND CAST(tenant_id AS TEXT) = $2 AND reply_to = $4"};

const Template k_endpoint_disabled{
    "Webhook endpoint disabled: {{url}}",
    "Atrium disabled the webhook endpoint {{url}} ({{endpoint_id}}) of {{tenant_name}} because every attempt to "
    "deliver an event to it failed.\n\nLast error: {{error}}\n\nFix the receiver, enable the endpoint again "
    "(POST /v1/webhook-endpoints/{{endpoint_id}}/enable) and redeliver the failed events from its delivery log.\n",
    "<p>Atrium disabled the webhook endpoint <code>{{url}}</code> ({{endpoint_id}}) of <b>{{tenant_name}}</b> "
    "because every attempt to deliver an event to it failed.</p><p>Last error: <code>{{error}}</code></p><p>Fix "
    "the receiver, enable the endpoint again (<code>POST /v1/webhook-endpoints/{{endpoint_id}}/enable</code>) and "
    "redeliver the failed events from its delivery log.</p>"};

const Template k_payment_failed{
    "Payment failed for invoice {{number}}",
    "We could not collect {{amount}} {{currency}} for invoice {{number}} ({{failure_code}}: {{message}}).\n\n"
    "{{next_step}}\n\nUpdate the payment method of your billing account (PUT /v1/billing-account) to have the "
    "invoice charged again at once.\n",
    "<p>We could not collect <b>{{amount}} {{currency}}</b> for invoice <b>{{number}}</b> ({{failure_code}}: "
    "{{message}}).</p><p>{{next_step}}</p><p>Update the payment method of your billing account "
    "(<code>PUT /v1/billing-account</code>) to have the invoice charged again at once.</p>"};

const Template k_quota_threshold{
    "{{quota}}: {{threshold}}% of the limit used",
    "{{tenant_name}} has used {{used}} of its {{limit}} {{quota}} this period ({{threshold}}%), which ends at "
    "{{period_end}}.\n\n{{consequence}}\n\nGET /v1/entitlements shows usage against every limit.\n",
    "<p><b>{{tenant_name}}</b> has used <b>{{used}}</b> of its <b>{{limit}}</b> {{quota}} this period "
    "({{threshold}}%), which ends at {{period_end}}.</p><p>{{consequence}}</p><p><code>GET /v1/entitlements</code> "
    "shows usage against every limit.</p>"};

const Template k_invitation{
    "You are invited to {{tenant_name}}",
    "You are invited to join {{tenant_name}} as {{role}}.\n\nYour invitation token, valid until {{expires_at}}:\n\n"
    "{{token}}\n\nAccept it with POST /v1/invitations/accept {\"token\": \"...\"} (add \"name\" and \"password\" "
    "when you have no account yet). If you did not expect this, ignore this message.\n",
    "<p>You are invited to join <b>{{tenant_name}}</b> as {{role}}.</p><p>Your invitation token, valid until "
    "{{expires_at}}:</p><p><code>{{token}}</code></p><p>Accept it with <code>POST /v1/invitations/accept</code> "
    "(add a name and password when you have no account yet). If you did not expect this, ignore this message.</p>"};

// Churn interventions (src/churn/, docs/ml.md): what a platform operator sends a customer at risk. {{note}} is the
// operator's own words (may be empty).
const Template k_churn_card_update{
    "{{tenant_name}}: please check your payment method",
    "Recent payments for {{tenant_name}} did not go through. To keep your subscription without interruption, update "
    "the payment method of your billing account (PUT /v1/billing-account); failed invoices are charged again at "
    "once.\n\n{{note}}\n",
    "<p>Recent payments for <b>{{tenant_name}}</b> did not go through. To keep your subscription without "
    "interruption, update the payment method of your billing account (<code>PUT /v1/billing-account</code>); "
    "failed invoices are charged again at once.</p><p>{{note}}</p>"};

const Template k_churn_onboarding{
    "Getting more out of {{tenant_name}}",
    "We noticed your team has been using {{tenant_name}} less lately. Our onboarding guide walks through the features "
    "teams like yours rely on most, and we are glad to set up a session with your team.\n\n{{note}}\n",
    "<p>We noticed your team has been using <b>{{tenant_name}}</b> less lately. Our onboarding guide walks through "
    "the features teams like yours rely on most, and we are glad to set up a session with your team.</p>"
    "<p>{{note}}</p>"};

const Template k_churn_success_followup{
    "How is {{tenant_name}} working for you?",
    "Your customer success team would like to hear how things are going for {{tenant_name}}, and to help with "
    "anything that is in the way. Reply to this message to set up a call.\n\n{{note}}\n",
    "<p>Your customer success team would like to hear how things are going for <b>{{tenant_name}}</b>, and to help "
    "with anything that is in the way. Reply to this message to set up a call.</p><p>{{note}}</p>"};

}  // namespace

Json to_json(const TenantSettings& s) {
  return {{"from_name", s.from_name},
          {"reply_to", s.reply_to.empty() ? Json(nullptr) : Json(s.reply_to)},
          {"updated_at", s.updated_at.empty() ? Json(nullptr) : Json(s.updated_at)}};
}

void apply(const TenantSettings& s, Message& m) {
  if (!s.from_name.empty()) m.from.name = s.from_name;
  if (!s.reply_to.empty()) m.reply_to = Address{s.reply_to, ""};
}

const Template* builtin_template(std::string_view name) {
  if (name == "webhook_endpoint_disabled") return &k_endpoint_disabled;
  if (name == "billing_payment_failed") return &k_payment_failed;
  if (name == "quota_threshold") return &k_quota_threshold;
  if (name == "invitation") return &k_invitation;
  if (name == "churn_card_update_email") return &k_churn_card_update;
  if (name == "churn_onboarding_email") return &k_churn_onboarding;
  if (name == "churn_success_followup_email") return &k_churn_success_followup;
  return nullptr;
}

namespace settings_store {

namespace {

// The stored forms of from_name and reply_to.
Result<std::pair<std::string, std::string>> sealed(tenancy::TenantTransaction& tx, const TenantSettings& s) {
  auto from_name = tx.seal(k_from_name, tx.tenant_id(), s.from_name);
  if (!from_name) return std::unexpected(from_name.error());
  auto reply_to = tx.seal(k_reply_to, tx.tenant_id(), s.reply_to);
  if (!reply_to) return std::unexpected(reply_to.error());
  return std::pair{std::move(*from_name), std::move(*reply_to)};
}

}  // namespace

std::vector<TenantStatement> statements() {
  return {k_get, k_put, k_from_name_select, k_from_name_update, k_reply_to_select, k_reply_to_update};
}

std::vector<tenancy::SealedColumn> sealed_columns() {
  return {{.field = k_from_name, .select = k_from_name_select, .update = k_from_name_update},
          {.field = k_reply_to, .select = k_reply_to_select, .update = k_reply_to_update}};
}

Result<TenantSettings> get(tenancy::TenantTransaction& tx) {
  auto rs = tx.execute(k_get);
  if (!rs) return std::unexpected(rs.error());
  if (rs->empty()) return TenantSettings{};
  auto from_name = tx.open(k_from_name, tx.tenant_id(), rs->text_at(0, 0).value_or(""));
  if (!from_name) return std::unexpected(from_name.error());
  auto reply_to = tx.open(k_reply_to, tx.tenant_id(), rs->text_at(0, 1).value_or(""));
  if (!reply_to) return std::unexpected(reply_to.error());
  return TenantSettings{std::move(*from_name), std::move(*reply_to), rs->text_at(0, 2).value_or("")};
}

Result<TenantSettings> put(tenancy::TenantTransaction& tx, const Clock& clock, const TenantSettings& settings) {
  if (settings.from_name.size() > 100 || settings.from_name.find_first_of("\r\n") != std::string::npos) {
    return fail(Errc::invalid_argument, "from_name must be at most 100 characters on one line");
  }
  if (!settings.reply_to.empty() && !valid_address(settings.reply_to)) {
    return fail(Errc::invalid_argument, "reply_to must be an email address");
  }
  TenantSettings out = settings;
  out.updated_at = format_rfc3339(clock.now());
  auto stored = sealed(tx, out);
  if (!stored) return std::unexpected(stored.error());
  auto r = tx.execute(k_put, {Value(stored->first), Value(stored->second), Value(out.updated_at)});
  if (!r) return std::unexpected(r.error());
  return out;
}

}  // namespace settings_store

}  // namespace atrium::email
