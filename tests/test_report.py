"""Aggregation checked by hand; the report end to end on a real sweep, finished and half-finished."""

import math

import numpy as np
import pandas as pd
import pytest

from orchestrator.aggregate import aggregate, describe, rank, synthesis


def test_describe_matches_hand_computed_values():
    d = describe(pd.Series([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert d["n"] == 5 and d["mean"] == 3.0 and d["median"] == 3.0 and d["min"] == 1.0 and d["max"] == 5.0
    assert d["std"] == pytest.approx(math.sqrt(2.5))
    assert d["iqr"] == pytest.approx(2.0)
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4) * s / sqrt(n)
    assert d["ci95_low"] == pytest.approx(3 - half) and d["ci95_high"] == pytest.approx(3 + half)
    one = describe(pd.Series([0.7]))
    assert one["n"] == 1 and one["mean"] == 0.7 and math.isnan(one["std"]) and math.isnan(one["ci95_low"])


def _table():
    rows = []
    for config, (model, strategy, lr), accs, losses in [
        ("a", ("m1", "head", 0.1), [0.80, 0.90, 0.85], [0.5, 0.4, 0.45]),
        ("b", ("m1", "head", 0.01), [0.86, 0.84, 0.85], [0.41, 0.43, 0.42]),
        ("c", ("m1", "finetune", 0.1), [0.70, 0.72, 0.74], [0.9, 0.8, 0.7]),
    ]:
        for seed, (acc, loss) in enumerate(zip(accs, losses)):
            rows.append(
                {
                    "config": config,
                    "model": model,
                    "strategy": strategy,
                    "lr": lr,
                    "batch_size": 32,
                    "epochs": 5,
                    "seed": seed,
                    "status": "finished",
                    "val_accuracy": acc,
                    "val_loss": loss,
                }
            )
    rows.append({**rows[0], "seed": 9, "status": "pending", "val_accuracy": None, "val_loss": None})
    return pd.DataFrame(rows)


def test_aggregate_rank_and_synthesis_on_a_fixed_table():
    agg = aggregate(_table(), ["val_accuracy", "val_loss"])
    a = agg.set_index("config")
    assert a.loc["a", "seeds"] == 3  # the pending trial is not counted
    assert a.loc["a", "val_accuracy_mean"] == pytest.approx(0.85)
    assert a.loc["a", "val_accuracy_std"] == pytest.approx(0.05)
    assert a.loc["b", "val_accuracy_std"] == pytest.approx(0.01)
    assert a.loc["c", "val_loss_median"] == pytest.approx(0.8)
    ranked = rank(agg)
    assert list(ranked["config"]) == ["b", "a", "c"]  # a and b tie at 0.85: the lower std wins
    assert list(rank(agg, "val_loss")["config"]) == ["b", "a", "c"]  # lower loss is better
    synth = synthesis(agg)
    assert list(zip(synth["strategy"], synth["config"])) == [("head", "b"), ("finetune", "c")]
    assert synth.loc[0, "val_accuracy"] == "0.8500 ± 0.0100"


def test_report_end_to_end_on_a_real_sweep(digits_sweep, tmp_path):
    from PIL import Image

    from orchestrator import report
    from orchestrator import sweep as sw
    from orchestrator.cli import main

    sweep = sw.load(digits_sweep[1].url)
    out = tmp_path / "report"
    assert main(["report", sweep.url, "--out", str(out)]) == 0
    for name in ["trials", "aggregates", "synthesis", "test", "test_aggregates", "per_class"]:
        assert (out / f"{name}.csv").exists() and (out / f"{name}.parquet").exists()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 9 and "confusion_best.png" in pngs and "lr_batch_heatmaps.png" in pngs
    for p in out.glob("*.png"):
        with Image.open(p) as im:
            im.load()
            assert im.size[0] > 100
    trials = pd.read_parquet(out / "trials.parquet")
    finished = trials[trials["status"] == "finished"]
    assert (finished["emissions_kg"] > 0).all() and (finished["energy_kwh"] > 0).all()
    synth = pd.read_parquet(out / "synthesis.parquet")
    md = (out / "summary.md").read_text()
    for _, row in synth.iterrows():
        assert f"{row['val_accuracy_mean']:.4f} ± {row['val_accuracy_std']:.4f}" in md
    test = pd.read_parquet(out / "test.parquet")
    seeds = len(finished[finished["config"] == synth.loc[0, "config"]])
    assert len(test) == seeds and test["test_accuracy"].between(0, 1).all()
    per_class = pd.read_parquet(out / "per_class.parquet")
    assert len(per_class) == 10 * seeds and set(per_class.columns) >= {"class", "precision", "recall", "f1", "support"}
    page = (out / "report.html").read_text()
    assert page.count("<table") == 5 and page.count("data:image/png;base64,") == 9
    assert all(key in page for key in trials["trial"])
    r = report.build(sweep, evaluate=False)
    assert np.isclose(r.carbon["emissions_kg"], finished["emissions_kg"].sum())


def test_report_on_a_half_finished_sweep_says_what_is_missing(digits_sweep, tmp_path):
    from orchestrator import report
    from orchestrator import sweep as sw

    stored = sw.load(digits_sweep[1].url)
    bigger = sw.Sweep(stored.url, stored.config, sw.expand(stored.config.model_copy(update={"seeds": 5})))
    r = report.build(bigger)
    missing = len(bigger.trials) - len(stored.trials)
    assert r.counts["pending"] == missing > 0 and r.counts["finished"] == len(stored.trials)
    out = report.write(bigger, r, str(tmp_path / "half"))
    md = (tmp_path / "half" / "summary.md").read_text()
    assert out.endswith("half") and f"**Incomplete**: {missing} trials have not finished" in md
    assert len(pd.read_parquet(tmp_path / "half" / "trials.parquet")) == len(bigger.trials)
