"""The runtime image built from Debian packages alone (deploy/container/build-image.sh: mmdebstrap, buildah) runs
the binary under test: as a non-root user, answering /ready on SQLite and on the private PostgreSQL, passing its own
health check, and exiting 0 on SIGTERM after a clean drain (podman stop).

Run here with `--runtime runc` and lowered ulimits: the machines this suite runs on are VMs with
cgroup v1 in hybrid mode (crun refuses it) and without CAP_SYS_RESOURCE (podman's default RLIMIT_NOFILE of 1048576
cannot be set). None of that changes the image. A sanitizer build's leak check needs ptrace, which a container does
not grant, so leaks are checked by the rest of the suite, not in here (ASAN_OPTIONS=detect_leaks=0)."""

import json
import os
import shutil
import unittest
import uuid

from atrium_e2e import BINARY, REPO_ROOT, free_port, http_request, poll_until, run_tool, skip_or_fail, wait_for_binary
from postgres_test import PG_URL, with_database

RUN_FLAGS = ["--runtime", "runc", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
IMAGE = f"localhost/atrium-e2e:{uuid.uuid4().hex[:8]}"


def podman(*args, timeout=120, check=True):
    out = run_tool(["podman", *args], timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


class ContainerImageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.missing = [t for t in ("podman", "buildah", "mmdebstrap", "objdump", "runc") if shutil.which(t) is None]
        if cls.missing:
            return
        wait_for_binary()
        out = run_tool(["bash", os.path.join(REPO_ROOT, "deploy", "container", "build-image.sh"), "--binary", BINARY,
                        "--tag", IMAGE], timeout=900)
        if out.returncode != 0:
            raise AssertionError(f"build-image.sh failed:\n{out.stdout}\n{out.stderr}")

    @classmethod
    def tearDownClass(cls):
        if not cls.missing:
            podman("rmi", "-f", IMAGE, check=False)

    def setUp(self):
        if self.missing:
            skip_or_fail(self, f"{', '.join(self.missing)} not installed (scripts/setup.sh --test-tools)")

    def start(self, env, host_network=False):
        """Runs the image detached. By default as it ships (listening on 0.0.0.0:8080 inside, published on a free
        loopback port); with `host_network`, in the host's network on a free port, to reach the private PostgreSQL,
        which listens on the host's loopback only."""
        port = free_port()
        env = {"ATRIUM_SERVER_DRAIN_TIMEOUT_MS": "20000", "ASAN_OPTIONS": "detect_leaks=0", **env}
        args = ["run", "-d", *RUN_FLAGS]
        if host_network:
            env["ATRIUM_SERVER_LISTEN"] = f"127.0.0.1:{port}"
            args += ["--network", "host"]
        else:
            args += ["--publish", f"127.0.0.1:{port}:8080"]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        cid = podman(*args, IMAGE).stdout.strip()
        self.addCleanup(podman, "rm", "-f", cid, check=False)

        def ready():
            try:
                return http_request(port, "GET", "/ready", timeout=5).status == 200
            except OSError:
                return False
        try:
            poll_until(ready, timeout=90, interval=0.25, message="the container answering /ready with 200")
        except AssertionError:
            raise AssertionError("no 200 from /ready; container log:\n" + podman("logs", cid, check=False).stderr)
        return cid, port

    def stop_cleanly(self, cid):
        podman("stop", "-t", "60", cid, timeout=90)
        state = json.loads(podman("inspect", cid).stdout)[0]["State"]
        log = podman("logs", cid).stderr
        self.assertEqual(state["ExitCode"], 0, log)
        self.assertIn('"msg":"signal received","signal":15', log.replace(", ", ","))
        self.assertIn('"msg":"stopped"', log)
        self.assertNotIn("drain timeout reached", log)

    def test_image_runs_as_non_root_on_sqlite_and_stops_cleanly_on_sigterm(self):
        image = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
        config = image["Config"]
        self.assertEqual(config["User"], "10001:10001")
        self.assertEqual(config["Entrypoint"], ["/usr/local/bin/atrium"])
        self.assertEqual(config["Cmd"], ["serve"])
        self.assertEqual(config["StopSignal"], "SIGTERM")
        self.assertIn("/ready", " ".join(image["Healthcheck"]["Test"]))

        cid, port = self.start({})
        body = http_request(port, "GET", "/ready").json()
        self.assertEqual(body["database"], "sqlite")
        self.assertEqual(podman("exec", cid, "id", "-u").stdout.strip(), "10001")
        # The image's own health check (what Docker or podman runs on its interval).
        health = podman("healthcheck", "run", cid, check=False)
        self.assertEqual(health.returncode, 0, health.stdout + health.stderr)
        self.stop_cleanly(cid)

    def test_image_serves_on_postgres(self):
        if not PG_URL:
            skip_or_fail(self, "ATRIUM_TEST_POSTGRES_URL is not set")
        name = "e2e_img_" + uuid.uuid4().hex[:10]
        psql = ["psql", PG_URL, "-v", "ON_ERROR_STOP=1", "-qAtc"]
        self.assertEqual(run_tool([*psql, f"CREATE DATABASE {name}"]).returncode, 0)
        self.addCleanup(run_tool, [*psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
        cid, port = self.start({"ATRIUM_STORAGE_DATABASE_URL": with_database(PG_URL, name)}, host_network=True)
        self.assertEqual(http_request(port, "GET", "/ready").json()["database"], "postgres")
        self.stop_cleanly(cid)

    def test_image_holds_the_runtime_and_no_build_tools(self):
        out = podman("run", "--rm", *RUN_FLAGS, "--entrypoint", "dpkg-query", IMAGE, "-W", "-f", "${Package}\n")
        packages = set(out.stdout.split())
        for needed in ("libpq5", "libsqlite3-0", "libssl3", "libxgboost0", "ca-certificates", "tzdata", "curl"):
            self.assertIn(needed, packages)
        for absent in ("gcc", "g++", "cmake", "make", "apt", "libpq-dev", "nodejs"):
            self.assertNotIn(absent, packages)
        # Every library the binary needs resolves inside the image.
        ldd = podman("run", "--rm", *RUN_FLAGS, "--entrypoint", "ldd", IMAGE, "/usr/local/bin/atrium")
        self.assertNotIn("not found", ldd.stdout)


if __name__ == "__main__":
    unittest.main()
