"""How many threads the local model may use: affinity mask and container CPU quota."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import _local_model
from services._local_model import MiniLM, available_cpus, cgroup_cpu_limit


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", None), ("150000 100000\n", 1.5), ("50000 100000", 0.5)],
)
def test_cgroup_v2_quota(tmp_path: Path, cpu_max: str, expected: float | None) -> None:
    """``cpu.max`` is ``quota period`` in microseconds, or ``max`` when unlimited."""
    v2 = _write(tmp_path / "cpu.max", cpu_max)
    assert cgroup_cpu_limit(v2, tmp_path / "v1") == expected


@pytest.mark.parametrize(("quota", "expected"), [("200000", 2.0), ("-1", None)])
def test_cgroup_v1_quota(tmp_path: Path, quota: str, expected: float | None) -> None:
    """Without cgroup v2, the v1 CFS quota and period are read; -1 is unlimited."""
    _write(tmp_path / "v1" / "cpu.cfs_quota_us", quota)
    _write(tmp_path / "v1" / "cpu.cfs_period_us", "100000")
    assert cgroup_cpu_limit(tmp_path / "missing", tmp_path / "v1") == expected


def test_no_cgroup_files_means_no_limit(tmp_path: Path) -> None:
    """Outside a container (or unreadable files): no limit."""
    assert cgroup_cpu_limit(tmp_path / "missing", tmp_path / "v1") is None


@pytest.mark.parametrize(
    ("cpus", "limit", "expected"), [(8, None, 8), (8, 1.5, 2), (8, 0.3, 1), (2, 4.0, 2)]
)
def test_available_cpus_is_the_affinity_capped_by_the_quota(
    monkeypatch: pytest.MonkeyPatch, cpus: int, limit: float | None, expected: int
) -> None:
    """A fractional quota rounds up; at least one CPU; never more than the affinity mask."""
    monkeypatch.setattr(_local_model.os, "sched_getaffinity", lambda pid: set(range(cpus)))
    monkeypatch.setattr(_local_model, "cgroup_cpu_limit", lambda: limit)
    assert available_cpus() == expected


def test_model_threads_follow_a_container_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """threads=0 on a host with more cores than the process may use: one thread per usable CPU."""
    monkeypatch.setattr(_local_model.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(_local_model, "available_cpus", lambda: 1)
    model = MiniLM()
    assert model._session.get_session_options().intra_op_num_threads == 1
    assert model.encode(["a container-limited worker"]).shape == (1, 384)


def test_explicit_threads_win(monkeypatch: pytest.MonkeyPatch) -> None:
    """EMBEDDING_THREADS > 0 is used as given."""
    monkeypatch.setattr(_local_model, "available_cpus", lambda: 1)
    monkeypatch.setattr(_local_model.os, "cpu_count", lambda: 16)
    assert MiniLM(threads=3)._session.get_session_options().intra_op_num_threads == 3
