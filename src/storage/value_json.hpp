#pragma once

// A column value as JSON and back, for rows carried outside the database as they were stored (a tenant archive):
// NULL as null, booleans, integers, floating point and text as themselves.

#include "core/json.hpp"
#include "storage/database.hpp"

namespace atrium::storage {

Json value_json(const Value& v);
// invalid_argument for an array or an object.
Result<Value> json_value(const Json& j);
// A row as a JSON array, and back (invalid_argument when `j` is not an array of values).
Json row_json(const std::vector<Value>& row);
Result<std::vector<Value>> json_row(const Json& j);

}  // namespace atrium::storage
