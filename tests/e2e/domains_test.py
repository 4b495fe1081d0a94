"""Custom domains through the real binary: a tenant proves a host name through a private DNS server (dnsmasq, as
the system resolver's server), uploads a certificate for it, and TLS clients that name the host by SNI get that
certificate while any other name gets the server's own; requests and sign-ins for the host act in the tenant."""

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

from atrium_e2e import (E2ETestCase, IO_TIMEOUT, RawReader, api_call, free_port, require_tool, run_cli, run_tool,
                        stop_process)
from openapi_check import OpenApi

HOST = "shop.acme-customer.test"
ZONE = "acme-customer.test"


class Dnsmasq:
    """dnsmasq on 127.0.0.1:port with fixed TXT records; NXDOMAIN for other names of the zone."""

    def __init__(self, path, port):
        self.path = path
        self.port = port
        self.proc = None

    def start(self, records=()):
        self.stop()
        cmd = [self.path, "--no-daemon", f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
               "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--user=root", "--pid-file=",
               f"--local=/{ZONE}/", "--log-facility=/dev/null"]
        cmd += [f"--txt-record={name},{value}" for name, value in records]  # no shell: no quotes
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._answers():
                return
            time.sleep(0.05)
        raise AssertionError("dnsmasq did not answer within 10 s")

    def _answers(self):
        query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x05probe" +
                 bytes([len(ZONE.split(".")[0])]) + ZONE.split(".")[0].encode() + b"\x04test\x00\x00\x10\x00\x01")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(query, ("127.0.0.1", self.port))
                return len(s.recv(512)) > 0
            except OSError:
                return False

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


def make_cert(directory, name):
    key = os.path.join(directory, f"{name}.key")
    cert = os.path.join(directory, f"{name}.pem")
    out = run_tool(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}", "-addext",
                    f"subjectAltName=DNS:{name}"], timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"openssl req failed:\n{out.stderr}")
    return cert, key


class CustomDomainTest(E2ETestCase):

    def setUp(self):
        require_tool(self, "openssl")
        self.dnsmasq_path = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)
        if self.dnsmasq_path is None:
            require_tool(self, "dnsmasq")
        self.tmp = tempfile.mkdtemp(prefix="atrium-e2e-domains-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.dns = Dnsmasq(self.dnsmasq_path, free_port())
        self.addCleanup(self.dns.stop)
        self.dns.start()

    def call(self, server, method, path, token=None, body=None, headers=None):
        r = api_call(server, method, path, token, body, headers)
        if not hasattr(self, "api"):
            self.api = OpenApi(server.request("GET", "/openapi.json").json())
        self.api.check(method, path.split("?")[0], r)  # every answer as the API description says
        return r

    def tls_exchange(self, server, sni, cafile, request):
        """One request over TLS naming `sni`, verified against `cafile`; returns (leaf DER, response)."""
        ctx = ssl.create_default_context(cafile=cafile)
        with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname=sni) as s:
                der = s.getpeercert(binary_form=True)
                s.sendall(request)
                return der, RawReader(s).read_response()

    def test_a_verified_domain_is_the_tenants_host_with_its_own_certificate(self):
        default_cert, default_key = make_cert(self.tmp, "localhost")
        env = {"ATRIUM_IDENTITY_PASSWORD_COST": "minimum", "ATRIUM_TENANCY_DNS_SERVER": f"127.0.0.1:{self.dns.port}"}
        server = self.start_server(args=["--tls-cert", default_cert, "--tls-key", default_key], env=env, tls=True)
        created = run_cli(["admin", "create-superuser", "--email", "root@e2e.test", "--password", "root-password",
                           "--data-dir", server.data_dir], env=env)
        self.assertEqual(created.returncode, 0, created.stderr)
        root = self.call(server, "POST", "/v1/auth/token",
                         body={"grant_type": "password", "email": "root@e2e.test", "password": "root-password"})
        root = root.json()["access_token"]
        tenant = self.call(server, "POST", "/v1/admin/tenants", root,
                           {"slug": "acme", "name": "Acme", "owner_email": "owner@acme.test",
                            "owner_password": "owner-password"})
        self.assertEqual(tenant.status, 201, tenant)
        owner = self.call(server, "POST", "/v1/auth/token",
                          body={"grant_type": "password", "email": "owner@acme.test", "password": "owner-password",
                                "tenant": "acme"}).json()["access_token"]

        claimed = self.call(server, "POST", "/v1/domains", owner, {"hostname": HOST})
        self.assertEqual(claimed.status, 201, claimed)
        domain = claimed.json()
        record = domain["verification"]
        self.assertEqual(record["type"], "TXT")
        self.assertEqual(record["name"], f"_atrium-challenge.{HOST}")

        not_yet = self.call(server, "POST", f"/v1/domains/{domain['id']}/verify", owner)
        body = self.assertProblem(not_yet, 409)
        self.assertEqual(body["type"], "/problems/domain-not-verified")

        self.dns.start([(record["name"], record["value"])])
        verified = self.call(server, "POST", f"/v1/domains/{domain['id']}/verify", owner)
        self.assertEqual(verified.status, 200, verified)
        self.assertEqual(verified.json()["status"], "verified")

        domain_cert, domain_key = make_cert(self.tmp, HOST)
        with open(domain_cert) as c, open(domain_key) as k:
            stored = self.call(server, "PUT", f"/v1/domains/{domain['id']}/certificate", owner,
                               {"certificate": c.read(), "private_key": k.read()})
        self.assertEqual(stored.status, 200, stored)
        fingerprint = stored.json()["certificate"]["fingerprint_sha256"]

        # SNI naming the domain: its certificate (it verifies against that certificate alone, for that name), and the
        # request on it, without a tenant named anywhere else, signs in to the tenant.
        form = b"grant_type=password&username=owner%40acme.test&password=owner-password"
        sign_in = (b"POST /v1/auth/token HTTP/1.1\r\nHost: " + HOST.encode() +
                   b"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
                   str(len(form)).encode() + b"\r\nConnection: close\r\n\r\n" + form)
        der, resp = self.tls_exchange(server, HOST, domain_cert, sign_in)
        self.assertEqual(hashlib.sha256(der).hexdigest(), fingerprint)
        self.assertEqual(resp.status, 200, resp)
        on_host = resp.json()["access_token"]
        listed = self.call(server, "GET", "/v1/domains", on_host)
        self.assertEqual(listed.status, 200, listed)
        self.assertEqual([d["hostname"] for d in listed.json()["data"]], [HOST])

        # The super admin's request for the host acts in the tenant.
        der, resp = self.tls_exchange(server, HOST, domain_cert,
                                      b"GET /v1/domains HTTP/1.1\r\nHost: " + HOST.encode() +
                                      b"\r\nAuthorization: Bearer " + root.encode() +
                                      b"\r\nConnection: close\r\n\r\n")
        self.assertEqual(resp.status, 200, resp)

        # Any other name, or none: the server's own certificate.
        der, resp = self.tls_exchange(server, "localhost", default_cert,
                                      b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        self.assertNotEqual(hashlib.sha256(der).hexdigest(), fingerprint)
        self.assertEqual(resp.status, 200, resp)
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.tls_exchange(server, "other.acme-customer.test", domain_cert, b"")

        # Removed: the name falls back to the server's certificate.
        self.assertEqual(self.call(server, "DELETE", f"/v1/domains/{domain['id']}", owner).status, 204)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname=HOST) as s:
                self.assertNotEqual(hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest(), fingerprint)
