import os
import textwrap

import pytest

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance shared by every test that runs sweeps in-process."""
    import ray

    from workers.tune import worker_env

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            runtime_env={"env_vars": worker_env()},
            log_to_driver=False,
        )
    yield ray
    ray.shutdown()


@pytest.fixture
def write_grid(tmp_path):
    def write(text: str, name: str = "grid.yaml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)

    return write


DIGITS = """
name: digits
storage: {storage}
weights: none
data: {{dataset: digits, image_size: 12}}
grid:
  model: small_cnn
  strategy: [{{name: finetune}}]
  lr: [0.003, 0.01]
  batch_size: 128
  epochs: 2
seeds: {seeds}
checkpoint: {{every_s: 60}}
"""


def run_grid(cfg_path, **overrides):
    import io

    from orchestrator import sweep as sw
    from orchestrator.schema import load_config

    out = io.StringIO()
    sweep = sw.from_config(load_config(cfg_path, overrides))
    counts = sw.run(sweep, out=out)
    return sweep, counts, out.getvalue()


@pytest.fixture(scope="session")
def digits_sweep(ray_session, tmp_path_factory):
    """A small finished sweep, shared by the tests that read one (results, status, report)."""
    root = tmp_path_factory.mktemp("sweeps")
    path = root / "grid.yaml"
    path.write_text(DIGITS.format(storage=root / "store", seeds=2))
    sweep, counts, out = run_grid(str(path))
    return path, sweep, counts, out
