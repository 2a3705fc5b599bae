import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Tiny settings shared by the tests: small networks and batches, short budgets.
TINY = dict(env="inverted_pendulum", backend="generalized", episode_length=1000, eval_episodes=4,
            batch_size=128, actor_hidden=[64, 64], critic_hidden=[64, 64])


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real `python -m jaxdyna` entry point."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "jaxdyna", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


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
