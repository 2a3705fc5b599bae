"""What the speed benchmarks share: wall-clock timing of jitted calls and the machine's load."""

from __future__ import annotations

import os
import time

import jax
import numpy as np

from jaxdyna.io import describe_versions


def median(xs) -> float:
    return float(np.median(np.asarray(xs, float)))


def timed_call(fn, *args):
    """(result, wall seconds) of one call, waiting for the device."""
    t = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t


def timed(fn, *args, repeats: int):
    """(median, all) wall seconds of `repeats` calls of fn(*args), after one warm-up call."""
    jax.block_until_ready(fn(*args))
    ts = [timed_call(fn, *args)[1] for _ in range(repeats)]
    return median(ts), ts


def choice_list(ap, flag: str, text: str, allowed) -> list[str]:
    """A comma-separated list of names from `allowed`, or the parser's one-line error (exit 2)."""
    names = text.split(",")
    bad = [n for n in names if n not in allowed]
    if bad:
        ap.error(f"{flag}: unknown {', '.join(bad)}; allowed: {', '.join(allowed)}")
    return names


def positive_ints(ap, flag: str, text: str) -> list[int]:
    """A comma-separated list of positive integers, or the parser's one-line error (exit 2)."""
    try:
        values = [int(v) for v in text.split(",")]
        if min(values) < 1:
            raise ValueError
    except ValueError:
        ap.error(f"{flag}: expected positive integers separated by commas, got {text!r}")
    return values


def load_average() -> float:
    """1-minute load average (recorded beside timings: these machines are shared and noisy)."""
    return round(os.getloadavg()[0], 2)


def md_header(title: str, command: str, prov: dict) -> list[str]:
    """The first lines of a benchmark's Markdown table: title, command, revision, device, versions."""
    return [f"# {title}", "", f"Command: `{command}`  ",
            f"Git revision: `{prov['git_revision']}`; device: {prov['device']}; versions: "
            + describe_versions(prov)]
