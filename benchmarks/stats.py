"""Medians, spread and percentiles, and the tables the runner prints."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Figure", "Goal", "fmt_spread", "percentile", "render_table"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class Figure:
    """One measured quantity over repeated runs: median and spread (min..max)."""

    name: str
    unit: str
    runs: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        """Record one run."""
        self.runs.append(value)

    @property
    def median(self) -> float:
        """Median over the runs."""
        return statistics.median(self.runs) if self.runs else float("nan")

    def text(self, digits: int = 1) -> str:
        """``median [min-max] (n runs) unit``."""
        return fmt_spread(self.runs, self.unit, digits)

    def as_dict(self) -> dict[str, Any]:
        """For the JSON results file."""
        return {"unit": self.unit, "median": self.median, "runs": self.runs}


def fmt_spread(runs: Sequence[float], unit: str, digits: int = 1) -> str:
    """``12.3 ms [11.0-14.2, n=3]``."""
    if not runs:
        return "n/a"
    med = statistics.median(runs)
    if len(runs) == 1:
        return f"{med:.{digits}f} {unit} (n=1)"
    return f"{med:.{digits}f} {unit} [{min(runs):.{digits}f}-{max(runs):.{digits}f}, n={len(runs)}]"


@dataclass
class Goal:
    """One line of the summary table: a measured figure against its baseline and goal."""

    bench: str
    what: str
    measured: str
    baseline: str
    ratio: str
    goal: str
    met: bool | None

    def row(self) -> list[str]:
        """The table cells."""
        met = {True: "yes", False: "NO", None: "-"}[self.met]
        return [self.bench, self.what, self.measured, self.baseline, self.ratio, self.goal, met]


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table, padded so it also reads in a terminal."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return (
            "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=False)) + " |"
        )

    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)
