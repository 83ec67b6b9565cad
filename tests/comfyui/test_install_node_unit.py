"""scripts/install-comfyui-node.sh against a temporary directory shaped like a
ComfyUI checkout: the link, the import check with a Python that has what the
node needs, and the exact instructions for one that lacks grpc."""

import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(REPO, "scripts", "install-comfyui-node.sh")
NODE_DIR = os.path.join(REPO, "client_py", "distorch", "comfy", "comfyui_node")
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def comfyui(tmp_path):
    root = tmp_path / "ComfyUI"
    (root / "custom_nodes" / "ComfyUI-MultiGPU").mkdir(parents=True)
    (root / "comfy").mkdir()
    (root / "main.py").write_text("")
    return root


def install(*args, env=None):
    return subprocess.run(["bash", SCRIPT, *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, **(env or {})))


def test_links_the_node_and_checks_comfyui_python(comfyui):
    if not os.path.exists(os.path.join(REPO, "client_py", "distorch", "v1", "broker_pb2.py")):
        pytest.skip("the gRPC stubs are not built (cmake --build build)")
    done = install(comfyui, "--python", SYSTEM_PYTHON)
    assert done.returncode == 0, done.stdout + done.stderr
    link = comfyui / "custom_nodes" / "distorch"
    assert os.path.islink(link) and os.readlink(link) == NODE_DIR
    assert os.path.exists(link / "__init__.py") and os.path.exists(link / "requirements.txt")
    assert f"ok: {SYSTEM_PYTHON} imports distorch" in done.stdout
    # a MultiGPU user is told to remove it
    assert "ComfyUI-MultiGPU is installed" in done.stdout and "remove it" in done.stdout
    # running it again replaces its own link
    again = install(comfyui, "--python", SYSTEM_PYTHON)
    assert again.returncode == 0 and os.readlink(link) == NODE_DIR


def test_requirements_name_the_grpc_client():
    with open(os.path.join(NODE_DIR, "requirements.txt")) as f:
        wanted = [line.split(">")[0] for line in f if line.strip() and not line.startswith("#")]
    assert wanted == ["grpcio", "protobuf"]


def test_a_python_without_grpc_gets_what_to_install(comfyui, tmp_path):
    bare = tmp_path / "python"  # the system Python without its site-packages: no grpc, no torch
    bare.write_text(f"#!/bin/sh\nexec {SYSTEM_PYTHON} -S \"$@\"\n")
    bare.chmod(0o755)
    done = install(comfyui, "--python", bare)
    assert done.returncode == 1, done.stdout + done.stderr
    requirements = os.path.join(NODE_DIR, "requirements.txt")
    assert "cannot import what distorch needs" in done.stdout
    assert "grpc: No module named 'grpc'" in done.stdout
    assert f"{bare} -m pip install -r {requirements}" in done.stdout
    assert "torch is ComfyUI's own" in done.stdout
    assert os.path.islink(comfyui / "custom_nodes" / "distorch")  # linked; ComfyUI shows why it fails


def test_refuses_a_directory_that_is_not_comfyui(tmp_path):
    done = install(tmp_path, "--python", SYSTEM_PYTHON)
    assert done.returncode == 2 and "does not look like a ComfyUI checkout" in done.stderr


def test_never_replaces_a_directory(comfyui):
    (comfyui / "custom_nodes" / "distorch").mkdir()
    done = install(comfyui, "--python", SYSTEM_PYTHON)
    assert done.returncode == 2 and "exists and is not a link" in done.stderr
