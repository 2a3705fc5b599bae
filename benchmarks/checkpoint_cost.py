"""What a chunk's checkpoint costs the training loop: the seconds the loop waits per save.

The sweep runner checkpoints every group's state after each chunk (`jaxdyna/runner.py`). For
MBPO at the paper's hopper settings that state is about 0.65 GB per seed, most of it the model
buffer (100k rollouts x 15 steps x 4 retained rounds). This builds a state of exactly the
program's shapes for N vmapped seeds (random values in the large float arrays, so the writer
cannot compress them away, as in a late run whose buffers are full), then saves it repeatedly
into one checkpoint directory, alternating two ways:

* `sync`: the loop waits until the checkpoint is written (what the runner did before);
* `async`: the runner's own `_save` (orbax's asynchronous checkpointing): the loop waits only
  while the state is copied to the host, and the write overlaps the next chunk. Here the "next
  chunk" is a sleep of `--chunk-seconds`, so the write has time to finish, as in a real run
  whose chunk outlasts the save.

    python benchmarks/checkpoint_cost.py --seeds 8 --repeats 3 --out results/checkpoint_cost --name cpu
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _timing import load_average, md_header, median, positive_ints


def make_state(cfg, hp, seeds: int):
    """The training state of `cfg` for `seeds` vmapped seeds, its large float arrays random."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxdyna.config import as_arrays
    from jaxdyna.train import make_train

    prog = make_train(cfg, num_evals=1)
    hps = jax.tree_util.tree_map(lambda x: jnp.stack([x] * seeds), as_arrays(hp))
    abstract = jax.eval_shape(jax.vmap(prog.init), jax.random.split(jax.random.PRNGKey(0), seeds), hps)
    rng = np.random.default_rng(0)

    def fill(s):
        if jnp.issubdtype(s.dtype, jnp.floating) and s.size >= 1 << 16:
            return jnp.asarray(rng.standard_normal(s.shape, dtype=np.float32).astype(s.dtype))
        return jnp.zeros(s.shape, s.dtype)

    return jax.tree_util.tree_map(fill, abstract)


def measure(state, root: Path, repeats: int, chunk_seconds: float) -> dict:
    from jaxdyna.runner import _checkpointer, _save

    ckpt = _checkpointer(root)
    out = {"sync": [], "async": [], "async_wait_after_chunk": []}
    step = 0
    for _ in range(repeats):
        for mode in ("sync", "async"):
            step += 1
            t0 = time.perf_counter()
            _save(ckpt, step, state, {"chunk": step})
            if mode == "sync":
                ckpt.wait_until_finished()
                out["sync"].append(time.perf_counter() - t0)
                continue
            out["async"].append(time.perf_counter() - t0)
            time.sleep(chunk_seconds)                       # the next chunk runs meanwhile
            t1 = time.perf_counter()
            ckpt.wait_until_finished()                      # ~0 when the write finished within the chunk
            out["async_wait_after_chunk"].append(time.perf_counter() - t1)
    ckpt.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/mbpo/hopper.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--seeds", default="8", help="comma-separated vmapped seed counts (default 8)")
    ap.add_argument("--repeats", type=int, default=3, help="saves of each kind, alternating (default 3)")
    ap.add_argument("--chunk-seconds", type=float, default=30.0,
                    help="how long the stand-in for the next chunk runs after an async save (default 30)")
    ap.add_argument("--dir", default=None, help="where to write the checkpoints (default: a temporary directory)")
    ap.add_argument("--out", default="results/checkpoint_cost")
    ap.add_argument("--name", default="cpu")
    args = ap.parse_args(argv)
    seeds = positive_ints(ap, "--seeds", args.seeds)
    if args.repeats < 1 or args.chunk_seconds < 0:
        ap.error("--repeats must be >= 1 and --chunk-seconds >= 0")
    command = "python benchmarks/checkpoint_cost.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    import jax

    from jaxdyna.config import ConfigError, load_yaml, parse_set, resolve
    from jaxdyna.io import provenance, write_json, write_text

    try:
        cfg, hp = resolve({**load_yaml(args.config), **parse_set(args.set)})
    except ConfigError as e:
        ap.error(str(e))
    rows = []
    for n in seeds:
        state = make_state(cfg, hp, n)
        nbytes = sum(x.nbytes for x in jax.tree_util.tree_leaves(state))
        root = Path(tempfile.mkdtemp(prefix="ckpt-", dir=args.dir))
        try:
            t = measure(state, root / "c", args.repeats, args.chunk_seconds)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        del state
        rows.append({"seeds": n, "state_gb": nbytes / 1e9, **t,
                     "sync_median": median(t["sync"]), "async_median": median(t["async"]),
                     "load_average": load_average()})
        print(f"{n} seeds, {nbytes / 1e9:.2f} GB: sync {rows[-1]['sync_median']:.2f} s, "
              f"async {rows[-1]['async_median']:.2f} s per save", file=sys.stderr, flush=True)

    prov = provenance(command)
    result = {**prov, "config": args.config, "set": args.set, "repeats": args.repeats,
              "chunk_seconds": args.chunk_seconds, "rows": rows}
    out = Path(args.out)
    write_json(out / f"{args.name}.json", result)
    lines = md_header(f"Seconds the loop waits per checkpoint ({args.config})", command, prov)
    lines += ["", f"Medians of {args.repeats} saves of each kind, alternating, into one checkpoint directory "
              "(orbax, one kept). sync: until written; async: the runner's save, until the state is on the host "
              "(the write then overlaps the next chunk).", "",
              "| seeds | state GB | sync s | async s (loop waits) | sync / async | still writing after the chunk, s |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seeds']} | {r['state_gb']:.2f} | {r['sync_median']:.2f} | {r['async_median']:.3f} | "
                     f"{r['sync_median'] / max(r['async_median'], 1e-9):.0f}x | {max(r['async_wait_after_chunk']):.2f} |")
    write_text(out / f"{args.name}.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
