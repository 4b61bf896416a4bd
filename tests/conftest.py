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
        ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": worker_env()}, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def write_grid(tmp_path):
    def write(text: str, name: str = "grid.yaml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)

    return write
