"""Runs a sweep on Ray Tune: parse, build, run, close.

Everything needed to continue lives in the sweep directory (``<storage>/<name>/``): the grid, every trial's
checkpoints and records. A new driver (``resume``, or ``submit`` again) re-expands the stored grid, skips the
trials that have a result, and lets the others resume from their own checkpoints: no ``Tuner.restore`` needed.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import yaml

from orchestrator.expand import Trial, expand
from orchestrator.results import best, collect, counts, write_tables
from orchestrator.schema import Config, dump_config, parse_config
from trainer.errors import ConfigError
from workers import layout, storage


def deadline_margin(deadline_s: float) -> float:
    """Time kept for running trials to checkpoint and the driver to exit: a minute, less for short deadlines."""
    return min(60.0, max(2.0, 0.1 * deadline_s))


@dataclass
class Sweep:
    url: str
    config: Config
    trials: list[Trial]


def sweep_url(storage_root: str, name: str) -> str:
    root = storage_root if not storage.is_local(storage_root) else os.path.abspath(storage_root)
    return storage.join(root, name)


def resolve(sweep: str, default_storage: str = "runs") -> str:
    """A sweep URL or path, or a bare name under the default storage."""
    if "://" in sweep or os.sep in sweep or os.path.isdir(sweep):
        return sweep if not storage.is_local(sweep) else os.path.abspath(sweep)
    return sweep_url(default_storage, sweep)


def from_config(cfg: Config) -> Sweep:
    return Sweep(sweep_url(cfg.storage, cfg.name), cfg, expand(cfg))


def load(url: str) -> Sweep:
    """The sweep stored at ``url``; its location wins over the stored storage/name (a copied or moved sweep)."""
    grid = storage.join(url, layout.GRID_FILE)
    try:
        raw = yaml.safe_load(storage.read_bytes(grid))
    except FileNotFoundError:
        raise ConfigError(f"{url}: no sweep here ({layout.GRID_FILE} not found)") from None
    parent, _, name = url.rstrip("/").rpartition("/")
    cfg = parse_config({**raw, "storage": parent, "name": name}, grid)
    return Sweep(url, cfg, expand(cfg))


def save_grid(sweep: Sweep) -> None:
    storage.write_bytes(storage.join(sweep.url, layout.GRID_FILE), dump_config(sweep.config).encode())
    info_url = storage.join(sweep.url, layout.SWEEP_FILE)
    info = storage.read_json_or_none(info_url) or {"created_at": time.time(), "drivers": 0}
    info["drivers"] += 1  # each submit or resume
    info["last_driver_at"] = time.time()
    storage.write_json(info_url, info)


def parse_duration(text: str) -> float:
    """'5h30m', '90m', '45s', '1h' or plain seconds."""
    import re

    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or not parts or not any(parts.groups()):
        raise ConfigError(f"--deadline: {text!r} is not a duration; valid: 5h30m, 90m, 45s")
    h, m, s = (float(x) if x else 0.0 for x in parts.groups())
    return h * 3600 + m * 60 + s


def preflight(cfg: Config, local: bool) -> None:
    """What the grid cannot express: a synthetic dataset is generated once here, not by every worker at the
    same time; on a local run, ImageNet weights must already be on disk (nothing is downloaded)."""
    from trainer.models import IMAGENET, MODELS, weights_file

    if cfg.data.dataset == "synthetic":
        from trainer.data import ensure_synthetic
        from trainer.trial import spec_from_dict

        ensure_synthetic(spec_from_dict(expand(cfg)[0].spec).data)
    if not local or cfg.weights != IMAGENET or os.environ.get("ORCHESTRATOR_ALLOW_DOWNLOAD") == "1":
        return
    for model in cfg.grid.model:
        path = weights_file(MODELS.get(model))
        if not os.path.exists(path):
            raise ConfigError(
                f"weights: ImageNet weights for {model} not found: put {os.path.basename(path)} "
                f"(from {MODELS.get(model).weights_url}) at {path}"
            )


# ---------------------------------------------------------------- running


def _init_ray(address: str | None, dashboard_host: str, out) -> bool:
    """Connect to Ray (or start it locally); False when the caller's process already had Ray up."""
    import ray

    from workers.tune import worker_env

    if ray.is_initialized():
        return False
    if address is None and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
    kwargs = {"runtime_env": {"env_vars": worker_env()}, "log_to_driver": False, "configure_logging": False}
    if address:
        try:
            ctx = ray.init(address=address, **kwargs)
        except ConnectionError as exc:
            raise ConfigError(f"--address {address}: no Ray cluster reachable there ({exc})") from None
    else:
        if dashboard_host not in ("127.0.0.1", "localhost"):
            print(
                f"warning: the Ray dashboard will listen on {dashboard_host}; it has no authentication of its own"
                " beyond Ray's token: keep it behind an SSH tunnel or an authenticating proxy",
                file=sys.stderr,
            )
        # "local": our own instance, never a cluster some earlier `ray start` left behind (maybe dead).
        ctx = ray.init(address="local", include_dashboard=True, dashboard_host=dashboard_host, **kwargs)
    url = getattr(ctx, "dashboard_url", None)
    if url:
        print(f"Ray dashboard: http://{url}", file=out)
    return True


def present_ray_token(address: str | None) -> None:
    """Joining a cluster does not switch Ray's token mode on by itself: ask for it whenever a token is at hand.
    Ray reads the variable when it is imported, so this runs before anything imports Ray."""
    if (address or os.environ.get("RAY_ADDRESS")) and "RAY_AUTH_MODE" not in os.environ and _token_available():
        os.environ["RAY_AUTH_MODE"] = "token"


def _token_available() -> bool:
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or os.path.exists(path)


def _tune_storage(url: str):
    if storage.is_local(url):
        return os.path.abspath(url.removeprefix("file://")), None
    import pyarrow.fs

    fs, path = storage.filesystem(url)
    return path, pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs))


def default_gpu_fraction(model: str, cached_head: bool) -> float:
    """How much of a GPU a trial takes when the grid does not say: small trials are packed several per GPU.

    A head trained on cached features needs almost nothing; models under 40 M parameters (ResNet-50,
    Inception v3, Xception, EfficientNet-B0..B4, DenseNet) share a GPU by two; VGG and EfficientNet-B5+ take one.
    """
    from trainer.models import parameter_count

    if cached_head:
        return 0.25
    big = parameter_count(model) >= 40e6 or model in ("efficientnet_b5", "efficientnet_b6", "efficientnet_b7")
    return 1.0 if big else 0.5


def _resources(cfg: Config):
    """Per-trial resources: the grid's, or a packing default when the cluster has GPUs."""
    import ray

    cpus, gpus = cfg.resources.cpus_per_trial, cfg.resources.gpus_per_trial
    if gpus is not None or ray.cluster_resources().get("GPU", 0) < 1:
        return {"cpu": cpus, "gpu": gpus or 0.0}
    from trainer.features import cacheable
    from trainer.trial import spec_from_dict

    def per_trial(config: dict) -> dict:
        spec = spec_from_dict(config["trial"]["spec"])  # the worker's own rule decides whether it uses the cache
        cached = cfg.feature_cache and cacheable(spec.strategy.name, spec.train.augmented)
        return {"cpu": cpus, "gpu": default_gpu_fraction(spec.model, cached)}

    return per_trial


def run(
    sweep: Sweep,
    address: str | None = None,
    deadline_s: float | None = None,
    dashboard_host: str = "127.0.0.1",
    out=sys.stdout,
) -> dict:
    """Run every trial of ``sweep`` that has no result yet; returns the counts by state."""
    started = time.time()
    preflight(sweep.config, local=not (address or os.environ.get("RAY_ADDRESS")))
    save_grid(sweep)
    frame = collect(sweep.url, sweep.trials)
    todo = [t for t, s in zip(sweep.trials, frame["status"]) if s not in ("finished", "failed")]
    print(f"sweep {sweep.url}: {len(sweep.trials)} trials, {len(sweep.trials) - len(todo)} already ended", file=out)
    deadline = started + deadline_s if deadline_s else None
    margin = deadline_margin(deadline_s) if deadline_s else 0.0
    stopped_by_deadline = False
    if todo:
        started_ray = _init_ray(address, dashboard_host, out)
        try:
            stopped_by_deadline = _fit(sweep, todo, deadline, margin, out)
        finally:
            if started_ray:
                import ray

                ray.shutdown()
    frame = collect(sweep.url, sweep.trials)
    where = write_tables(sweep.url, frame)
    c = counts(frame)
    print(f"results: {where}/trials.parquet (and .csv)", file=out)
    print("  " + "  ".join(f"{k}: {v}" for k, v in c.items()), file=out)
    top = best(frame)
    if top:
        print(f"  best: {top['name']}  mean val_accuracy {top['mean']:.4f} over {top['n']} seeds", file=out)
    if stopped_by_deadline or c["pending"] or c["interrupted"] or c["running"]:
        print(f"not finished: continue with\n  orchestrator resume {sweep.url}", file=out)
    return c


def _fit(sweep: Sweep, todo: list[Trial], deadline: float | None, margin: float, out) -> bool:
    # Our progress line replaces Tune's tables.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from ray import tune

    from orchestrator.progress import DeadlineStopper, ProgressPrinter
    from workers.tune import SweepTrainable

    cfg = sweep.config
    base = {
        "sweep_url": sweep.url,
        "checkpoint": cfg.checkpoint.model_dump(),
        "failure": cfg.failure.model_dump(),
        "deadline": deadline,
        "deadline_margin_s": margin,
        "preemption": cfg.preemption.model_dump(),
        "carbon": cfg.carbon.model_dump(),
        "feature_cache": cfg.feature_cache,
        "threads": max(1, int(cfg.resources.cpus_per_trial)),
    }
    path, fs = _tune_storage(layout.tune_dir(sweep.url))
    stopper = DeadlineStopper(deadline, margin)
    tuner = tune.Tuner(
        tune.with_resources(SweepTrainable, _resources(cfg)),
        param_space={**base, "trial": tune.grid_search([t.as_dict() for t in todo])},
        tune_config=tune.TuneConfig(
            trial_name_creator=lambda t: t.config["trial"]["name"],
            trial_dirname_creator=lambda t: t.config["trial"]["key"],
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"run-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=path,
            storage_filesystem=fs,
            stop=stopper,
            failure_config=tune.FailureConfig(max_failures=cfg.failure.max_failures + cfg.failure.max_interruptions),
            callbacks=[ProgressPrinter(len(sweep.trials), len(sweep.trials) - len(todo), out)],
            verbose=0,
        ),
    )
    tuner.fit()
    return stopper.fired
