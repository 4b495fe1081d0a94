#include "billing/invoicing/document.hpp"

#include <hpdf.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "billing/money.hpp"

namespace atrium::billing {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// Text

constexpr char32_t kMalformed = 0xFFFFFFFF;

// Decodes the code point at s[i] and moves i past it. A malformed sequence (a stray continuation byte, an overlong
// form, a surrogate, beyond U+10FFFF, truncated) gives kMalformed and skips its longest valid prefix (at least one
// byte), the Unicode recommendation for substituting U+FFFD.
char32_t next_code_point(std::string_view s, std::size_t& i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i++);
  if (b0 < 0x80) return b0;
  int extra = 0;
  char32_t cp = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    extra = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    extra = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    extra = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // beyond U+10FFFF
  } else {
    return kMalformed;
  }
  for (int k = 0; k < extra; ++k) {
    if (i >= s.size() || byte(i) < lo || byte(i) > hi) return kMalformed;
    cp = (cp << 6) | (byte(i) & 0x3F);
    ++i;
    lo = 0x80;
    hi = 0xBF;
  }
  return cp;
}

bool is_control(char32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

// `s` as HTML text: & < > " ' escaped; malformed UTF-8 and control characters other than tab and line breaks
// become U+FFFD, so the page is valid UTF-8 whatever the document holds.
void append_html(std::string& out, std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t start = i;
    const char32_t cp = next_code_point(s, i);
    if (cp == kMalformed || (is_control(cp) && cp != '\t' && cp != '\n' && cp != '\r')) {
      out += "\xEF\xBF\xBD";
      continue;
    }
    switch (cp) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.append(s.substr(start, i - start));
    }
  }
}

// The code points WinAnsiEncoding shows at bytes 0x80-0x9F, where Latin-1 has C1 control characters (0: unused).
constexpr std::array<char32_t, 32> kWinAnsi80 = {0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                                 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017D, 0,
                                                 0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                                 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

// UTF-8 text as WinAnsiEncoding bytes for the PDF's standard fonts, on one line: Latin-1 (U+00A0-U+00FF) and ASCII
// map to their byte, the typographic characters WinAnsi adds (euro sign, dashes, curly quotes, ...) to theirs, tab
// and line breaks to a space; anything else (other scripts, emoji, control characters, malformed UTF-8) is '?'.
std::string to_win_ansi(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const char32_t cp = next_code_point(s, i);
    if (cp == '\t' || cp == '\n' || cp == '\r') {
      out.push_back(' ');
    } else if ((cp >= 0x20 && cp <= 0x7E) || (cp >= 0xA0 && cp <= 0xFF)) {
      out.push_back(static_cast<char>(cp));
    } else {
      char byte = '?';
      for (std::size_t k = 0; k < kWinAnsi80.size(); ++k) {
        if (kWinAnsi80[k] != 0 && kWinAnsi80[k] == cp) byte = static_cast<char>(0x80 + k);
      }
      out.push_back(byte);
    }
  }
  return out;
}

// YYYY-MM-DD of the UTC day containing `t` (proleptic Gregorian).
std::string format_date(Instant t) {
  const std::chrono::year_month_day date{std::chrono::floor<std::chrono::days>(t)};
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02u", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()));
  return buffer;
}

// "2026-11-01 – 2026-12-01" (periods run [start, end)), "" when neither end is set.
std::string format_period(Instant start, Instant end) {
  if (start == Instant{} && end == Instant{}) return "";
  return format_date(start) + " \u2013 " + format_date(end);
}

// ---------------------------------------------------------------------------------------------------------------
// Content shared by both renderers

std::string title_of(const InvoiceDocument& doc) { return doc.title.empty() ? "Invoice" : doc.title; }

struct Field {
  std::string label;
  std::string value;
};

// Issued, due and period, each when set.
std::vector<Field> meta_fields(const InvoiceDocument& doc) {
  std::vector<Field> fields;
  if (doc.issued_at != Instant{}) fields.push_back({"Issued", format_date(doc.issued_at)});
  if (doc.due_at != Instant{}) fields.push_back({"Due", format_date(doc.due_at)});
  const std::string period = format_period(doc.period_start, doc.period_end);
  if (!period.empty()) fields.push_back({"Period", period});
  return fields;
}

// A party's lines after its name: email, address, country, tax ids; empty ones left out.
std::vector<std::string> party_lines(const Party& party) {
  std::vector<std::string> lines;
  const auto add = [&](const std::string& text) {
    if (!text.empty()) lines.push_back(text);
  };
  add(party.email);
  for (const std::string& line : party.address_lines) add(line);
  add(party.country);
  for (const std::string& id : party.tax_ids) add(id);
  return lines;
}

enum class TotalStyle { plain, total, due };
struct TotalRow {
  std::string label;
  std::string value;
  TotalStyle style = TotalStyle::plain;
};

// Subtotal, discount and tax (when there are any), total, credit applied and credited (when any), amount due, amount
// paid. Discount and credit applied are shown subtracted; inclusive tax is marked "(included)", not added.
std::vector<TotalRow> total_rows(const InvoiceDocument& doc) {
  const Totals& t = doc.totals;
  const auto money = [&](std::int64_t amount) { return format_money(amount, doc.currency); };
  std::vector<TotalRow> rows;
  rows.push_back({"Subtotal", money(t.subtotal)});
  if (t.discount != 0 || !doc.discount_label.empty()) {
    rows.push_back({doc.discount_label.empty() ? "Discount" : "Discount: " + doc.discount_label, money(-t.discount)});
  }
  if (t.tax != 0 || !doc.tax_label.empty()) {
    rows.push_back(
        {doc.tax_label.empty() ? "Tax" : doc.tax_label, money(t.tax) + (t.tax_inclusive ? " (included)" : "")});
  }
  rows.push_back({"Total", money(t.total), TotalStyle::total});
  if (t.credit_applied != 0) rows.push_back({"Credit applied", money(-t.credit_applied)});
  if (t.credit_created != 0) rows.push_back({"Credited to balance", money(t.credit_created)});
  rows.push_back({"Amount due", money(t.amount_due), TotalStyle::due});
  rows.push_back({"Amount paid", money(doc.amount_paid)});
  return rows;
}

// ---------------------------------------------------------------------------------------------------------------
// HTML

constexpr std::string_view kStyle = R"css(
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6;color:#1f2328;font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif}
.document{max-width:840px;margin:32px auto;padding:48px 56px;background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.1)}
.top{display:flex;justify-content:space-between;align-items:flex-start;gap:24px}
h1{margin:0;font-size:28px;font-weight:600;letter-spacing:-.01em}
.number{margin:2px 0 0;color:#57606a;font-size:15px;overflow-wrap:anywhere}
.status{flex:none;padding:3px 10px;border-radius:999px;background:#eaeef2;color:#57606a;font-size:12px;font-weight:600;letter-spacing:.04em;text-transform:uppercase}
.status-paid{background:#dafbe1;color:#1a7f37}
.status-open{background:#ddf4ff;color:#0969da}
.status-void,.status-uncollectible{background:#ffebe9;color:#cf222e}
.meta{display:flex;flex-wrap:wrap;gap:8px 48px;margin:24px 0 0}
.meta dt,h2,.lines th{color:#57606a;font-size:12px;font-weight:600;letter-spacing:.04em;text-transform:uppercase}
.meta dd{margin:0;font-variant-numeric:tabular-nums}
.parties{display:grid;grid-template-columns:1fr 1fr;gap:32px;margin:32px 0}
h2{margin:0 0 6px}
.party p{margin:0;overflow-wrap:anywhere}
.party .name{font-weight:600}
table{width:100%;border-collapse:collapse}
.lines th{padding:8px 10px;background:#f6f8fa;border-bottom:1px solid #d0d7de;text-align:left}
.lines td{padding:10px;border-bottom:1px solid #eaeef2;vertical-align:top}
.lines .description{overflow-wrap:anywhere}
.lines .empty{color:#57606a;text-align:center}
.lines .period{white-space:nowrap;color:#57606a}
.lines .num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.totals{width:auto;min-width:340px;margin:24px 0 0 auto}
.totals th{padding:4px 32px 4px 0;color:#57606a;font-weight:400;text-align:left;overflow-wrap:anywhere}
.totals td{padding:4px 0;text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.totals .total th,.totals .total td{padding-top:8px;border-top:1px solid #d0d7de;color:#1f2328;font-weight:600}
.totals .due th,.totals .due td{padding-top:8px;border-top:2px solid #1f2328;color:#1f2328;font-size:16px;font-weight:700}
.memo{margin-top:32px;padding-top:16px;border-top:1px solid #eaeef2}
.memo p{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}
@page{size:A4;margin:16mm}
@media print{body{background:#fff}.document{max-width:none;margin:0;padding:0;border-radius:0;box-shadow:none}}
@media (max-width:640px){.document{margin:0;padding:24px}.parties{grid-template-columns:1fr}}
)css";

// A CSS class for the status badge: only known statuses, never the document's text.
std::string_view status_class(std::string_view status) {
  for (const std::string_view known : {"draft", "open", "paid", "void", "uncollectible"}) {
    if (status == known) return known;
  }
  return "other";
}

void append_party_html(std::string& out, std::string_view heading, const Party& party) {
  out += "<div class=\"party\"><h2>";
  out += heading;
  out += "</h2>";
  if (!party.name.empty()) {
    out += "<p class=\"name\">";
    append_html(out, party.name);
    out += "</p>";
  }
  for (const std::string& line : party_lines(party)) {
    out += "<p>";
    append_html(out, line);
    out += "</p>";
  }
  out += "</div>\n";
}

// ---------------------------------------------------------------------------------------------------------------
// PDF

constexpr float kPageWidth = 595.276f;  // A4, points
constexpr float kPageHeight = 841.89f;
constexpr float kLeft = 50;
constexpr float kRight = kPageWidth - 50;
constexpr float kTop = kPageHeight - 50;
constexpr float kBottom = 60;  // the footer is below
constexpr float kFooterBaseline = 32;

struct Color {
  float r, g, b;
};
constexpr Color kInk{0.12f, 0.14f, 0.16f};
constexpr Color kMuted{0.40f, 0.43f, 0.47f};
constexpr Color kRule{0.84f, 0.86f, 0.89f};
constexpr Color kHeaderFill{0.95f, 0.96f, 0.97f};

Color status_color(std::string_view status) {
  if (status == "paid") return {0.10f, 0.50f, 0.22f};
  if (status == "open") return {0.04f, 0.41f, 0.85f};
  if (status == "void" || status == "uncollectible") return {0.81f, 0.13f, 0.18f};
  return kMuted;
}

// A standard font with its glyph widths (thousandths of the font size) per WinAnsi byte.
struct Font {
  HPDF_Font handle = nullptr;
  std::array<unsigned, 256> widths{};

  float char_width(char c, float size) const { return widths[static_cast<unsigned char>(c)] * size / 1000; }
  float width(std::string_view s, float size) const {
    unsigned total = 0;
    for (const char c : s) total += widths[static_cast<unsigned char>(c)];
    return static_cast<float>(total) * size / 1000;
  }
};

Font load_font(HPDF_Doc pdf, const char* name) {
  Font font;
  font.handle = HPDF_GetFont(pdf, name, "WinAnsiEncoding");
  if (font.handle == nullptr) return font;
  for (unsigned b = 1; b < 256; ++b) {
    const HPDF_BYTE byte = static_cast<HPDF_BYTE>(b);
    font.widths[b] = HPDF_Font_TextWidth(font.handle, &byte, 1).width;
  }
  return font;
}

// WinAnsi text broken into lines no wider than max_width: at spaces, and inside words wider than a line. At least
// one line (possibly empty).
std::vector<std::string> wrap(const Font& font, float size, std::string_view text, float max_width) {
  std::vector<std::string> lines;
  std::string line;
  float line_width = 0;
  const float space = font.char_width(' ', size);
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ') {
      ++i;
      continue;
    }
    std::size_t end = text.find(' ', i);
    if (end == std::string_view::npos) end = text.size();
    std::string_view word = text.substr(i, end - i);
    i = end;
    float word_width = font.width(word, size);
    if (!line.empty() && line_width + space + word_width <= max_width) {
      line += ' ';
      line += word;
      line_width += space + word_width;
      continue;
    }
    if (!line.empty()) lines.push_back(std::exchange(line, {}));
    while (!word.empty() && word_width > max_width) {
      std::size_t n = 0;
      float piece = 0;
      while (n < word.size() && piece + font.char_width(word[n], size) <= max_width)
        piece += font.char_width(word[n++], size);
      if (n == 0) piece = font.char_width(word[n++], size);
      lines.emplace_back(word.substr(0, n));
      word.remove_prefix(n);
      word_width -= piece;
    }
    line = word;
    line_width = word_width;
  }
  if (!line.empty() || lines.empty()) lines.push_back(std::move(line));
  return lines;
}

enum class Align { left, right };

struct Style {
  const Font* font;
  float size;
  Color color;
};

struct TextLine {
  Style style;
  std::string text;  // WinAnsi
};

// A column of text lines at x, `width` wide.
struct Cell {
  float x = 0;
  float width = 0;
  Align align = Align::left;
  std::vector<TextLine> lines;

  // Adds UTF-8 text, converted and wrapped to the cell's width.
  void add(Style style, std::string_view utf8) {
    for (std::string& line : wrap(*style.font, style.size, to_win_ansi(utf8), width)) {
      lines.push_back({style, std::move(line)});
    }
  }
};

struct HpdfErrors {
  HPDF_STATUS error = HPDF_OK;
  HPDF_STATUS detail = 0;
};

// Lays out pages top to bottom with a cursor; a new page starts when the next line does not fit.
class Layout {
 public:
  Layout(HPDF_Doc pdf, const HpdfErrors& errors) : pdf_(pdf), errors_(errors) {}

  bool failed() const { return errors_.error != HPDF_OK; }

  float y() const { return y_; }
  void move_down(float dy) { y_ -= dy; }
  const std::vector<HPDF_Page>& pages() const { return pages_; }

  // Called on each new page after the first (a table's header row), with the height it takes.
  void set_page_header(std::function<void()> draw, float height) {
    page_header_ = std::move(draw);
    page_header_height_ = height;
  }

  void new_page() {
    page_ = HPDF_AddPage(pdf_);
    HPDF_Page_SetSize(page_, HPDF_PAGE_SIZE_A4, HPDF_PAGE_PORTRAIT);
    pages_.push_back(page_);
    y_ = kTop;
    if (page_header_) page_header_();
  }

  // Room for `height` more below the cursor, on a new page if this one is full.
  void ensure(float height) {
    if (y_ - height < kBottom) new_page();
  }

  void text(HPDF_Page page, Style style, float x, float baseline, const std::string& s, Align align = Align::left) {
    if (s.empty()) return;
    if (align == Align::right) x -= style.font->width(s, style.size);
    HPDF_Page_SetRGBFill(page, style.color.r, style.color.g, style.color.b);
    HPDF_Page_BeginText(page);
    HPDF_Page_SetFontAndSize(page, style.font->handle, style.size);
    HPDF_Page_TextOut(page, x, baseline, s.c_str());
    HPDF_Page_EndText(page);
  }
  void text(Style style, float x, float baseline, const std::string& s, Align align = Align::left) {
    text(page_, style, x, baseline, s, align);
  }

  void rule(float x1, float x2, float y, Color color, float width) {
    HPDF_Page_SetRGBStroke(page_, color.r, color.g, color.b);
    HPDF_Page_SetLineWidth(page_, width);
    HPDF_Page_MoveTo(page_, x1, y);
    HPDF_Page_LineTo(page_, x2, y);
    HPDF_Page_Stroke(page_);
  }

  void fill(float x, float y, float width, float height, Color color) {
    HPDF_Page_SetRGBFill(page_, color.r, color.g, color.b);
    HPDF_Page_Rectangle(page_, x, y, width, height);
    HPDF_Page_Fill(page_);
  }

  // Cells side by side, line by line, each line `line_height` high, with padding above and below. A row that does
  // not fit on this page starts a new one, unless it is taller than a page: that one breaks between lines.
  void row(const std::vector<Cell>& cells, float line_height, float pad_top, float pad_bottom) {
    std::size_t count = 0;
    for (const Cell& cell : cells) count = std::max(count, cell.lines.size());
    const float height = pad_top + static_cast<float>(count) * line_height + pad_bottom;
    if (y_ - height < kBottom && height <= kTop - kBottom - page_header_height_) new_page();
    y_ -= pad_top;
    for (std::size_t k = 0; k < count; ++k) {
      ensure(line_height);
      for (const Cell& cell : cells) {
        if (k >= cell.lines.size()) continue;
        const TextLine& line = cell.lines[k];
        const float baseline = y_ - line_height / 2 - line.style.size * 0.35f;
        text(line.style, cell.align == Align::right ? cell.x + cell.width : cell.x, baseline, line.text, cell.align);
      }
      y_ -= line_height;
    }
    y_ -= pad_bottom;
  }

 private:
  HPDF_Doc pdf_;
  const HpdfErrors& errors_;
  HPDF_Page page_ = nullptr;
  std::vector<HPDF_Page> pages_;
  float y_ = kTop;
  std::function<void()> page_header_;
  float page_header_height_ = 0;
};

// libharu's error handler: keeps the first error for render_pdf to report. Returning (rather than throwing or
// longjmp-ing through C) lets the failing call return its error code; the drawing stops early once one is recorded.
void record_hpdf_error(HPDF_STATUS error_no, HPDF_STATUS detail_no, void* user_data) {
  auto* errors = static_cast<HpdfErrors*>(user_data);
  if (errors->error == HPDF_OK) {
    errors->error = error_no;
    errors->detail = detail_no;
  }
}

Error hpdf_failure(const HpdfErrors& errors, std::string_view what) {
  char buffer[96];
  std::snprintf(buffer, sizeof buffer, "libharu error 0x%04X (detail %u)", static_cast<unsigned>(errors.error),
                static_cast<unsigned>(errors.detail));
  return Error{Errc::internal, std::string("rendering the PDF failed: ") + std::string(what) + ": " + buffer};
}

// Title and status, number, dates.
void draw_heading(Layout& layout, const InvoiceDocument& doc, const Font& regular, const Font& bold) {
  [[maybe_unused]] const Style body{&regular, 9, kInk};
  [[maybe_unused]] const Style label{&bold, 7.5f, kMuted};
  [[maybe_unused]] const float width = kRight - kLeft;
  layout.new_page();
  Cell title{kLeft, width * 0.7f};
  title.add({&bold, 22, kInk}, title_of(doc));
  Cell status{kLeft + width * 0.7f, width * 0.3f, Align::right};
  std::string status_text = doc.status;
  for (char& c : status_text) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  status.add({&bold, 10, status_color(doc.status)}, status_text);
  layout.row({title, status}, 26, 0, 0);
  Cell number{kLeft, width};
  number.add({&regular, 12, kMuted}, doc.number);
  layout.row({number}, 16, 0, 10);
  for (const Field& field : meta_fields(doc)) {
    Cell key{kLeft, 60};
    key.add(label, field.label);
    Cell value{kLeft + 60, 300};
    value.add(body, field.value);
    layout.row({key, value}, 13, 0, 0);
  }
  layout.move_down(18);
}

// Issuer and customer.
void draw_parties(Layout& layout, const InvoiceDocument& doc, const Font& regular, const Font& bold) {
  [[maybe_unused]] const Style body{&regular, 9, kInk};
  [[maybe_unused]] const Style label{&bold, 7.5f, kMuted};
  [[maybe_unused]] const float width = kRight - kLeft;
  const auto party_cell = [&](float x, std::string_view heading, const Party& party) {
    Cell cell{x, width / 2 - 15};
    cell.add(label, heading);
    if (!party.name.empty()) cell.add({&bold, 10, kInk}, party.name);
    for (const std::string& line : party_lines(party)) cell.add(body, line);
    return cell;
  };
  layout.row({party_cell(kLeft, "FROM", doc.issuer), party_cell(kLeft + width / 2 + 15, "BILL TO", doc.customer)}, 13,
             0, 18);
}

// Lines, the header row repeated on each page.
void draw_lines(Layout& layout, const InvoiceDocument& doc, const Font& regular, const Font& bold) {
  [[maybe_unused]] const Style body{&regular, 9, kInk};
  [[maybe_unused]] const Style label{&bold, 7.5f, kMuted};
  [[maybe_unused]] const float width = kRight - kLeft;
  struct Column {
    float x, width;
    Align align;
    const char* heading;
  };
  const std::array<Column, 5> columns = {{{kLeft, 180, Align::left, "DESCRIPTION"},
                                          {kLeft + 180, 125, Align::left, "PERIOD"},
                                          {kLeft + 305, 40, Align::right, "QTY"},
                                          {kLeft + 345, 75, Align::right, "UNIT PRICE"},
                                          {kLeft + 420, width - 420, Align::right, "AMOUNT"}}};
  constexpr float kPad = 5;
  const auto cell_for = [&](const Column& column) {
    return Cell{column.x + kPad, column.width - 2 * kPad, column.align};
  };
  const float header_height = 20;
  const auto table_header = [&] {
    layout.fill(kLeft, layout.y() - header_height, width, header_height, kHeaderFill);
    std::vector<Cell> cells;
    for (const Column& column : columns) {
      cells.push_back(cell_for(column));
      cells.back().add(label, column.heading);
    }
    layout.row(cells, header_height, 0, 0);
  };
  layout.ensure(header_height + 24);
  table_header();
  layout.set_page_header(table_header, header_height);
  const auto money = [&](std::int64_t amount) { return format_money(amount, doc.currency); };
  for (const Line& line : doc.lines) {
    if (layout.failed()) return;
    std::vector<Cell> cells;
    for (const Column& column : columns) cells.push_back(cell_for(column));
    cells[0].add(body, line.description);
    cells[1].add({&regular, 8.5f, kMuted}, format_period(line.period_start, line.period_end));
    cells[2].add(body, std::to_string(line.quantity));
    cells[3].add(body, money(line.unit_amount));
    cells[4].add(body, money(line.amount));
    layout.row(cells, 12, 5, 5);
    layout.rule(kLeft, kRight, layout.y(), kRule, 0.5f);
  }
  if (doc.lines.empty()) {
    Cell empty{kLeft + kPad, width - 2 * kPad};
    empty.add({&regular, 9, kMuted}, "No lines");
    layout.row({empty}, 12, 5, 5);
    layout.rule(kLeft, kRight, layout.y(), kRule, 0.5f);
  }
  layout.set_page_header(nullptr, 0);
  layout.move_down(12);
}

// Totals, right-aligned under the table.
void draw_totals(Layout& layout, const InvoiceDocument& doc, const Font& regular, const Font& bold) {
  [[maybe_unused]] const Style body{&regular, 9, kInk};
  [[maybe_unused]] const Style label{&bold, 7.5f, kMuted};
  [[maybe_unused]] const float width = kRight - kLeft;
  for (const TotalRow& row : total_rows(doc)) {
    const bool strong = row.style != TotalStyle::plain;
    const Style style = row.style == TotalStyle::due     ? Style{&bold, 11, kInk}
                        : row.style == TotalStyle::total ? Style{&bold, 9, kInk}
                                                         : body;
    Cell name{kLeft + 215, 160};
    name.add(strong ? style : Style{&regular, 9, kMuted}, row.label);
    Cell value{kLeft + 380, width - 380, Align::right};
    value.add(style, row.value);
    if (strong) {
      layout.ensure(4 + 16);
      layout.move_down(2);
      layout.rule(kLeft + 215, kRight, layout.y(), row.style == TotalStyle::due ? kInk : kRule,
                  row.style == TotalStyle::due ? 1 : 0.5f);
      layout.move_down(2);
    }
    layout.row({name, value}, row.style == TotalStyle::due ? 16 : 14, 0, 0);
  }
}

// Memo, its line breaks kept.
void draw_memo(Layout& layout, const InvoiceDocument& doc, const Font& regular, const Font& bold) {
  [[maybe_unused]] const Style body{&regular, 9, kInk};
  [[maybe_unused]] const Style label{&bold, 7.5f, kMuted};
  [[maybe_unused]] const float width = kRight - kLeft;
  if (!doc.memo.empty()) {
    layout.move_down(20);
    Cell memo{kLeft, width};
    memo.add(label, "MEMO");
    std::string_view rest = doc.memo;
    while (true) {
      const std::size_t end = rest.find('\n');
      std::string_view paragraph = rest.substr(0, end);
      if (!paragraph.empty() && paragraph.back() == '\r') paragraph.remove_suffix(1);
      memo.add(body, paragraph);
      if (end == std::string_view::npos) break;
      rest.remove_prefix(end + 1);
    }
    layout.row({memo}, 13, 0, 0);
  }
}

// Footers, now that the page count is known.
void draw_footers(Layout& layout, const InvoiceDocument& doc, const Font& regular, const Font& bold) {
  [[maybe_unused]] const Style body{&regular, 9, kInk};
  [[maybe_unused]] const Style label{&bold, 7.5f, kMuted};
  [[maybe_unused]] const float width = kRight - kLeft;
  std::string footer = to_win_ansi(title_of(doc) + " " + doc.number);
  footer = wrap(regular, 8, footer, width * 0.7f).front();
  const std::size_t page_count = layout.pages().size();
  for (std::size_t i = 0; i < page_count; ++i) {
    const HPDF_Page page = layout.pages()[i];
    layout.text(page, {&regular, 8, kMuted}, kLeft, kFooterBaseline, footer);
    layout.text(page, {&regular, 8, kMuted}, kRight, kFooterBaseline,
                "Page " + std::to_string(i + 1) + " of " + std::to_string(page_count), Align::right);
  }
}

void draw_pdf(Layout& layout, const InvoiceDocument& doc, const Font& regular, const Font& bold) {
  for (auto draw : {&draw_heading, &draw_parties, &draw_lines, &draw_totals, &draw_memo, &draw_footers}) {
    if (layout.failed()) return;
    draw(layout, doc, regular, bold);
  }
}

}  // namespace

namespace {

// <head> and the top of the page: title, number, status.
void append_html_head(std::string& out, const InvoiceDocument& doc) {
  const std::string title = title_of(doc);
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>";
  append_html(out, title);
  if (!doc.number.empty()) {
    out += ' ';
    append_html(out, doc.number);
  }
  out += "</title>\n<style>";
  out += kStyle;
  out += "</style>\n</head>\n<body>\n<main class=\"document\">\n<header class=\"top\">\n<div><h1>";
  append_html(out, title);
  out += "</h1><p class=\"number\">";
  append_html(out, doc.number);
  out += "</p></div>\n";
  if (!doc.status.empty()) {
    out += "<span class=\"status status-";
    out += status_class(doc.status);
    out += "\">";
    append_html(out, doc.status);
    out += "</span>\n";
  }
  out += "</header>\n";
}

// The dates and references, then seller and customer.
void append_html_meta(std::string& out, const InvoiceDocument& doc) {
  const std::vector<Field> meta = meta_fields(doc);
  if (!meta.empty()) {
    out += "<dl class=\"meta\">\n";
    for (const Field& field : meta) {
      out += "<div><dt>";
      append_html(out, field.label);
      out += "</dt><dd>";
      append_html(out, field.value);
      out += "</dd></div>\n";
    }
    out += "</dl>\n";
  }
  out += "<section class=\"parties\">\n";
  append_party_html(out, "From", doc.issuer);
  append_party_html(out, "Bill to", doc.customer);
  out += "</section>\n";
}

// The lines, the totals and the memo.
void append_html_body(std::string& out, const InvoiceDocument& doc) {
  out +=
      "<table class=\"lines\">\n<thead><tr><th>Description</th><th>Period</th><th class=\"num\">Qty</th>"
      "<th class=\"num\">Unit price</th><th class=\"num\">Amount</th></tr></thead>\n<tbody>\n";
  for (const Line& line : doc.lines) {
    out += "<tr><td class=\"description\">";
    append_html(out, line.description);
    out += "</td><td class=\"period\">";
    append_html(out, format_period(line.period_start, line.period_end));
    out += "</td><td class=\"num\">" + std::to_string(line.quantity) + "</td><td class=\"num\">";
    append_html(out, format_money(line.unit_amount, doc.currency));
    out += "</td><td class=\"num\">";
    append_html(out, format_money(line.amount, doc.currency));
    out += "</td></tr>\n";
  }
  if (doc.lines.empty()) out += "<tr><td class=\"empty\" colspan=\"5\">No lines</td></tr>\n";
  out += "</tbody>\n</table>\n";

  out += "<table class=\"totals\">\n";
  for (const TotalRow& row : total_rows(doc)) {
    out += row.style == TotalStyle::due     ? "<tr class=\"due\">"
           : row.style == TotalStyle::total ? "<tr class=\"total\">"
                                            : "<tr>";
    out += "<th scope=\"row\">";
    append_html(out, row.label);
    out += "</th><td>";
    append_html(out, row.value);
    out += "</td></tr>\n";
  }
  out += "</table>\n";

  if (!doc.memo.empty()) {
    out += "<section class=\"memo\"><h2>Memo</h2><p>";
    append_html(out, doc.memo);
    out += "</p></section>\n";
  }
}

}  // namespace

std::string render_html(const InvoiceDocument& doc) {
  std::string out;
  out.reserve(8192 + doc.lines.size() * 400);
  append_html_head(out, doc);
  append_html_meta(out, doc);
  append_html_body(out, doc);
  out += "</main>\n</body>\n</html>\n";
  return out;
}

Result<std::string> render_pdf(const InvoiceDocument& doc) {
  HpdfErrors errors;
  const std::unique_ptr<std::remove_pointer_t<HPDF_Doc>, decltype(&HPDF_Free)> pdf(HPDF_New(record_hpdf_error, &errors),
                                                                                   &HPDF_Free);
  if (!pdf) return fail(Errc::internal, "rendering the PDF failed: libharu could not create a document");
  // The header the writer emits; nothing here needs more than PDF 1.3, and libharu offers no setter.
  pdf->pdf_version = HPDF_VER_14;
  // Uncompressed content streams: invoices are small, and the text stays searchable by tools and tests.
  HPDF_SetCompressionMode(pdf.get(), HPDF_COMP_NONE);

  std::string info_title = to_win_ansi(title_of(doc) + " " + doc.number);
  for (char& c : info_title) {
    if (static_cast<unsigned char>(c) >= 0x80 && static_cast<unsigned char>(c) <= 0x9F) c = '?';  // PDFDocEncoding
  }
  HPDF_SetInfoAttr(pdf.get(), HPDF_INFO_TITLE, info_title.c_str());
  HPDF_SetInfoAttr(pdf.get(), HPDF_INFO_CREATOR, "Atrium");

  const Font regular = load_font(pdf.get(), "Helvetica");
  const Font bold = load_font(pdf.get(), "Helvetica-Bold");
  if (regular.handle == nullptr || bold.handle == nullptr || errors.error != HPDF_OK) {
    return std::unexpected(hpdf_failure(errors, "loading Helvetica"));
  }

  Layout layout(pdf.get(), errors);
  draw_pdf(layout, doc, regular, bold);
  if (errors.error != HPDF_OK) return std::unexpected(hpdf_failure(errors, "drawing"));

  if (HPDF_SaveToStream(pdf.get()) != HPDF_OK || errors.error != HPDF_OK) {
    return std::unexpected(hpdf_failure(errors, "writing"));
  }
  const HPDF_UINT32 size = HPDF_GetStreamSize(pdf.get());
  std::string out(size, '\0');
  HPDF_UINT32 done = 0;
  while (done < size) {
    HPDF_UINT32 chunk = size - done;
    const HPDF_STATUS status = HPDF_ReadFromStream(pdf.get(), reinterpret_cast<HPDF_BYTE*>(out.data()) + done, &chunk);
    done += chunk;
    if (chunk == 0 || (status != HPDF_OK && status != HPDF_STREAM_EOF)) break;
  }
  if (done != size || errors.error != HPDF_OK) return std::unexpected(hpdf_failure(errors, "reading the stream"));
  return out;
}

}  // namespace atrium::billing
