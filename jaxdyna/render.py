"""See the learned policy: a replay of one run's final policy from its checkpoint.

`jaxdyna render RUN_DIR [--seed N] [--config NAME]` restores the run's final state (the checkpoint
every `run` / `sweep` / `compare` keeps), plays one deterministic episode with its actor and writes
  * Brax envs: Brax's HTML viewer (`brax.io.html`: a self-contained page, no display needed);
  * Playground envs: an animated GIF (or MP4, by `--out x.mp4`, with ffmpeg) from MuJoCo's renderer, where an OpenGL
    context can be made (headless: EGL, the default the CLI sets when MUJOCO_GL is unset, or
    MUJOCO_GL=osmesa); elsewhere a one-line error saying so.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyna.config import ConfigError


def find_run(run_dir: Path, seed: int | None, config: str | None) -> tuple[dict, int, Path]:
    """(the run's summary entry, its row within its checkpoint part, that part's checkpoint dir)."""
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise ConfigError(f"RUN_DIR: {run_dir} has no summary.json (not a jaxdyna run, sweep or compare directory)")
    import json

    runs = json.loads(summary_path.read_text()).get("runs", [])
    pick = [r for r in runs if (seed is None or r["seed"] == seed) and (config is None or r["config"] == config)]
    if not pick:
        have = sorted({f"{r['config']} seed {r['seed']}" for r in runs})
        raise ConfigError(f"--seed/--config: no such run in {run_dir}; it has: {', '.join(have)}")
    if len({r["config"] for r in pick}) > 1:
        raise ConfigError(f"--config: {run_dir} holds several configs ({', '.join(sorted({r['config'] for r in pick}))}); "
                          "name one")
    run = pick[0]
    group_runs = [r for r in runs if r["group"] == run["group"]]
    row = group_runs.index(run)
    parts = sorted((run_dir / "checkpoints").glob(f"{run['group']}-p*"))
    if not parts:
        raise ConfigError(f"RUN_DIR: {run_dir} has no checkpoint for group {run['group']} "
                          "(the final parameters are kept in checkpoints/)")
    per_part = math.ceil(len(group_runs) / len(parts))
    return run, row % per_part, run_dir / "checkpoints" / f"{run['group']}-p{row // per_part}"


def final_actor(ckpt_dir: Path, row: int):
    """The actor parameters of row `row` in the latest checkpoint of one group part."""
    import orbax.checkpoint as ocp

    manager = ocp.CheckpointManager(ckpt_dir.resolve(), options=ocp.CheckpointManagerOptions(read_only=True),
                                    item_handlers={"state": ocp.StandardCheckpointHandler()})
    step = manager.latest_step()
    if step is None:
        raise ConfigError(f"RUN_DIR: the checkpoint {ckpt_dir} is empty")
    # onto this process's first device, whatever devices the run was saved from (e.g. several GPUs)
    here = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=here),
                                    manager.item_metadata(step)["state"])
    state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
    return jax.tree_util.tree_map(lambda x: jnp.asarray(np.asarray(x)[row]), state["agent"]["actor"])


def play(cfg, actor, key: jax.Array):
    """One deterministic episode (up to `episode_length` steps, until done): the env states and the return."""
    from jaxdyna.envs import make_env
    from jaxdyna.networks import deterministic_action
    from jaxdyna.sac import make_nets

    env = make_env(cfg.env, cfg.backend)
    nets = make_nets(cfg, env.action_size)

    def step(carry, _):
        state, alive, ret = carry
        nxt = env.step(state, deterministic_action(nets.actor, actor, state.obs[None])[0])
        ret = ret + alive * nxt.reward
        return (nxt, alive * (1.0 - nxt.done), ret), (state, alive)

    def episode(k):          # the reset inside the one program: run eagerly it is thousands of ops
        return jax.lax.scan(step, (env.reset(k), 1.0, 0.0), None, length=cfg.episode_length)

    (_, _, ret), (states, alive) = jax.device_get(jax.jit(episode)(key))
    n = int(np.sum(alive > 0))
    return env, [jax.tree_util.tree_map(lambda x: x[t], states) for t in range(n)], float(ret)    # NumPy slices


def render(run_dir: Path, seed: int | None, config: str | None, out: Path | None) -> tuple[Path, float, int]:
    """Write the replay; (its path, the episode's return, its length)."""
    from jaxdyna.config import load_yaml, resolve
    from jaxdyna.envs import is_playground
    from jaxdyna.io import atomic_path

    run, row, ckpt = find_run(run_dir, seed, config)
    values = load_yaml(run_dir / "groups" / run["group"] / "config.yaml")
    values = {k: v for k, v in values.items() if k not in ("seeds", "settings")}
    cfg, _ = resolve(values)
    actor = final_actor(ckpt, row)
    env, states, ret = play(cfg, actor, jax.random.PRNGKey(run["seed"]))
    stem = f"{run['config']}-seed{run['seed']}"
    if not is_playground(cfg.env):
        from brax.io import html

        path = out or run_dir / f"{stem}.html"
        page = html.render(env.sys.tree_replace({"opt.timestep": env.dt}), [s.pipeline_state for s in states])
        with atomic_path(path) as tmp:
            Path(tmp).write_text(page)
        return path, ret, len(states)
    try:
        frames = env.env.render(states, height=240, width=320)
    except Exception as e:       # noqa: BLE001 - no OpenGL context here: say so in one line
        raise ConfigError(f"render: MuJoCo cannot render on this machine ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                          "try MUJOCO_GL=egl or MUJOCO_GL=osmesa") from None
    path = out or run_dir / f"{stem}.gif"
    fps = round(1.0 / env.env.dt)
    with atomic_path(path) as tmp:
        if path.suffix == ".mp4":                   # needs the ffmpeg program
            import shutil

            if shutil.which("ffmpeg") is None:
                raise ConfigError("--out: writing MP4 needs the ffmpeg program; install it or write a .gif")
            import mediapy

            mediapy.write_video(str(tmp), frames, fps=fps)
        else:                                       # GIF with Pillow (no external program)
            from PIL import Image

            images = [Image.fromarray(np.asarray(f)) for f in frames]
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=round(1000 / fps), loop=0)
    return path, ret, len(states)
