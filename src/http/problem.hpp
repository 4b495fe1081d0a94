#pragma once

#include <string_view>

#include "http/message.hpp"

namespace atrium::http {

// An RFC 9457 problem+json response: {"type","title","status","detail","instance","request_id"}.
// `type_slug` names the problem type; the type URI is "/problems/<slug>" (documented in docs/openapi.yaml).
Response problem(int status, std::string_view type_slug, std::string_view title, std::string_view detail,
                 const Request& request);
// The same with extension members (RFC 9457 section 3.2) added to the body, e.g. {"known_versions": [...]}.
Response problem(int status, std::string_view type_slug, std::string_view title, std::string_view detail,
                 const Request& request, const Json& extensions);

// The standard reason phrase for a status code ("Not Found"), or "Unknown".
std::string_view reason_phrase(int status);

}  // namespace atrium::http
