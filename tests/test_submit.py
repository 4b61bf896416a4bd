"""End to end on a real Ray instance: grid file -> trials -> results table in storage."""

import json
import os
import subprocess
import sys

import pandas as pd

from orchestrator import sweep as sw
from orchestrator.cli import main
from orchestrator.results import COLUMNS
from tests.conftest import DIGITS, run_grid
from workers import layout, storage


def _finished_at(sweep):
    return {t.key: storage.read_json(layout.result_file(layout.trial_dir(sweep.url, t.key)))["finished_at"]
            for t in sweep.trials}  # fmt: skip


def test_sweep_runs_every_trial_and_writes_the_results_table(digits_sweep):
    path, sweep, counts, out = digits_sweep
    assert counts == {"pending": 0, "running": 0, "interrupted": 0, "finished": 4, "failed": 0}
    table = pd.read_parquet(storage.join(sweep.url, "results", "trials.parquet"))
    assert list(table.columns) == COLUMNS
    assert sorted(table["trial"]) == sorted(t.key for t in sweep.trials)
    assert set(table["status"]) == {"finished"} and sorted(table["seed"]) == [0, 0, 1, 1]
    assert sorted(table["lr"].unique()) == [0.003, 0.01]
    assert (table["epochs_run"] == 2).all() and (table["epochs"] == 2).all()
    assert table["val_accuracy"].between(0, 1).all() and (table["val_loss"] > 0).all()
    assert (table["init_accuracy"] < table["val_accuracy"]).all()  # it learned something in 2 epochs
    assert (table["train_seconds"] > 0).all() and (table["interruptions"] == 0).all()
    csv = pd.read_csv(storage.join(sweep.url, "results", "trials.csv"))
    assert list(csv["trial"]) == list(table["trial"])
    assert storage.exists(storage.join(sweep.url, "grid.yaml"))
    assert "best: small_cnn-finetune-lr" in out


def test_same_trial_same_key_in_another_process(digits_sweep):
    path, sweep, _, _ = digits_sweep
    code = (
        "from orchestrator import sweep as sw; from orchestrator.schema import load_config;"
        f"print(' '.join(t.key for t in sw.from_config(load_config({str(path)!r})).trials))"
    )
    keys = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert keys == [t.key for t in sweep.trials]


def test_submitting_again_reruns_nothing_and_more_seeds_run_only_the_new_trials(digits_sweep):
    path, sweep, _, _ = digits_sweep
    before = _finished_at(sweep)
    _, counts, out = run_grid(str(path))
    assert "4 already ended" in out and counts["finished"] == 4
    assert _finished_at(sweep) == before

    path.write_text(DIGITS.format(storage=path.parent / "store", seeds=3))
    bigger, counts, out = run_grid(str(path))
    assert "6 trials, 4 already ended" in out and counts["finished"] == 6
    after = _finished_at(bigger)
    assert {k: after[k] for k in before} == before  # the old trials kept their results


def test_results_and_status_commands_read_storage_alone(digits_sweep, capsys):
    sweep = sw.load(digits_sweep[1].url)  # as stored now (an earlier test may have added seeds)
    assert main(["results", sweep.url, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(sweep.trials) and set(COLUMNS) <= set(rows[0])
    assert main(["results", sweep.url, "--format", "markdown"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| trial | name | status") and len(md) == len(sweep.trials) + 2
    assert main(["status", sweep.url]) == 0
    assert "finished" in capsys.readouterr().out


def test_synthetic_ham10000_layout_sweep(ray_session, tmp_path, write_grid):
    path = write_grid(f"""
        name: ham
        storage: {tmp_path / "store"}
        weights: none
        data:
          dataset: synthetic
          path: {tmp_path / "ham"}
          image_size: 16
          options: {{layout: ham10000, n_images: 140}}
        grid:
          model: small_cnn
          strategy: [{{name: finetune}}, {{name: extension, layers: 2, width: 32}}]
          lr: 0.003
          batch_size: 32
          epochs: 2
        seeds: 1
        training: {{class_weights: true, early_stopping: {{patience: 2}}}}
        """)
    sweep, counts, _ = run_grid(path)
    assert counts["finished"] == 2
    table = pd.read_parquet(storage.join(sweep.url, "results", "trials.parquet"))
    assert sorted(table["strategy"]) == ["extension(layers=2,width=32,dropout=0.0,activation=relu)", "finetune"]
    result = storage.read_json(layout.result_file(layout.trial_dir(sweep.url, sweep.trials[0].key)))
    assert [h["epoch"] for h in result["history"]] == [0, 1, 2]
    assert (tmp_path / "ham" / "HAM10000_metadata.csv").exists()


def test_gpu_packing_default_follows_model_size_and_strategy():
    from orchestrator.sweep import default_gpu_fraction

    assert default_gpu_fraction("resnet50", cached_head=True) == 0.25
    assert default_gpu_fraction("resnet50", cached_head=False) == 0.5
    assert default_gpu_fraction("inception_v3", cached_head=False) == 0.5
    assert default_gpu_fraction("vgg19", cached_head=False) == 1.0
    assert default_gpu_fraction("efficientnet_b7", cached_head=False) == 1.0


def test_status_watch_refreshes_until_interrupted(digits_sweep):
    import signal
    import time

    sweep = sw.load(digits_sweep[1].url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "status", sweep.url, "--watch", "--interval", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
    )
    time.sleep(6)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "finished" in out and "best so far" in out and f"{len(sweep.trials)} trials" in out
