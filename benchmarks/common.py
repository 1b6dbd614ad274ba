"""Shared helpers for the pyndis ratio benchmarks.

Theory of operation
-------------------
Absolute timings mean little across machines, so every pyndis benchmark reports a *ratio* to a
pure-Python floor measured in the same run: a loop that pops a preallocated ``__slots__`` object
from a list and appends it back (the least a descriptor pool can do per allocate+free). Each
timing is the median of several repeats of a whole loop, timed with ``time.perf_counter``.
Memory per object comes from ``tracemalloc``: allocate N objects, divide the growth by N.

The API is small on purpose; a benchmark script needs only:

* ``parse_args(description)``: the common options (``--json``, ``--iterations``,
  ``--repeats``, ``--count``);
* ``floor_ns(iterations, repeats)`` and ``lock_floor_ns(...)``: ns per iteration of the floor
  loop, without and with a ``threading.Lock`` taken around the pop/append;
* ``median_ns(loop, iterations, repeats)``: ns per iteration of ``loop(iterations)``;
* ``bytes_per_object(make, count)``: average bytes traced while ``make(count)`` builds and
  keeps ``count`` objects;
* ``Result`` rows and ``report(title, results, as_json, **meta)`` to print a table or JSON.

Never import this from tests: benchmarks are run by hand, tests never assert timings.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


class Slotted:
    """The floor's descriptor: a tiny ``__slots__`` object."""

    __slots__ = ("a", "b")

    def __init__(self) -> None:
        self.a = 0
        self.b = None


def floor_loop(iterations: int) -> None:
    """The pure-Python floor: pop a preallocated slotted object and append it back."""
    free = [Slotted() for _ in range(4)]
    pop = free.pop
    append = free.append
    for _ in range(iterations):
        obj = pop()
        append(obj)


def lock_floor_loop(iterations: int) -> None:
    """The floor with a ``threading.Lock`` acquired and released around each pop/append."""
    free = [Slotted() for _ in range(4)]
    pop = free.pop
    append = free.append
    lock = threading.Lock()
    acquire = lock.acquire
    release = lock.release
    for _ in range(iterations):
        acquire()
        try:
            obj = pop()
            append(obj)
        finally:
            release()


def median_ns(loop: Callable[[int], object], iterations: int, repeats: int = 5) -> float:
    """Median over ``repeats`` runs of ``loop(iterations)``, in ns per iteration.

    One short warm-up run comes first. The garbage collector is paused while timing.
    """
    loop(max(1, iterations // 20))
    samples = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            loop(iterations)
            samples.append((time.perf_counter() - start) / iterations * 1e9)
    finally:
        if enabled:
            gc.enable()
    return statistics.median(samples)


def floor_ns(iterations: int, repeats: int = 5) -> float:
    """ns per iteration of :func:`floor_loop` (median of repeats)."""
    return median_ns(floor_loop, iterations, repeats)


def lock_floor_ns(iterations: int, repeats: int = 5) -> float:
    """ns per iteration of :func:`lock_floor_loop` (median of repeats)."""
    return median_ns(lock_floor_loop, iterations, repeats)


def bytes_per_object(make: Callable[[int], object], count: int) -> float:
    """Bytes traced per object while ``make(count)`` builds ``count`` objects and keeps them.

    ``make`` must return something that keeps the objects alive (it is dropped afterwards);
    whatever containers it uses are counted too.
    """
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = make(count)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del kept
    return (after - before) / count


@dataclass
class Result:
    """One row of a report."""

    name: str
    ns_per_op: float
    ratio_to_floor: float
    bytes_per_object: float | None = None
    note: str = ""


def report(title: str, results: list[Result], as_json: bool = False, **meta: Any) -> str:
    """Render ``results`` as a text table (or JSON with ``meta``), print it, and return it."""
    if as_json:
        text = json.dumps(
            {
                "benchmark": title,
                "python": platform.python_version(),
                "machine": platform.machine(),
                **meta,
                "results": [asdict(r) for r in results],
            },
            indent=2,
        )
    else:
        width = max(len(r.name) for r in results)
        lines = [
            title,
            ", ".join(f"{k}={v}" for k, v in meta.items()),
            f"{'operation':<{width}}  {'ns/op':>9}  {'x floor':>8}  {'B/object':>9}  note",
        ]
        for r in results:
            size = f"{r.bytes_per_object:9.0f}" if r.bytes_per_object is not None else " " * 9
            lines.append(
                f"{r.name:<{width}}  {r.ns_per_op:9.1f}  {r.ratio_to_floor:8.2f}  {size}  {r.note}"
            )
        text = "\n".join(lines)
    print(text)
    return text


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    """The options every ratio benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--iterations", type=int, default=200_000, help="loop iterations")
    parser.add_argument("--repeats", type=int, default=5, help="repeats (the median is kept)")
    parser.add_argument("--count", type=int, default=10_000, help="objects for the memory probe")
    return parser.parse_args(argv)


__all__ = [
    "Result",
    "Slotted",
    "bytes_per_object",
    "floor_loop",
    "floor_ns",
    "lock_floor_loop",
    "lock_floor_ns",
    "median_ns",
    "parse_args",
    "report",
]
