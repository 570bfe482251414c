"""Is the machine quiet enough to time on? The load average against the core count.

Timings taken while other jobs share the cores are not speed figures: contention slows
torch's and OpenVINO's thread pools by different amounts, so even the ratios move (the
README's old "2.1x" was measured at a load average of 5-8 on 2 cores). The benchmarks call
:func:`check_quiet` before every timed run; a run that starts above the core count is
flagged ``contended`` in their output and JSON, and a warning is printed.
"""

from __future__ import annotations

import os
import sys


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> float:
    """The 1-minute load average (0.0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def check_quiet(what: str = "this run") -> tuple[float, bool]:
    """(load average, quiet): warn on stderr when the load average exceeds the core count."""
    load, n = load_average(), cores()
    quiet = load <= n
    if not quiet:
        print(
            f"WARNING: load average {load:.2f} > {n} cores before {what}: the machine is "
            "busy, so its timings are contended (labelled so); rerun on a quiet machine.",
            file=sys.stderr, flush=True,
        )
    return load, quiet
