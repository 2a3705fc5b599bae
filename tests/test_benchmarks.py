"""The benchmark scripts' own logic: budgets, bad input, tables and plots (no timing here)."""

import argparse
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import checkpoint_cost  # noqa: E402
import compile_time  # noqa: E402
import cpu_memory  # noqa: E402
import hopper_paper_run  # noqa: E402
import mbrl_lib_peer  # noqa: E402
import peer_floor  # noqa: E402
import physics_latency  # noqa: E402
import scaling  # noqa: E402


def _refuses(main, argv, words, capsys):
    """`main(argv)` exits 2 with a last stderr line that names every one of `words`."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert all(w in err for w in words), err


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
    _refuses(scaling.main, argv + ["--out", "unused"], words, capsys)


def test_peer_refuses_a_bad_variant_before_building_anything(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        mbrl_lib_peer.main(["--variant", "model_matmul=bf8", "--venv", str(tmp_path / "venv")])
    assert e.value.code == 2
    assert "model_matmul" in capsys.readouterr().err
    assert not (tmp_path / "venv").exists()


def test_peer_floor_refuses_a_missing_or_foreign_result(capsys, tmp_path):
    _refuses(peer_floor.main, ["--peer", str(tmp_path / "none.json"), "--out", str(tmp_path)], ["--peer"], capsys)
    (tmp_path / "half.json").write_text(json.dumps({"settings": {}, "runs": [{"side": "mbrl-lib", "run_s": 1.0}]}))
    _refuses(peer_floor.main, ["--peer", str(tmp_path / "half.json"), "--out", str(tmp_path)],
             ["--peer", "jaxdyna block", "0 and 1"], capsys)
    assert not list(tmp_path.glob("floor.*"))


@pytest.mark.parametrize("argv, words", [
    (["--devices", "1"], ["--devices", "at least 2"]),
    (["--runs", "3"], ["--runs", "multiple of --devices (2)"]),
    (["--modes", "one call per chunk,sometimes"], ["--modes", "'sometimes'", "one call per period"]),
    (["--periods", "0"], ["--periods", "positive"]),
    (["--config", "nosuch.yaml"], ["--config", "nosuch.yaml"]),
])
def test_cpu_memory_refuses_bad_input_before_running(argv, words, capsys, tmp_path):
    _refuses(cpu_memory.main, argv + ["--out", str(tmp_path)], words, capsys)
    assert not list(tmp_path.iterdir())


def test_cpu_memory_growth_is_the_peak_inside_the_round():
    samples = [(0.0, 1.0), (1.0, 1.5), (2.0, 3.0), (3.0, 2.5), (4.0, 9.0)]      # 9.0 GiB: after the round
    g = cpu_memory.growth(samples, base=1.0, start=0.5, end=3.5)
    assert g == pytest.approx({"peak_gib": 3.0, "growth_gib": 2.0, "mib_per_s": 2.0 * 1024 / 3.0})
    assert cpu_memory.growth([], base=1.0, start=0.0, end=1.0)["growth_gib"] == 0.0


def test_peer_floor_counts_a_block_by_hand():
    """Refits at 1,000 and 1,250 real rows (buffer 1,500: holdout 300 rows at most, 20% of the rows)."""
    from jaxdyna.config import resolve

    cfg, _ = resolve({"algo": "mbpo", "warmup_steps": 1000, "total_steps": 1500, "model_train_freq": 250,
                      "model_batch_size": 100, "model_holdout_ratio": 0.2, "model_max_holdout": 5000,
                      "eval_every": 250})
    unit = {"sac_update": 2e9, "model_step": 1e9, "holdout_row": 1e6, "imagination": 5e9}
    rates = {"sac": 100e9, "fit": 50e9, "imagination": 10e9}
    b = peer_floor.block_floor(cfg, unit, rates, {"seed": 0, "run_s": 7.804, "model_epochs": [3, 2],
                                                  "sac_updates": 100})
    # refit 0: 200 holdout rows, ceil(800 / 100) = 8 steps; refit 1: 250 rows, 10 steps
    fit = 3 * (8 * 1e9 + 200 * 1e6) + 2 * (10 * 1e9 + 250 * 1e6)
    assert b["gflop"] == pytest.approx({"sac": 200.0, "fit": fit / 1e9, "imagination": 10.0})
    assert b["floor_s"] == pytest.approx(2.0 + fit / 50e9 + 1.0)
    assert b["run_over_floor"] == pytest.approx(7.804 / (3.0 + fit / 50e9))


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


@pytest.mark.parametrize("argv, words", [
    (["--algos", "mbpo,ppo"], ["--algos", "ppo", "mbpo, sac"]),
    (["--time-limit", "60,60,60"], ["--time-limit", "one per algo (2)"]),
    (["--time-limit", "0"], ["--time-limit", "positive duration"]),
    (["--seeds", "0"], ["--seeds"]),
    (["--set", "model_matmul=bf8"], ["model_matmul", "float32, bfloat16"]),
    (["--env", "nosuch"], ["--env", "no config"]),
])
def test_paper_run_refuses_bad_input_before_running(argv, words, capsys, tmp_path):
    _refuses(hopper_paper_run.main, argv + ["--out", str(tmp_path / "out")], words, capsys)
    assert not (tmp_path / "out").exists()


def _paper_result(mbpo_returns, sac_returns):
    """Two seeds each; MBPO evaluated at 5k..15k env steps, SAC at 5k..25k."""
    def algo(name, returns, complete):
        steps = [5000 * (i + 1) for i in range(len(returns[0]))]
        return {"algo": name, "config": f"configs/{name}/hopper.yaml", "overrides": {}, "seeds": 2,
                "total_steps": 125000, "warmup_steps": 5000, "complete": complete, "wall_seconds": 100.0, "compile_seconds": 40.0,
                "run_seconds": 60.0, "period_seconds": [20.0] * len(steps), "env_steps": steps,
                "eval_return": returns, "device_peak_bytes": 3 * 2**30}

    return {"command": "python benchmarks/hopper_paper_run.py", "seeds": 2, "env": "hopper",
            "provenance": {"git_revision": "abc", "device": "1x gpu", "versions": {"jax": "x", "brax": "y"}},
            "algos": {"mbpo": algo("mbpo", mbpo_returns, False), "sac": algo("sac", sac_returns, True)}}


def test_paper_run_reading_is_the_env_step_ratio_at_sacs_best_median():
    # SAC medians per eval: 100, 300, 500, 450, 400 -> best 500 at 15k; MBPO medians 200, 600, 900 -> 10k
    r = _paper_result([[100, 500, 800], [300, 700, 1000]],
                      [[50, 200, 400, 400, 300], [150, 400, 600, 500, 500]])
    text = hopper_paper_run.reading(r)
    assert "500" in text and "15,000" in text and "10,000" in text and "1.5x fewer env steps" in text
    r = _paper_result([[100, 200, 300], [100, 200, 300]], [[50, 200, 400, 400, 300], [150, 400, 600, 500, 500]])
    assert "did not reach it within the 15,000 env steps" in hopper_paper_run.reading(r)


def test_paper_run_table_labels_a_partial_run(tmp_path):
    r = _paper_result([[100, 500, 800], [300, 700, 1000]], [[50, 200, 400, 400, 300], [150, 400, 600, 500, 500]])
    r["algos"]["mbpo"]["model_epochs"] = [[10, 6, 30], [20, 6, 30]]
    hopper_paper_run.save(r, tmp_path, "t")
    table = (tmp_path / "t.md").read_text()
    assert "model epochs per refit (the last refit of each period): 6-30, median 15; the seeds' mean is 1.00" in table
    assert "**partial: 15,000 of 125,000 env steps**" in table and "- sac (`configs/sac/hopper.yaml`): complete" in table
    assert "| 10,000 | 600 [550, 650] | 20.0 | 300 [250, 350] | 20.0 |" in table
    assert "| 25,000 |  |  | 400 [350, 450] | 20.0 |" in table
    assert json.loads((tmp_path / "t.json").read_text())["reading"].startswith("SAC's best median return is 500")
    assert (tmp_path / "t.png").stat().st_size > 10_000


def test_physics_latency_refuses_bad_input_and_tables_failures(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        physics_latency.main(["--backends", "generalized,bullet", "--out", str(tmp_path)])
    assert e.value.code == 2 and "bullet" in capsys.readouterr().err
    result = {"command": "python benchmarks/physics_latency.py", "env": "hopper", "steps": 200, "repeats": 5,
              "complete": True, "provenance": {"git_revision": "abc", "device": "1x gpu", "versions": {"jax": "x"}},
              "cells": [{"backend": "generalized", "batch": 8, "steps": 200, "compile_seconds": 12.3,
                         "call_seconds": [0.5], "ms_per_step": 2.5, "env_steps_per_second": 3200.0,
                         "ops": {"step": {"all": 5803, "while": 5, "scatter": 84, "gather": 100},
                                 "reset": {"all": 5206, "while": 3, "scatter": 54, "gather": 96}}},
                        {"backend": "mjx", "batch": 1, "error": "ImportError: no mujoco.mjx"}]}
    physics_latency.save(result, tmp_path, "t")
    table = (tmp_path / "t.md").read_text()
    assert "| generalized | 8 | 2.500 | 3200 | 12.3 | — |" in table and "| mjx | 1 | failed: ImportError" in table
    text = "%0 = stablehlo.while(%a) ... stablehlo.while ... \"stablehlo.scatter\"(%1) ... stablehlo.gather"
    assert physics_latency.step_ops(text) == {"while": 2, "scatter": 1, "gather": 1}
    assert physics_latency.stablehlo_ops(text) == {"all": 1, "while": 2, "scatter": 1, "gather": 1}
    assert "| generalized | 8 | 5803 (5 / 84 / 100) | 5206 (3 / 54 / 96) |" in table


@pytest.mark.parametrize("argv, words", [
    (["--seeds", "0"], ["--seeds", "positive integers"]),
    (["--config", "configs/mbpo/nosuch.yaml"], ["nosuch.yaml"]),
    (["--set", "model_matmul=bf8"], ["model_matmul", "float32, bfloat16"]),
    (["--repeats", "0"], ["--repeats"]),
])
def test_checkpoint_cost_refuses_bad_input(argv, words, capsys):
    _refuses(checkpoint_cost.main, argv + ["--out", "unused"], words, capsys)


def test_checkpoint_cost_times_both_ways_of_saving(tmp_path):
    assert checkpoint_cost.main(["--config", str(ROOT / "configs/sac/inverted_pendulum.yaml"), "--seeds", "2",
                                 "--repeats", "2", "--chunk-seconds", "0", "--dir", str(tmp_path),
                                 "--out", str(tmp_path / "out"), "--name", "t"]) == 0
    row = json.loads((tmp_path / "out" / "t.json").read_text())["rows"][0]
    assert row["seeds"] == 2 and row["state_gb"] > 0
    assert len(row["sync"]) == len(row["async"]) == 2 and all(t > 0 for t in row["sync"] + row["async"])
    assert "| 2 |" in (tmp_path / "out" / "t.md").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]          # the checkpoints were removed


def test_paper_run_slowest_seed_share_is_mean_over_max_epochs():
    # two refits: epochs (10, 20) -> 15/20; (6, 6) -> 1; median of 0.75 and 1.0
    assert hopper_paper_run.slowest_seed_share([[10, 6], [20, 6]]) == pytest.approx(0.875)
    assert hopper_paper_run.slowest_seed_share([[10, 6]]) is None          # one seed: nothing to wait for
    assert hopper_paper_run.slowest_seed_share([]) is None


def test_a_benchmark_table_header_names_the_compiler_settings():
    from _timing import md_header

    prov = {"git_revision": "abc", "device": "1x cpu", "versions": {"jax": "x"}}
    assert md_header("T", "cmd", prov)[-1] == "Git revision: `abc`; device: 1x cpu; versions: jax x"
    prov["settings"] = {"XLA_FLAGS": "--xla_gpu_enable_command_buffer="}
    assert md_header("T", "cmd", prov)[-1].endswith("versions: jax x; settings: XLA_FLAGS=--xla_gpu_enable_command_buffer=")


def test_compile_time_sums_xla_pass_times_over_modules_and_units():
    log = "\n".join([
        "I1128 hlo_pass_pipeline.cc:303] Running HLO pass pipeline on module jit_a: simplification",
        "I1128 hlo_pass_pipeline.cc:176] HLO pass: algsimp time: 1.5 s (1500000 us) (cumulative: 2 s, max: 1 s, #called: 3)",
        "I1128 hlo_pass_pipeline.cc:176] HLO pass: dce time: 250 us (250 us) (cumulative: 2 s, max: 1 s, #called: 4)",
        "I1128 hlo_pass_pipeline.cc:303] Running HLO pass pipeline on module jit_b: simplification",
        "I1128 hlo_pass_pipeline.cc:176] HLO pass: algsimp time: 20 ms (20000 us) (cumulative: 2 s, max: 1 s, #called: 5)",
        "I1128 hlo_pass_pipeline.cc:176] HLO pass: fusion time: 0.75 s (750000 us) (cumulative: 3 s, max: 1 s, #called: 6)",
        "unrelated line: HLO pass: nothing"])
    got = compile_time.pass_seconds(log)
    assert list(got) == ["algsimp", "fusion", "dce"]
    assert got["algsimp"] == pytest.approx(1.52) and got["fusion"] == pytest.approx(0.75)
    assert got["dce"] == pytest.approx(250e-6)


def test_compile_time_programs_table_takes_medians_and_sums_the_cpu(tmp_path):
    def run(scale):
        return {p: {"trace_lower_seconds": 1.0 * scale, "compile_seconds": 2.0 * scale, "compile_cpu": 3.0 * scale}
                for p in compile_time.PROGRAMS}
    result = {"env": "inverted_pendulum", "seeds": 2, "repeats": 3, "algos": {"mbpo": [run(1), run(2), run(10)]},
              "provenance": {"command": "c", "git_revision": "r", "device": "cpu", "versions": {}}}
    compile_time.save_programs(result, argparse.Namespace(out=str(tmp_path), name="x"), "c")
    row = next(line for line in (tmp_path / "x_programs.md").read_text().splitlines() if line.startswith("| mbpo"))
    assert row == "| mbpo | 2.0 / 4.0 / 6.0 | 2.0 / 4.0 / 6.0 | 2.0 / 4.0 / 6.0 | 18.0 |"
    assert json.loads((tmp_path / "x_programs.json").read_text())["algos"]["mbpo"][1]["chunk"]["compile_cpu"] == 6.0


def test_gpu_session_script_skips_what_does_not_fit_its_budget(tmp_path):
    """The prepared GPU command: an unknown verb is refused with exit 2; with no budget left every
    step is skipped, said so in the log, and the run still ends cleanly."""
    import os
    import subprocess

    script = ["bash", str(ROOT / "benchmarks" / "gpu_session.sh")]
    bad = subprocess.run(script + ["start"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "fetch|run" in bad.stderr
    env = {**os.environ, "OUT": str(tmp_path), "GPU_SESSION_BUDGET": "0", "PYTHON": sys.executable,
           "GPU_SESSION_WHEELS": str(tmp_path / "no_wheels")}
    run = subprocess.run(script + ["run"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    log = (tmp_path / "gpu_session.log").read_text()
    for variant in ("off", "default", "loops"):
        assert f"skipped physics latency ({variant})" in log
    assert "skipped the Hopper run" in log and "brax" in log
