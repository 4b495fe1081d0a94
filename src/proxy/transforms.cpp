#include "proxy/transforms.hpp"

#include <algorithm>

#include "core/json.hpp"

namespace atrium::proxy {

namespace {

std::vector<std::string_view> member_path(std::string_view path) {
  std::vector<std::string_view> out;
  while (true) {
    const auto dot = path.find('.');
    out.push_back(path.substr(0, dot));
    if (dot == std::string_view::npos) return out;
    path.remove_prefix(dot + 1);
  }
}

// Calls f(object, last segment) for every object the path's parent segments reach from `node`, stepping into
// each element of the arrays on the way.
template <class F>
void visit_members(Json& node, std::span<const std::string_view> path, F&& f) {
  if (node.is_array()) {
    for (auto& element : node) visit_members(element, path, f);
    return;
  }
  if (!node.is_object() || path.empty()) return;
  if (path.size() == 1) {
    f(node, std::string(path.front()));
    return;
  }
  auto it = node.find(std::string(path.front()));
  if (it != node.end()) visit_members(*it, path.subspan(1), f);
}

void rename_member(Json& doc, const std::string& from_path, const std::string& to_name) {
  const auto path = member_path(from_path);
  visit_members(doc, path, [&](Json& object, const std::string& from) {
    auto it = object.find(from);
    if (it == object.end() || object.contains(to_name)) return;
    Json value = std::move(*it);
    object.erase(from);
    object[to_name] = std::move(value);
  });
}

void remove_member(Json& doc, const std::string& path_text) {
  const auto path = member_path(path_text);
  visit_members(doc, path, [](Json& object, const std::string& name) { object.erase(name); });
}

// The last segment of `path` replaced by `name`.
std::string with_last_segment(const std::string& path, const std::string& name) {
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? name : path.substr(0, dot + 1) + name;
}

// A change's renames, deepest path first (answers: a member is renamed before its parent is) or shallowest first
// (requests: a parent gets its newer name before its members are looked up under it).
std::vector<const std::pair<std::string, std::string>*> by_depth(const VersionChange& c, bool deepest_first) {
  std::vector<const std::pair<std::string, std::string>*> out;
  for (const auto& r : c.rename) out.push_back(&r);
  const auto depth = [](const std::string& path) { return std::count(path.begin(), path.end(), '.'); };
  std::stable_sort(out.begin(), out.end(), [&](const auto* a, const auto* b) {
    return deepest_first ? depth(a->first) > depth(b->first) : depth(a->first) < depth(b->first);
  });
  return out;
}

std::optional<Json> parse_body(std::string_view body) {
  std::string error;
  auto doc = parse_json(body, {.max_depth = 64}, &error);
  if (!doc || (!doc->is_object() && !doc->is_array())) return std::nullopt;
  return doc;
}

}  // namespace

std::vector<const VersionChange*> changes_for(std::span<const VersionChange> changes, std::string_view version) {
  std::vector<const VersionChange*> out;
  if (version.empty()) return out;
  for (const auto& c : changes) {
    if (version < c.since) out.push_back(&c);  // dates in this format order as strings
  }
  std::sort(out.begin(), out.end(), [](const VersionChange* a, const VersionChange* b) { return a->since > b->since; });
  return out;
}

std::optional<std::string> answer_for_client(std::span<const VersionChange* const> newest_first,
                                             std::string_view body) {
  auto doc = parse_body(body);
  if (!doc) return std::nullopt;
  for (const VersionChange* c : newest_first) {
    for (const auto& path : c->added) remove_member(*doc, path);
    for (const auto* r : by_depth(*c, true)) rename_member(*doc, r->first, r->second);
  }
  return doc->dump();
}

std::optional<std::string> request_for_upstream(std::span<const VersionChange* const> newest_first,
                                                std::string_view body) {
  auto doc = parse_body(body);
  if (!doc) return std::nullopt;
  for (auto it = newest_first.rbegin(); it != newest_first.rend(); ++it) {
    for (const auto* r : by_depth(**it, false)) {
      const auto& [newer, older] = *r;
      const auto dot = newer.rfind('.');
      rename_member(*doc, with_last_segment(newer, older), dot == std::string::npos ? newer : newer.substr(dot + 1));
    }
  }
  return doc->dump();
}

}  // namespace atrium::proxy
