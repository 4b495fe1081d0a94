// Sign-in, token refresh and revocation, and the published verification keys.
#include "api/routes.hpp"
#include "api/support.hpp"
#include "audit/audit_log.hpp"
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

}  // namespace

void register_auth_routes(http::Router& router, Platform& platform) {
  router.add(http::Method::post, "/v1/auth/token",
             [&platform](http::Request& req) -> http::Response {
               auto body = body_object(req, {"grant_type", "email", "password", "tenant", "refresh_token"});
               if (!body) return error_response(body.error(), req);
               auto grant = string_member(**body, "grant_type", true);
               if (!grant) return error_response(grant.error(), req);
               if (**grant == "password") {
                 auto email = string_member(**body, "email", true);
                 auto password = string_member(**body, "password", true);
                 auto tenant = string_member(**body, "tenant", false);
                 for (const auto* r : {&email, &password, &tenant}) {
                   if (!*r) return error_response(r->error(), req);
                 }
                 auto issued = platform.tokens->password_grant(**email, **password, *tenant, req.remote_address,
                                                               platform.audit->recorder(audit_context(req)));
                 if (!issued) return error_response(issued.error(), req);
                 return token_response(*issued);
               }
               if (**grant == "refresh_token") {
                 auto refresh = string_member(**body, "refresh_token", true);
                 if (!refresh) return error_response(refresh.error(), req);
                 auto issued = platform.tokens->refresh_grant(**refresh, platform.audit->recorder(audit_context(req)));
                 if (!issued) return error_response(issued.error(), req);
                 return token_response(*issued);
               }
               return error_response({Errc::invalid_argument, "grant_type must be password or refresh_token"}, req);
             },
             {.json_body = true});

  router.add(http::Method::post, "/v1/auth/revoke",
             [&platform](http::Request& req) -> http::Response {
               auto body = body_object(req, {"token"});
               if (!body) return error_response(body.error(), req);
               auto token = string_member(**body, "token", true);
               if (!token) return error_response(token.error(), req);
               if (auto r = platform.tokens->revoke(**token, platform.audit->recorder(audit_context(req))); !r)
                 return error_response(r.error(), req);
               http::Response res;
               res.status = 204;
               return res;
             },
             {.json_body = true});

  router.add(http::Method::get, "/.well-known/jwks.json",
             [&platform](http::Request& req) -> http::Response {
               auto keys = platform.keys->ensure(jwt_algorithm(platform.config()));
               if (!keys) return error_response({Errc::unavailable, "no signing keys loaded"}, req);
               http::Response r = http::Response::json(200, keys->jwks);
               r.headers.set("Cache-Control", "public, max-age=300");
               return r;
             },
             {.execution = http::Execution::worker});
}

}  // namespace atrium::api
