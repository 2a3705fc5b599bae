"""The benchmark scripts' own logic: budgets, bad input, tables and plots (no timing here)."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import mbrl_lib_peer  # noqa: E402
import scaling  # noqa: E402


def test_one_period_times_chunks_after_the_warmup():
    v = scaling.one_period({"warmup_steps": 5000, "model_train_freq": 250, "eval_episodes": 10}, chunks=3)
    assert (v["eval_every"], v["total_steps"], v["eval_episodes"]) == (750, 5750, 1)
    assert scaling.one_period({"warmup_steps": 0}, chunks=1)["warmup_steps"] == 1   # never an empty warm-up


@pytest.mark.parametrize("argv, words", [
    (["--seeds", "0,2"], ["--seeds", "positive integers"]),
    (["--seeds", "a"], ["--seeds"]),
    (["--algos", "nosuch"], ["no config", "sac, dyna, mbpo, mve, steve"]),
    (["--set", "model_matmul=bf8"], ["model_matmul", "float32, bfloat16"]),
])
def test_scaling_refuses_bad_input_before_running(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        scaling.main(argv + ["--out", "unused"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert all(w in err for w in words), err


def test_peer_refuses_a_bad_variant_before_building_anything(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        mbrl_lib_peer.main(["--variant", "model_matmul=bf8", "--venv", str(tmp_path / "venv")])
    assert e.value.code == 2
    assert "model_matmul" in capsys.readouterr().err
    assert not (tmp_path / "venv").exists()


def test_scaling_table_and_plot(tmp_path):
    prov = {"git_revision": "abc", "device": "1x cpu", "versions": {"jax": "x"}}

    def c(sps, mem):
        return {"batching": "vmap", "env_steps_per_second": sps, "compile_seconds": 30.0,
                "device_peak_bytes": mem, "xla_planned_bytes": mem // 2, "peak_rss_bytes": 2**31}

    result = {"command": "python benchmarks/scaling.py", "provenance": prov, "env": "hopper", "algos": ["sac", "mbpo"],
              "seeds": [1, 2, 4], "overrides": {}, "chunks": 1, "repeats": 3, "complete": True,
              "cells": {"sac/1": c(100.0, 2**30), "sac/2": c(180.0, 2**31), "sac/4": c(300.0, 2**32),
                        "mbpo/1": c(10.0, 2**30), "mbpo/2": {"error": "RESOURCE_EXHAUSTED: out of memory"}}}
    scaling.save(result, tmp_path, "t", result["command"])
    table = (tmp_path / "t.md").read_text()
    assert "| sac | 4 | vmap | 300.0 | 75.0 | 3.00x | 30 | 4.00 | 2.00 | 2.00 |" in table
    assert "| mbpo | 2 | | failed: RESOURCE_EXHAUSTED: out of memory |" in table
    assert json.loads((tmp_path / "t.json").read_text())["cells"]["sac/2"]["env_steps_per_second"] == 180.0
    assert (tmp_path / "t.png").stat().st_size > 10_000
