"""The machine a run is on: what every manifest records about it, and the stop of a GPU profile on CPU.

``environment(device)`` is the ``environment`` field of a stage's ``manifest.json``: the python,
torch and transformers versions, whether torch sees CUDA and the CUDA version it was built with
(``torch.version.cuda``, None for a CPU build), the GPU's name (None without one), the resolved
device and the dtype ``Generator.from_pretrained`` loads with there (None where the stage has no
device), and the executor its long loops ran on (``local`` or ``ray``, ``models.workers``).

Run settings (``RUN_SETTINGS``) are keys of a profile's ``common`` section, or ``--set`` values,
that are about the run rather than a notebook: the runner takes them out and no notebook sees them.
``requires_gpu: true`` marks a profile meant for a GPU (gpu, math500); such a profile whose device
resolves to CPU stops before any notebook starts (``gpu_problem`` is the message) unless
``allow_cpu`` is true. A profile without ``requires_gpu`` (ci, cpu) never stops for this.
``executor: local | ray`` chooses where the stages' long loops run (``models.workers``; ``local``
when not given) and ``ray_address`` names a Ray cluster to join (else ``RAY_ADDRESS`` from the
environment, else Ray starts on this machine); ``exported`` hands both to the stages' kernels as
environment variables. Rules: ``requires_gpu`` and ``allow_cpu`` are bools, ``executor`` one of
``models.workers.EXECUTORS``, ``ray_address`` a string.
"""

from __future__ import annotations

import os
import platform
from contextlib import contextmanager
from typing import Any, Iterator

from ttc_lib.models.workers import EXECUTOR_ENV, EXECUTORS, executor

RUN_SETTINGS: dict[str, str] = {
    "requires_gpu": "the profile is meant for a GPU: it stops when its device resolves to CPU",
    "allow_cpu": "run a profile that requires_gpu on CPU anyway",
    "executor": f"where the long loops run: one of {list(EXECUTORS)} (docs/scaling.md)",
    "ray_address": "the Ray cluster executor: ray joins, e.g. ray://head:10001 or head:6379 (docs/scaling.md)",
}
CUDA_TORCH = 'rm -rf .venv && make install TORCH_INSTALL="torch --index-url https://download.pytorch.org/whl/cu128"'


def take_settings(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Remove the run settings from ``values`` (in place) and return them; ``where`` (the profile
    file and section, or ``--set``) opens the error when one is not of its kind (module rules)."""
    settings = {key: values.pop(key) for key in list(values) if key in RUN_SETTINGS}
    for key, value in settings.items():
        if key == "executor" and value not in EXECUTORS:
            raise ValueError(f"{where} run setting 'executor' = {value!r} must be one of {list(EXECUTORS)} "
                             f"({RUN_SETTINGS[key]})")
        if key == "ray_address" and not isinstance(value, str):
            raise ValueError(f"{where} run setting 'ray_address' = {value!r} must be a string ({RUN_SETTINGS[key]})")
        if key not in ("executor", "ray_address") and not isinstance(value, bool):
            raise ValueError(f"{where} run setting {key!r} = {value!r} must be true or false ({RUN_SETTINGS[key]})")
    return settings


@contextmanager
def exported(settings: dict[str, Any]) -> Iterator[None]:
    """Within the block, the environment the stages' kernels inherit holds the executor
    (``TTC_EXECUTOR``, ``local`` when not given) and, when given, ``RAY_ADDRESS``; restored after."""
    wanted = {EXECUTOR_ENV: settings.get("executor", "local")}
    if settings.get("ray_address"):
        wanted["RAY_ADDRESS"] = settings["ray_address"]
    before = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def gpu_problem(profile: str, settings: dict[str, bool], device: str) -> str | None:
    """Why profile ``profile`` must not run with ``device`` here, or None: it ``requires_gpu``, does
    not ``allow_cpu`` and ``device`` resolves to CPU."""
    if not settings.get("requires_gpu") or settings.get("allow_cpu"):
        return None
    import torch

    from ttc_lib.generation.generator import resolve_device

    if resolve_device(device).type != "cpu":
        return None
    why = (f"torch {torch.__version__} is a CPU build (no CUDA); install a CUDA build through the Makefile's "
           f"TORCH_INSTALL: {CUDA_TORCH} (the index of your CUDA version)" if torch.version.cuda is None else
           f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no GPU; check the driver and "
           f"CUDA_VISIBLE_DEVICES, or reinstall torch through the Makefile's TORCH_INSTALL: {CUDA_TORCH}")
    return (f"profile {profile!r} is meant for a GPU (requires_gpu: true in params/{profile}.yaml) but its device "
            f"{device!r} resolves to CPU: {why}. To run it on CPU anyway (slow): allow_cpu=true "
            f"(make run PROFILE={profile} SET=\"allow_cpu=true\", or --set allow_cpu=true)")


def environment(device: str | None) -> dict[str, Any]:
    """What a manifest records about the machine (module docstring); ``device`` as given to the stage
    ("auto" is resolved here), None for a stage that uses none."""
    import torch
    import transformers

    from ttc_lib.generation.generator import default_dtype, resolve_device

    cuda = torch.cuda.is_available()
    resolved = resolve_device(device) if device else None
    return {
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "cuda_available": cuda, "cuda_version": torch.version.cuda,
        "gpu_name": torch.cuda.get_device_name(0) if cuda else None,
        "device": str(resolved) if resolved is not None else None,
        "dtype": str(default_dtype(resolved)).removeprefix("torch.") if resolved is not None else None,
        "executor": executor(),
    }
