#include "http/router.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace atrium::http {

struct Router::Node {
  std::map<std::string, std::unique_ptr<Node>, std::less<>> literals;
  std::unique_ptr<Node> param;
  std::string param_name;
  std::vector<const Route*> routes;  // one per method
};

namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  if (path.empty() || path.front() != '/') return segments;
  path.remove_prefix(1);
  while (true) {
    const auto slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return segments;
}

bool is_param(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

const Route* route_for(const std::vector<const Route*>& routes, Method method) {
  for (const Route* r : routes) {
    if (r->method == method) return r;
  }
  return nullptr;
}

}  // namespace

Router::Router() : root_(std::make_unique<Node>()) {}
Router::~Router() = default;
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;

void Router::add(Method method, std::string_view pattern, Handler handler, RouteOptions options) {
  if (pattern.empty() || pattern.front() != '/') {
    throw std::invalid_argument("route pattern must start with '/': " + std::string(pattern));
  }
  Node* node = root_.get();
  for (std::string_view segment : split_path(pattern)) {
    if (is_param(segment)) {
      std::string name(segment.substr(1, segment.size() - 2));
      if (!node->param) {
        node->param = std::make_unique<Node>();
        node->param->param_name = name;
      } else if (node->param->param_name != name) {
        throw std::invalid_argument("conflicting parameter names at the same position: " + std::string(pattern));
      }
      node = node->param.get();
    } else {
      if (segment.find_first_of("{}") != std::string_view::npos) {
        throw std::invalid_argument("malformed route segment: " + std::string(pattern));
      }
      auto it = node->literals.find(segment);
      if (it == node->literals.end()) {
        it = node->literals.emplace(std::string(segment), std::make_unique<Node>()).first;
      }
      node = it->second.get();
    }
  }
  if (route_for(node->routes, method) != nullptr) {
    throw std::invalid_argument("duplicate route: " + std::string(method_name(method)) + " " + std::string(pattern));
  }
  routes_.push_back(std::make_unique<Route>(Route{method, std::string(pattern), std::move(handler), options}));
  node->routes.push_back(routes_.back().get());
}

Router::Match Router::match(Method method, std::string_view path) const {
  Match result;
  const auto segments = split_path(path);
  if (segments.empty()) return result;

  // Depth-first: literal before parameter, backtracking when a branch dead-ends.
  std::vector<std::pair<std::string, std::string>> params;
  const Node* found = nullptr;
  std::function<bool(const Node*, std::size_t)> walk = [&](const Node* node, std::size_t i) -> bool {
    if (i == segments.size()) {
      if (node->routes.empty()) return false;
      found = node;
      return true;
    }
    if (auto it = node->literals.find(segments[i]); it != node->literals.end() && walk(it->second.get(), i + 1)) {
      return true;
    }
    if (node->param && !segments[i].empty()) {
      params.emplace_back(node->param->param_name, std::string(segments[i]));
      if (walk(node->param.get(), i + 1)) return true;
      params.pop_back();
    }
    return false;
  };
  if (!walk(root_.get(), 0)) return result;

  const Route* route = route_for(found->routes, method);
  if (route == nullptr && method == Method::head) route = route_for(found->routes, Method::get);
  if (route == nullptr) {
    result.outcome = Outcome::method_not_allowed;
    std::vector<Method> methods;
    for (const Route* r : found->routes) methods.push_back(r->method);
    if (std::find(methods.begin(), methods.end(), Method::get) != methods.end() &&
        std::find(methods.begin(), methods.end(), Method::head) == methods.end()) {
      methods.push_back(Method::head);
    }
    std::sort(methods.begin(), methods.end());
    for (Method m : methods) {
      if (!result.allow.empty()) result.allow += ", ";
      result.allow += method_name(m);
    }
    return result;
  }
  result.outcome = Outcome::found;
  result.route = route;
  result.params = std::move(params);
  return result;
}

const std::vector<std::unique_ptr<Route>>& Router::routes() const { return routes_; }

}  // namespace atrium::http
