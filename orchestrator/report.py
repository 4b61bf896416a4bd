"""``orchestrator report``: distributions over seeds, test-set results of the best configurations, carbon, and
the tables, plots, Markdown and one self-contained HTML file that hold them.

Works on a running or interrupted sweep: it reports what has finished and says what is missing.
"""

from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from orchestrator import plots
from orchestrator.aggregate import AXES, aggregate, rank, synthesis
from orchestrator.results import COLUMNS, collect, counts
from workers import storage

TEST_METRICS = ["test_loss", "test_accuracy", "test_balanced_accuracy", "test_macro_f1", "test_weighted_f1"]


@dataclass
class Report:
    trials: pd.DataFrame
    aggregates: pd.DataFrame
    synthesis: pd.DataFrame
    test: pd.DataFrame  # one row per evaluated trial
    test_aggregates: pd.DataFrame
    per_class: pd.DataFrame
    confusion: np.ndarray | None
    classes: list[str]
    counts: dict
    carbon: dict
    figures: dict[str, bytes] = field(default_factory=dict)


def _evaluate_best(sweep, trials: pd.DataFrame, ranked: pd.DataFrame, top_k: int | None):
    """Test-set metrics for every seed of the best configuration of each (model, strategy), or the top k."""
    from workers.evaluate import evaluate_trial

    chosen = ranked.head(top_k) if top_k else ranked.groupby(["model", "strategy"], sort=False).head(1)
    by_key = {t.key: t for t in sweep.trials}
    rows, per_class, confusion, classes = [], [], None, []
    for rank_pos, config in enumerate(chosen["config"]):
        done = trials[(trials["config"] == config) & (trials["status"] == "finished")]
        for _, trial in done.iterrows():
            m = evaluate_trial(by_key[trial["trial"]].as_dict(), sweep.url, "test")
            rows.append(
                {
                    "config": config,
                    "trial": trial["trial"],
                    "name": trial["name"],
                    "seed": trial["seed"],
                    **{c: trial[c] for c in AXES},
                    **{f"test_{k}": m[k] for k in ("loss", "accuracy", "balanced_accuracy", "macro_f1", "weighted_f1")},
                }
            )
            per_class += [
                {"config": config, "seed": trial["seed"], "model": trial["model"], "strategy": trial["strategy"], **c}
                for c in m["per_class"]
            ]
            if rank_pos == 0:  # the best configuration overall: its confusion matrix, summed over seeds
                cm = np.asarray(m["confusion"])
                confusion = cm if confusion is None else confusion + cm
                classes = [c["class"] for c in m["per_class"]]
    return pd.DataFrame(rows), pd.DataFrame(per_class), confusion, classes


def _carbon(trials: pd.DataFrame) -> dict:
    energy = float(trials["energy_kwh"].fillna(0).astype(float).sum())
    train = float(trials["train_seconds"].fillna(0).astype(float).sum())
    lost = float(trials["lost_seconds"].fillna(0).astype(float).sum())
    return {
        "energy_kwh": energy,
        "emissions_kg": float(trials["emissions_kg"].fillna(0).astype(float).sum()),
        "lost_seconds": lost,
        # Training time re-done after interruptions, as a share of all training time (and so of its energy).
        "lost_share": lost / (train + lost) if train + lost > 0 else 0.0,
    }


def build(sweep, metric: str = "val_accuracy", top_k: int | None = None, evaluate: bool = True) -> Report:
    trials = collect(sweep.url, sweep.trials)
    agg = aggregate(trials)
    ranked = rank(agg, metric) if len(agg) else agg
    synth = synthesis(agg, metric) if len(agg) else agg
    test, per_class, cm, classes = (pd.DataFrame(), pd.DataFrame(), None, [])
    if evaluate and len(agg):
        test, per_class, cm, classes = _evaluate_best(sweep, trials, ranked, top_k)
    test_agg = aggregate(test.assign(status="finished"), TEST_METRICS) if len(test) else pd.DataFrame()
    report = Report(trials, ranked, synth, test, test_agg, per_class, cm, classes, counts(trials), _carbon(trials))
    if len(agg):
        report.figures = {
            "val_loss_distribution.png": plots.distribution(trials, "val_loss", "Final validation loss across seeds"),
            "val_accuracy_distribution.png": plots.distribution(trials, "val_accuracy", "Validation accuracy, seeds"),
            "init_loss_distribution.png": plots.distribution(trials, "init_loss", "Loss at initialisation (epoch 0)"),
            "init_accuracy_distribution.png": plots.distribution(trials, "init_accuracy", "Accuracy at initialisation"),
            "loss_vs_accuracy.png": plots.loss_vs_accuracy(trials),
            "lr_batch_heatmaps.png": plots.heatmaps(agg),
            "learning_curves.png": plots.learning_curves(trials),
            "carbon.png": plots.carbon(trials),
        }
        if cm is not None:
            report.figures["confusion_best.png"] = plots.confusion(
                cm, classes, "Best configuration, test set, all seeds"
            )
    return report


# ---------------------------------------------------------------- writing


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4f}" if v == 0 or abs(v) >= 0.01 else f"{v:.4g}"  # learning rates such as 1e-05 stay readable
    return str(v)


def _md_table(frame: pd.DataFrame, columns: list[str]) -> str:
    cols = [c for c in columns if c in frame]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame[cols].itertuples(index=False)]
    return "\n".join(lines)


def markdown(sweep, r: Report, top: int = 10) -> str:
    c, missing = r.counts, r.counts["pending"] + r.counts["running"] + r.counts["interrupted"]
    parts = [
        f"# Sweep report: {sweep.config.name}",
        f"`{sweep.url}` · {len(r.trials)} trials · generated {time.strftime('%Y-%m-%d %H:%M:%S')}",
        "States: " + ", ".join(f"{k} {v}" for k, v in c.items()),
    ]
    if missing or c["failed"]:
        parts.append(
            f"**Incomplete**: {missing} trials have not finished and {c['failed']} failed; the figures "
            "below use the finished trials only."
        )
    parts += [
        "## Synthesis (best configuration per model and strategy, mean ± std over seeds)",
        _md_table(r.synthesis, AXES + ["seeds", "val_loss", "val_accuracy"]),
    ]
    parts += [
        f"## Top {top} configurations",
        _md_table(
            r.aggregates.head(top),
            ["rank"]
            + AXES
            + [
                "seeds",
                "val_accuracy_mean",
                "val_accuracy_std",
                "val_accuracy_ci95_low",
                "val_accuracy_ci95_high",
                "val_loss_mean",
                "val_loss_std",
            ],
        ),
    ]
    if len(r.test_aggregates):
        parts += [
            "## Test set (best configurations, every seed, from their best checkpoints)",
            _md_table(
                r.test_aggregates,
                AXES
                + [
                    "seeds",
                    "test_loss_mean",
                    "test_loss_std",
                    "test_accuracy_mean",
                    "test_accuracy_std",
                    "test_macro_f1_mean",
                    "test_weighted_f1_mean",
                ],
            ),
        ]
    cb = r.carbon
    parts += [
        "## Carbon",
        f"Energy {cb['energy_kwh']:.6f} kWh, emissions {cb['emissions_kg']:.6f} kg CO2eq (codecarbon, offline). "
        f"Training lost to interruptions: {cb['lost_seconds']:.1f} s, {100 * cb['lost_share']:.2f}% of all "
        "training time (and so of its energy).",
    ]
    return "\n\n".join(parts) + "\n"


def html_page(sweep, r: Report, md: str) -> str:
    def table(frame: pd.DataFrame) -> str:
        return frame.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="", border=0)

    imgs = "".join(
        f'<figure><img alt="{html.escape(n)}" src="data:image/png;base64,{base64.b64encode(b).decode()}">'
        f"<figcaption>{html.escape(n)}</figcaption></figure>"
        for n, b in r.figures.items()
    )
    sections = [
        ("Synthesis", r.synthesis),
        ("Configurations", r.aggregates),
        ("Test set", r.test_aggregates),
        ("Per-class test results", r.per_class),
        ("Trials", r.trials[COLUMNS]),
    ]
    body = "".join(f"<h2>{t}</h2>{table(f)}" for t, f in sections if len(f))
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
        "td,th{padding:2px 6px;border-bottom:1px solid #ddd}img{max-width:100%}pre{white-space:pre-wrap}"
    )
    title = html.escape(sweep.config.name)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style>"
        f"</head><body><pre>{html.escape(md)}</pre>{body}<h2>Figures</h2>{imgs}</body></html>"
    )


def write(sweep, r: Report, out: str | None = None) -> str:
    out = out or storage.join(sweep.url, "report")
    tables = {
        "trials": r.trials[COLUMNS],
        "aggregates": r.aggregates,
        "synthesis": r.synthesis,
        "test": r.test,
        "test_aggregates": r.test_aggregates,
        "per_class": r.per_class,
    }
    for name, frame in tables.items():
        storage.write_bytes(storage.join(out, f"{name}.csv"), frame.to_csv(index=False).encode())
        storage.write_bytes(storage.join(out, f"{name}.parquet"), frame.to_parquet(index=False))
    for name, png in r.figures.items():
        storage.write_bytes(storage.join(out, name), png)
    md = markdown(sweep, r)
    storage.write_bytes(storage.join(out, "summary.md"), md.encode())
    storage.write_bytes(storage.join(out, "report.html"), html_page(sweep, r, md).encode())
    return out
