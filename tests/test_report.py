"""`jaxdyna report`: IQM / mean with bootstrap CIs, probability of improvement, steps to threshold,
merging directories, refusing conflicting duplicates, diverged runs left out (synthetic sweeps, no training)."""

import argparse
import csv
import json
import math

import numpy as np
import pytest
import scipy.stats

from jaxdyna import report as R
from jaxdyna.config import ConfigError

STEPS = [1000 * (k + 1) for k in range(10)]
HEADER = ["config", "algo", "env", "lr", "seed", "env_steps", "eval_return", "critic_loss", "alpha", "diverged"]
GOOD = ("mbpo/pendulum", "mbpo")  # reaches the threshold
BAD = ("sac/pendulum", "sac")  # never does
THRESHOLD = 500.0


def good_final(seed):
    return 1000.0 + 20.0 * seed ** 2


def good_curve(seed):
    """A ramp to good_final; seeds 0-2 dip to 0 at 7000 steps (first != sustained)."""
    r = [(k + 1) / 10 * good_final(seed) for k in range(10)]
    if seed < 3:
        r[6] = 0.0
    return r


def bad_curve(seed):
    return [(k + 1) / 10 * (100.0 + 10.0 * seed) for k in range(10)]


def rows_for(arm, seed, curve, diverged_from=None):
    config, algo = arm
    out = []
    for s, r in zip(STEPS, curve):
        nan = diverged_from is not None and s >= diverged_from  # the flag is per run, as the sweep writes it
        out.append([config, algo, "pendulum", "0.001", seed, s, "nan" if nan else r, 0.5, 0.1,
                    int(diverged_from is not None)])
    return out


def write_sweep(d, rows, complete=True, meta=True):
    d.mkdir(parents=True)
    with open(d / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    if meta:
        (d / "sweep.json").write_text(json.dumps({"swept_keys": ["lr"], "complete": complete, "grid": {}}))
    return d


@pytest.fixture
def dirs(tmp_path):
    a_rows = []
    for s in range(5):
        a_rows += rows_for(GOOD, s, good_curve(s)) + rows_for(BAD, s, bad_curve(s))
    a_rows += rows_for(BAD, 5, bad_curve(5), diverged_from=6000)  # diverged: NaN returns from 6000 on
    a = write_sweep(tmp_path / "host-a", a_rows)
    b_rows = [row for s in (5, 6, 7) for row in rows_for(GOOD, s, good_curve(s))]
    b_rows += rows_for(GOOD, 0, good_curve(0))  # an identical copy of a run in host-a: counted once
    b = write_sweep(tmp_path / "host-b", b_rows, complete=False, meta=True)
    return a, b


def run_report(dirs, out, *extra_threshold, reps=200):
    args = argparse.Namespace(dirs=[str(d) for d in dirs], out=str(out), threshold=list(extra_threshold) or None,
                              reps=reps, seed=0, command_line="jaxdyna report (test)")
    assert R.cmd_report(args) == 0
    return json.loads((out / "report.json").read_text())


def arm(report, algo):
    [a] = [a for a in report["envs"]["pendulum"]["arms"] if a["algo"] == algo]
    return a


def check_estimate(est, values):
    assert est["iqm"] == pytest.approx(scipy.stats.trim_mean(values, 0.25))
    assert est["mean"] == pytest.approx(np.mean(values))
    for stat in ("iqm", "mean"):
        lo, hi = est[f"{stat}_ci"]
        assert math.isfinite(lo) and math.isfinite(hi) and lo <= est[stat] <= hi and lo < hi


def test_report_single_dir(dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")     # recorded with the report
    out = tmp_path / "rep"
    rep = run_report(dirs[:1], out, f"{THRESHOLD}")
    json.loads((out / "report.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in report.json"))
    env = rep["envs"]["pendulum"]
    good, bad = arm(rep, "mbpo"), arm(rep, "sac")
    assert good["runs"] == 5 and bad["runs"] == 5 and good["settings"] == {"lr": "0.001"}
    check_estimate(good["final_return"], [good_final(s) for s in range(5)])
    check_estimate(bad["final_return"], [bad_curve(s)[-1] for s in range(5)])
    aucs = [np.trapezoid(good_curve(s), STEPS) / (STEPS[-1] - STEPS[0]) for s in range(5)]
    check_estimate(good["auc"], aucs)
    # steps to 500: first = ceil(5000 / final) evals; seeds 0-2 dip at 7000, so they sustain from 8000
    first = [1000 * math.ceil(5000 / good_final(s)) for s in range(5)]
    assert first == [5000, 5000, 5000, 5000, 4000]
    st = good["steps_to_threshold"]
    assert [st["first"]["per_run"][str(s)] for s in range(5)] == first
    assert [st["sustained"]["per_run"][str(s)] for s in range(5)] == [8000, 8000, 8000, 5000, 4000]
    assert (st["first"]["median"], st["first"]["reached"]) == (5000, 5)
    assert (st["sustained"]["median"], st["sustained"]["reached"]) == (8000, 5)
    bst = bad["steps_to_threshold"]
    assert bst["first"]["reached"] == 0 and bst["first"]["median"] is None
    # the better arm improves on the other with probability 1 (CI above 0.9)
    [p] = env["probability_of_improvement"]
    assert (p["x"], p["y"]) == (good["label"], bad["label"]) and p["p"] > 0.9 and p["ci"][0] > 0.9
    # the diverged run: listed, left out
    assert env["runs_used"] == 10
    [ex] = env["excluded"]
    assert ex["seed"] == 5 and "diverged" in ex["reason"] and "6000" in ex["reason"]
    assert env["threshold"]["value"] == THRESHOLD
    md = (out / "report.md").read_text()
    assert "excluded (diverged or non-finite return): 1" in md and "| 5 |" in md and "5000 (5/5)" in md
    assert "8000 (5/5)" in md and "never (0/5)" in md and "Provenance" in md and str(dirs[0]) in md
    assert "- compiler settings: XLA_FLAGS=--xla_cpu_multi_thread_eigen=false" in md
    for name in ("report.md", "report.json", "curves_pendulum.png", "profiles_pendulum.png",
                 "improvement_pendulum.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "curves_pendulum.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    # the IQM curve: one point per evaluation, IQM over the 5 seeds
    curve = good["curve"]
    assert curve["env_steps"] == STEPS
    assert curve["iqm"] == pytest.approx(scipy.stats.trim_mean(np.array([good_curve(s) for s in range(5)]),
                                                                 0.25, axis=0))


def test_merge_default_threshold_and_reproducible(dirs, tmp_path):
    rep = run_report(dirs, tmp_path / "r1")
    good = arm(rep, "mbpo")
    assert good["runs"] == 8 and good["seeds"] == list(range(8))  # 5 + 3 seeds; the identical copy once
    check_estimate(good["final_return"], [good_final(s) for s in range(8)])
    assert rep["inputs"][1]["duplicates"] == 1
    # default threshold: 90% of the best arm-mean final return
    best = np.mean([good_final(s) for s in range(8)])
    assert rep["envs"]["pendulum"]["threshold"]["value"] == pytest.approx(0.9 * best)
    assert "default" in rep["envs"]["pendulum"]["threshold"]["source"]
    # host-b is an incomplete sweep: flagged
    assert rep["incomplete"] == [str(dirs[1])] and good["from_incomplete_sweep"]
    assert "incomplete" in (tmp_path / "r1" / "report.md").read_text()
    # same seed, same numbers
    rep2 = run_report(dirs, tmp_path / "r2")
    assert arm(rep2, "mbpo")["final_return"] == good["final_return"]


def test_conflicting_duplicate_and_bad_dirs_refused(dirs, tmp_path):
    a, _ = dirs
    c = write_sweep(tmp_path / "host-c", rows_for(GOOD, 0, [x + 1 for x in good_curve(0)]))
    with pytest.raises(ConfigError) as e:
        R.load_runs([a, c])
    msg = str(e.value)
    assert "\n" not in msg and str(a) in msg and str(c) in msg and "seed 0" in msg
    with pytest.raises(ConfigError, match="no such directory"):
        R.load_runs([a, tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no metrics.csv"):
        R.load_runs([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="--threshold"):
        R.analyze(R.load_runs([a]), ["cartpole=3"])
    with pytest.raises(ConfigError, match="--threshold"):
        R.parse_thresholds(["abc"])


def test_inferred_swept_keys_and_legacy_run_dir(tmp_path):
    d = write_sweep(tmp_path / "nometa", rows_for(GOOD, 0, good_curve(0)), meta=False)
    [run] = R.load_runs([d]).runs
    assert run.settings == (("lr", "0.001"),) and run.seed == 0
    legacy = tmp_path / "sac-run"
    legacy.mkdir()
    (legacy / "config.yaml").write_text("algo: sac\nenv: pendulum\nseeds: [0, 1]\n")
    with open(legacy / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["setting", "seed", "env_steps", "eval_return", "critic_loss"])
        for seed in (0, 1):
            for s, r in zip(STEPS, bad_curve(seed)):
                w.writerow([0, seed, s, r, 0.1])
    table = R.load_runs([legacy, d])
    legacy_runs = [r for r in table.runs if r.config == "sac-run"]
    assert len(legacy_runs) == 2 and {r.algo for r in legacy_runs} == {"sac"}
    assert all(r.settings == () and r.excluded is None for r in legacy_runs)


def test_fast_statistics_equal_rliable():
    """The bootstrap resamples a sort-based IQM and a pair-counting P(X > Y): the same numbers as rliable's."""
    from rliable import metrics

    rng = np.random.default_rng(0)
    for n in (1, 4, 5, 8, 13):
        x = rng.normal(size=(n, 1))
        assert R.iqm(x) == pytest.approx(metrics.aggregate_iqm(x))
        curves = rng.normal(size=(n, 7))
        assert R.iqm(curves, axis=0) == pytest.approx(scipy.stats.trim_mean(curves, 0.25, axis=0))
    for nx, ny in ((5, 8), (3, 3), (6, 4)):
        x = rng.integers(0, 4, size=(nx, 1)).astype(float)  # ties
        y = rng.integers(0, 4, size=(ny, 1)).astype(float)
        assert R.poi_counts(x, y) == pytest.approx(metrics.probability_of_improvement(x, y))
    assert R.poi_counts(x, x) == 0.5


def test_cli_wiring(dirs, tmp_path):
    from jaxdyna import cli

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if "report" not in sub.choices:
        pytest.skip("`report` is not wired into jaxdyna.cli yet (add_report_parser)")
    out = tmp_path / "cli"
    assert cli.main(["report", str(dirs[0]), "--out", str(out), "--reps", "100", "--threshold", "pendulum=500"]) == 0
    assert (out / "report.md").stat().st_size > 0
    assert json.loads((out / "report.json").read_text())["provenance"]["command"].startswith("jaxdyna report")
    assert cli.main(["report", str(tmp_path / "missing")]) == 2


def test_design_space_heat_map(tmp_path):
    """Two swept keys -> one map: rows over the key with more values; cell = final IQM over seeds."""
    header = ["config", "algo", "env", "length", "source", "seed", "env_steps", "eval_return", "diverged"]
    rows = []
    final = {(1, "buffer"): 100.0, (1, "policy"): 900.0, (3, "buffer"): 300.0, (3, "policy"): 950.0,
             (5, "buffer"): 500.0, (5, "policy"): 1000.0}
    for (length, source), f in final.items():
        for seed in range(4):
            curve = [f * (k + 1) / 4 + seed for k in range(4)]   # seed offset 0..3: IQM adds 1.5
            rows += [["mbpo/ip", "mbpo", "ip", length, source, seed, 250 * (k + 1), r, 0] for k, r in enumerate(curve)]
    d = tmp_path / "sweep"
    d.mkdir()
    with open(d / "metrics.csv", "w", newline="") as f:
        csv.writer(f).writerows([header] + rows)
    (d / "sweep.json").write_text(json.dumps({"swept_keys": ["length", "source"], "complete": True}))
    table = R.load_runs([str(d)])
    analysis = R.analyze(table, ["ip=800"], reps=50)
    [m] = R.design_maps(analysis["envs"]["ip"]["arms"])
    assert m["row_keys"] == ["length"] and m["col_keys"] == ["source"]
    assert m["rows"] == ["length=1", "length=3", "length=5"] and m["cols"] == ["source=buffer", "source=policy"]
    expected = np.array([[final[(l, s)] + 1.5 for s in ("buffer", "policy")] for l in (1, 3, 5)])
    np.testing.assert_allclose(m["final_iqm"], expected)
    # sustained steps to 800: policy cells reach it at the last eval (900*1 >= 800) or earlier
    assert np.isinf(m["steps"][0, 0]) and m["steps"][2, 1] == 1000.0 and m["steps"][0, 1] == 1000.0
    report = R.write_report(tmp_path / "rep", table, analysis, "test", 50, 0)
    [fig] = [f for f in report["envs"]["ip"]["figures"] if f.startswith("design_")]
    assert (tmp_path / "rep" / fig).stat().st_size > 10_000
