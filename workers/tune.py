"""The one adapter between our trial runner and Ray Tune (Ray's checkpoint API has moved twice; ours has not).

Tune sees a class trainable whose ``step`` is one epoch. Tune's own checkpoints are not used: every start of
the actor (first run, Tune's retry after a crash, a new driver after `orchestrator resume`) loads the latest
valid checkpoint from our store. Actor methods run on the worker's main thread, so SIGTERM can be handled.
"""

from __future__ import annotations

import logging
import os

from ray import tune

from workers.carbon import CarbonMeter, country
from workers.preemption import InterruptFlag, MetadataWatcher
from workers.runner import CheckpointPolicy, FailurePolicy, TrialRunner


class SweepTrainable(tune.Trainable):
    def setup(self, config: dict) -> None:
        logging.basicConfig(level=logging.INFO)
        if config.get("threads"):
            import torch

            torch.set_num_threads(int(config["threads"]))
        flag = InterruptFlag(deadline=config.get("deadline"), margin_s=config.get("deadline_margin_s", 0.0))
        flag.install_signal_handlers()
        watch = config.get("preemption", {})
        self.watchers = [
            MetadataWatcher(flag, kind, watch.get(f"{kind}_url"), watch.get("poll_s", 5.0)).start()
            for kind in ("gce", "aws")
            if watch.get(kind)
        ]
        self.runner = TrialRunner(
            config["trial"],
            config["sweep_url"],
            CheckpointPolicy(**config.get("checkpoint", {})),
            FailurePolicy(**config.get("failure", {})),
            flag,
            carbon=CarbonMeter(
                country(config.get("carbon", {}).get("country")), config.get("carbon", {}).get("enabled", True)
            ),
        )
        self.final = self.runner.start()

    def reset_config(self, new_config: dict) -> bool:
        """Reused actor, next trial: no new process, no re-import, and the decoded data stays in memory."""
        self.cleanup()
        self.setup(new_config)
        return True

    def step(self) -> dict:
        if self.final is not None:
            return {**_scalars(self.final), "done": True}
        return self.runner.advance()

    def cleanup(self) -> None:
        for w in self.watchers:
            w.stop()
        self.runner.close()

    def save_checkpoint(self, checkpoint_dir: str):  # our store holds the state, not Tune's
        return None

    def load_checkpoint(self, checkpoint) -> None:
        return None


def _scalars(result: dict) -> dict:
    return {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool)) or v is None}


def worker_env() -> dict[str, str]:
    """Environment the workers need to reach the same storage as the driver (never credentials themselves)."""
    names = ("STORAGE_EMULATOR_HOST", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "TORCH_HOME", "ORCHESTRATOR_STORAGE_RETRY")
    return {n: os.environ[n] for n in names if n in os.environ}
