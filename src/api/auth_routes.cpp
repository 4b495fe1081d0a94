// Sign-in, token refresh and revocation, and the published verification keys.
#include "analytics/analytics.hpp"
#include "api/routes.hpp"
#include "api/security.hpp"
#include "api/support.hpp"
#include "audit/audit_log.hpp"
#include "http/problem.hpp"
#include "identity/key_store.hpp"
#include "identity/token_service.hpp"

namespace atrium::api {

namespace {

http::Response token_response(const identity::IssuedTokens& t) {
  http::Response r = http::Response::json(200, {{"access_token", t.access_token},
                                                {"token_type", "Bearer"},
                                                {"expires_in", t.expires_in},
                                                {"refresh_token", t.refresh_token}});
  r.headers.set("Cache-Control", "no-store");
  return r;
}

// An answer of the token and revocation endpoints that failed: problem+json with RFC 6749 section 5.2's `error`
// and `error_description`. A grant that is not accepted (wrong credentials; an unknown, expired, revoked or reused
// refresh token; a tenant no longer active) is 400 invalid_grant.
http::Response oauth_error(const Error& e, const http::Request& req) {
  const auto members = [&](std::string_view code) { return Json{{"error", code}, {"error_description", e.message}}; };
  switch (e.code) {
    case Errc::invalid_argument:
      return http::problem(400, "validation", "Invalid Request", e.message, req, members("invalid_request"));
    case Errc::unauthenticated:
      return http::problem(400, "invalid-grant", "Invalid Grant", e.message, req, members("invalid_grant"));
    default: break;
  }
  // Throttled (429), a dependency down (503) or a bug (500): the usual answer with an `error` added.
  http::Response r = error_response(e, req);
  auto body = Json::parse(r.body, nullptr, false);
  if (body.is_object()) {
    body["error"] = r.status == 429 || r.status == 503 ? "temporarily_unavailable"
                    : r.status >= 500                  ? "server_error"
                                                       : "invalid_request";
    body["error_description"] = body.value("detail", "");
    r.body = body.dump();
  }
  return r;
}

// The password grant's user name: `email`, or `username` (RFC 6749 section 4.3.2), not both.
Result<std::string> grant_user_name(const Json& body) {
  auto email = string_member(body, "email", false);
  if (!email) return std::unexpected(email.error());
  auto username = string_member(body, "username", false);
  if (!username) return std::unexpected(username.error());
  if (*email && *username) return fail(Errc::invalid_argument, "give email or username, not both");
  if (!*email && !*username) return fail(Errc::invalid_argument, "email (or username) is required");
  return std::string(*email ? **email : **username);
}

// POST /v1/auth/token: the password and refresh_token grants (RFC 6749 sections 4.3 and 6).
http::Response token_endpoint(Services& services, http::Request& req) {
  auto body = body_object(
      req, {"grant_type", "email", "username", "password", "tenant", "refresh_token", "scope", "client_id"});
  if (!body) return oauth_error(body.error(), req);
  auto grant = string_member(**body, "grant_type", true);
  if (!grant) return oauth_error(grant.error(), req);
  for (const char* ignored : {"scope", "client_id"}) {
    if (auto r = string_member(**body, ignored, false); !r) return oauth_error(r.error(), req);
  }
  if (**grant == "password") {
    auto user = grant_user_name(**body);
    auto password = string_member(**body, "password", true);
    auto tenant = string_member(**body, "tenant", false);
    if (!user) return oauth_error(user.error(), req);
    for (const auto* r : {&password, &tenant}) {
      if (!*r) return oauth_error(r->error(), req);
    }
    // Without `tenant`, the tenant the host names (its subdomain or a custom domain) is the one signed in to.
    if (!*tenant) {
      if (auto ref = host_tenant(services, req)) *tenant = ref->value;
    }
    auto issued = services.tokens->password_grant(*user, **password, *tenant, req.remote_address,
                                                  services.audit->recorder(audit_context(req)));
    if (!issued) return oauth_error(issued.error(), req);
    if (services.analytics && issued->member) {
      services.analytics->activity().signed_in(issued->tenant_id, issued->user_id, issued->jti);
    }
    return token_response(*issued);
  }
  if (**grant == "refresh_token") {
    auto refresh = string_member(**body, "refresh_token", true);
    if (!refresh) return oauth_error(refresh.error(), req);
    auto issued = services.tokens->refresh_grant(**refresh, services.audit->recorder(audit_context(req)));
    if (!issued) return oauth_error(issued.error(), req);
    return token_response(*issued);
  }
  const std::string detail = "grant_type must be password or refresh_token";
  return http::problem(400, "unsupported-grant-type", "Unsupported Grant Type", detail, req,
                       Json{{"error", "unsupported_grant_type"}, {"error_description", detail}});
}

// GET /.well-known/oauth-authorization-server (RFC 8414). Endpoint URLs are absolute: under the issuer when it
// is a URL, else under the request's own origin.
http::Response authorization_server_metadata(const Services& services, const http::Request& req) {
  const std::string& issuer = services.config().identity.issuer;
  std::string base;
  if (issuer.starts_with("https://") || issuer.starts_with("http://")) {
    base = issuer;
    while (base.ends_with('/')) base.pop_back();
  } else {
    const bool tls = !services.config().server.tls_cert.empty();
    base = std::string(tls ? "https://" : "http://") + std::string(req.headers.get("Host").value_or("localhost"));
  }
  const Json none = Json::array({"none"});
  http::Response r = http::Response::json(200, {{"issuer", issuer},
                                                {"token_endpoint", base + "/v1/auth/token"},
                                                {"revocation_endpoint", base + "/v1/auth/revoke"},
                                                {"jwks_uri", base + "/.well-known/jwks.json"},
                                                {"grant_types_supported", {"password", "refresh_token"}},
                                                {"response_types_supported", Json::array()},
                                                {"token_endpoint_auth_methods_supported", none},
                                                {"revocation_endpoint_auth_methods_supported", none}});
  r.headers.set("Cache-Control", "public, max-age=300");
  // Built from Host when the issuer is no URL: a cache must not hand one host's answer to another.
  if (!base.starts_with(issuer)) r.headers.set("Vary", "Host");
  return r;
}

}  // namespace

void register_auth_routes(http::Router& router, Services& services) {
  // Members a client library may send that Atrium does not use: `scope` (no scopes yet) and `client_id` (public
  // clients; Atrium has no client registry).
  router.add(http::Method::post, "/v1/auth/token",
             [&services](http::Request& req) { return token_endpoint(services, req); },
             {.json_body = true, .oauth_body = true});

  // RFC 7009: 200 whether or not the token was known (an unknown one is as good as revoked).
  router.add(http::Method::post, "/v1/auth/revoke",
             [&services](http::Request& req) -> http::Response {
               auto body = body_object(req, {"token", "token_type_hint", "client_id"});
               if (!body) return oauth_error(body.error(), req);
               auto token = string_member(**body, "token", true);
               if (!token) return oauth_error(token.error(), req);
               for (const char* ignored : {"token_type_hint", "client_id"}) {
                 if (auto r = string_member(**body, ignored, false); !r) return oauth_error(r.error(), req);
               }
               if (auto r = services.tokens->revoke(**token, services.audit->recorder(audit_context(req))); !r)
                 return oauth_error(r.error(), req);
               http::Response res;
               res.status = 200;
               res.headers.set("Cache-Control", "no-store");
               return res;
             },
             {.json_body = true, .oauth_body = true});

  // RFC 8414.
  router.add(http::Method::get, "/.well-known/oauth-authorization-server",
             [&services](http::Request& req) { return authorization_server_metadata(services, req); },
             {.execution = http::Execution::io});

  router.add(http::Method::get, "/.well-known/jwks.json",
             [&services](http::Request& req) -> http::Response {
               auto keys =
                   services.keys->ensure(identity::configured_jwt_alg(services.config().identity.jwt_algorithm));
               if (!keys) return error_response({Errc::unavailable, "no signing keys loaded"}, req);
               http::Response r = http::Response::json(200, keys->jwks);
               r.headers.set("Content-Type", "application/jwk-set+json");  // RFC 7517 section 8.5
               r.headers.set("Cache-Control", "public, max-age=300");
               return r;
             },
             {.execution = http::Execution::worker});
}

}  // namespace atrium::api
