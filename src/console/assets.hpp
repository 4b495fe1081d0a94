#pragma once

#include <span>
#include <string_view>

namespace atrium::console {

// One file of the web console (web/, built by Vite), compiled into the binary at build time
// (cmake/embed_console.py). Files under assets/ carry a content hash in their names, so they never change under a
// name and are cached for a year; index.html names the current ones and is revalidated.
struct Asset {
  std::string_view path;          // "index.html", "assets/index-3f9c1a2b.js"
  std::string_view content_type;  // "text/javascript; charset=utf-8", ...
  std::string_view body;
  std::string_view gzip;  // the body gzip-compressed (level 9), or "" when that saves nothing
  bool immutable;         // a hashed name under assets/
};

// Every file of the console; empty in a binary built without it (-DATRIUM_CONSOLE=OFF).
std::span<const Asset> assets();
// The file at `path` (relative to /console/), or null.
const Asset* find_asset(std::string_view path);

}  // namespace atrium::console
