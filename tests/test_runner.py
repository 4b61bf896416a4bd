"""The trial runner without Ray: error budget separate from interruptions, never rerunning a finished trial."""

import pytest

from workers import layout, storage
from workers.runner import FailurePolicy, TrialRunner, run_to_end

TRIAL = {
    "key": "k1",
    "name": "t",
    "params": {"lr": 0.003},
    "spec": {
        "model": "small_cnn",
        "strategy": {"name": "finetune"},
        "data": {"dataset": "digits", "image_size": 8},
        "train": {"lr": 0.003, "batch_size": 256, "epochs": 2},
    },
}


def _break_training(runner):
    def boom(*args):
        raise RuntimeError("a bug in the trial")

    runner.trainer._train_step = boom


def test_code_errors_use_their_own_budget_then_the_trial_fails(tmp_path):
    sweep = str(tmp_path)
    for attempt in range(1, 3):
        runner = TrialRunner(TRIAL, sweep, failure=FailurePolicy(max_failures=1))
        assert runner.start() is None
        _break_training(runner)
        with pytest.raises(RuntimeError, match="a bug"):
            while not runner.advance()["done"]:
                pass
        runner.close()
        status = storage.read_json(layout.status_file(layout.trial_dir(sweep, "k1")))
        assert status["errors"] == attempt and status["state"] == "error"
    final = TrialRunner(TRIAL, sweep, failure=FailurePolicy(max_failures=1)).start()
    assert final["status"] == "failed" and "a bug in the trial" in final["error"] and final["errors"] == 2
    # Ended is ended: a later attempt returns the record without training.
    assert TrialRunner(TRIAL, sweep).start() == final


def test_an_error_is_recorded_as_an_interruption_of_kind_error_and_the_retry_succeeds(tmp_path):
    runner = TrialRunner(TRIAL, str(tmp_path))
    runner.start()
    runner.advance()  # epoch 0 (evaluation)
    _break_training(runner)
    with pytest.raises(RuntimeError):
        runner.advance()
    runner.close()
    result = run_to_end(TrialRunner(TRIAL, str(tmp_path)))
    assert result["status"] == "finished" and result["errors"] == 1
    assert [e["kind"] for e in result["interruption_log"]] == ["error"]
    assert result["lr"] == 0.003 and [h["epoch"] for h in result["history"]] == [0, 1, 2]


def test_a_user_mistake_on_the_worker_fails_the_trial_at_once(tmp_path):
    bad = {**TRIAL, "key": "k2", "spec": {**TRIAL["spec"], "weights": str(tmp_path / "missing.pth")}}
    result = TrialRunner(bad, str(tmp_path)).start()
    assert result["status"] == "failed" and "missing.pth does not exist" in result["error"]
