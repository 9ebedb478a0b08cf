"""py-spy attached to a worker: record raw stacks, then summarise the top functions."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

__all__ = ["PySpy", "summarise"]


def _py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class PySpy:
    """``py-spy record --format raw`` on one pid for the duration of a ``with`` block."""

    def __init__(self, pid: int, out: Path, *, rate: int = 100) -> None:
        self.pid = pid
        self.out = out
        self.rate = rate
        self.proc: subprocess.Popen[bytes] | None = None
        self.error = ""

    def __enter__(self) -> PySpy:
        exe = _py_spy()
        if exe is None:
            self.error = "py-spy not installed (make bench installs it: the bench extra)"
            return self
        self.proc = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                str(self.rate),
                "--format",
                "raw",
                "--threads",
                "--nonblocking",
                "-o",
                str(self.out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self.out.with_suffix(".log")).open("wb"),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if not self.out.exists():
            self.error = self.out.with_suffix(".log").read_text(errors="replace")[-500:]


def _short(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``; thread frames kept."""
    if " (" not in frame:
        return frame
    func, where = frame.split(" (", 1)
    path = where.rstrip(")").split(":")[0]
    parts = Path(path).parts
    mod = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{func} ({mod})"


_OURS = ("agents/", "services/", "stores/", "streams/", "schemas/")


def summarise(
    raw: Path, *, top: int = 15
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]], list[tuple[str, float]]]:
    """(samples, by thread %, top self %, top inclusive % of ragstream's own functions)."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        if frames and frames[0].startswith(("thread", "process")):
            thread = frames[0]
            frames = frames[1:]
            if frames and frames[0].startswith("thread"):
                thread, frames = frames[0], frames[1:]
            threads[thread] += n
        short = [_short(f) for f in frames]
        if short:
            self_c[short[-1]] += n
        for f in set(short):
            if f.rpartition(" (")[2].startswith(_OURS):
                incl[f] += n

    def pct(c: Counter[str]) -> list[tuple[str, float]]:
        return [(k, 100.0 * v / max(total, 1)) for k, v in c.most_common(top)]

    return total, pct(threads), pct(self_c), pct(incl)
