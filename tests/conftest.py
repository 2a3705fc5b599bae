import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# One persistent compilation cache for the whole session (in-process and the CLI subprocesses):
# the same tiny program compiled by several tests, or by a killed and resumed sweep, compiles once.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / "jaxdyna-test-xla-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# Several test workers may share one GPU: none takes most of its memory up front (no effect on CPU).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# Tiny settings shared by the tests: small networks and batches, short budgets.
TINY = dict(env="inverted_pendulum", backend="generalized", episode_length=1000, eval_episodes=4,
            batch_size=128, actor_hidden=[64, 64], critic_hidden=[64, 64])


@functools.cache
def _compiled_reset():
    import jax

    from jaxdyna.envs import env_reset

    return jax.jit(env_reset, static_argnums=(0, 2))


def reset_envs(env, key, num_envs: int):
    """`jaxdyna.envs.env_reset`, compiled. Run eagerly, a reset is thousands of ops dispatched (and,
    with a compilation cache, compiled and stored) one by one: a hopper reset took 27 s cold
    against 7 s as one program, an inverted_pendulum one 12.8 against 3.5 s."""
    return _compiled_reset()(env, key, num_envs)


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `python -m jaxdyna` entry point (`env` adds environment variables)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "jaxdyna", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def pytest_xdist_auto_num_workers(config):
    """Workers for `-n auto` (pyproject's addopts): one per core, at most 4. Most of the suite's time
    is XLA compiling one program at a time on one core; two workers on 2 cores take a first run
    (empty compilation cache) from 21 to 15-18 minutes (README, "The two commands"). Past 4,
    `--dist loadfile` leaves workers idle behind test_sweep.py while each holds a JAX process
    (about 2 GiB at its peak). PYTEST_XDIST_AUTO_NUM_WORKERS overrides; `-n 0` runs in this process."""
    forced = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    return int(forced) if forced else max(1, min(4, len(os.sched_getaffinity(0))))


# The files that take longest with an empty compilation cache (a machine's first run), longest
# first: they start first, and the short files fill in beside them at the end of a parallel run.
LONGEST_FIRST = ("test_sweep.py", "test_playground.py", "test_value_expansion.py", "test_train.py",
                 "test_cli.py", "test_model.py", "test_dyna_family.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))     # stable: file order kept within


@pytest.fixture(scope="session")
def tiny():
    return dict(TINY)


@pytest.fixture(scope="session")
def random_return():
    """Mean return of the uniform random policy on the tiny env (32 episodes)."""
    import jax

    from jaxdyna.envs import evaluate, make_env

    env = make_env(TINY["env"], TINY["backend"])
    policy = lambda obs, key: jax.random.uniform(key, (obs.shape[0], env.action_size), minval=-1, maxval=1)
    ret, _ = jax.jit(lambda k: evaluate(env, policy, k, 32, TINY["episode_length"]))(jax.random.PRNGKey(7))
    return float(ret)
