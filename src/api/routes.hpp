#pragma once

#include <atomic>
#include <span>

#include "http/router.hpp"
#include "observability/metrics.hpp"
#include "storage/database.hpp"
#include "storage/migrations.hpp"

namespace atrium::api {

// What the HTTP handlers need from the running process. Everything referenced outlives the router.
struct ApiContext {
  storage::Database& db;
  metrics::Registry& registry;
  std::span<const storage::Migration> migrations;
  const std::atomic<bool>& draining;  // true once shutdown began: /ready answers 503
};

// Registers every route Atrium serves. The OpenAPI document lists exactly these (tests/api/openapi_test.cpp).
void register_routes(http::Router& router, ApiContext& context);

}  // namespace atrium::api
