"""The machine a run is on: a GPU profile never falls back to CPU silently, every manifest records
the environment, and an external PRM is read from disk or the local Hugging Face cache, never fetched."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch

from ttc_lib.pipeline import runner
from ttc_lib.pipeline.runs import Stage, notebook_parameters, notebook_path
from ttc_lib.verifiers.external_prm import load_prm

ENVIRONMENT_KEYS = {"python", "torch", "transformers", "cuda_available", "cuda_version", "gpu_name", "device", "dtype",
                    "executor"}


@pytest.fixture
def no_cuda(tmp_path, monkeypatch):
    """No CUDA GPU (whatever the machine), runs in a tmp folder, and the notebooks replaced by a
    recorder: returns the list of (stages, parameters by stage) the runner would execute."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("TTC_RUNS_DIR", str(tmp_path / "runs"))
    calls = []
    monkeypatch.setattr(runner, "_run_stages", lambda profile, chosen, resolved: calls.append((chosen, resolved)) or {})
    return calls


@pytest.mark.parametrize("profile", ["gpu", "math500"])
def test_a_gpu_profile_on_cpu_stops_naming_torch_install_and_allow_cpu(no_cuda, profile, capsys):
    with pytest.raises(ValueError) as err:
        runner.run(profile, ["00_data"])
    message = str(err.value)
    assert "TORCH_INSTALL" in message and "allow_cpu=true" in message and f"params/{profile}.yaml" in message
    assert "resolves to CPU" in message and no_cuda == []  # stopped before any notebook
    assert runner.main(["run", "--profile", profile, "--stages", "00_data"]) == 2
    assert "TORCH_INSTALL" in capsys.readouterr().err and no_cuda == []


def test_allow_cpu_runs_a_gpu_profile_and_no_notebook_sees_the_run_settings(no_cuda):
    runner.run("gpu", ["00_data", "01_train_generator"], ["allow_cpu=true"])
    (chosen, resolved), = no_cuda
    assert chosen == ["00_data", "01_train_generator"]
    assert all(not {"allow_cpu", "requires_gpu"} & set(values) for values in resolved.values())
    assert resolved["01_train_generator"]["device"] == "auto"  # it asked for a GPU, and was let run on CPU


@pytest.mark.parametrize("profile", ["ci", "cpu"])
def test_cpu_profiles_never_stop_even_with_device_auto(no_cuda, profile):
    runner.run(profile, ["00_data"], ["device=auto"])
    assert len(no_cuda) == 1


def test_run_settings_are_bools_and_unknown_keys_are_still_rejected(no_cuda):
    with pytest.raises(ValueError, match=r"--set allow_cpu=maybe: run setting 'allow_cpu' = 'maybe' must be true or false"):
        runner.run("gpu", ["00_data"], ["allow_cpu=maybe"])
    with pytest.raises(ValueError, match="override 'allow_gpu' is not a parameter of any notebook"):
        runner.run("gpu", ["00_data"], ["allow_gpu=true"])
    with pytest.raises(ValueError, match="override 'allow_cpu' is not a parameter of any notebook"):
        runner.apply_overrides(runner.load_profile("ci"), ["allow_cpu=true"])  # only the runner takes it
    assert no_cuda == []


def test_the_executor_reaches_the_kernels_environment_and_is_checked(no_cuda, monkeypatch):
    seen = []
    monkeypatch.delenv("TTC_EXECUTOR", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(runner, "_run_stages", lambda profile, chosen, resolved: seen.append(
        (os.environ.get("TTC_EXECUTOR"), os.environ.get("RAY_ADDRESS"), resolved)) or {})
    runner.run("ci", ["00_data"], ["executor=ray", "ray_address=head:6379"])
    runner.run("ci", ["00_data"])
    assert [s[:2] for s in seen] == [("ray", "head:6379"), ("local", None)]  # local unless asked for
    assert all(not {"executor", "ray_address"} & set(values) for _, _, resolved in seen for values in resolved.values())
    assert "TTC_EXECUTOR" not in os.environ and "RAY_ADDRESS" not in os.environ  # restored after the run
    with pytest.raises(ValueError, match=r"--set executor=spark: run setting 'executor' = 'spark' must be one of "
                                         r"\['local', 'ray'\]"):
        runner.run("ci", ["00_data"], ["executor=spark"])
    with pytest.raises(ValueError, match=r"run setting 'ray_address' = 5 must be a string"):
        runner.run("ci", ["00_data"], ["ray_address=5"])
    monkeypatch.setenv("TTC_EXECUTOR", "ray")
    assert Stage.open("ci", "00_data", _defaults("00_data")).manifest["environment"]["executor"] == "ray"


def _defaults(stage: str) -> dict:
    return {name: default for name, (_, default) in notebook_parameters(notebook_path(stage)).items()}


def test_every_manifest_records_the_environment(no_cuda):
    data = Stage.open("ci", "00_data", _defaults("00_data"))
    assert set(data.manifest["environment"]) == ENVIRONMENT_KEYS
    assert data.manifest["environment"]["device"] is None  # 00 uses no device
    data.write_summary({})
    first = Stage.open("ci", "01_train_generator", {**_defaults("01_train_generator"), "device": "auto"})
    first.write_summary({"device": "auto", "checkpoints": {}})
    second = Stage.open("ci", "02_train_verifier", _defaults("02_train_verifier"))  # the device 01 recorded
    for stage in (first, second):
        text = (stage.dir / "manifest.json").read_text()
        environment = json.loads(text, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))["environment"]
        assert environment["device"] == "cpu" and environment["dtype"] == "float32"
        assert environment["cuda_available"] is False and environment["gpu_name"] is None
        assert environment["torch"] == torch.__version__ and environment["cuda_version"] == torch.version.cuda


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty Hugging Face cache, and any download or network connection a test failure."""
    import huggingface_hub
    from huggingface_hub import constants

    def refuse(*args, **kwargs):
        pytest.fail("load_prm tried to download or connect")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for name in ("snapshot_download", "hf_hub_download"):
        monkeypatch.setattr(huggingface_hub, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return tmp_path / "hub"


def test_a_hub_prm_not_in_the_cache_is_a_clear_error_without_any_download(offline):
    with pytest.raises(FileNotFoundError, match=r"'org/missing-prm' is not a local directory and not in the local "
                                                r"Hugging Face cache.*huggingface-cli download org/missing-prm"):
        load_prm("org/missing-prm")


def test_a_hub_prm_in_the_cache_is_read_from_its_snapshot(offline):
    snapshot = offline / "models--org--cached-prm" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (offline / "models--org--cached-prm" / "refs").mkdir()
    (offline / "models--org--cached-prm" / "refs" / "main").write_text("abc123")
    (snapshot / "config.json").write_text(json.dumps({"architectures": ["SomethingElse"]}))
    with pytest.raises(ValueError, match=f"cannot tell the PRM format of '{snapshot}'"):  # found there, offline
        load_prm("org/cached-prm")
