"""Classic Dyna and MBPO are configurations of the one loop, and both learn on a tiny budget."""

import numpy as np
import pytest

from jaxdyna.config import resolve
from jaxdyna.sweep import run_sweep

SMALL_MODEL = dict(ensemble_size=3, num_elites=2, model_hidden=[32, 32], model_train_freq=250,
                   rollout_batch_size=1000, model_max_train=3000, model_max_epochs=5, model_batch_size=128)


@pytest.mark.parametrize("algo, extra", [
    ("dyna", dict(action_source="buffer", max_rollout_length=1, real_ratio=0.25, updates_per_step=4)),
    ("mbpo", dict(action_source="policy", max_rollout_length=3, rollout_start_epoch=1, rollout_end_epoch=5,
                  rollout_min_len=1, rollout_max_len=3, epoch_length=250, real_ratio=0.05,
                  updates_per_step=4, model_retain=2)),
])
@pytest.mark.slow
def test_learns_on_inverted_pendulum(algo, extra, tiny, random_return):
    cfg, hp = resolve({**tiny, "algo": algo, "total_steps": 2500, "warmup_steps": 500, "eval_every": 500,
                       "buffer_size": 5000, "target_entropy": -0.05, **SMALL_MODEL, **extra})
    res = run_sweep(cfg, [hp], [0, 1], batching="map")
    m = res.metrics
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
