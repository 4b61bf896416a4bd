"""infra/ and the docs: every manifest parses, and every command, image, port and entry point they use is real."""

import json
import pathlib
import re
import shlex
import tomllib

import pytest
import yaml

from orchestrator.cli import _parser

ROOT = pathlib.Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
IMAGE = "us-docker.pkg.dev/YOUR-PROJECT/sweeps/sweep-orchestrator:0.1.0"
MANIFESTS = sorted(INFRA.rglob("*.yaml"))
NOTEBOOK = INFRA / "colab" / "sweep_on_colab.ipynb"


def _strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def _commands(text: str) -> list[str]:
    return [
        m.group(0).strip().rstrip('"`')
        for m in re.finditer(r"(?<![\w/-])orchestrator (submit|resume|status|report|results) [^\n`\"]+", text)
    ]


def _check_command(cmd: str) -> None:
    argv = shlex.split(cmd)
    assert argv[0] == "orchestrator"
    try:
        args = _parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"not a valid command: {cmd}")
    grid = getattr(args, "grid", None)
    if grid and grid.startswith(("configs/", "/app/configs/")):  # the shipped grids (grid.yaml: an example)
        assert (ROOT / grid.removeprefix("/app/")).exists(), f"{cmd}: no such grid file in the repository"


def test_every_manifest_parses():
    assert len(MANIFESTS) == 4
    for path in MANIFESTS:
        docs = list(yaml.safe_load_all(path.read_text()))
        assert docs and all(isinstance(d, dict) for d in docs), path


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_and_images_in_manifests_are_real(path):
    doc = yaml.safe_load(path.read_text())
    text = "\n".join(_strings(doc)) + "\n" + path.read_text()
    commands = _commands(text)
    assert commands, f"{path} runs no orchestrator command"
    for cmd in commands:
        _check_command(cmd)
    images = {s for s in _strings(doc) if "sweep-orchestrator:" in s}
    assert images == {IMAGE}


def test_cluster_launchers_start_ray_on_the_ports_we_document():
    for name in ("gcp", "aws"):
        doc = yaml.safe_load((INFRA / name / "cluster.yaml").read_text())
        head = " ".join(doc["head_start_ray_commands"])
        assert "--port=6379" in head and "--dashboard-host=127.0.0.1" in head and "--dashboard-port=8265" in head
        assert all("$RAY_HEAD_IP:6379" in c for c in doc["worker_start_ray_commands"] if "ray start" in c)
        workers = doc["available_node_types"]["gpu_spot"]
        assert workers["resources"]["GPU"] == 1
    gcp = yaml.safe_load((INFRA / "gcp" / "cluster.yaml").read_text())
    assert gcp["available_node_types"]["gpu_spot"]["node_config"]["scheduling"]["provisioningModel"] == "SPOT"
    aws = yaml.safe_load((INFRA / "aws" / "cluster.yaml").read_text())
    assert aws["available_node_types"]["gpu_spot"]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"


def test_kuberay_spot_workers_tolerate_spot_and_have_the_grace_period():
    for name in ("raycluster.yaml", "rayjob.yaml"):
        doc = yaml.safe_load((INFRA / "kuberay" / name).read_text())
        spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
        assert doc["apiVersion"] == "ray.io/v1"
        ports = {p["containerPort"] for p in spec["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]}
        assert {6379, 8265} <= ports
        for group in spec["workerGroupSpecs"]:
            pod = group["template"]["spec"]
            assert pod["terminationGracePeriodSeconds"] == 30
            assert pod["nodeSelector"]["cloud.google.com/gke-spot"] == "true"
            assert {t["key"] for t in pod["tolerations"]} == {"cloud.google.com/gke-spot", "nvidia.com/gpu"}
            assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_dockerfile_installs_the_package_and_runs_the_real_entry_point():
    text = (INFRA / "docker" / "Dockerfile").read_text()
    assert "FROM rayproject/ray:2.60.0-" in text and "pip install" in text
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    assert cmd[0] == "orchestrator"
    for folder in re.findall(r"^COPY (\w+) /app/\1$", text, re.M):
        assert (ROOT / folder).is_dir()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts["orchestrator"].split(":")
    assert callable(getattr(__import__(module, fromlist=[func]), func))


def test_colab_notebook_is_valid_and_calls_the_real_cli():
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["nbformat"] == 4
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert any("auth.authenticate_user()" in c for c in code)
    variables = dict(re.findall(r'^(\w+) = "([^"]+)"', code[0], re.M))
    shell = [line[1:] for c in code for line in c.splitlines() if line.startswith("!orchestrator")]
    assert len(shell) == 3 and "--deadline" in shell[0]
    for cmd in shell:
        _check_command(re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], cmd))


def test_readme_commands_are_real():
    commands = [c for doc in [ROOT / "README.md", *INFRA.rglob("README.md")] for c in _commands(doc.read_text())]
    assert len(commands) >= 8
    for cmd in commands:
        _check_command(cmd.split("#")[0])
