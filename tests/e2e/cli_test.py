"""The command line's conventions: --version, passwords kept out of the process list, progress drawn only on a
terminal, bad flags refused before anything is created."""

import json
import os
import subprocess
import tempfile
import unittest

from atrium_e2e import BINARY, E2ETestCase, child_env, run_cli


class CommandLineTest(E2ETestCase):

    def test_version_flag_prints_what_the_version_command_prints(self):
        flag = run_cli(["--version"])
        self.assertEqual(flag.returncode, 0, flag.stderr)
        self.assertRegex(flag.stdout, r"^atrium \S+ \(revision \S+, .+\)\n$")
        command = run_cli(["version"])
        self.assertEqual(command.stdout, flag.stdout)

    def superuser(self, data_dir, args, stdin_text=None):
        env = child_env({"ATRIUM_IDENTITY_PASSWORD_COST": "minimum"})
        return subprocess.run([BINARY, "admin", "create-superuser", "--data-dir", data_dir, *args], env=env,
                              input=stdin_text if stdin_text is not None else "", capture_output=True, text=True,
                              timeout=60)

    def test_the_password_comes_from_a_file_or_standard_input(self):
        data_dir = tempfile.mkdtemp(prefix="atrium-e2e-cli-")
        path = os.path.join(data_dir, "pw")
        with open(path, "w") as f:
            f.write("from-a-file-pw\n")
        made = self.superuser(data_dir, ["--email", "file@e2e.test", "--password-file", path])
        self.assertEqual(made.returncode, 0, made.stderr)
        made = self.superuser(data_dir, ["--email", "stdin@e2e.test", "--password-file", "-"], "from-stdin-pw\r\n")
        self.assertEqual(made.returncode, 0, made.stderr)
        # Not both, not neither; an empty file is refused.
        both = self.superuser(data_dir, ["--email", "x@e2e.test", "--password", "pw-pw-pw-pw", "--password-file", path])
        self.assertEqual(both.returncode, 2)
        neither = self.superuser(data_dir, ["--email", "x@e2e.test"])
        self.assertEqual(neither.returncode, 2)
        empty = os.path.join(data_dir, "empty")
        open(empty, "w").close()
        self.assertEqual(self.superuser(data_dir, ["--email", "x@e2e.test", "--password-file", empty]).returncode, 2)
        # The passwords are the files' first lines, without the line ending.
        server = self.start_server(data_dir=data_dir, env={"ATRIUM_IDENTITY_PASSWORD_COST": "minimum"})
        for email, password in (("file@e2e.test", "from-a-file-pw"), ("stdin@e2e.test", "from-stdin-pw")):
            r = server.request("POST", "/v1/auth/token", headers={"Content-Type": "application/json"},
                               body=json.dumps({"grant_type": "password", "email": email,
                                                "password": password}).encode())
            self.assertEqual(r.status, 200, r)

    def test_an_invalid_algorithm_is_refused_before_anything_is_created(self):
        parent = tempfile.mkdtemp(prefix="atrium-e2e-cli-")
        data_dir = os.path.join(parent, "never")
        refused = run_cli(["keys", "rotate", "--algorithm", "HS256", "--data-dir", data_dir])
        self.assertEqual(refused.returncode, 2)
        self.assertIn("--algorithm", refused.stderr)
        self.assertFalse(os.path.exists(data_dir))

    def test_progress_bars_stay_off_a_stderr_that_is_not_a_terminal(self):
        data_dir = tempfile.mkdtemp(prefix="atrium-e2e-cli-")
        ran = run_cli(["billing", "run", "--data-dir", data_dir])
        self.assertEqual(ran.returncode, 0, ran.stderr)
        self.assertNotIn("\r", ran.stderr)
        self.assertNotIn("[####", ran.stderr)

    def test_one_persons_data_is_exported_and_erased_from_the_command_line(self):
        data_dir = tempfile.mkdtemp(prefix="atrium-e2e-cli-")
        for email in ("keeper@e2e.test", "leaver@e2e.test"):
            made = self.superuser(data_dir, ["--email", email, "--password-file", "-"], "a-long-password\n")
            self.assertEqual(made.returncode, 0, made.stderr)
        exported = run_cli(["user", "export", "--email", "LEAVER@e2e.test", "--data-dir", data_dir])
        self.assertEqual(exported.returncode, 0, exported.stderr)
        person = json.loads(exported.stdout)
        self.assertEqual(person["user"]["email"], "leaver@e2e.test")
        self.assertTrue(person["user"]["superAdmin"])
        self.assertIn("user.super_admin_created", [e["action"] for e in person["auditEntries"]["aboutUser"]])
        user_id = person["user"]["id"]
        # Exactly one of --user and --email; an unknown address is exit 2.
        self.assertEqual(run_cli(["user", "export", "--data-dir", data_dir]).returncode, 2)
        self.assertEqual(run_cli(["user", "export", "--user", user_id, "--email", "leaver@e2e.test",
                                  "--data-dir", data_dir]).returncode, 2)
        unknown = run_cli(["user", "export", "--email", "nobody@e2e.test", "--data-dir", data_dir])
        self.assertEqual(unknown.returncode, 2)
        self.assertIn("no user", unknown.stderr)

        erased = run_cli(["user", "erase", "--user", user_id, "--data-dir", data_dir])
        self.assertEqual(erased.returncode, 0, erased.stderr)
        self.assertTrue(json.loads(erased.stdout)["erased"])
        again = run_cli(["user", "erase", "--user", user_id, "--data-dir", data_dir])
        self.assertEqual(again.returncode, 2)
        self.assertIn("erased already", again.stderr)
        # The last super admin is kept.
        last = run_cli(["user", "erase", "--email", "keeper@e2e.test", "--data-dir", data_dir])
        self.assertEqual(last.returncode, 2)
        self.assertIn("last super admin", last.stderr)
        after = json.loads(run_cli(["user", "export", "--user", user_id, "--data-dir", data_dir]).stdout)
        self.assertEqual(after["user"]["email"], f"erased-{user_id}@erased.invalid")
        self.assertFalse(after["user"]["superAdmin"])
        server = self.start_server(data_dir=data_dir, env={"ATRIUM_IDENTITY_PASSWORD_COST": "minimum"})
        for email, status in (("leaver@e2e.test", 400), ("keeper@e2e.test", 200)):
            r = server.request("POST", "/v1/auth/token", headers={"Content-Type": "application/json"},
                               body=json.dumps({"grant_type": "password", "email": email,
                                                "password": "a-long-password"}).encode())
            self.assertEqual(r.status, status, (email, r))


if __name__ == "__main__":
    unittest.main()
