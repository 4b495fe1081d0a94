#include "http/problem.hpp"

#include "core/ids.hpp"

namespace atrium::http {

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

Response problem(int status, std::string_view type_slug, std::string_view title, std::string_view detail,
                 const Request& request) {
  return problem(status, type_slug, title, detail, request, Json::object());
}

Response problem(int status, std::string_view type_slug, std::string_view title, std::string_view detail,
                 const Request& request, const Json& extensions) {
  Json body = {
      {"type", std::string("/problems/") + std::string(type_slug)},
      {"title", title},
      {"status", status},
      {"detail", detail},
      {"request_id", request.request_id},
  };
  // The occurrence: the request's path, or, for a message refused before its request line was read, the request id
  // as a URN (RFC 9457 section 3.1.5: a URI reference; the server's ids are UUIDs).
  if (!request.path.empty()) {
    body["instance"] = request.path;
  } else if (is_uuid(request.request_id)) {
    body["instance"] = "urn:uuid:" + request.request_id;
  }
  for (const auto& [name, value] : extensions.items()) body[name] = value;
  Response r = Response::json(status, body);
  r.headers.set("Content-Type", "application/problem+json");
  return r;
}

}  // namespace atrium::http
