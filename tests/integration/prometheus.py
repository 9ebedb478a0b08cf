"""A real Prometheus server (Debian's ``prometheus`` package) for the metrics tests.

Started on loopback on a free port with temp storage, scraping the given targets every
second and evaluating the repo's alert rules (``deploy/prometheus/alerts.yml``).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from ragstream.devstack import free_port

__all__ = ["ALERTS", "Prometheus"]

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


class Prometheus:
    """``prometheus`` as a child process, and PromQL over its HTTP API."""

    def __init__(self, root: Path, *, targets: list[str], job: str = "ragstream") -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: apt-get install -y prometheus")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": job,
                    "scrape_timeout": "900ms",
                    "static_configs": [{"targets": targets}],
                }
            ],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self._log = (root / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = root / "prometheus.log"

    async def wait_ready(self, timeout_s: float = 60) -> None:
        """Poll ``/-/ready`` until Prometheus serves queries."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                assert self.process.poll() is None, self.log_path.read_text()
                try:
                    if (await http.get(f"{self.url}/-/ready")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"prometheus not ready:\n{self.log_path.read_text()}")
                await asyncio.sleep(0.2)  # poll interval, bounded by the deadline

    async def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(f"{self.url}/api/v1/query", params={"query": promql})
        body = response.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    async def value(self, promql: str) -> float | None:
        """The single value of a query (None when the vector is empty)."""
        result = await self.query(promql)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    async def until(self, promql: str, expected: float, *, timeout_s: float = 60) -> float:
        """Poll ``promql`` until it equals ``expected``; its last value otherwise (assert)."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = await self.value(promql)
            if got == expected:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{promql} = {got}, expected {expected} within {timeout_s}s")
            await asyncio.sleep(0.5)  # poll interval, bounded by the deadline

    async def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending or firing) from the loaded rules."""
        async with httpx.AsyncClient(timeout=5) as http:
            body = (await http.get(f"{self.url}/api/v1/alerts")).json()
        return list(body["data"]["alerts"])

    def stop(self) -> None:
        """Terminate Prometheus."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
