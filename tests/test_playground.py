"""MuJoCo Playground (DM Control suite) as a second env source, through the same loop and CLI."""

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import reset_envs, run_cli

pytest.importorskip("mujoco_playground", reason="the playground extra is not installed: pip install -e \".[playground]\"")

from jaxdyna.config import ConfigError, resolve  # noqa: E402
from jaxdyna.envs import env_step, make_env  # noqa: E402
from jaxdyna.termination import known_rule  # noqa: E402

TASK = "playground/CartpoleSwingup"


@pytest.mark.slow
def test_time_limit_keeps_the_true_next_observation():
    env = make_env(TASK)
    assert (env.observation_size, env.action_size) == (5, 1)
    es = reset_envs(env, jax.random.PRNGKey(0), 2)
    step = jax.jit(lambda es, a: env_step(env, es, a, episode_length=3))
    push = jnp.ones((2, 1))
    seen = []
    for _ in range(4):
        es, tr, ended = step(es, push)
        seen.append((tr, np.asarray(ended), es))
    tr, ended, after = seen[2]                     # the third step hits the limit
    assert np.all(~np.isnan(ended)) and np.all(np.asarray(tr.terminal) == 0)
    assert np.all(np.asarray(after.steps) == 0)
    # the stored successor is the physics' next state, not the reset observation that replaced it
    assert not np.allclose(np.asarray(tr.next_obs), np.asarray(after.brax.obs))
    np.testing.assert_allclose(np.asarray(tr.obs), np.asarray(seen[1][0].next_obs))
    np.testing.assert_array_equal(np.asarray(seen[3][0].obs), np.asarray(after.brax.obs))


def test_dmc_tasks_never_terminate_and_unknown_tasks_are_refused():
    assert float(known_rule(TASK)(jnp.full((3, 5), 1e6)).max()) == 0.0
    with pytest.raises(ConfigError, match="Playground tasks: .*playground/CheetahRun"):
        resolve({"algo": "sac", "env": "playground/CheetahWalk"})
    with pytest.raises(ConfigError, match="oracle"):
        resolve({"algo": "mbpo", "env": TASK, "model": "oracle"})


@pytest.mark.slow
def test_cli_runs_a_playground_task_on_two_devices_and_a_seed_alone_equals_it(tmp_path):
    """Two seeds on two forced CPU devices, one each (MJX's state holds zero-size arrays, which XLA
    keeps replicated: the programs must take them so), then seed 1 alone on one device."""
    common = ["--set", "algo=sac", "--set", f"env={TASK}", "--set", "total_steps=500", "--set", "warmup_steps=300",
              "--set", "eval_every=100", "--set", "eval_episodes=2", "--set", "episode_length=100",
              "--set", "actor_hidden=[16]", "--set", "critic_hidden=[16]", "--set", "batch_size=32", "--quiet"]
    both = run_cli("run", *common, "--seeds", "2", "--out", str(tmp_path / "both"),
                   env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert both.returncode == 0, both.stderr
    assert "Failed to import" not in both.stdout + both.stderr
    alone = run_cli("run", *common, "--seed0", "1", "--seeds", "1", "--out", str(tmp_path / "alone"))
    assert alone.returncode == 0, alone.stderr

    def curve(path, seed):
        rows = [r for r in csv.DictReader((path / "metrics.csv").open()) if r["seed"] == str(seed)]
        return [(r["env_steps"], r["eval_return"], r["critic_loss"]) for r in rows]

    got = curve(tmp_path / "both", 1)
    assert [s for s, _, _ in got] == ["400", "500"] and all(float(r) > 0 for _, r, _ in got)
    assert got == curve(tmp_path / "alone", 1)
    assert curve(tmp_path / "both", 0) != got
    # the final policy replayed by MuJoCo's renderer: a GIF where OpenGL (EGL) works, else one clear line
    shown = run_cli("render", str(tmp_path / "both"), "--seed", "1")
    if shown.returncode == 0:
        from PIL import Image

        gif = Image.open(tmp_path / "both" / "sac-seed1.gif")
        assert gif.n_frames == 100 and gif.size == (320, 240)       # the whole 100-step episode
    else:
        assert shown.returncode == 2 and "cannot render" in shown.stderr and "Traceback" not in shown.stderr
