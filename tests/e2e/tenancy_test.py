"""The tenant and identity flow through the real binary: CLI super admin, sign-in, tenant creation, projects,
key rotation. (The exhaustive isolation and role matrices run in-process: tests/api/.)"""

import os
import unittest

from atrium_e2e import E2ETestCase, api_call, run_cli


class TenantFlowTest(E2ETestCase):

    def call(self, server, method, path, token=None, body=None, headers=None):
        return api_call(server, method, path, token, body, headers)

    def sign_in(self, server, email, password, tenant=None):
        body = {"grant_type": "password", "email": email, "password": password}
        if tenant:
            body["tenant"] = tenant
        r = self.call(server, "POST", "/v1/auth/token", body=body)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def test_super_admin_creates_a_tenant_whose_owner_manages_projects(self):
        env = {"ATRIUM_IDENTITY_PASSWORD_COST": "minimum"}
        server = self.start_server(env=env)
        created = run_cli(["admin", "create-superuser", "--email", "root@e2e.test", "--password", "root-password",
                           "--data-dir", server.data_dir], env=env)
        self.assertEqual(created.returncode, 0, created.stderr)
        self.assertIn("super admin root@e2e.test created", created.stdout)
        again = run_cli(["admin", "create-superuser", "--email", "root@e2e.test", "--password", "root-password",
                         "--data-dir", server.data_dir], env=env)
        self.assertEqual(again.returncode, 2, again.stdout)

        root = self.sign_in(server, "root@e2e.test", "root-password")["access_token"]
        tenant = self.call(server, "POST", "/v1/admin/tenants", root,
                           {"slug": "acme", "name": "Acme", "owner_email": "owner@acme.test",
                            "owner_password": "owner-password"})
        self.assertEqual(tenant.status, 201, tenant)
        self.assertEqual(tenant.json()["isolation"], "shared")

        tokens = self.sign_in(server, "owner@acme.test", "owner-password", "acme")
        owner = tokens["access_token"]
        project = self.call(server, "POST", "/v1/projects", owner, {"name": "Apollo"},
                            headers={"Idempotency-Key": "k1"})
        self.assertEqual(project.status, 201, project)
        replay = self.call(server, "POST", "/v1/projects", owner, {"name": "Apollo"}, headers={"Idempotency-Key": "k1"})
        self.assertEqual(replay.json()["id"], project.json()["id"])
        listed = self.call(server, "GET", "/v1/projects?limit=10", owner)
        self.assertEqual([p["name"] for p in listed.json()["data"]], ["Apollo"])
        self.assertProblem(self.call(server, "GET", "/v1/projects"), 401)
        self.assertProblem(self.call(server, "GET", "/v1/admin/tenants", owner), 403)

        # Key rotation by the CLI while the server runs: tokens already issued keep working, and so does refresh.
        rotated = run_cli(["keys", "rotate", "--algorithm", "EdDSA", "--data-dir", server.data_dir], env=env)
        self.assertEqual(rotated.returncode, 0, rotated.stderr)
        self.assertEqual(self.call(server, "GET", "/v1/projects", owner).status, 200)
        refreshed = self.call(server, "POST", "/v1/auth/token",
                              body={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        self.assertEqual(refreshed.status, 200, refreshed)
        self.assertEqual(self.call(server, "GET", "/v1/projects", refreshed.json()["access_token"]).status, 200)

        # The access log and metrics name route templates, never ids or tokens.
        metrics = server.get("/metrics").body.decode()
        self.assertIn('route="/v1/projects"', metrics)
        self.assertNotIn(project.json()["id"], metrics)
        self.assertNotIn(owner, server.log_text())
        self.assertEqual(server.stop(), 0, server.log_text())


if __name__ == "__main__":
    unittest.main()
