#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace atrium::ml {

// A table for binary classification: rows of float features (row-major; NaN = missing) and 0/1 labels.
struct Dataset {
  std::vector<std::string> features;
  std::size_t rows = 0;
  std::vector<float> x;  // rows * features.size()
  std::vector<float> y;  // rows

  std::size_t cols() const { return features.size(); }
  const float* row(std::size_t r) const { return x.data() + r * cols(); }
  // The rows at `index`, in that order.
  Dataset subset(const std::vector<std::size_t>& index) const;
};

struct CsvOptions {
  std::string label;            // the label column's name
  std::string positive;         // the label value that is the positive class; every other value is negative
  std::size_t max_levels = 64;  // a categorical column's most frequent levels kept; the rest are "(other)"
};

// What reading a CSV decided about its columns, for the report.
struct CsvSummary {
  std::size_t rows = 0;
  std::size_t dropped_rows = 0;  // rows without a label
  std::size_t numeric_columns = 0;
  std::size_t categorical_columns = 0;  // one-hot encoded
  std::size_t positives = 0;
};

// A CSV (RFC 4180: a header row, quoted fields may hold commas, quotes and line breaks) as a Dataset, with nothing
// specific to any file: a column whose every present value parses as a finite number is numeric (missing: "",
// "NA", "N/A", "NaN", "null", "?", case-insensitive, kept as NaN); any other column is categorical and one-hot
// encoded ("name=level" columns, its max_levels most frequent levels and "(other)"; a missing value sets none).
// Rows without a label are dropped. invalid_argument: no such label column, ragged rows, no positive or no
// negative row.
Result<Dataset> parse_csv(std::string_view text, const CsvOptions& options, CsvSummary* summary = nullptr);
Result<Dataset> load_csv(const std::string& path, const CsvOptions& options, CsvSummary* summary = nullptr);

}  // namespace atrium::ml
