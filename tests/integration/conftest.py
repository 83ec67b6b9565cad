"""Fixtures: a real distorchd per test (sim devices, 1 s grace period) and
real client processes. On failure the daemon's log and the workers' stderr
are printed (pytest shows them under "Captured stdout teardown")."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Callable, Iterator, List

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
for path in (os.path.join(REPO, "client_py"), os.path.join(REPO, "tests", "tools")):
    if path not in sys.path:
        sys.path.insert(0, path)

from distorch_test_daemon import TestDaemon, find_binary  # noqa: E402
from harness import Worker  # noqa: E402


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


def _failed(request) -> bool:
    return any(getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
               for when in ("setup", "call"))


@pytest.fixture(scope="session", autouse=True)
def _binaries() -> None:
    if not find_binary("DISTORCHD", "distorchd") or not find_binary("DISTORCHCTL", "distorchctl"):
        pytest.skip("distorchd/distorchctl not built (set DISTORCHD and DISTORCHCTL)")
    if not os.path.exists(os.path.join(REPO, "client_py", "distorch", "v1", "broker_pb2.py")):
        pytest.skip("Python stubs not generated: build the distorch_python_stubs target")


def _start_daemon(request, **kwargs) -> Iterator[TestDaemon]:
    daemon = TestDaemon(**kwargs)
    try:
        daemon.start()
        yield daemon
    finally:
        rc = daemon.stop()
        if _failed(request) or rc != 0:
            print(f"\n--- distorchd log ({daemon.log_path}) ---\n{daemon.log()[-20000:]}")
        daemon.cleanup()
    assert rc == 0, f"distorchd exited with {rc} on SIGTERM (log above)"


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "daemon_config(**kwargs): TestDaemon arguments for "
                                       "this test's daemon (devices, grace_period_s, "
                                       "load_threads, extra_config)")


@pytest.fixture
def daemon(request) -> Iterator[TestDaemon]:
    """A fresh distorchd: sim:0=1GiB, sim:1=1GiB, cpu; grace period 1 s
    (override with @pytest.mark.daemon_config(...))."""
    marker = request.node.get_closest_marker("daemon_config")
    yield from _start_daemon(request, **(marker.kwargs if marker else {}))


@pytest.fixture
def scratch() -> Iterator[str]:
    """A temporary folder for model files (removed afterwards)."""
    path = tempfile.mkdtemp(prefix="dt-models-", dir=os.environ.get("DISTORCH_TEST_TMP", "/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def workers(request, daemon) -> Iterator[Callable[..., List[Worker]]]:
    """spawn(n, prefix="p") starts n client processes on the daemon (in
    parallel: each imports torch) and waits until all are connected."""
    started: List[Worker] = []
    log_dir = tempfile.mkdtemp(prefix="dt-logs-", dir="/tmp")

    def spawn(n: int = 1, prefix: str = "p", socket_path: str = "") -> List[Worker]:
        batch = [Worker(socket_path or daemon.socket, f"{prefix}{len(started) + i + 1}", log_dir)
                 for i in range(n)]
        started.extend(batch)
        for w in batch:
            w.wait_ready()
        return batch

    try:
        yield spawn
    finally:
        for w in started:
            w.stop()
        if _failed(request):
            for w in started:
                text = w.stderr()
                if text:
                    print(text)
        shutil.rmtree(log_dir, ignore_errors=True)
