#include "proxy/table.hpp"

#include <toml++/toml.h>
#include <algorithm>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

#include "core/clock.hpp"
#include "http/message.hpp"
#include "identity/permissions.hpp"

namespace atrium::proxy {

namespace {

std::unexpected<Error> invalid(std::string_view source, const std::string& where, const std::string& what) {
  return fail(Errc::invalid_argument, std::string(source) + ": " + where + ": " + what);
}

// Reads a table's keys strictly: every key must be known, so a typo is an error rather than a silent default.
class Reader {
 public:
  Reader(const toml::table& table, std::string where, std::string_view source)
      : table_(table), where_(std::move(where)), source_(source) {}

  Result<void> only(std::initializer_list<std::string_view> keys) const {
    for (const auto& [key, _] : table_) {
      if (std::find(keys.begin(), keys.end(), key.str()) == keys.end()) {
        return invalid(source_, where_, "unknown key \"" + std::string(key.str()) + "\"");
      }
    }
    return {};
  }

  Result<std::string> text(std::string_view key, std::string fallback = "") const {
    const auto* node = table_.get(key);
    if (node == nullptr) return fallback;
    if (auto v = node->value<std::string>()) return *v;
    return invalid(source_, where_, std::string(key) + " must be a string");
  }

  Result<std::int64_t> integer(std::string_view key, std::int64_t fallback, std::int64_t min, std::int64_t max) const {
    const auto* node = table_.get(key);
    if (node == nullptr) return fallback;
    auto v = node->value<std::int64_t>();
    if (!v || !node->is_integer() || *v < min || *v > max) {
      return invalid(
          source_, where_,
          std::string(key) + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
    }
    return *v;
  }

  Result<bool> boolean(std::string_view key, bool fallback) const {
    const auto* node = table_.get(key);
    if (node == nullptr) return fallback;
    if (auto v = node->value<bool>(); v && node->is_boolean()) return *v;
    return invalid(source_, where_, std::string(key) + " must be true or false");
  }

  Result<std::vector<std::string>> texts(std::string_view key) const {
    std::vector<std::string> out;
    const auto* node = table_.get(key);
    if (node == nullptr) return out;
    const auto* array = node->as_array();
    if (array == nullptr) return invalid(source_, where_, std::string(key) + " must be an array of strings");
    for (const auto& item : *array) {
      auto v = item.value<std::string>();
      if (!v || !item.is_string()) return invalid(source_, where_, std::string(key) + " must be an array of strings");
      out.push_back(*v);
    }
    return out;
  }

  // An inline table of strings ({ "X-Name" = "value" }), in key order.
  Result<std::vector<std::pair<std::string, std::string>>> pairs(std::string_view key) const {
    std::vector<std::pair<std::string, std::string>> out;
    const auto* node = table_.get(key);
    if (node == nullptr) return out;
    const auto* t = node->as_table();
    if (t == nullptr) return invalid(source_, where_, std::string(key) + " must be a table of strings");
    for (const auto& [name, value] : *t) {
      auto v = value.value<std::string>();
      if (!v || !value.is_string()) return invalid(source_, where_, std::string(key) + " must be a table of strings");
      out.emplace_back(std::string(name.str()), *v);
    }
    return out;
  }

  const toml::table* sub(std::string_view key) const {
    const auto* node = table_.get(key);
    return node == nullptr ? nullptr : node->as_table();
  }
  bool has(std::string_view key) const { return table_.get(key) != nullptr; }
  const toml::node* node(std::string_view key) const { return table_.get(key); }
  const std::string& where() const { return where_; }

 private:
  const toml::table& table_;
  std::string where_;
  std::string_view source_;
};

// RFC 9110 field names: tokens.
bool valid_field_name(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  });
}

bool valid_field_value(std::string_view value) {
  return std::none_of(value.begin(), value.end(), [](unsigned char c) { return c == '\r' || c == '\n' || c == 0; });
}

Result<http::Endpoint> parse_endpoint(std::string_view text, std::string_view source, const std::string& where) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return invalid(source, where, "endpoint \"" + std::string(text) + "\" must be host:port");
  }
  std::string host(text.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  const auto digits = text.substr(colon + 1);
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc() || end != digits.data() + digits.size() || port == 0 || port > 65535) {
    return invalid(source, where, "endpoint \"" + std::string(text) + "\" has no valid port");
  }
  return http::Endpoint{std::move(host), static_cast<std::uint16_t>(port), std::string(text)};
}

Result<HeaderRules> parse_rules(const Reader& parent, std::string_view key, bool fields, std::string_view source) {
  HeaderRules rules;
  const auto* t = parent.sub(key);
  if (t == nullptr) {
    if (parent.has(key)) return invalid(source, parent.where(), std::string(key) + " must be a table");
    return rules;
  }
  Reader r(*t, parent.where() + "." + std::string(key), source);
  if (auto ok = r.only({"add", "remove", "rename"}); !ok) return std::unexpected(ok.error());
  auto add = r.pairs("add");
  auto remove = r.texts("remove");
  auto rename = r.pairs("rename");
  if (!add) return std::unexpected(add.error());
  if (!remove) return std::unexpected(remove.error());
  if (!rename) return std::unexpected(rename.error());
  const auto check = [&](std::string_view name) { return !fields || valid_field_name(name); };
  for (const auto& [name, value] : *add) {
    if (!check(name) || !valid_field_value(value) || name.empty()) {
      return invalid(source, r.where(), "add: \"" + name + "\" is not a valid name and value");
    }
  }
  for (const auto& name : *remove) {
    if (!check(name) || name.empty()) return invalid(source, r.where(), "remove: \"" + name + "\" is not a valid name");
  }
  for (const auto& [from, to] : *rename) {
    if (!check(from) || !check(to) || from.empty() || to.empty()) {
      return invalid(source, r.where(), "rename: \"" + from + "\" to \"" + to + "\" is not valid");
    }
  }
  rules.add = std::move(*add);
  rules.remove = std::move(*remove);
  rules.rename = std::move(*rename);
  return rules;
}

Result<Cluster> parse_cluster(std::string name, const toml::table& t, std::string_view source) {
  Reader r(t, "clusters." + name, source);
  if (auto ok = r.only({"endpoints", "balance", "connect_timeout_ms", "read_timeout_ms", "tunnel_idle_timeout_ms",
                        "attempts", "retry_on_5xx", "max_requests", "health_check", "circuit_breaker"});
      !ok) {
    return std::unexpected(ok.error());
  }
  Cluster c;
  c.name = std::move(name);
  auto endpoints = r.texts("endpoints");
  if (!endpoints) return std::unexpected(endpoints.error());
  if (endpoints->empty()) return invalid(source, r.where(), "endpoints must list at least one host:port");
  for (const auto& e : *endpoints) {
    auto endpoint = parse_endpoint(e, source, r.where());
    if (!endpoint) return std::unexpected(endpoint.error());
    c.endpoints.push_back(std::move(*endpoint));
  }
  auto balance = r.text("balance", "round_robin");
  if (!balance) return std::unexpected(balance.error());
  if (*balance == "least_request") {
    c.balance = Balance::least_request;
  } else if (*balance != "round_robin") {
    return invalid(source, r.where(), "balance must be \"round_robin\" or \"least_request\"");
  }
  auto connect = r.integer("connect_timeout_ms", 1000, 1, 600'000);
  auto read = r.integer("read_timeout_ms", 15'000, 1, 86'400'000);
  auto tunnel = r.integer("tunnel_idle_timeout_ms", 300'000, 1, 86'400'000);
  auto attempts = r.integer("attempts", 3, 1, 10);
  auto retry = r.boolean("retry_on_5xx", false);
  auto max_requests = r.integer("max_requests", 10'000, 1, 10'000'000);
  for (const Result<std::int64_t>* v : {&connect, &read, &tunnel, &attempts, &max_requests}) {
    if (!*v) return std::unexpected(v->error());
  }
  if (!retry) return std::unexpected(retry.error());
  c.connect_timeout = std::chrono::milliseconds(*connect);
  c.read_timeout = std::chrono::milliseconds(*read);
  c.tunnel_idle_timeout = std::chrono::milliseconds(*tunnel);
  c.attempts = static_cast<int>(*attempts);
  c.retry_on_5xx = *retry;
  c.max_requests = static_cast<int>(*max_requests);
  if (const auto* h = r.sub("health_check")) {
    Reader hr(*h, r.where() + ".health_check", source);
    if (auto ok = hr.only({"path", "interval_ms", "timeout_ms", "unhealthy_threshold", "healthy_threshold"}); !ok) {
      return std::unexpected(ok.error());
    }
    auto path = hr.text("path");
    auto interval = hr.integer("interval_ms", 5000, 100, 3'600'000);
    auto timeout = hr.integer("timeout_ms", 1000, 1, 600'000);
    auto unhealthy = hr.integer("unhealthy_threshold", 2, 1, 100);
    auto healthy = hr.integer("healthy_threshold", 1, 1, 100);
    if (!path) return std::unexpected(path.error());
    for (const Result<std::int64_t>* v : {&interval, &timeout, &unhealthy, &healthy}) {
      if (!*v) return std::unexpected(v->error());
    }
    if (path->empty() || path->front() != '/' || !valid_field_value(*path) || path->find(' ') != std::string::npos) {
      return invalid(source, hr.where(), "path must be an absolute path such as \"/healthz\"");
    }
    c.health = {*path, std::chrono::milliseconds(*interval), std::chrono::milliseconds(*timeout),
                static_cast<int>(*unhealthy), static_cast<int>(*healthy)};
  }
  if (const auto* b = r.sub("circuit_breaker")) {
    Reader br(*b, r.where() + ".circuit_breaker", source);
    if (auto ok = br.only({"consecutive_failures", "open_ms"}); !ok) return std::unexpected(ok.error());
    auto failures = br.integer("consecutive_failures", 5, 1, 1000);
    auto open = br.integer("open_ms", 10'000, 1, 3'600'000);
    if (!failures) return std::unexpected(failures.error());
    if (!open) return std::unexpected(open.error());
    c.breaker = {static_cast<int>(*failures), std::chrono::milliseconds(*open)};
  }
  return c;
}

bool valid_path_text(std::string_view p) {
  return !p.empty() && p.front() == '/' && valid_field_value(p) && p.find(' ') == std::string_view::npos &&
         p.find('?') == std::string_view::npos;
}

std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t i = 1;
  while (i <= path.size()) {
    const auto slash = path.find('/', i);
    const auto end = slash == std::string_view::npos ? path.size() : slash;
    out.push_back(path.substr(i, end - i));
    if (slash == std::string_view::npos) break;
    i = slash + 1;
  }
  return out;
}

bool is_param(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

// A member path of a version change: names of [A-Za-z0-9_-] joined by single dots.
bool valid_member_path(std::string_view path) {
  if (path.empty() || path.size() > 200 || path.front() == '.' || path.back() == '.') return false;
  char previous = 0;
  for (const char c : path) {
    const bool ok =
        std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || (c == '.' && previous != '.');
    if (!ok) return false;
    previous = c;
  }
  return true;
}

// [[routes.versions]]: since (a date), rename (newer path = older name), added (paths).
Result<std::vector<VersionChange>> parse_versions(const Reader& parent, std::string_view source) {
  std::vector<VersionChange> out;
  const auto* node = parent.node("versions");
  if (node == nullptr) return out;
  const auto* array = node->as_array();
  if (array == nullptr) return invalid(source, parent.where(), "versions must be an array of tables");
  for (std::size_t i = 0; i < array->size(); ++i) {
    const auto* vt = (*array)[i].as_table();
    if (vt == nullptr) return invalid(source, parent.where(), "versions must be an array of tables");
    Reader vr(*vt, parent.where() + ".versions[" + std::to_string(i) + "]", source);
    if (auto ok = vr.only({"since", "rename", "added"}); !ok) return std::unexpected(ok.error());
    auto since = vr.text("since");
    auto rename = vr.pairs("rename");
    auto added = vr.texts("added");
    if (!since) return std::unexpected(since.error());
    if (!rename) return std::unexpected(rename.error());
    if (!added) return std::unexpected(added.error());
    const bool date = since->size() == 10 && parse_rfc3339(*since + "T00:00:00Z").has_value();
    if (!date) return invalid(source, vr.where(), "since must be a date such as \"2026-11-01\"");
    for (const auto& [newer, older] : *rename) {
      if (!valid_member_path(newer) || !valid_member_path(older) || older.find('.') != std::string::npos) {
        return invalid(source, vr.where(),
                       "rename: \"" + newer + "\" = \"" + older +
                           "\" must map a member path to the name it had (names of [A-Za-z0-9_-], dots between)");
      }
    }
    for (const auto& path : *added) {
      if (!valid_member_path(path)) return invalid(source, vr.where(), "added: \"" + path + "\" is not a member path");
    }
    if (rename->empty() && added->empty())
      return invalid(source, vr.where(), "name at least one rename or added member");
    out.push_back({.since = std::move(*since), .rename = std::move(*rename), .added = std::move(*added)});
  }
  return out;
}

Result<Route> parse_route(const toml::table& t, std::size_t index, const Table& table, std::string_view source) {
  Reader r(t, "routes[" + std::to_string(index) + "]", source);
  if (auto ok = r.only({"name",        "hosts",   "path_prefix", "path",    "methods",         "min_version",
                        "max_version", "cluster", "placements",  "rewrite", "host_rewrite",    "forward_authorization",
                        "audit",       "access",  "permission",  "cost",    "request_headers", "response_headers",
                        "query",       "versions"});
      !ok) {
    return std::unexpected(ok.error());
  }
  Route route;
  auto name = r.text("name");
  if (!name) return std::unexpected(name.error());
  if (name->empty() || name->size() > 64 || !std::all_of(name->begin(), name->end(), [](unsigned char c) {
        return std::isalnum(c) || c == '_' || c == '-';
      })) {
    return invalid(source, r.where(), "name must be 1-64 characters of [A-Za-z0-9_-]");
  }
  route.name = *name;
  const std::string where = "route \"" + route.name + "\"";
  Reader rr(t, where, source);
  auto hosts = rr.texts("hosts");
  auto prefix = rr.text("path_prefix");
  auto path = rr.text("path");
  auto methods = rr.texts("methods");
  auto min_version = rr.text("min_version");
  auto max_version = rr.text("max_version");
  auto cluster = rr.text("cluster");
  auto rewrite = rr.text("rewrite");
  auto host_rewrite = rr.text("host_rewrite");
  auto forward_authorization = rr.boolean("forward_authorization", false);
  auto audit = rr.boolean("audit", false);
  auto access = rr.text("access", "tenant");
  auto permission = rr.text("permission");
  auto cost = rr.integer("cost", 1, 0, 1'000'000);
  for (const Result<std::string>* v :
       {&prefix, &path, &min_version, &max_version, &cluster, &rewrite, &host_rewrite, &access, &permission}) {
    if (!*v) return std::unexpected(v->error());
  }
  if (!hosts) return std::unexpected(hosts.error());
  if (!methods) return std::unexpected(methods.error());
  if (!forward_authorization) return std::unexpected(forward_authorization.error());
  if (!audit) return std::unexpected(audit.error());
  if (!cost) return std::unexpected(cost.error());
  for (auto host : *hosts) {
    std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
    if (host.empty() || !valid_field_value(host) || host.find(' ') != std::string::npos) {
      return invalid(source, where, "hosts: \"" + host + "\" is not a host name");
    }
    route.hosts.push_back(std::move(host));
  }
  if (prefix->empty() == path->empty()) return invalid(source, where, "set exactly one of path_prefix and path");
  if (!prefix->empty()) {
    if (!valid_path_text(*prefix)) return invalid(source, where, "path_prefix must be a path such as \"/orders\"");
    route.path_prefix = *prefix;
    while (route.path_prefix.size() > 1 && route.path_prefix.back() == '/') route.path_prefix.pop_back();
  } else {
    if (!valid_path_text(*path)) return invalid(source, where, "path must be a template such as \"/orders/{id}\"");
    route.path = *path;
  }
  for (const auto& m : *methods) {
    const auto method = http::parse_method(m);
    if (method == http::Method::other || http::method_name(method) != m) {
      return invalid(source, where, "methods: \"" + m + "\" is not GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS");
    }
    route.methods.push_back(method);
  }
  route.min_version = *min_version;
  route.max_version = *max_version;
  if (table.clusters.find(*cluster) == table.clusters.end()) {
    return invalid(source, where, "cluster \"" + *cluster + "\" is not defined under [clusters]");
  }
  route.cluster = *cluster;
  if (const auto* node = t.get("placements")) {
    const auto* array = node->as_array();
    if (array == nullptr) return invalid(source, where, "placements must be an array of tables");
    for (std::size_t i = 0; i < array->size(); ++i) {
      const auto* pt = (*array)[i].as_table();
      if (pt == nullptr) return invalid(source, where, "placements must be an array of tables");
      Reader pr(*pt, where + ".placements[" + std::to_string(i) + "]", source);
      if (auto ok = pr.only({"plans", "isolation", "tenants", "cluster"}); !ok) return std::unexpected(ok.error());
      Placement p;
      auto plans = pr.texts("plans");
      auto isolation = pr.texts("isolation");
      auto tenants = pr.texts("tenants");
      auto to = pr.text("cluster");
      if (!plans) return std::unexpected(plans.error());
      if (!isolation) return std::unexpected(isolation.error());
      if (!tenants) return std::unexpected(tenants.error());
      if (!to) return std::unexpected(to.error());
      for (const auto& level : *isolation) {
        if (level != "shared" && level != "schema" && level != "database") {
          return invalid(source, pr.where(), "isolation: \"" + level + "\" is not shared, schema or database");
        }
      }
      if (table.clusters.find(*to) == table.clusters.end()) {
        return invalid(source, pr.where(), "cluster \"" + *to + "\" is not defined under [clusters]");
      }
      if (plans->empty() && isolation->empty() && tenants->empty()) {
        return invalid(source, pr.where(), "name at least one of plans, isolation and tenants");
      }
      p.plans = std::move(*plans);
      p.isolation = std::move(*isolation);
      p.tenants = std::move(*tenants);
      p.cluster = std::move(*to);
      route.placements.push_back(std::move(p));
    }
  }
  if (!rewrite->empty()) {
    if (!valid_path_text(*rewrite)) return invalid(source, where, "rewrite must be a path");
    if (!route.path.empty()) {
      // Every {name} of the rewrite must be one of the template's.
      const auto names = segments(route.path);
      for (auto segment : segments(*rewrite)) {
        if (is_param(segment) && std::find(names.begin(), names.end(), segment) == names.end()) {
          return invalid(source, where, "rewrite names " + std::string(segment) + ", which path does not have");
        }
      }
    }
  }
  route.rewrite = *rewrite;
  if (!valid_field_value(*host_rewrite) || host_rewrite->find(' ') != std::string::npos) {
    return invalid(source, where, "host_rewrite must be a host name");
  }
  route.host_rewrite = *host_rewrite;
  route.forward_authorization = *forward_authorization;
  route.audit = *audit;
  if (*access == "open") {
    route.options.access = http::Access::open;
  } else if (*access == "authenticated") {
    route.options.access = http::Access::authenticated;
  } else if (*access == "tenant") {
    route.options.access = http::Access::tenant;
  } else {
    return invalid(source, where, "access must be \"open\", \"authenticated\" or \"tenant\"");
  }
  if (!permission->empty()) {
    if (route.options.access != http::Access::tenant) {
      return invalid(source, where, "permission needs access = \"tenant\"");
    }
    if (!identity::is_known_permission(*permission)) {
      return invalid(source, where, "permission \"" + *permission + "\" is not one of Atrium's (docs/security.md)");
    }
  }
  if (route.audit && route.options.access != http::Access::tenant) {
    return invalid(source, where, "audit needs access = \"tenant\" (entries go to the tenant's chain)");
  }
  route.permission = *permission;
  route.options.cost = static_cast<int>(*cost);
  route.options.own_idempotency = true;  // the upstream answers Idempotency-Key; the edge only forwards it
  route.options.execution = http::Execution::worker;
  auto request_headers = parse_rules(rr, "request_headers", true, source);
  auto response_headers = parse_rules(rr, "response_headers", true, source);
  auto query = parse_rules(rr, "query", false, source);
  if (!request_headers) return std::unexpected(request_headers.error());
  if (!response_headers) return std::unexpected(response_headers.error());
  if (!query) return std::unexpected(query.error());
  route.request_headers = std::move(*request_headers);
  route.response_headers = std::move(*response_headers);
  route.query = std::move(*query);
  auto versions = parse_versions(rr, source);
  if (!versions) return std::unexpected(versions.error());
  route.versions = std::move(*versions);
  return route;
}

bool host_matches(const std::vector<std::string>& hosts, std::string_view host) {
  if (hosts.empty()) return true;
  for (const auto& h : hosts) {
    if (h.starts_with("*.")) {
      const std::string_view suffix = std::string_view(h).substr(1);  // ".example.com"
      if (host.size() > suffix.size() && http::iequals(host.substr(host.size() - suffix.size()), suffix)) return true;
    } else if (http::iequals(h, host)) {
      return true;
    }
  }
  return false;
}

bool path_matches(const Route& route, std::string_view path) {
  if (!route.path_prefix.empty()) {
    if (route.path_prefix == "/") return true;
    return path.starts_with(route.path_prefix) &&
           (path.size() == route.path_prefix.size() || path[route.path_prefix.size()] == '/');
  }
  const auto pattern = segments(route.path);
  const auto actual = segments(path);
  if (pattern.size() != actual.size()) return false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (is_param(pattern[i])) {
      if (actual[i].empty()) return false;
    } else if (pattern[i] != actual[i]) {
      return false;
    }
  }
  return true;
}

std::string apply_query(const HeaderRules& rules, std::string_view query) {
  if (rules.add.empty() && rules.remove.empty() && rules.rename.empty()) return std::string(query);
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i < query.size()) {
    const auto amp = query.find('&', i);
    const auto end = amp == std::string_view::npos ? query.size() : amp;
    std::string part(query.substr(i, end - i));
    i = end + 1;
    if (part.empty()) continue;
    const auto eq = part.find('=');
    const std::string name = part.substr(0, eq);
    const std::string rest = eq == std::string::npos ? "" : part.substr(eq);
    if (std::find(rules.remove.begin(), rules.remove.end(), name) != rules.remove.end()) continue;
    bool added_over = false;
    for (const auto& [n, _] : rules.add) added_over = added_over || n == name;
    if (added_over) continue;
    std::string renamed = name;
    for (const auto& [from, to] : rules.rename) {
      if (from == name) renamed = to;
    }
    parts.push_back(renamed + rest);
  }
  const auto encode = [](std::string_view text) {
    static constexpr char k_hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += k_hex[c >> 4];
        out += k_hex[c & 15];
      }
    }
    return out;
  };
  for (const auto& [name, value] : rules.add) parts.push_back(encode(name) + "=" + encode(value));
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += '&';
    out += p;
  }
  return out;
}

}  // namespace

Result<std::shared_ptr<const Table>> parse_table(std::string_view text, std::string_view source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& err) {
    std::ostringstream message;
    message << err.description() << " (line " << err.source().begin.line << ")";
    return invalid(source, "TOML", message.str());
  }
  Reader top(root, "top level", source);
  if (auto ok = top.only({"clusters", "routes"}); !ok) return std::unexpected(ok.error());
  auto table = std::make_shared<Table>();
  if (const auto* clusters = root.get("clusters")) {
    const auto* t = clusters->as_table();
    if (t == nullptr) return invalid(source, "clusters", "must be a table of clusters");
    for (const auto& [name, node] : *t) {
      const auto* ct = node.as_table();
      if (ct == nullptr) return invalid(source, "clusters." + std::string(name.str()), "must be a table");
      auto cluster = parse_cluster(std::string(name.str()), *ct, source);
      if (!cluster) return std::unexpected(cluster.error());
      table->clusters.emplace(cluster->name, std::move(*cluster));
    }
  }
  if (const auto* routes = root.get("routes")) {
    const auto* array = routes->as_array();
    if (array == nullptr) return invalid(source, "routes", "must be an array of tables ([[routes]])");
    std::set<std::string> names;
    for (std::size_t i = 0; i < array->size(); ++i) {
      const auto* rt = (*array)[i].as_table();
      if (rt == nullptr) return invalid(source, "routes", "must be an array of tables ([[routes]])");
      auto route = parse_route(*rt, i, *table, source);
      if (!route) return std::unexpected(route.error());
      if (!names.insert(route->name).second) {
        return invalid(source, "route \"" + route->name + "\"", "the name is used twice");
      }
      table->routes.push_back(std::move(*route));
    }
  }
  // The routes no longer move: their options may now view their own strings.
  for (auto& route : table->routes) route.options.permission = route.permission;
  return std::shared_ptr<const Table>(std::move(table));
}

Result<std::shared_ptr<const Table>> load_table(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Errc::invalid_argument, path + ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_table(text.str(), path);
}

const Route* match_route(const Table& table, const http::RequestHead& head, std::string_view current_version) {
  const std::string_view version = head.version.empty() ? current_version : head.version;
  for (const auto& route : table.routes) {
    if (!route.methods.empty()) {
      const bool listed = std::find(route.methods.begin(), route.methods.end(), head.method) != route.methods.end() ||
                          (head.method == http::Method::head && std::find(route.methods.begin(), route.methods.end(),
                                                                          http::Method::get) != route.methods.end());
      if (!listed) continue;
    }
    if (!host_matches(route.hosts, head.host)) continue;
    if (!path_matches(route, head.path)) continue;
    if (!route.min_version.empty() && version < route.min_version) continue;
    if (!route.max_version.empty() && version > route.max_version) continue;
    return &route;
  }
  return nullptr;
}

std::string upstream_target(const Route& route, std::string_view path, std::string_view query) {
  std::string out;
  if (route.rewrite.empty()) {
    out = std::string(path);
  } else if (!route.path_prefix.empty()) {
    const std::string_view rest = route.path_prefix == "/" ? path : path.substr(route.path_prefix.size());
    out = route.rewrite;
    if (!rest.empty()) {
      if (out.back() == '/' && rest.front() == '/') out.pop_back();
      out += rest;
    }
  } else {
    const auto pattern = segments(route.path);
    const auto actual = segments(path);
    for (auto segment : segments(route.rewrite)) {
      out += '/';
      if (is_param(segment)) {
        for (std::size_t i = 0; i < pattern.size(); ++i) {
          if (pattern[i] == segment) out += actual[i];
        }
      } else {
        out += segment;
      }
    }
    if (out.empty()) out = "/";
  }
  const std::string q = apply_query(route.query, query);
  if (!q.empty()) out += "?" + q;
  return out;
}

}  // namespace atrium::proxy
