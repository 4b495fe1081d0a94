"""Graceful shutdown: SIGTERM stops accepting, turns /ready to 503, lets in-flight requests finish, exits 0."""

import http.client
import signal
import unittest

from atrium_e2e import E2ETestCase, RawReader, connect, http_request, poll_until


def server_side_rx_queue(server_port, client_port):
    """Bytes the server has not read yet on the accepted socket for client_port (Linux /proc/net/tcp), or None."""
    local = f"0100007F:{server_port:04X}"
    remote = f"0100007F:{client_port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == local and fields[2] == remote:
                return int(fields[4].split(":")[1], 16)
    return None


def wait_until_server_read_everything(test, server_port, sock):
    """Bounded poll until the server process has read every byte we sent on `sock` (so it holds our request)."""
    client_port = sock.getsockname()[1]
    poll_until(lambda: server_side_rx_queue(server_port, client_port) == 0, timeout=10,
               message="server reading the partial request")


def ready_while_draining(port):
    """GET /ready on a new connection: the status, or None when the connection is refused or closed unanswered."""
    try:
        return http_request(port, "GET", "/ready", timeout=5).status
    except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError):
        return None


class GracefulShutdownTest(E2ETestCase):

    def start_request_in_flight(self, server):
        """Opens a keep-alive connection, proves it works, then sends a POST /health missing 5 of 10 body bytes."""
        s = connect(server.port)
        self.addCleanup(s.close)
        reader = RawReader(s)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: e2e\r\n\r\n")
        self.assertEqual(reader.read_response().status, 200)
        s.sendall(b"POST /health HTTP/1.1\r\nHost: e2e\r\nX-Request-Id: in-flight-1\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 10\r\n\r\n12345")
        wait_until_server_read_everything(self, server.port, s)
        return s, reader

    def test_sigterm_lets_the_in_flight_request_finish(self):
        server = self.start_server()
        s, reader = self.start_request_in_flight(server)

        server.send_signal(signal.SIGTERM)

        # New connections: refused, or answered 503 by /ready; never anything else once draining has begun.
        seen = []

        def draining():
            status = ready_while_draining(server.port)
            seen.append(status)
            return status is None or status == 503

        poll_until(draining, timeout=10, message="/ready turning 503 or the listener closing")
        self.assertTrue(all(st in (None, 200, 503) for st in seen), seen)
        self.assertIsNone(server.proc.poll(), "atrium exited with a request still in flight")

        # The in-flight request completes after the signal.
        s.sendall(b"67890")
        resp = reader.read_response()
        self.assertEqual(resp.status, 405, resp)
        self.assertEqual(resp.header("X-Request-Id"), "in-flight-1")
        self.assertProblem(resp, 405)
        self.assertEqual(resp.header("Connection", "").lower(), "close", resp)
        self.assertTrue(reader.wait_closed(10), "the connection stayed open during the drain")

        self.assertEqual(server.wait_exit(), 0, server.log_text())
        # The listener is gone.
        with self.assertRaises(OSError):
            connect(server.port, timeout=2).close()

    def test_idle_keep_alive_connections_do_not_delay_exit(self):
        # The drain timeout (30 s by default) is far beyond the bound: only closing idle connections fits in it.
        server = self.start_server()
        idle = []
        for _ in range(3):
            s = connect(server.port)
            self.addCleanup(s.close)
            reader = RawReader(s)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: e2e\r\n\r\n")
            self.assertEqual(reader.read_response().status, 200)
            idle.append(reader)
        never_sent = connect(server.port)  # accepted, nothing sent yet
        self.addCleanup(never_sent.close)

        self.assertEqual(server.stop(timeout=10), 0, server.log_text())
        for reader in idle:
            self.assertTrue(reader.wait_closed(5))

    def test_drain_timeout_bounds_a_stuck_request(self):
        # A client that never finishes its body cannot hold the process beyond server.drain_timeout_ms.
        server = self.start_server(env={"ATRIUM_SERVER_DRAIN_TIMEOUT_MS": "300"})
        s, reader = self.start_request_in_flight(server)
        server.send_signal(signal.SIGTERM)
        self.assertEqual(server.wait_exit(timeout=15), 0, server.log_text())
        self.assertTrue(reader.wait_closed(5))

    def test_ready_reports_draining_to_a_request_that_completes_during_the_drain(self):
        # A request whose body completes after the signal reaches the /ready handler: it must say 503, not 200.
        server = self.start_server()
        probe = connect(server.port)
        self.addCleanup(probe.close)
        reader = RawReader(probe)
        probe.sendall(b"GET /ready HTTP/1.1\r\nHost: e2e\r\n\r\n")
        self.assertEqual(reader.read_response().status, 200)
        probe.sendall(b"GET /ready HTTP/1.1\r\nHost: e2e\r\nContent-Length: 4\r\n\r\nab")
        wait_until_server_read_everything(self, server.port, probe)
        server.send_signal(signal.SIGTERM)
        poll_until(lambda: ready_while_draining(server.port) in (None, 503), timeout=10, message="draining")
        probe.sendall(b"cd")
        resp = reader.read_response()
        body = self.assertProblem(resp, 503)
        self.assertEqual(resp.header("Cache-Control"), "no-store")
        self.assertIn("shutting down", body["detail"])
        self.assertEqual(server.wait_exit(), 0, server.log_text())

    def test_request_with_partly_received_header_is_answered_during_the_drain(self):
        # The drain closes connections that are *between* requests. One whose request header has partly arrived
        # is mid-request: it gets its answer (the 503 of /ready), not a silent close.
        server = self.start_server()
        s, reader = self.start_request_in_flight(server)  # keeps the process draining while we look
        probe = connect(server.port)
        self.addCleanup(probe.close)
        probe_reader = RawReader(probe)
        probe.sendall(b"GET /ready HTTP/1.1\r\n")
        wait_until_server_read_everything(self, server.port, probe)
        server.send_signal(signal.SIGTERM)
        poll_until(lambda: ready_while_draining(server.port) in (None, 503), timeout=10, message="draining")
        try:
            probe.sendall(b"Host: e2e\r\n\r\n")
            resp = probe_reader.read_response()
        except (ConnectionError, BrokenPipeError) as e:
            self.fail(f"the drain closed a connection whose request header had partly arrived: {e}")
        finally:
            s.sendall(b"67890")
            self.assertEqual(reader.read_response().status, 405)
        self.assertProblem(resp, 503)
        self.assertEqual(server.wait_exit(), 0, server.log_text())


if __name__ == "__main__":
    unittest.main()
