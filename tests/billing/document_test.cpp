#include "billing/invoicing/document.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace atrium::billing {
namespace {

constexpr Instant kNov1{std::chrono::seconds(1793491200)};   // 2026-11-01T00:00:00Z
constexpr Instant kNov15{std::chrono::seconds(1794700800)};  // 2026-11-15T00:00:00Z
constexpr Instant kDec1{std::chrono::seconds(1796083200)};   // 2026-12-01T00:00:00Z

InvoiceDocument sample() {
  InvoiceDocument doc;
  doc.number = "INV-202611-000042";
  doc.status = "open";
  doc.currency = "USD";
  doc.issued_at = kNov1;
  doc.due_at = kNov15;
  doc.period_start = kNov1;
  doc.period_end = kDec1;
  doc.issuer = {
      "Atrium Labs GmbH", "billing@atrium.example", {"Hauptstrasse 1", "10115 Berlin"}, "DE", {"EU VAT DE123456789"}};
  doc.customer = {"Example Corp", "ap@example.com", {"1 Market St", "San Francisco, CA 94105"}, "US", {}};
  doc.lines = {
      {LineKind::subscription, "Team plan", 1, 100000, 100000, kNov1, kDec1, false},
      {LineKind::seats, "Additional seats", 3, 7815, 23445, kNov1, kDec1, false},
  };
  // 123445 subtotal, 20% off 24689, 98756 taxable, 20% VAT 19751 on top, 118507 total, 10000 credit applied.
  doc.totals = {.subtotal = 123445,
                .discount = 24689,
                .tax = 19751,
                .tax_inclusive = false,
                .total = 118507,
                .credit_applied = 10000,
                .amount_due = 108507,
                .credit_created = 0};
  doc.discount_label = "WELCOME20 (20% off)";
  doc.tax_label = "VAT 20%";
  doc.amount_paid = 0;
  doc.memo = "Thank you for your business.";
  return doc;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::size_t count(std::string_view haystack, std::string_view needle) {
  std::size_t n = 0;
  for (std::size_t at = haystack.find(needle); at != std::string_view::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

// Page objects: "/Type /Page" not followed by 's' (the page tree is /Type /Pages).
std::size_t page_objects(std::string_view pdf) {
  std::size_t n = 0;
  constexpr std::string_view kPage = "/Type /Page";
  for (std::size_t at = pdf.find(kPage); at != std::string_view::npos; at = pdf.find(kPage, at + 1)) {
    if (at + kPage.size() < pdf.size() && pdf[at + kPage.size()] != 's') ++n;
  }
  return n;
}

void expect_pdf_file(const std::string& pdf) {
  EXPECT_TRUE(pdf.starts_with("%PDF-1.4")) << pdf.substr(0, 16);
  std::string_view tail = pdf;
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.remove_suffix(1);
  EXPECT_TRUE(tail.ends_with("%%EOF"));
}

TEST(DocumentHtml, EscapesHostileText) {
  InvoiceDocument doc = sample();
  doc.customer.name = "<script>alert(1)</script>";
  doc.memo = "Pay \"now\" & <b>don't</b> wait";
  doc.lines[0].description = "<img src=x onerror=alert(2)>";
  doc.discount_label = "</th><script>";
  const std::string html = render_html(doc);
  EXPECT_FALSE(contains(html, "<script")) << html;
  EXPECT_FALSE(contains(html, "<img"));
  EXPECT_FALSE(contains(html, "<b>"));
  EXPECT_TRUE(contains(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_TRUE(contains(html, "Pay &quot;now&quot; &amp; &lt;b&gt;don&#39;t&lt;/b&gt; wait"));
  EXPECT_TRUE(contains(html, "&lt;img src=x onerror=alert(2)&gt;"));
  EXPECT_TRUE(contains(html, "Discount: &lt;/th&gt;&lt;script&gt;"));
}

TEST(DocumentHtml, IsSelfContained) {
  const std::string html = render_html(sample());
  EXPECT_TRUE(html.starts_with("<!DOCTYPE html>"));
  EXPECT_TRUE(contains(html, "<meta charset=\"utf-8\">"));
  EXPECT_TRUE(contains(html, "<style>"));
  for (const std::string_view external : {"<script", "<link", "<img", "src=", "href=", "url(", "@import", "http:"}) {
    EXPECT_FALSE(contains(html, external)) << external;
  }
}

TEST(DocumentHtml, ShowsNumberPartiesLinesAndTotals) {
  const std::string html = render_html(sample());
  EXPECT_TRUE(contains(html, "<title>Invoice INV-202611-000042</title>"));
  EXPECT_TRUE(contains(html, ">INV-202611-000042<"));
  EXPECT_TRUE(contains(html, "status-open"));
  EXPECT_TRUE(contains(html, ">2026-11-01<"));                  // issued
  EXPECT_TRUE(contains(html, ">2026-11-15<"));                  // due
  EXPECT_TRUE(contains(html, "2026-11-01 \u2013 2026-12-01"));  // period
  for (const std::string_view text :
       {"Atrium Labs GmbH", "billing@atrium.example", "Hauptstrasse 1", "10115 Berlin", "EU VAT DE123456789",
        "Example Corp", "ap@example.com", "San Francisco, CA 94105"}) {
    EXPECT_TRUE(contains(html, text)) << text;
  }
  EXPECT_TRUE(contains(html, ">Team plan<"));
  EXPECT_TRUE(contains(html, ">Additional seats<"));
  EXPECT_TRUE(contains(html, ">78.15 USD<"));   // unit amount
  EXPECT_TRUE(contains(html, ">234.45 USD<"));  // line amount
  EXPECT_TRUE(contains(html, "Subtotal</th><td>1,234.45 USD<"));
  EXPECT_TRUE(contains(html, "Discount: WELCOME20 (20% off)</th><td>-246.89 USD<"));
  EXPECT_TRUE(contains(html, "VAT 20%</th><td>197.51 USD<"));
  EXPECT_TRUE(contains(html, "Total</th><td>1,185.07 USD<"));
  EXPECT_TRUE(contains(html, "Credit applied</th><td>-100.00 USD<"));
  EXPECT_TRUE(contains(html, "Amount due</th><td>1,085.07 USD<"));
  EXPECT_TRUE(contains(html, "Amount paid</th><td>0.00 USD<"));
  EXPECT_TRUE(contains(html, "Thank you for your business."));
}

TEST(DocumentHtml, InclusiveTaxIsMarkedAndUnsetFieldsAreLeftOut) {
  InvoiceDocument doc = sample();
  doc.totals.tax_inclusive = true;
  doc.due_at = Instant{};
  doc.discount_label.clear();
  doc.totals.discount = 0;
  doc.memo.clear();
  const std::string html = render_html(doc);
  EXPECT_TRUE(contains(html, "VAT 20%</th><td>197.51 USD (included)<"));
  EXPECT_FALSE(contains(html, ">Due<"));
  EXPECT_FALSE(contains(html, "Discount"));
  EXPECT_FALSE(contains(html, "Memo"));
}

TEST(DocumentHtml, ReplacesMalformedUtf8AndKeepsValidText) {
  InvoiceDocument doc = sample();
  doc.customer.name = "Caf\xC3\xA9 \xE6\xA0\xAA\xE5\xBC\x8F bad\xC3( \xED\xA0\x80 nul\x01";
  const std::string html = render_html(doc);
  EXPECT_TRUE(contains(
      html,
      "Caf\xC3\xA9 \xE6\xA0\xAA\xE5\xBC\x8F bad\xEF\xBF\xBD( \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD nul\xEF\xBF\xBD"))
      << html;
}

TEST(DocumentHtml, EmptyLinesAndDatesBefore1970) {
  InvoiceDocument doc = sample();
  doc.lines.clear();
  doc.period_start = from_unix_seconds(-86400);
  doc.period_end = from_unix_seconds(-1);
  const std::string html = render_html(doc);
  EXPECT_TRUE(contains(html, "No lines"));
  EXPECT_TRUE(contains(html, "1969-12-31 \u2013 1969-12-31"));
}

TEST(DocumentPdf, IsAOnePagePdfWithTheInvoiceText) {
  auto pdf = render_pdf(sample());
  ASSERT_TRUE(pdf) << pdf.error().message;
  expect_pdf_file(*pdf);
  EXPECT_EQ(page_objects(*pdf), 1u);
  EXPECT_TRUE(contains(*pdf, "/Count 1\n"));
  EXPECT_TRUE(contains(*pdf, "/MediaBox [ 0 0 595.276 841.89")) << "A4";
  EXPECT_TRUE(contains(*pdf, "/BaseFont /Helvetica"));
  EXPECT_TRUE(contains(*pdf, "/Encoding /WinAnsiEncoding"));
  for (const std::string_view text :
       {"(INV-202611-000042)", "(OPEN)", "(2026-11-15)", "(Example Corp)", "(EU VAT DE123456789)", "(Team plan)",
        "(Additional seats)", "(1,234.45 USD)", "(-246.89 USD)", "(197.51 USD)", "(1,185.07 USD)", "(-100.00 USD)",
        "(1,085.07 USD)", "(Amount paid)", "(Thank you for your business.)", "(Page 1 of 1)"}) {
    EXPECT_TRUE(contains(*pdf, text)) << text;
  }
}

TEST(DocumentPdf, TwoHundredLinesTakeSeveralPages) {
  InvoiceDocument doc = sample();
  doc.lines.clear();
  for (int i = 0; i < 200; ++i) {
    doc.lines.push_back({LineKind::usage, "Line item " + std::to_string(i), 1, 100, 100, kNov1, kDec1, false});
  }
  auto pdf = render_pdf(doc);
  ASSERT_TRUE(pdf) << pdf.error().message;
  expect_pdf_file(*pdf);
  const std::size_t pages = page_objects(*pdf);
  EXPECT_GE(pages, 4u);
  EXPECT_TRUE(contains(*pdf, "/Count " + std::to_string(pages) + "\n"));
  EXPECT_TRUE(contains(*pdf, "(Line item 0)"));
  EXPECT_TRUE(contains(*pdf, "(Line item 199)"));
  EXPECT_EQ(count(*pdf, "(DESCRIPTION)"), pages) << "the table header on every page";
  EXPECT_TRUE(contains(*pdf, "(Page " + std::to_string(pages) + " of " + std::to_string(pages) + ")"));
}

TEST(DocumentPdf, TextOutsideWinAnsiBecomesQuestionMarks) {
  InvoiceDocument doc = sample();
  doc.customer.name = "\xE6\xA0\xAA\xE5\xBC\x8F\xE4\xBC\x9A\xE7\xA4\xBE";  // 株式会社
  doc.lines[0].description =
      "Caf\xC3\xA9 \xE2\x82\xAC"
      "5 \xF0\x9F\x98\x80 \xC2\x80";  // Café €5 😀 U+0080
  doc.memo = "bad \xFF\xC3 end";
  auto pdf = render_pdf(doc);
  ASSERT_TRUE(pdf) << pdf.error().message;
  expect_pdf_file(*pdf);
  // libharu writes bytes outside printable ASCII as octal escapes: é = 0xE9, € = 0x80 in WinAnsi.
  EXPECT_TRUE(contains(*pdf, "(?\?\?\?)"));
  EXPECT_TRUE(contains(*pdf, "(Caf\\351 \\2005 ? ?)"));
  EXPECT_TRUE(contains(*pdf, "(bad ?? end)"));
}

TEST(DocumentPdf, EmptyAndOversizedDocumentsRender) {
  auto empty = render_pdf(InvoiceDocument{});
  ASSERT_TRUE(empty) << empty.error().message;
  expect_pdf_file(*empty);
  EXPECT_TRUE(contains(*empty, "(No lines)"));

  InvoiceDocument doc = sample();
  doc.lines[0].description = std::string(20000, 'W');  // one word, far wider than the column
  doc.memo.clear();
  for (int i = 0; i < 300; ++i) doc.memo += "Paragraph " + std::to_string(i) + " of a long memo.\r\n";
  auto pdf = render_pdf(doc);
  ASSERT_TRUE(pdf) << pdf.error().message;
  expect_pdf_file(*pdf);
  EXPECT_GE(page_objects(*pdf), 3u);
  EXPECT_TRUE(contains(*pdf, "(Paragraph 299 of a long memo.)"));
}

}  // namespace
}  // namespace atrium::billing
