#pragma once

#include <string_view>

namespace atrium::api {

// docs/openapi.yaml as compact JSON, embedded at build time (cmake/embed_openapi.py).
std::string_view openapi_json();

}  // namespace atrium::api
