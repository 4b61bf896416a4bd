"""Broken grid files: one line on stderr naming the place, exit 2, nothing created, Ray not started."""

import os
import subprocess
import sys

import pytest

from orchestrator.cli import main

VALID = """
name: t
storage: {storage}
weights: none
grid:
  model: small_cnn
  lr: [0.1, 0.01]
  batch_size: 32
  epochs: 1
"""

CASES = [
    ("lr: [0.1, 0.01, -1]", "lr: [0.1, 0.01]", "grid.lr[2]: must be > 0"),
    ("lr: []", "lr: [0.1, 0.01]", "grid.lr: must not be empty"),
    ("nme: t", "name: t", "nme: unknown key; valid keys: name, storage"),
    ("name: ../escape", "name: t", "name: must be letters, digits"),
    ("name: a/b", "name: t", "name: must be letters, digits"),
    ("model: [small_cnn, vgg91]", "model: small_cnn", "grid.model[1]: unknown model 'vgg91'; valid:"),
    ("epochs: zero", "epochs: 1", "grid.epochs[0]: must be an integer, got 'zero'"),
    ("batch_size: 32\n  optimiser: adam", "batch_size: 32", "grid.optimiser: unknown key; valid keys: model, strategy"),
    ("weights: imagenet", "weights: none", "weights: 'small_cnn' has no ImageNet weights; use weights: none"),
    (
        "data: {dataset: ham10000, path: /no/such/dir}\nweights: none",
        "weights: none",
        "data.path: /no/such/dir does not exist",
    ),
    (
        "data: {dataset: imagenet}\nweights: none",
        "weights: none",
        "data.dataset: unknown dataset 'imagenet'; valid: digits",
    ),
    (
        "strategy: [{name: unfreeze, blocks: 9}]\n  lr: 0.1",
        "lr: [0.1, 0.01]",
        "grid.strategy[0].blocks: small_cnn has 3 blocks; choose 1..3",
    ),
    (
        "strategy: [{name: extension, blocks: 2}]\n  lr: 0.1",
        "lr: [0.1, 0.01]",
        "grid.strategy[0]: 'blocks' is not a parameter of 'extension'",
    ),
]


@pytest.mark.parametrize("replacement,original,message", CASES, ids=[c[2][:30] for c in CASES])
def test_broken_grid_is_one_line_exit_2_and_creates_nothing(
    tmp_path, write_grid, capsys, replacement, original, message
):
    import ray

    storage = tmp_path / "store"
    text = VALID.format(storage=storage)
    assert original in text
    path = write_grid(text.replace(original, replacement, 1))
    assert main(["submit", path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert err.startswith(f"error: {path}: ")
    assert not storage.exists()
    assert not ray.is_initialized()


def test_yaml_syntax_and_missing_file(tmp_path, write_grid, capsys):
    assert main(["submit", write_grid("name: [unclosed\n")]) == 2
    assert "not valid YAML (line" in capsys.readouterr().err
    assert main(["submit", str(tmp_path / "none.yaml")]) == 2
    assert "no such grid file" in capsys.readouterr().err
    assert main(["submit", write_grid("- a list\n")]) == 2
    assert "must be a YAML mapping" in capsys.readouterr().err


def test_bad_deadline_and_unknown_sweep(tmp_path, write_grid, capsys):
    path = write_grid(VALID.format(storage=tmp_path / "s"))
    assert main(["submit", path, "--deadline", "soon"]) == 2
    assert "--deadline: 'soon' is not a duration" in capsys.readouterr().err
    assert main(["resume", str(tmp_path / "nothing")]) == 2
    assert "no sweep here" in capsys.readouterr().err


def test_real_process_exit_code_and_no_traceback(tmp_path, write_grid):
    path = write_grid(VALID.format(storage=tmp_path / "s").replace("lr: [0.1, 0.01]", "lr: [0.1, -0.01]"))
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", "submit", path], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {path}: grid.lr[1]: must be > 0.0"]
    assert not os.path.exists(tmp_path / "s")


def test_dry_run_prints_trials_and_count(tmp_path, write_grid, capsys):
    path = write_grid(VALID.format(storage=tmp_path / "s") + "seeds: 3\n")
    assert main(["submit", path, "--dry-run"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"6 trials -> {tmp_path / 's' / 't'}"
    assert len(out) == 7 and "small_cnn-head-lr0.1-bs32-ep1-s2" in out[2]
    assert not (tmp_path / "s").exists()
