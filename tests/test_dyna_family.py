"""Classic Dyna and MBPO are configurations of the one loop, both learn on a tiny budget, and the
sweep runner's calls give the one compiled program's numbers."""

import functools

import numpy as np
import pytest

from conftest import TINY
from jaxdyna.config import resolve
from jaxdyna.sweep import run_sweep

SMALL_MODEL = dict(ensemble_size=3, num_elites=2, model_hidden=[32, 32], model_train_freq=250,
                   rollout_batch_size=1000, model_max_train=3000, model_max_epochs=5, model_batch_size=128)
EXTRA = {"dyna": dict(action_source="buffer", max_rollout_length=1, real_ratio=0.25, updates_per_step=4),
         "mbpo": dict(action_source="policy", max_rollout_length=3, rollout_start_epoch=1, rollout_end_epoch=5,
                      rollout_min_len=1, rollout_max_len=3, epoch_length=250, real_ratio=0.05,
                      updates_per_step=4, model_retain=2)}
SEEDS = [0, 1]


def _values(algo: str) -> dict:
    """Two model refits per evaluation period (eval_every = 2 x model_train_freq)."""
    return {**TINY, "algo": algo, "total_steps": 2500, "warmup_steps": 500, "eval_every": 500,
            "buffer_size": 5000, "target_entropy": -0.05, **SMALL_MODEL, **EXTRA[algo]}


@functools.cache
def _one_program(algo: str) -> dict:
    """The runs as one compiled `train` (every period in one scan), seeds one after another."""
    cfg, hp = resolve(_values(algo))
    return run_sweep(cfg, [hp], SEEDS, batching="map").metrics


@pytest.mark.parametrize("algo", ["dyna", "mbpo"])
@pytest.mark.slow
def test_learns_on_inverted_pendulum(algo, random_return):
    m = _one_program(algo)
    final = m["eval_return"][:, -1]
    print(algo, "random", random_return, "curves", m["eval_return"])
    assert np.all(final > 5 * random_return), (final, random_return)
    # the model part really ran: a refit with elites, a filled model buffer, the scheduled length
    assert np.all(m["model_buffer_size"][:, -1] > 0)
    assert np.all(m["model_holdout_loss"][:, -1] < 0.5)
    assert m["model_elites"].shape[-1] == 2
    if algo == "mbpo":
        # the last refit of each period is at env step 750, 1250, 1750, 2250: training epochs of 250
        # steps after the 500 warm-up steps 1, 3, 5, 7; length = int(1 + clip((epoch - 1) / 4, 0, 1) * 2)
        np.testing.assert_array_equal(m["rollout_length"][0], [1, 2, 3, 3])
    else:
        assert np.all(m["rollout_length"] == 1)


@pytest.mark.slow
def test_the_sweep_runner_s_calls_give_the_one_program_numbers(tmp_path):
    """The sweep runner calls `chunk` once per model refit and `end_period` once per evaluation
    (no execution outlives a refit interval); every metric equals the one-program run's, bit for bit."""
    from jaxdyna.runner import _load_npz, run_plan
    from jaxdyna.sweepfile import plan_sweep

    plan = plan_sweep({"configs": [_values("mbpo")], "seeds": SEEDS, "chunk_evals": 2})
    assert plan.groups[0].cfg.chunks_per_eval == 2
    outcome = run_plan(plan, tmp_path / "out", "", "test", batching="map", show_progress=False)
    assert outcome.complete
    sweep = _load_npz(tmp_path / "out" / "groups" / "g00" / "metrics.npz")
    one = _one_program("mbpo")
    assert set(one) <= set(sweep)
    for k, v in one.items():
        np.testing.assert_array_equal(sweep[k], np.asarray(v), err_msg=k)
