"""TLS: `atrium serve --tls-cert --tls-key` speaks TLS 1.3 only, with the allowed cipher suites only."""

import os
import re
import shutil
import signal
import socket
import ssl
import tempfile
import unittest
from datetime import datetime, timezone

from atrium_e2e import (AtriumServer, E2ETestCase, IO_TIMEOUT, RawReader, connect, http_request,
                        insecure_tls_context, parse_metrics, require_tool, run_cli, run_tool, sample_value)

ALLOWED_SUITES = {"TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"}


def make_cert(directory):
    key = os.path.join(directory, "key.pem")
    cert = os.path.join(directory, "cert.pem")
    out = run_tool(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"], timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"openssl req failed:\n{out.stderr}")
    return cert, key


class TlsTest(E2ETestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="atrium-e2e-tls-")
        cls.server = None
        if shutil.which("openssl") is None:
            return
        try:
            cls.cert, cls.key = make_cert(cls.tmp)
            cls.server = AtriumServer(args=["--tls-cert", cls.cert, "--tls-key", cls.key], tls=True)
            cls.server.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            cls.server.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        require_tool(self, "openssl")

    def s_client(self, *args):
        return run_tool(["openssl", "s_client", "-connect", f"127.0.0.1:{self.server.port}", *args], timeout=30)

    def test_https_health_with_python_ssl(self):
        r = http_request(self.server.port, "GET", "/health", tls_context=insecure_tls_context())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"status": "ok"})
        # Served over TLS: browsers are told to keep to HTTPS; every answer is nosniff.
        self.assertEqual(r.header("Strict-Transport-Security"), "max-age=31536000")
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
        r = http_request(self.server.port, "GET", "/ready", tls_context=insecure_tls_context())
        self.assertEqual(r.status, 200, r)

    def test_certificate_expiry_is_in_metrics(self):
        # atrium_tls_certificate_expiry_timestamp_seconds: the notAfter of server.tls_cert, for the expiry alerts.
        end = run_tool(["openssl", "x509", "-in", self.cert, "-noout", "-enddate"], timeout=30).stdout.strip()
        not_after = datetime.strptime(end.split("=", 1)[1], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)
        r = http_request(self.server.port, "GET", "/metrics", tls_context=insecure_tls_context())
        samples = parse_metrics(r.text())
        self.assertEqual(sample_value(samples, "atrium_tls_certificate_expiry_timestamp_seconds"),
                         not_after.timestamp(), r.text())

    def test_certificate_verifies_against_the_configured_cert(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=IO_TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                self.assertEqual(s.version(), "TLSv1.3")
                self.assertIn(s.cipher()[0], ALLOWED_SUITES)
                s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                resp = RawReader(s).read_response()
                self.assertEqual(resp.status, 200, resp)

    def test_python_tls12_client_is_refused(self):
        ctx = insecure_tls_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=IO_TIMEOUT) as raw:
            with self.assertRaises((ssl.SSLError, ConnectionResetError)):
                ctx.wrap_socket(raw).close()
        self.assertStillServing(self.server)

    def test_openssl_tls13_connects(self):
        out = self.s_client("-tls1_3")
        text = out.stdout + out.stderr
        self.assertEqual(out.returncode, 0, text)
        self.assertIn("TLSv1.3", text)
        m = re.search(r"Cipher is (\S+)", text)
        self.assertIsNotNone(m, text)
        self.assertIn(m.group(1), ALLOWED_SUITES)
        self.assertIn("CN = localhost", text)

    def test_openssl_tls12_fails(self):
        out = self.s_client("-tls1_2")
        text = out.stdout + out.stderr
        # (s_client prints "Protocol  : TLSv1.2" in its session summary even when the handshake failed; the
        # negotiated cipher tells the outcome.)
        self.assertNotEqual(out.returncode, 0, text)
        self.assertIsNone(re.search(r"New, TLSv1\.2, Cipher is (?!\(NONE\))", text), text)
        self.assertIsNone(re.search(r"Cipher +: (?!0000)", text), text)
        self.assertStillServing(self.server)

    def test_openssl_disallowed_tls13_suite_fails(self):
        out = self.s_client("-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256")
        text = out.stdout + out.stderr
        self.assertNotEqual(out.returncode, 0, text)
        self.assertNotIn("Cipher is TLS_AES_128_CCM_SHA256", text)
        self.assertStillServing(self.server)

    def test_each_allowed_tls13_suite_connects(self):
        for suite in sorted(ALLOWED_SUITES):
            with self.subTest(suite=suite):
                out = self.s_client("-tls1_3", "-ciphersuites", suite)
                text = out.stdout + out.stderr
                self.assertEqual(out.returncode, 0, text)
                self.assertIn(f"Cipher is {suite}", text)

    def test_plaintext_http_on_the_tls_port_gets_no_answer(self):
        s = connect(self.server.port)
        self.addCleanup(s.close)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: e2e\r\n\r\n")
        reader = RawReader(s)
        self.assertTrue(reader.wait_closed(10), "plaintext on the TLS port was not closed")
        self.assertNotIn(b"HTTP/1.1 200", reader.buf)
        self.assertStillServing(self.server)

    def test_error_over_tls_is_problem_json(self):
        r = http_request(self.server.port, "GET", "/nope", tls_context=insecure_tls_context())
        self.assertProblem(r, 404)


class TlsLifecycleTest(E2ETestCase):

    def setUp(self):
        require_tool(self, "openssl")
        self.tmp = tempfile.mkdtemp(prefix="atrium-e2e-tls-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_listening_log_reports_tls_and_sigterm_exits_zero(self):
        cert, key = make_cert(self.tmp)
        server = self.start_server(args=["--tls-cert", cert, "--tls-key", key], tls=True)
        listening = [e for e in server.log_entries() if e.get("msg") == "listening"]
        self.assertEqual(listening[0].get("tls"), True, server.log_text())
        # An idle TLS keep-alive connection does not hold up the exit.
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT)
        self.addCleanup(raw.close)
        s = insecure_tls_context().wrap_socket(raw)
        self.addCleanup(s.close)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: e2e\r\n\r\n")
        self.assertEqual(RawReader(s).read_response().status, 200)
        self.assertEqual(server.stop(signal.SIGTERM, timeout=10), 0, server.log_text())

    def test_unreadable_certificate_is_a_config_error(self):
        missing = os.path.join(self.tmp, "missing.pem")
        out = run_cli(["config", "check", "--tls-cert", missing, "--tls-key", missing])
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn("server.tls_cert", out.stderr)

    def test_invalid_certificate_fails_startup(self):
        cert = os.path.join(self.tmp, "cert.pem")
        with open(cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        server = AtriumServer(args=["--tls-cert", cert, "--tls-key", cert], tls=True)
        self.addCleanup(server.close)
        server.start(wait=False)
        code = server.wait_exit(timeout=30)
        self.assertNotEqual(code, 0, server.log_text())
        self.assertIn("TLS", server.log_text())

    def test_key_not_matching_certificate_fails_startup(self):
        cert, _ = make_cert(self.tmp)
        other = os.path.join(self.tmp, "other")
        os.mkdir(other)
        _, other_key = make_cert(other)
        server = AtriumServer(args=["--tls-cert", cert, "--tls-key", other_key], tls=True)
        self.addCleanup(server.close)
        server.start(wait=False)
        code = server.wait_exit(timeout=30)
        self.assertNotEqual(code, 0, server.log_text())


if __name__ == "__main__":
    unittest.main()
