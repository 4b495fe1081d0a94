"""Shared helpers for Atrium's black-box end-to-end tests (Python standard library only).

The binary under test is $ATRIUM_BINARY, or build/atrium in this checkout. Every server runs on a free loopback
port with its own temporary data directory; every wait is a poll against a deadline; every child process is
killed in a cleanup (and, as a last resort, at interpreter exit).
"""

import atexit
import glob
import errno
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

# The control-plane schema version this checkout's binary migrates to (one file per version).
# PostgreSQL has migrations of its own (row-level security), so the two backends' numbers differ.
SCHEMA_VERSION = len(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "migrations",
                                            "control", "sqlite", "*.sql")))
SCHEMA_VERSION_POSTGRES = len(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                     "migrations", "control", "postgres", "*.sql")))

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("ATRIUM_BINARY") or os.path.join(REPO_ROOT, "build", "atrium")

# Generous bounds: the suite also runs against sanitizer builds on a loaded 2-core machine. They are upper bounds
# for polls, never sleeps.
STARTUP_TIMEOUT = 30.0
EXIT_TIMEOUT = 20.0
REAP_TIMEOUT = 30.0  # a server still running at cleanup: SIGTERM, then this long before SIGKILL
# Lines that start a sanitizer report in a server's log (scanned when the server is closed).
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "WARNING: AddressSanitizer")
IO_TIMEOUT = 10.0

# Configuration variables of the binary itself; removed from children's environments so an outer shell cannot
# change what a test sees. (ATRIUM_TEST_* and others are not configuration and are left alone.)
_CONFIG_ENV_PREFIXES = ("ATRIUM_SERVER_", "ATRIUM_STORAGE_", "ATRIUM_LOG_")

_live_processes = []


@atexit.register
def _kill_leftovers():
    for proc in list(_live_processes):
        if proc.poll() is None:
            try:
                proc.kill()
                proc.wait(timeout=5)
            except Exception:  # noqa: BLE001 - best effort at exit
                pass


def in_ci():
    """Whether every prerequisite must be present: ATRIUM_TEST_REQUIRE_SERVICES=1, which scripts/test.sh sets."""
    return os.environ.get("ATRIUM_TEST_REQUIRE_SERVICES", "") == "1"


def skip_or_fail(test, reason):
    """Skips a test for a missing prerequisite, but fails it when the test command requires every prerequisite."""
    if in_ci():
        test.fail(reason + " (ATRIUM_TEST_REQUIRE_SERVICES=1, so this is a failure, not a skip)")
    test.skipTest(reason)


def require_tool(test, name):
    path = shutil.which(name)
    if path is None:
        skip_or_fail(test, f"{name} is not installed")
    return path


def wait_for_binary(timeout=60.0):
    """The binary may be rebuilt under us: wait (bounded) until it exists and is executable."""
    deadline = time.monotonic() + timeout
    while True:
        if os.path.isfile(BINARY) and os.access(BINARY, os.X_OK):
            return BINARY
        if time.monotonic() >= deadline:
            raise AssertionError(f"atrium binary not found or not executable: {BINARY} (set ATRIUM_BINARY)")
        time.sleep(0.2)


def child_env(extra=None):
    """The environment for a child: ours without Atrium configuration variables, plus `extra` (None removes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CONFIG_ENV_PREFIXES)}
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def stop_process(proc):
    """Stops a process still running: SIGTERM first, so it exits through its own shutdown and the sanitizers' exit
    checks (LeakSanitizer) run; SIGKILL only if it has not exited after REAP_TIMEOUT."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=REAP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def _popen_retrying(cmd, **kwargs):
    """Popen, retrying briefly while the binary is being replaced (ENOENT, ETXTBSY)."""
    deadline = time.monotonic() + 60.0
    while True:
        wait_for_binary()
        try:
            return subprocess.Popen(cmd, **kwargs)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ETXTBSY) or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def run_cli(args, env=None, timeout=60.0, cwd=None):
    """Runs `atrium ARGS` to completion (killed after `timeout`); returns a CompletedProcess with text output."""
    proc = _popen_retrying([BINARY, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=child_env(env), cwd=cwd, text=True)
    _live_processes.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"atrium {' '.join(args)} did not finish within {timeout}s\nstdout:\n{out}\n"
                             f"stderr:\n{err}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _live_processes.remove(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_tool(cmd, timeout=60.0, input_text=None, env=None):
    """Runs another program to completion, bounded; returns a CompletedProcess with text output."""
    try:
        return subprocess.run(cmd, input=input_text, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout, env=env, stdin=None if input_text is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{cmd[0]} did not finish within {timeout}s: {e}") from e


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------------------------
# HTTP clients


class Response:
    def __init__(self, status, reason, headers, body, version=None):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value), names as sent
        self.body = body
        self.version = version

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def text(self):
        return self.body.decode("utf-8")

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} {self.body[:300]!r}>"


def insecure_tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def http_request(port, method, path, headers=None, body=None, tls_context=None, timeout=IO_TIMEOUT,
                 host="127.0.0.1"):
    """One request on a fresh connection (http.client); returns a Response."""
    if tls_context is not None:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=tls_context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.reason, r.getheaders(), data, r.version)
    finally:
        conn.close()


def connect(port, timeout=IO_TIMEOUT, host="127.0.0.1"):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class RawReader:
    """Reads HTTP/1.1 responses from a socket, keeping any surplus bytes for the next response."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("timed out waiting for the server")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout as e:
            raise AssertionError("timed out waiting for the server") from e
        if not chunk:
            raise ConnectionAbortedError("connection closed by the server")
        self.buf += chunk

    def read_response(self, timeout=IO_TIMEOUT, head_request=False):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            try:
                self._fill(deadline)
            except ConnectionAbortedError as e:
                raise ConnectionAbortedError(f"connection closed before a full response head; got {self.buf!r}") \
                    from e
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"^(HTTP/\d\.\d) (\d{3}) ?(.*)$", lines[0])
        if not m:
            raise AssertionError(f"malformed status line: {lines[0]!r}")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        resp = Response(int(m.group(2)), m.group(3), headers, b"", m.group(1))
        length = resp.header("Content-Length")
        if head_request or resp.status in (204, 304) or 100 <= resp.status < 200:
            return resp
        if length is None:
            raise AssertionError(f"response without Content-Length: {resp!r}")
        n = int(length)
        while len(self.buf) < n:
            self._fill(deadline)
        resp.body, self.buf = self.buf[:n], self.buf[n:]
        return resp

    def wait_closed(self, timeout):
        """True if the server closes (EOF or reset) within `timeout` seconds; surplus bytes land in self.buf."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True
            self.buf += chunk


def raw_exchange(port, data, timeout=IO_TIMEOUT, tolerate_send_errors=False):
    """Sends raw bytes on a new connection and reads one response. Returns (Response, RawReader)."""
    s = connect(port, timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            if not tolerate_send_errors:
                raise
        reader = RawReader(s)
        return reader.read_response(timeout), reader
    except BaseException:
        s.close()
        raise


# --------------------------------------------------------------------------------------------------------------
# The server under test


class LogFile:
    """The process's stderr log at self.log_path: its text and its JSON entries."""

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def sanitizer_reports(self):
        """AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer reports in the process's log."""
        return [line for line in self.log_text().splitlines() if any(marker in line for marker in SANITIZER_MARKERS)]

    def raise_on_sanitizer_reports(self, what):
        reports = self.sanitizer_reports()
        if reports:
            raise AssertionError(f"{what}: the sanitizers reported:\n" + "\n".join(reports) + "\nlog:\n" +
                                 self.log_text()[-20000:])

    def log_entries(self):
        entries = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    pass
        return entries


class AtriumServer(LogFile):
    """`atrium serve` on a free loopback port, logging to a file. Use as a context manager or call close()."""

    def __init__(self, args=(), env=None, data_dir=None, tls=False):
        self.args = list(args)
        self.env = dict(env or {})
        self.tls = tls
        self.tmp = tempfile.mkdtemp(prefix="atrium-e2e-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.log_path = os.path.join(self.tmp, "stderr.log")
        self.proc = None
        self.port = None
        self._log = None

    # -- lifecycle --

    def start(self, wait=True):
        for attempt in range(5):
            self.port = free_port()
            self._log = open(self.log_path, "wb")
            cmd = [BINARY, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir, *self.args]
            self.proc = _popen_retrying(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=child_env(self.env))
            _live_processes.append(self.proc)
            if not wait:
                return self
            try:
                self.wait_listening()
                return self
            except ServerExited:
                # Another process may have taken the free port between our probe and the bind: try another.
                if "cannot listen" in self.log_text() and attempt < 4:
                    self._reap()
                    continue
                raise
        raise AssertionError("could not start atrium on a free port")

    def wait_listening(self, timeout=STARTUP_TIMEOUT):
        """Waits for the "listening" log line and then for GET /health to answer 200."""
        deadline = time.monotonic() + timeout
        seen_listening = False
        last_error = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerExited(f"atrium serve exited with {self.proc.returncode} before it was ready; log:\n"
                                   f"{self.log_text()}")
            if not seen_listening:
                seen_listening = any(entry.get("msg") == "listening" for entry in self.log_entries())
            if seen_listening:
                try:
                    r = self.get("/health", timeout=2.0)
                    if r.status == 200:
                        return
                    last_error = f"/health answered {r.status}"
                except (OSError, http.client.HTTPException, ssl.SSLError) as e:
                    last_error = repr(e)
            time.sleep(0.05)
        raise AssertionError(f"atrium serve was not ready within {timeout}s ({last_error}); log:\n{self.log_text()}")

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=EXIT_TIMEOUT):
        """Waits (bounded) for the process to exit; returns its exit code or raises AssertionError."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"atrium did not exit within {timeout}s; log:\n{self.log_text()}") from e

    def stop(self, sig=signal.SIGTERM, timeout=EXIT_TIMEOUT):
        """Sends `sig` and returns the exit code (bounded wait)."""
        if self.proc.poll() is None:
            self.send_signal(sig)
        return self.wait_exit(timeout)

    def _reap(self):
        if self.proc is not None:
            stop_process(self.proc)
            if self.proc in _live_processes:
                _live_processes.remove(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self):
        self._reap()
        try:
            self.raise_on_sanitizer_reports("atrium serve")
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # -- observation (log_text and log_entries come from LogFile) --

    def tls_context(self):
        return insecure_tls_context() if self.tls else None

    def get(self, path, headers=None, timeout=IO_TIMEOUT):
        return http_request(self.port, "GET", path, headers=headers, tls_context=self.tls_context(),
                            timeout=timeout)

    def request(self, method, path, headers=None, body=None, timeout=IO_TIMEOUT):
        return http_request(self.port, method, path, headers=headers, body=body, tls_context=self.tls_context(),
                            timeout=timeout)


class ServerExited(AssertionError):
    pass


def poll_until(predicate, timeout, interval=0.05, message="condition"):
    """Calls predicate() until it returns a truthy value (returned) or the deadline passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} not reached within {timeout}s (last: {last!r})")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------------------------
# Prometheus text format


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Returns [(name, {label: value}, float)] for every sample line."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise AssertionError(f"unparsable metrics line: {line!r}")
        labels = dict(_LABEL.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def sample_value(samples, name, **labels):
    """Sum of the samples named `name` whose labels include `labels` (0.0 if none)."""
    total = 0.0
    for n, ls, v in samples:
        if n == name and all(ls.get(k) == val for k, val in labels.items()):
            total += v
    return total


def api_call(server, method, path, token=None, body=None, headers=None):
    """One API request: `token` as a bearer credential, `body` (when given) as JSON."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        h["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    return server.request(method, path, headers=h, body=data)


def password_grant(server, email, password, tenant=None):
    """POST /v1/auth/token with the password grant (in `tenant`, an id or slug, when given): the response."""
    body = {"grant_type": "password", "email": email, "password": password}
    if tenant:
        body["tenant"] = tenant
    return api_call(server, "POST", "/v1/auth/token", body=body)


def sign_in(server, email, password, tenant=None):
    """The access token of a password sign-in; AssertionError when it is not answered 200."""
    r = password_grant(server, email, password, tenant)
    if r.status != 200:
        raise AssertionError(f"sign-in of {email} answered {r.status}: {r.text()}")
    return r.json()["access_token"]


# --------------------------------------------------------------------------------------------------------------
# Assertions


class E2ETestCase(unittest.TestCase):
    maxDiff = None

    def start_server(self, args=(), env=None, tls=False, data_dir=None, wait=True):
        server = AtriumServer(args=args, env=env, tls=tls, data_dir=data_dir)
        self.addCleanup(server.close)
        server.start(wait=wait)
        return server

    def assertProblem(self, resp, status):
        """An RFC 9457 problem with the given status whose request_id matches X-Request-Id."""
        self.assertEqual(resp.status, status, resp)
        content_type = resp.header("Content-Type", "")
        self.assertTrue(content_type.startswith("application/problem+json"), resp)
        body = resp.json()
        # `instance` too: the path, or urn:uuid:<request id> for a message refused before its request line was read.
        for member in ("type", "title", "status", "detail", "request_id", "instance"):
            self.assertIn(member, body, resp)
        self.assertEqual(body["status"], status, resp)
        self.assertIsInstance(body["title"], str)
        self.assertTrue(body["title"], resp)
        self.assertIsInstance(body["detail"], str)
        request_id = resp.header("X-Request-Id")
        self.assertTrue(request_id, f"no X-Request-Id on {resp!r}")
        self.assertEqual(body["request_id"], request_id, resp)
        return body

    def assertStillServing(self, server):
        r = server.get("/health")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"status": "ok"})


class SharedServerTestCase(E2ETestCase):
    """One `atrium serve` for every test of the class, as cls.server, with the environment in ENV."""

    ENV = {}

    @classmethod
    def setUpClass(cls):
        cls.server = AtriumServer(env=cls.ENV or None)
        try:
            cls.server.start()
        except BaseException:
            cls.server.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
