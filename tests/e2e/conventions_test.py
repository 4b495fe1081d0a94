"""HTTP and OAuth conventions through the real binary, every answer checked against the API description it serves:
form-encoded grants and their error codes, ETag and If-Match, CORS, security headers, Idempotency-Key, the problem
type pages."""

import os
import tempfile
import unittest
import urllib.parse

from atrium_e2e import E2ETestCase, api_call, run_cli
from openapi_check import OpenApi

ORIGIN = "https://app.e2e.test"
FORM = "application/x-www-form-urlencoded"


class ConventionsTest(E2ETestCase):

    def setUp(self):
        self.env = {"ATRIUM_IDENTITY_PASSWORD_COST": "minimum", "ATRIUM_SERVER_CORS_ORIGINS": ORIGIN}
        self.server = self.start_server(env=self.env)
        self.api = OpenApi(self.server.request("GET", "/openapi.json").json())
        secret = os.path.join(tempfile.mkdtemp(prefix="atrium-e2e-conv-"), "pw")
        with open(secret, "w") as f:
            f.write("root-password\n")
        made = run_cli(["admin", "create-superuser", "--email", "root@e2e.test", "--password-file", secret,
                        "--data-dir", self.server.data_dir], env=self.env)
        self.assertEqual(made.returncode, 0, made.stderr)
        self.root = self.form_grant({"grant_type": "password", "username": "root@e2e.test",
                                     "password": "root-password"})["access_token"]
        tenant = self.call("POST", "/v1/admin/tenants", self.root,
                           {"slug": "acme", "name": "Acme", "owner_email": "owner@acme.test",
                            "owner_password": "owner-password"})
        self.assertEqual(tenant.status, 201, tenant)
        self.owner = self.form_grant({"grant_type": "password", "username": "owner@acme.test",
                                      "password": "owner-password", "tenant": "acme"})["access_token"]

    # Every answer is checked against the document, and carries nosniff.
    def check(self, method, path, r):
        self.api.check(method, path, r)
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", r)

    def send(self, method, path, headers=None, body=None):
        r = self.server.request(method, path, headers=headers or {}, body=body)
        self.check(method, path, r)
        return r

    def call(self, method, path, token=None, body=None, headers=None):
        r = api_call(self.server, method, path, token, body, headers)
        self.check(method, path, r)
        return r

    def form(self, path, fields):
        return self.send("POST", path, {"Content-Type": FORM}, urllib.parse.urlencode(fields).encode())

    def form_grant(self, fields):
        r = self.form("/v1/auth/token", fields)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Cache-Control"), "no-store")
        return r.json()

    def test_oauth_form_grants_and_error_codes(self):
        tokens = self.form_grant({"grant_type": "password", "username": "owner@acme.test",
                                  "password": "owner-password", "tenant": "acme"})
        refreshed = self.form_grant({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        reused = self.form("/v1/auth/token", {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        self.assertEqual((reused.status, reused.json()["error"]), (400, "invalid_grant"))
        for fields, error in (({"grant_type": "password", "username": "owner@acme.test", "password": "nope-nope",
                                "tenant": "acme"}, "invalid_grant"),
                              ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
                              ({"grant_type": "password", "password": "x"}, "invalid_request")):
            r = self.form("/v1/auth/token", fields)
            self.assertEqual(r.status, 400, r)
            self.assertEqual(r.json()["error"], error, r)
            self.assertTrue(r.json()["error_description"])
        revoked = self.form("/v1/auth/revoke", {"token": refreshed["refresh_token"], "token_type_hint": "refresh_token"})
        self.assertEqual(revoked.status, 200, revoked)
        self.assertEqual(revoked.body, b"")
        meta = self.send("GET", "/.well-known/oauth-authorization-server")
        self.assertEqual(meta.status, 200)
        self.assertTrue(meta.json()["token_endpoint"].endswith("/v1/auth/token"))
        self.assertEqual(self.send("GET", "/.well-known/jwks.json").header("Content-Type"), "application/jwk-set+json")
        # A bad credential is challenged with invalid_token (RFC 6750).
        r = self.call("GET", "/v1/projects", "not-a-token")
        self.assertEqual(r.status, 401)
        self.assertIn('error="invalid_token"', r.header("WWW-Authenticate"))

    def test_etags_if_match_and_idempotency(self):
        made = self.call("POST", "/v1/projects", self.owner, {"name": "Apollo"}, {"Idempotency-Key": '"k-1"'})
        self.assertEqual(made.status, 201, made)
        again = self.call("POST", "/v1/projects", self.owner, {"name": "Apollo"}, {"Idempotency-Key": "k-1"})
        self.assertEqual(again.json()["id"], made.json()["id"])
        self.assertEqual(again.header("Idempotent-Replayed"), "true")
        reused = self.call("POST", "/v1/projects", self.owner, {"name": "Other"}, {"Idempotency-Key": "k-1"})
        self.assertEqual(reused.status, 422, reused)

        path = "/v1/projects/" + made.json()["id"]
        read = self.call("GET", path, self.owner)
        tag = read.header("ETag")
        self.assertRegex(tag, r'^"[0-9a-f]{32}"$')
        self.assertEqual(read.header("Cache-Control"), "no-store")
        not_modified = self.call("GET", path, self.owner, headers={"If-None-Match": tag})
        self.assertEqual(not_modified.status, 304)
        self.assertEqual(not_modified.body, b"")
        self.assertEqual(self.call("PATCH", path, self.owner, {"name": "Apollo 2"}, {"If-Match": tag}).status, 200)
        stale = self.call("PATCH", path, self.owner, {"name": "lost"}, {"If-Match": tag})
        self.assertEqual(stale.status, 412, stale)
        self.assertEqual(stale.json()["type"], "/problems/precondition-failed")
        self.assertEqual(self.call("GET", path, self.owner).json()["name"], "Apollo 2")
        page = self.send("GET", stale.json()["type"])
        self.assertEqual(page.status, 200)
        self.assertIn("412", page.text())

    def test_cors_for_the_configured_origin_only(self):
        pre = self.server.request("OPTIONS", "/v1/projects", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"})
        self.assertEqual(pre.status, 204, pre)
        self.assertEqual(pre.header("Access-Control-Allow-Origin"), ORIGIN)
        self.assertIn("Idempotency-Key", pre.header("Access-Control-Allow-Headers"))
        other = self.server.request("OPTIONS", "/v1/projects", headers={
            "Origin": "https://evil.e2e.test", "Access-Control-Request-Method": "POST"})
        self.assertIsNone(other.header("Access-Control-Allow-Origin"))
        listed = self.call("GET", "/v1/projects", self.owner, headers={"Origin": ORIGIN})
        self.assertEqual(listed.header("Access-Control-Allow-Origin"), ORIGIN)
        self.assertIn("ETag", listed.header("Access-Control-Expose-Headers"))


if __name__ == "__main__":
    unittest.main()
