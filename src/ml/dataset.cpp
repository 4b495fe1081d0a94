#include "ml/dataset.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

namespace atrium::ml {

namespace {

constexpr float k_nan = std::numeric_limits<float>::quiet_NaN();

// RFC 4180 records: fields split on commas, quoted fields ("" is a quote) may span lines; CRLF or LF ends a record.
Result<std::vector<std::vector<std::string>>> records(std::string_view text) {
  std::vector<std::vector<std::string>> out;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false;
  bool was_quoted = false;
  std::size_t line = 1;
  auto end_field = [&] {
    record.push_back(std::move(field));
    field.clear();
    was_quoted = false;
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field.push_back(c);
      }
      continue;
    }
    if (c == '"' && field.empty() && !was_quoted) {
      quoted = true;
      was_quoted = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_field();
      if (!(record.size() == 1 && record[0].empty())) out.push_back(std::move(record));
      record.clear();
      ++line;
    } else {
      field.push_back(c);
    }
  }
  if (quoted) return fail(Errc::invalid_argument, "a quoted field is not closed (line " + std::to_string(line) + ")");
  if (!field.empty() || !record.empty()) {
    end_field();
    out.push_back(std::move(record));
  }
  return out;
}

bool missing(std::string_view v) {
  std::string lower(v);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  const auto first = lower.find_first_not_of(' ');
  if (first == std::string::npos) return true;
  lower = lower.substr(first, lower.find_last_not_of(' ') - first + 1);
  return lower == "na" || lower == "n/a" || lower == "nan" || lower == "null" || lower == "?" || lower == "none";
}

bool number(std::string_view v, double& out) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  if (!v.empty() && v.front() == '+') v.remove_prefix(1);
  if (v.empty()) return false;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && end == v.data() + v.size() && std::isfinite(out);
}

}  // namespace

Dataset Dataset::subset(const std::vector<std::size_t>& index) const {
  Dataset d;
  d.features = features;
  d.rows = index.size();
  d.x.reserve(index.size() * cols());
  d.y.reserve(index.size());
  for (auto r : index) {
    d.x.insert(d.x.end(), row(r), row(r) + cols());
    d.y.push_back(y[r]);
  }
  return d;
}

Result<Dataset> parse_csv(std::string_view text, const CsvOptions& options, CsvSummary* summary) {
  auto parsed = records(text);
  if (!parsed) return std::unexpected(parsed.error());
  auto& rows = *parsed;
  if (rows.empty()) return fail(Errc::invalid_argument, "the file is empty");
  const std::vector<std::string> header = rows.front();
  const auto label_at = std::find(header.begin(), header.end(), options.label);
  if (label_at == header.end()) return fail(Errc::invalid_argument, "no column named " + options.label);
  const std::size_t label = static_cast<std::size_t>(label_at - header.begin());
  for (std::size_t r = 1; r < rows.size(); ++r) {
    if (rows[r].size() != header.size()) {
      return fail(Errc::invalid_argument, "record " + std::to_string(r + 1) + " has " + std::to_string(rows[r].size()) +
                                              " fields, the header " + std::to_string(header.size()));
    }
  }
  std::vector<std::size_t> kept;
  CsvSummary s;
  for (std::size_t r = 1; r < rows.size(); ++r) {
    if (missing(rows[r][label])) {
      ++s.dropped_rows;
    } else {
      kept.push_back(r);
    }
  }

  // Each column: numeric, or categorical with its kept levels.
  struct Column {
    std::size_t source = 0;
    bool numeric = true;
    std::vector<std::string> levels;  // categorical: the one-hot columns' levels
    bool other = false;               // categorical: an "(other)" column for the levels not kept
  };
  std::vector<Column> columns;
  Dataset d;
  for (std::size_t c = 0; c < header.size(); ++c) {
    if (c == label) continue;
    Column col{.source = c};
    double ignored = 0;
    for (auto r : kept) {
      const auto& v = rows[r][c];
      if (!missing(v) && !number(v, ignored)) {
        col.numeric = false;
        break;
      }
    }
    if (col.numeric) {
      d.features.push_back(header[c]);
      ++s.numeric_columns;
    } else {
      std::map<std::string, std::size_t> counts;
      for (auto r : kept) {
        if (!missing(rows[r][c])) ++counts[rows[r][c]];
      }
      std::vector<std::pair<std::string, std::size_t>> by_count(counts.begin(), counts.end());
      std::stable_sort(by_count.begin(), by_count.end(),
                       [](const auto& a, const auto& b) { return a.second > b.second; });
      for (std::size_t i = 0; i < by_count.size(); ++i) {
        if (i < options.max_levels) {
          col.levels.push_back(by_count[i].first);
        } else {
          col.other = true;
        }
      }
      for (const auto& level : col.levels) d.features.push_back(header[c] + "=" + level);
      if (col.other) d.features.push_back(header[c] + "=(other)");
      ++s.categorical_columns;
    }
    columns.push_back(std::move(col));
  }

  d.rows = kept.size();
  d.x.assign(d.rows * d.features.size(), 0.0F);
  d.y.reserve(d.rows);
  for (std::size_t i = 0; i < kept.size(); ++i) {
    const auto& record = rows[kept[i]];
    float* out = d.x.data() + i * d.features.size();
    std::size_t at = 0;
    for (const auto& col : columns) {
      const auto& v = record[col.source];
      if (col.numeric) {
        double n = 0;
        out[at++] = missing(v) || !number(v, n) ? k_nan : static_cast<float>(n);
        continue;
      }
      const std::size_t width = col.levels.size() + (col.other ? 1 : 0);
      if (!missing(v)) {
        const auto level = std::find(col.levels.begin(), col.levels.end(), v);
        out[at + (level != col.levels.end() ? static_cast<std::size_t>(level - col.levels.begin())
                                            : col.levels.size())] = 1.0F;
      }
      at += width;
    }
    const bool positive = record[label] == options.positive;
    d.y.push_back(positive ? 1.0F : 0.0F);
    s.positives += positive ? 1 : 0;
  }
  s.rows = d.rows;
  if (s.positives == 0) {
    return fail(Errc::invalid_argument, "no row has " + options.label + " = " + options.positive);
  }
  if (s.positives == d.rows) return fail(Errc::invalid_argument, "every row is positive: nothing to tell apart");
  if (summary != nullptr) *summary = s;
  return d;
}

Result<Dataset> load_csv(const std::string& path, const CsvOptions& options, CsvSummary* summary) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Errc::invalid_argument, "cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return parse_csv(text.str(), options, summary);
}

}  // namespace atrium::ml
