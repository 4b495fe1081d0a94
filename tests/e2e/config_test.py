"""`atrium config check` and `atrium version`: defaults, precedence (file < env < flags), redaction, errors."""

import os
import re
import shutil
import tempfile
import unittest

from atrium_e2e import E2ETestCase, free_port, run_cli

DEFAULTS = {
    "server.listen": '"127.0.0.1:8080"',
    "server.io_threads": "0",
    "server.worker_threads": "0",
    "server.tls_cert": '""',
    "server.tls_key": '""',
    "server.max_body_bytes": "1048576",
    "server.max_header_bytes": "16384",
    "server.max_json_depth": "64",
    "server.header_timeout_ms": "10000",
    "server.body_timeout_ms": "30000",
    "server.idle_timeout_ms": "60000",
    "server.drain_timeout_ms": "30000",
    "storage.data_dir": None,  # present; value not pinned here
    "storage.database_url": '""',
    "storage.pool_size": None,
    "storage.statement_timeout_ms": None,
    "storage.busy_timeout_ms": None,
    "storage.connect_timeout_ms": None,
    "storage.migrate_on_start": "true",
    "log.level": '"info"',
    "log.format": '"json"',
    "log.access_log": "true",
}


class ConfigCheckTest(E2ETestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="atrium-e2e-config-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def write_toml(self, text, name="atrium.toml"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check(self, args=(), env=None):
        return run_cli(["config", "check", *args], env=env)

    def effective(self, args=(), env=None):
        out = self.check(args, env)
        self.assertEqual(out.returncode, 0, f"config check failed:\n{out.stderr}")
        values = {}
        for line in out.stdout.splitlines():
            m = re.match(r"^([a-z_]+\.[a-z_]+) = (.*)$", line)
            self.assertIsNotNone(m, f"unexpected line in config check output: {line!r}")
            self.assertNotIn(m.group(1), values, f"key printed twice: {m.group(1)}")
            values[m.group(1)] = m.group(2)
        return values

    def assertConfigError(self, out, *names):
        self.assertEqual(out.returncode, 2, f"expected exit 2\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}")
        for name in names:
            self.assertIn(name, out.stderr)
        self.assertEqual(out.stdout.strip(), "", "a rejected configuration must not be printed")

    # -- defaults and precedence --

    def test_defaults(self):
        values = self.effective()
        missing = set(DEFAULTS) - set(values)
        self.assertFalse(missing, f"documented keys not printed: {sorted(missing)}")
        for key, expected in DEFAULTS.items():
            if expected is not None:
                self.assertEqual(values[key], expected, key)
        self.assertIn('server.listen = "127.0.0.1:8080"', self.check().stdout.splitlines())

    def test_env_overrides_default(self):
        values = self.effective(env={"ATRIUM_SERVER_IO_THREADS": "3", "ATRIUM_LOG_LEVEL": "debug",
                                     "ATRIUM_STORAGE_MIGRATE_ON_START": "false",
                                     "ATRIUM_SERVER_LISTEN": "127.0.0.1:9999"})
        self.assertEqual(values["server.io_threads"], "3")
        self.assertEqual(values["log.level"], '"debug"')
        self.assertEqual(values["storage.migrate_on_start"], "false")
        self.assertEqual(values["server.listen"], '"127.0.0.1:9999"')
        self.assertEqual(values["server.worker_threads"], "0")  # untouched keys keep their defaults

    def test_flag_overrides_env(self):
        values = self.effective(["--listen", "127.0.0.1:2222", "--data-dir", "/tmp/from-flag"],
                                env={"ATRIUM_SERVER_LISTEN": "127.0.0.1:1111",
                                     "ATRIUM_STORAGE_DATA_DIR": "/tmp/from-env"})
        self.assertEqual(values["server.listen"], '"127.0.0.1:2222"')
        self.assertEqual(values["storage.data_dir"], '"/tmp/from-flag"')

    def test_toml_file(self):
        path = self.write_toml("""
[server]
listen = "127.0.0.1:7070"
io_threads = 5
max_body_bytes = 4096

[storage]
migrate_on_start = false
pool_size = 3

[log]
format = "text"
access_log = false
""")
        values = self.effective(["--config", path])
        self.assertEqual(values["server.listen"], '"127.0.0.1:7070"')
        self.assertEqual(values["server.io_threads"], "5")
        self.assertEqual(values["server.max_body_bytes"], "4096")
        self.assertEqual(values["storage.migrate_on_start"], "false")
        self.assertEqual(values["storage.pool_size"], "3")
        self.assertEqual(values["log.format"], '"text"')
        self.assertEqual(values["log.access_log"], "false")
        self.assertEqual(values["server.max_header_bytes"], "16384")

    def test_env_overrides_file_and_flag_overrides_both(self):
        path = self.write_toml('[server]\nio_threads = 5\nlisten = "127.0.0.1:7070"\n')
        values = self.effective(["--config", path], env={"ATRIUM_SERVER_IO_THREADS": "3"})
        self.assertEqual(values["server.io_threads"], "3")
        self.assertEqual(values["server.listen"], '"127.0.0.1:7070"')
        values = self.effective(["--config", path, "--listen", "127.0.0.1:2222"],
                                env={"ATRIUM_SERVER_LISTEN": "127.0.0.1:1111"})
        self.assertEqual(values["server.listen"], '"127.0.0.1:2222"')

    def test_unrelated_atrium_variables_are_ignored(self):
        # ATRIUM_TEST_* and other prefixes belong to other tools, not to a configuration section.
        values = self.effective(env={"ATRIUM_TEST_SOMETHING": "1", "ATRIUM_BINARY": "/x", "ATRIUM_NOUNDERSCORE": "1"})
        self.assertEqual(values["server.listen"], DEFAULTS["server.listen"])

    # -- secrets --

    def test_database_url_password_is_redacted(self):
        # A password no key name contains (webhooks.platform_secret is a key).
        url = "postgresql://u:s3cr3t-pw@h/db"
        for args, env in ((["--database-url", url], None),
                          ((), {"ATRIUM_STORAGE_DATABASE_URL": url}),
                          (["--config", self.write_toml(f'[storage]\ndatabase_url = "{url}"\n')], None)):
            with self.subTest(args=args, env=env):
                out = self.check(args, env)
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertNotIn("s3cr3t-pw", out.stdout + out.stderr)
                self.assertIn('storage.database_url = "postgresql://u:***@h/db"', out.stdout.splitlines())

    def test_password_in_query_string_is_redacted(self):
        out = self.check(["--database-url", "postgresql://h/db?user=u&password=hunter2&sslmode=disable"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn("hunter2", out.stdout)
        self.assertIn("***", out.stdout)
        self.assertIn("sslmode=disable", out.stdout)

    # -- errors --

    def test_unknown_env_key(self):
        out = self.check(env={"ATRIUM_SERVER_NOPE": "1"})
        self.assertConfigError(out)
        self.assertTrue("ATRIUM_SERVER_NOPE" in out.stderr or "server.nope" in out.stderr, out.stderr)

    def test_bad_integer_value(self):
        for value in ("abc", "9999", "-1", "3.5", ""):
            with self.subTest(value=value):
                self.assertConfigError(self.check(env={"ATRIUM_SERVER_IO_THREADS": value}), "server.io_threads")

    def test_bad_bool_value(self):
        self.assertConfigError(self.check(env={"ATRIUM_STORAGE_MIGRATE_ON_START": "maybe"}),
                               "storage.migrate_on_start")

    def test_bad_enum_values(self):
        self.assertConfigError(self.check(env={"ATRIUM_LOG_LEVEL": "loud"}), "log.level")
        self.assertConfigError(self.check(env={"ATRIUM_LOG_FORMAT": "xml"}), "log.format")

    def test_bad_listen_address(self):
        for value in ("nonsense", "127.0.0.1:99999", "127.0.0.1:"):
            with self.subTest(value=value):
                self.assertConfigError(self.check(["--listen", value]), "server.listen")

    def test_bad_database_url_scheme(self):
        self.assertConfigError(self.check(["--database-url", "mysql://u@h/db"]), "storage.database_url")

    def test_unknown_toml_key(self):
        path = self.write_toml("[server]\nbogus_key = 1\n")
        self.assertConfigError(self.check(["--config", path]), "server.bogus_key")

    def test_unknown_toml_section(self):
        path = self.write_toml("[bogus_section]\nlisten = \"127.0.0.1:1\"\n")
        self.assertConfigError(self.check(["--config", path]), "bogus_section")

    def test_wrong_toml_type_and_range(self):
        self.assertConfigError(self.check(["--config", self.write_toml('[server]\nio_threads = "three"\n')]),
                               "server.io_threads")
        self.assertConfigError(self.check(["--config", self.write_toml("[server]\nio_threads = 9999\n")]),
                               "server.io_threads")

    def test_malformed_toml(self):
        path = self.write_toml("[server\nlisten = \n")
        out = self.check(["--config", path])
        self.assertConfigError(out, path)

    def test_missing_config_file(self):
        path = os.path.join(self.tmp, "does-not-exist.toml")
        self.assertConfigError(self.check(["--config", path]), path)

    def test_tls_cert_without_key(self):
        cert = self.write_toml("not really a cert\n", name="cert.pem")
        self.assertConfigError(self.check(["--tls-cert", cert]), "server.tls_key")

    def test_serve_refuses_a_bad_configuration(self):
        # The same validation stops `serve` before it binds anything.
        out = run_cli(["serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", self.tmp],
                      env={"ATRIUM_SERVER_IO_THREADS": "abc"}, timeout=60)
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn("server.io_threads", out.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "atrium.db")))

    def test_unknown_flag_is_a_usage_error(self):
        out = self.check(["--no-such-flag"])
        self.assertEqual(out.returncode, 2)
        self.assertIn("no-such-flag", out.stderr + out.stdout)


class VersionTest(E2ETestCase):

    def test_version(self):
        out = run_cli(["version"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"^atrium \d+\.\d+\.\d+ \(revision [^,()]+, [^()]+\)\n$")
        self.assertTrue(out.stdout.startswith("atrium 0.1.0 "), out.stdout)

    def test_no_subcommand_is_a_usage_error(self):
        out = run_cli([])
        self.assertNotEqual(out.returncode, 0)


if __name__ == "__main__":
    unittest.main()
