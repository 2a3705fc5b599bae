"""SAC through the one compiled loop: it learns, it is deterministic, vmap does not change a seed."""

import jax
import numpy as np
import pytest

from jaxdyna.config import as_arrays, resolve, stack_hparams
from jaxdyna.sweep import batched, run_keys
from jaxdyna.train import make_train

SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def sac(tiny):
    cfg, hp = resolve({**tiny, "total_steps": 4000, "warmup_steps": 500, "eval_every": 875,
                       "buffer_size": 10_000, "target_entropy": -0.05})
    prog = make_train(cfg)
    keys, hps = run_keys(np.array(SEEDS)), stack_hparams([hp] * len(SEEDS))
    program = jax.jit(batched(prog.train, "map"))
    _, metrics = program(keys, hps)
    return cfg, hp, prog, program, keys, hps, jax.tree_util.tree_map(np.asarray, metrics)


@pytest.fixture(scope="module")
def first_period(sac):
    """The first evaluation period as a program of its own, jitted for one run alone (compiled once,
    shared by the tests below)."""
    cfg, *_ = sac
    short = make_train(cfg, num_evals=1)
    return short, jax.jit(short.train)


def test_sac_beats_random_policy_for_every_seed(sac, random_return):
    cfg, *_, metrics = sac
    rand = random_return
    final = metrics["eval_return"][:, -1]
    print("random policy return", rand, "final returns", final)
    assert rand < 50, rand                      # at random the pole falls within a few dozen steps
    assert np.all(final > 3 * rand), (final, rand)
    np.testing.assert_array_equal(metrics["env_steps"][0], [1375, 2250, 3125, 4000])


def test_same_seed_twice_gives_identical_metrics(sac):
    *_, batched, keys, hps, metrics = sac
    _, again = batched(keys, hps)
    for k, v in metrics.items():
        np.testing.assert_array_equal(np.asarray(again[k]), v, err_msg=k)


def test_seed_in_batch_matches_seed_alone(sac, first_period):
    """Seed 1's first period run alone equals its first period in the batch of three, bit for bit
    (whole curves, solo against sweep: tests/test_sweep.py)."""
    cfg, hp, *_, metrics = sac
    _, alone = first_period[1](run_keys(np.array([1]))[0], as_arrays(hp))
    for k, v in alone.items():
        np.testing.assert_array_equal(np.asarray(v), metrics[k][1][:1], err_msg=k)


@pytest.mark.slow
def test_vmapped_seed_matches_alone_to_rounding(sac, first_period):
    """Under vmap a seed's first period matches the seed alone up to float rounding (XLA's batched
    CPU kernels round differently), far closer than another seed; bit-exact is `map` (above)."""
    cfg, hp, *_ = sac
    short, alone_program = first_period
    keys, hps = run_keys(np.array(SEEDS)), stack_hparams([hp] * len(SEEDS))
    vm_state, vm = jax.jit(jax.vmap(short.train))(keys, hps)
    alone_state, alone = alone_program(keys[2], as_arrays(hp))
    for k in ("critic_loss", "actor_loss", "q_mean", "alpha"):
        np.testing.assert_allclose(np.asarray(vm[k][2]), np.asarray(alone[k]), rtol=1e-3, err_msg=k)

    def max_diff(a, b):
        return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                   for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))

    seed_of = lambda i: jax.tree_util.tree_map(lambda x: x[i], vm_state.agent.actor)
    to_alone = max_diff(seed_of(2), alone_state.agent.actor)
    to_other_seed = max_diff(seed_of(2), seed_of(1))
    assert to_alone < 0.05 * to_other_seed, (to_alone, to_other_seed)
