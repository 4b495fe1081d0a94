"""Bad and abusive inputs against a running `atrium serve`, over raw sockets.

Every case checks the status and the problem+json body, and then that the server still answers others.
"""

import unittest

from atrium_e2e import E2ETestCase, RawReader, SharedServerTestCase, connect, raw_exchange


def request_bytes(method, path, headers=(), body=b"", version="HTTP/1.1"):
    lines = [f"{method} {path} {version}", "Host: e2e"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class BadInputTest(SharedServerTestCase):
    """Default limits: max_body_bytes 1048576, max_header_bytes 16384."""

    def exchange(self, data, tolerate_send_errors=False):
        resp, reader = raw_exchange(self.server.port, data, tolerate_send_errors=tolerate_send_errors)
        self.addCleanup(reader.sock.close)
        return resp, reader

    def assertClosesAfterError(self, resp, reader):
        self.assertEqual(resp.header("Connection", "").lower(), "close", resp)
        self.assertTrue(reader.wait_closed(10), "the server kept the connection open after a fatal error")

    def test_body_too_large_by_content_length(self):
        resp, reader = self.exchange(request_bytes("POST", "/health", [("Content-Type", "application/json"),
                                                                        ("Content-Length", "2000000")]))
        body = self.assertProblem(resp, 413)
        self.assertIn("1048576", body["detail"])
        self.assertClosesAfterError(resp, reader)
        self.assertStillServing(self.server)

    def test_body_too_large_sent_in_full_still_gets_the_answer(self):
        # The client writes the whole oversized body before reading: it must see the 413, not a reset.
        data = request_bytes("POST", "/health", [("Content-Length", "1100000")], b"x" * 1100000)
        resp, reader = self.exchange(data, tolerate_send_errors=True)
        self.assertProblem(resp, 413)
        self.assertStillServing(self.server)

    def test_chunked_body_too_large(self):
        chunk = b"y" * 65536
        body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 17 + b"0\r\n\r\n"  # 1114112 bytes > 1 MiB
        resp, _ = self.exchange(request_bytes("POST", "/health", [("Transfer-Encoding", "chunked")], body),
                                tolerate_send_errors=True)
        self.assertProblem(resp, 413)
        self.assertStillServing(self.server)

    def test_body_within_limit_is_accepted(self):
        # Just under the limit: read in full and routed (POST /health is a 405, not a 413).
        resp, _ = self.exchange(request_bytes("POST", "/health", [("Content-Length", "1048576")],
                                              b"z" * 1048576))
        self.assertProblem(resp, 405)

    def test_header_too_large(self):
        resp, reader = self.exchange(request_bytes("GET", "/health", [("X-Big", "a" * 20480)]),
                                     tolerate_send_errors=True)
        self.assertProblem(resp, 431)
        self.assertClosesAfterError(resp, reader)
        self.assertStillServing(self.server)

    def test_many_headers_too_large_in_total(self):
        headers = [(f"X-Filler-{i}", "b" * 50) for i in range(400)]  # ~25 KiB in small fields
        resp, _ = self.exchange(request_bytes("GET", "/health", headers), tolerate_send_errors=True)
        self.assertProblem(resp, 431)
        self.assertStillServing(self.server)

    def test_large_header_within_limit_is_accepted(self):
        resp, _ = self.exchange(request_bytes("GET", "/health", [("X-Big", "a" * 8192), ("Connection", "close")]))
        self.assertEqual(resp.status, 200, resp)

    def test_garbage_request_line(self):
        for data in (b"BLAH\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /health HTTP/1.1\nHost: e2e\n\n",
                     b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n"):
            with self.subTest(data=data[:30]):
                resp, reader = self.exchange(data)
                body = self.assertProblem(resp, 400)
                self.assertEqual(body["type"].rsplit("/", 1)[-1], "malformed-request", body)
                self.assertClosesAfterError(resp, reader)
                self.assertStillServing(self.server)

    def test_malformed_headers(self):
        cases = [
            [("Bad Header", "1")],                                       # space in a field name
            [("Content-Length", "5"), ("Content-Length", "6")],          # conflicting lengths
            [("Content-Length", "-1")],
            [("Content-Length", "abc")],
            [("Transfer-Encoding", "chunked"), ("Content-Length", "3")],  # request smuggling shape
        ]
        for headers in cases:
            with self.subTest(headers=headers):
                resp, reader = self.exchange(request_bytes("POST", "/health", headers, b"hello"))
                self.assertProblem(resp, 400)
                self.assertClosesAfterError(resp, reader)
                self.assertStillServing(self.server)

    def test_bad_chunked_encoding(self):
        resp, _ = self.exchange(request_bytes("POST", "/health", [("Transfer-Encoding", "chunked")],
                                              b"zz\r\nhello\r\n0\r\n\r\n"))
        self.assertProblem(resp, 400)
        self.assertStillServing(self.server)

    def test_not_found(self):
        resp, _ = self.exchange(request_bytes("GET", "/no/such/route-777", [("Connection", "close")]))
        body = self.assertProblem(resp, 404)
        self.assertIn("/no/such/route-777", body["detail"])
        self.assertStillServing(self.server)

    def test_method_not_allowed_has_allow(self):
        for method, path in (("POST", "/health"), ("PUT", "/ready"), ("DELETE", "/metrics"),
                             ("PATCH", "/openapi.json")):
            with self.subTest(method=method, path=path):
                resp, _ = self.exchange(request_bytes(method, path, [("Content-Length", "0"),
                                                                     ("Connection", "close")]))
                self.assertProblem(resp, 405)
                allow = {m.strip() for m in resp.header("Allow", "").split(",") if m.strip()}
                self.assertEqual(allow, {"GET", "HEAD"}, resp)
                self.assertStillServing(self.server)

    def test_connection_survives_a_routing_error(self):
        # 404 and 405 are not fatal: the keep-alive connection stays usable.
        s = connect(self.server.port)
        self.addCleanup(s.close)
        reader = RawReader(s)
        s.sendall(request_bytes("GET", "/nope"))
        self.assertProblem(reader.read_response(), 404)
        s.sendall(request_bytes("POST", "/health", [("Content-Length", "2")], b"{}"))
        self.assertProblem(reader.read_response(), 405)
        s.sendall(request_bytes("GET", "/health"))
        self.assertEqual(reader.read_response().status, 200)


class _SharedServerTest(SharedServerTestCase):

    def open(self):
        s = connect(self.server.port)
        self.addCleanup(s.close)
        return s, RawReader(s)


class SlowHeaderTest(_SharedServerTest):
    """server.header_timeout_ms=300 (and nothing else shortened): slow header senders are disconnected."""

    ENV = {"ATRIUM_SERVER_HEADER_TIMEOUT_MS": "300"}

    def test_slow_headers_are_disconnected(self):
        s, reader = self.open()
        s.sendall(b"GET /health HTTP/1.1\r\n")
        self.assertTrue(reader.wait_closed(5), "a client that never finished its headers was still connected 5 s "
                                               "later (server.header_timeout_ms=300)")
        self.assertNotIn(b"200 OK", reader.buf)
        self.assertStillServing(self.server)

    def test_trickled_headers_do_not_extend_the_deadline(self):
        # Slowloris: one header byte every 50 ms keeps the socket busy but must not keep it open.
        s, reader = self.open()
        s.sendall(b"GET /health HTTP/1.1\r\nHost: e2e\r\n")
        closed = False
        for _ in range(100):  # 100 bytes, ~5 s at most
            try:
                s.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if reader.wait_closed(0.05):
                closed = True
                break
        self.assertTrue(closed, "a client trickling header bytes was never disconnected "
                                "(server.header_timeout_ms=300)")
        self.assertStillServing(self.server)

    def test_fast_client_is_unaffected(self):
        # Whole requests in single writes, several on one connection: each well within the header deadline.
        s, reader = self.open()
        for _ in range(3):
            s.sendall(request_bytes("GET", "/ready"))
            self.assertEqual(reader.read_response().status, 200)


class SlowBodyAndIdleTest(_SharedServerTest):
    """server.body_timeout_ms=300 and server.idle_timeout_ms=300."""

    ENV = {"ATRIUM_SERVER_BODY_TIMEOUT_MS": "300", "ATRIUM_SERVER_IDLE_TIMEOUT_MS": "300"}

    def test_slow_body_is_disconnected(self):
        s, reader = self.open()
        s.sendall(request_bytes("POST", "/health", [("Content-Length", "10")], b"abc"))
        self.assertTrue(reader.wait_closed(5), "a client that never finished its body was not disconnected")
        self.assertNotIn(b"HTTP/1.1 405", reader.buf)
        self.assertStillServing(self.server)

    def test_idle_keep_alive_is_disconnected(self):
        s, reader = self.open()
        s.sendall(request_bytes("GET", "/health"))
        self.assertEqual(reader.read_response().status, 200)
        self.assertTrue(reader.wait_closed(5), "an idle keep-alive connection was not closed")

    def test_silent_connection_is_disconnected(self):
        s, reader = self.open()
        self.assertTrue(reader.wait_closed(5), "a connection that never sent a byte was not closed")
        self.assertStillServing(self.server)


class ConfiguredLimitsTest(E2ETestCase):
    """max_body_bytes and max_header_bytes from the environment are enforced."""

    def test_configured_limits(self):
        server = self.start_server(env={"ATRIUM_SERVER_MAX_BODY_BYTES": "1024",
                                        "ATRIUM_SERVER_MAX_HEADER_BYTES": "2048"})
        resp, r = raw_exchange(server.port, request_bytes("POST", "/health", [("Content-Length", "1025")],
                                                          b"q" * 1025), tolerate_send_errors=True)
        r.sock.close()
        self.assertIn("1024", self.assertProblem(resp, 413)["detail"])
        resp, r = raw_exchange(server.port, request_bytes("POST", "/health", [("Content-Length", "1024"),
                                                                              ("Connection", "close")],
                                                          b"q" * 1024))
        r.sock.close()
        self.assertProblem(resp, 405)
        resp, r = raw_exchange(server.port, request_bytes("GET", "/health", [("X-Big", "h" * 3000)]),
                               tolerate_send_errors=True)
        r.sock.close()
        self.assertProblem(resp, 431)
        resp, r = raw_exchange(server.port, request_bytes("GET", "/health", [("X-Big", "h" * 1000),
                                                                             ("Connection", "close")]))
        r.sock.close()
        self.assertEqual(resp.status, 200, resp)


if __name__ == "__main__":
    unittest.main()
