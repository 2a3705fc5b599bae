"""Atomic file writes and run provenance (command, git revision, device, versions)."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())      # mkstemp makes 0600; results are normal files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_writable_dir(path: str | os.PathLike, flag: str = "--out") -> None:
    """Raise a one-line ConfigError, before any work, when `path` cannot be an output directory."""
    from jaxdyna.config import ConfigError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag}: {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".jaxdyna-write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"{flag}: cannot write to {path}: {e.strerror or e}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def git_revision() -> str:
    """The git revision of the jaxdyna checkout (with '-dirty' if it has uncommitted changes).

    A copy of the tree without its .git folder (e.g. shipped to another machine to run a benchmark)
    can name its revision in the environment variable JAXDYNA_GIT_REVISION.
    """
    if os.environ.get("JAXDYNA_GIT_REVISION"):
        return os.environ["JAXDYNA_GIT_REVISION"]
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root,
                             capture_output=True, text=True, timeout=5).stdout.strip()
        if not rev:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model() -> str | None:
    """The CPU's model name (Linux: /proc/cpuinfo), None where it cannot be read: machines of one
    architecture differ (an AMD EPYC against an Intel Xeon with `avx512_bf16`), so CPU figures name it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return None


def device_description() -> str:
    import jax

    devs = jax.devices()
    kinds = sorted({d.device_kind for d in devs})
    desc = f"{len(devs)}x {'/'.join(kinds)} ({jax.default_backend()})"
    if jax.default_backend() == "cpu":
        desc += f", {os.cpu_count()} cores, {platform.processor() or platform.machine()}"
        model = cpu_model()
        if model:
            desc += f" ({model})"
    return desc


def provenance(command: str | None = None) -> dict[str, Any]:
    """Everything a committed figure must carry to be reproduced."""
    import jax

    versions = {"python": platform.python_version(), "jax": jax.__version__}
    for mod in ("jaxlib", "brax", "flax", "optax", "mujoco"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional dependency
            pass
    prov = {
        "command": command if command is not None else " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "git_revision": git_revision(),
        "device": device_description(),
        "versions": versions,
    }
    settings = compiler_settings()
    if settings:
        prov["settings"] = settings
    return prov


# Environment variables that change what XLA compiles (its speed, or its numbers). A figure made
# under any of them carries them; the compilation cache and similar bookkeeping are left out.
COMPILER_SETTINGS = ("XLA_FLAGS", "LIBTPU_INIT_ARGS", "JAX_ENABLE_X64", "JAX_DEFAULT_MATMUL_PRECISION",
                     "JAX_PLATFORMS", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION")


def compiler_settings() -> dict[str, str]:
    """The `COMPILER_SETTINGS` set in this process's environment (non-empty values only)."""
    return {k: os.environ[k].strip() for k in COMPILER_SETTINGS if os.environ.get(k, "").strip()}


def describe_settings(prov: dict) -> str:
    """'; settings: XLA_FLAGS=...' for a provenance made under compiler settings, else ''."""
    settings = prov.get("settings") or {}
    return "; settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()) if settings else ""


def describe_versions(prov: dict) -> str:
    """'python 3.11.7, jax 0.10.2, ...' and the compiler settings: a figure header's versions."""
    return ", ".join(f"{k} {v}" for k, v in prov["versions"].items()) + describe_settings(prov)
