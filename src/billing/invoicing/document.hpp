#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "billing/invoice_math.hpp"
#include "core/error.hpp"

namespace atrium::billing {

// What an invoice or credit note shows, detached from storage: the documents below render exactly this.
struct Party {
  std::string name;
  std::string email;
  std::vector<std::string> address_lines;
  std::string country;               // ISO 3166-1 alpha-2
  std::vector<std::string> tax_ids;  // "EU VAT DE123456789"
};

struct InvoiceDocument {
  std::string title = "Invoice";  // "Invoice" or "Credit note"
  std::string number;             // INV-202611-000042; "DRAFT" before finalization
  std::string status;             // draft, open, paid, void, uncollectible
  std::string currency;           // ISO 4217
  Instant issued_at{};            // finalization time
  Instant due_at{};               // the epoch: none
  Instant period_start{};
  Instant period_end{};
  Party issuer;
  Party customer;
  std::vector<Line> lines;
  Totals totals;
  std::string discount_label;  // "WELCOME20 (20% off)", "" without a discount
  std::string tax_label;       // "VAT 20% (included)", "" without tax
  std::int64_t amount_paid = 0;
  std::string memo;
};

// A self-contained HTML page (inline CSS, no scripts, no external resources). Every text from the document is
// HTML-escaped. Amounts via format_money.
std::string render_html(const InvoiceDocument& doc);

// A PDF (1.4, A4, built with libharu): the same content as the HTML: header, parties, lines with period and
// quantity, totals. Text outside Latin-1 is replaced by '?'. internal when libharu fails.
Result<std::string> render_pdf(const InvoiceDocument& doc);

}  // namespace atrium::billing
