"""SAC learning curves: jaxdyna vs Brax's own SAC at matched settings, on Brax inverted_pendulum.

  PYTHONPATH=. python benchmarks/sac_learning.py [--seeds 0 1 2 3 4] [--total-steps 15000]
      [--eval-every 1000] [--eval-episodes 5] [--out results/sac_learning] [--quick]

The throughput benchmark (`sac_throughput.py`) says how fast each implementation updates; this one
says whether they learn alike. Both run with the settings of `sac_throughput.py` (generalized
backend, one env, batch 256, 1 gradient update per env step, (256, 256) relu MLPs, lr 3e-4,
gamma 0.99, tau 0.005, 1000 random warm-up steps, 100k replay, episode length 1000, automatic
entropy tuning) and the same evaluation: every `--eval-every` env steps, the mean return of
`--eval-episodes` deterministic episodes. Differences that remain are each library's defaults:
the initial temperature (both 1.0) and the entropy target (Brax: -0.5 * action size; jaxdyna is
set to the same here, -0.5).

Brax trains one seed per call (seeds one after another); jaxdyna runs all seeds as one compiled
program (`run_sweep(..., batching="map")`). Writes <out>/curves.json (every curve, settings,
provenance), <out>/inverted_pendulum.png and <out>/README.md. Needs the
`jax.device_put_replicated` shim in `benchmarks/_brax_compat.py` for Brax.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _brax_compat  # noqa: E402

from jaxdyna.config import resolve  # noqa: E402
from jaxdyna.io import describe_versions, provenance, write_json, write_text  # noqa: E402
from jaxdyna.results import plot_curves, steps_to_threshold  # noqa: E402
from jaxdyna.sweep import run_sweep  # noqa: E402
# the matched settings are the throughput benchmark's, defined once there
from sac_throughput import (BACKEND, BATCH, BUFFER, EPISODE_LENGTH, GAMMA, HIDDEN, LR, TAU, WARMUP,  # noqa: E402
                            run_brax_sac)

ENV = "inverted_pendulum"
TARGET_ENTROPY = -0.5     # Brax's SAC: -0.5 * action size (1 here)
THRESHOLD = 900.0


def brax_curves(seeds, total_steps: int, eval_every: int, eval_episodes: int) -> dict:
    curves, seconds = [], []
    for seed in seeds:
        points = []

        def progress(step, metrics):
            if "eval/episode_reward" in metrics:
                points.append((int(step), float(metrics["eval/episode_reward"])))
                print(f"  brax seed {seed}: env steps {int(step):6d}  eval return "
                      f"{float(metrics['eval/episode_reward']):7.1f}", flush=True)

        t = time.perf_counter()
        run_brax_sac(ENV, total_steps, num_evals=total_steps // eval_every + 1, num_eval_envs=eval_episodes,
                     seed=seed, progress_fn=progress)
        seconds.append(time.perf_counter() - t)
        curves.append(points)
    return {"curves": curves, "wall_seconds": seconds}


def our_curves(seeds, total_steps: int, eval_every: int, eval_episodes: int) -> dict:
    cfg, hp = resolve({"algo": "sac", "env": ENV, "backend": BACKEND, "total_steps": total_steps,
                       "warmup_steps": WARMUP, "eval_every": eval_every, "eval_episodes": eval_episodes,
                       "buffer_size": BUFFER, "batch_size": BATCH, "updates_per_step": 1,
                       "actor_hidden": list(HIDDEN), "critic_hidden": list(HIDDEN), "num_envs": 1,
                       "episode_length": EPISODE_LENGTH, "actor_lr": LR, "critic_lr": LR, "alpha_lr": LR,
                       "gamma": GAMMA, "tau": TAU, "target_entropy": TARGET_ENTROPY, "init_alpha": 1.0})
    res = run_sweep(cfg, [hp], seeds=list(seeds), batching="map",
                    progress_fn=lambda m: print(f"  jaxdyna: env steps {int(m['env_steps']):6d}  eval return "
                                                f"{float(m['eval_return']):7.1f}", flush=True))
    steps = res.metrics["env_steps"][0].astype(int).tolist()
    return {"curves": [list(zip(steps, r.astype(float).tolist())) for r in res.metrics["eval_return"]],
            "compile_seconds": res.compile_seconds, "run_seconds": res.run_seconds}


def _arrays(curves):
    steps = np.asarray([s for s, _ in curves[0]], float)
    return steps, np.asarray([[r for _, r in c] for c in curves], float)


def report(out: Path, doc: dict) -> None:
    rows = ["| implementation | seeds | final return per seed | final mean | seeds reaching 900 | "
            "env steps to 900 per seed |", "|---|---|---|---|---|---|"]
    curves = []
    for name, label in (("jaxdyna", "jaxdyna SAC"), ("brax", "Brax SAC")):
        steps, rets = _arrays(doc[name]["curves"])
        curves.append((label, steps, rets))
        hit = [steps_to_threshold(steps, r, THRESHOLD) for r in rets]
        rows.append(f"| {label} | {len(rets)} | {', '.join(f'{r[-1]:.0f}' for r in rets)} | {rets[:, -1].mean():.0f} | "
                    f"{sum(np.isfinite(hit))}/{len(hit)} | "
                    f"{', '.join('-' if not np.isfinite(h) else f'{int(h):,}' for h in hit)} |")
    prov = doc["provenance"]
    plot_curves(out / f"{ENV}.png", curves,
                title=f"SAC on Brax {ENV} at matched settings: jaxdyna vs Brax (mean, IQR band over seeds)",
                footer=f"{prov['command']}\n{prov['git_revision']} | {prov['device']}",
                hlines=[(THRESHOLD, "900")], xlabel="env steps (warm-up included)",
                ylabel="eval return (deterministic)", ylim=(-20, 1050))
    s = doc["settings"]
    text = f"""# SAC learning: jaxdyna vs Brax's own SAC at matched settings ({ENV})

![return vs env steps]({ENV}.png)

{chr(10).join(rows)}

Settings (both): {", ".join(f"{k} {val}" for k, val in s.items())}.
Evaluation: every {s['eval_every']} env steps, mean of {s['eval_episodes']} deterministic episodes
(Brax: `deterministic_eval=True`, `num_eval_envs={s['eval_episodes']}`).
Wall time: Brax {sum(doc['brax']['wall_seconds']):.0f} s for the seeds one after another; jaxdyna
compile {doc['jaxdyna']['compile_seconds']:.0f} s + run {doc['jaxdyna']['run_seconds']:.0f} s.

## Reading

{doc.get('reading') or '(none yet)'}

## Provenance

* command: `{prov['command']}`
* git revision: `{prov['git_revision']}`
* device: {prov['device']}
* versions: {describe_versions(prov)}
"""
    write_text(out / "README.md", text)
    print(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--total-steps", type=int, default=15000)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("results/sac_learning"))
    p.add_argument("--reading", default=None, help="with --report-only: text file for the reading section")
    p.add_argument("--report-only", action="store_true", help="rebuild README and plot from <out>/curves.json")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 3000 steps (default --out /tmp)")
    args = p.parse_args(argv)
    if args.report_only:
        import json

        doc = json.loads((args.out / "curves.json").read_text())
        if args.reading:
            doc["reading"] = Path(args.reading).read_text().strip()
            write_json(args.out / "curves.json", doc)
        report(args.out, doc)
        return 0
    if args.quick:
        args.seeds, args.total_steps = [0], 3000
        if args.out == p.get_default("out"):
            args.out = Path("/tmp/sac_learning_quick")
    if args.total_steps % args.eval_every:
        p.error("--total-steps must be a multiple of --eval-every")
    argv_rec = sys.argv[1:] if argv is None else list(argv)
    prov = provenance(shlex.join(["PYTHONPATH=.", "python", "benchmarks/sac_learning.py", *argv_rec]))
    _brax_compat.install()
    ours = our_curves(args.seeds, args.total_steps, args.eval_every, args.eval_episodes)
    brax = brax_curves(args.seeds, args.total_steps, args.eval_every, args.eval_episodes)
    settings = {"backend": BACKEND, "num_envs": 1, "batch_size": BATCH, "updates_per_step": 1,
                "hidden": list(HIDDEN), "lr": LR, "gamma": GAMMA, "tau": TAU, "target_entropy": TARGET_ENTROPY,
                "init_alpha": 1.0, "warmup_steps": WARMUP, "buffer_size": BUFFER, "episode_length": EPISODE_LENGTH,
                "total_steps": args.total_steps, "eval_every": args.eval_every, "eval_episodes": args.eval_episodes,
                "seeds": args.seeds}
    doc = {"settings": settings, "jaxdyna": ours, "brax": brax, "provenance": prov}
    write_json(args.out / "curves.json", doc)
    report(args.out, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
