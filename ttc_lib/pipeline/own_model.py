"""Bring your own model and data: what a stage does when the user has no training data.

ttc's own study trains everything; a user with a Hugging Face generator and MATH-500 usually has
test problems only. Then the stages that need training data stop with a clear message instead of
failing half-way:

* 02 uses a verifier that needs no labels: the user's PRM (``verifier=``, Math-Shepherd or
  Qwen2.5-Math-PRM layout, ``external_prm.load_prm``) saved as a small verifier folder of kind
  ``external_prm``, or, when none is given, the likelihood PRM of the verifier backbone with
  UNCALIBRATED_COEF (nothing to calibrate it on). Labelling, head training and the oracle step
  checks are skipped; ``summary.json`` says which verifier and why.
* 05 (revision model) and 07 (no larger model) write ``summary.json`` ``{"skipped": reason}``.

A stage stops by raising ``StageStopped`` after writing its summary: in JupyterLab "run all" stops
there showing only the message; ``pipeline.run`` reports it and goes on with the next stage.
"""

from __future__ import annotations

from typing import Any

from ttc_lib.models.checkpoints import checkpoint_record
from ttc_lib.pipeline.runs import Stage
from ttc_lib.verifiers.base import save_verifier_config
from ttc_lib.verifiers.external_prm import EXTERNAL_KIND

# likelihood PRM without labels: sigmoid(.5 step_min + .5 running_min + 0 step_mean + 2), i.e. a step is
# trusted (~.88) until the backbone finds one of its tokens (or an earlier one) much less likely
UNCALIBRATED_COEF = (0.5, 0.5, 0.0)
UNCALIBRATED_INTERCEPT = 2.0


class StageStopped(Exception):
    """The stage wrote its summary and has nothing more to do (shown as its message only)."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [f"stage stopped here: {self}"]


def skip_stage(stage: Stage, reason: str, **extra: Any) -> None:
    """Write ``summary.json`` ``{"skipped": reason, **extra}``, print the reason and stop the notebook."""
    stage.write_summary({"skipped": reason, **extra})
    print(f"{stage.name} skipped: {reason}")
    raise StageStopped(f"{stage.name} skipped: {reason}")


def label_free_verifier(stage: Stage, verifier: str = "") -> dict[str, Any]:
    """Save the verifier 02 uses without training data under ``verifiers/<name>/``; returns
    ``{"name", "path", "kind", "why"}``. ``verifier``: path or hub id of a PRM, empty for the
    uncalibrated likelihood PRM of 01's verifier backbone."""
    import numpy as np

    if verifier:
        from ttc_lib.verifiers.external_prm import load_prm

        steps = stage.step_delimiter()  # the PRM cuts our solutions' steps as the run does
        prm = load_prm(verifier, device=stage.device(), step_delimiter=steps)  # fails here, clearly, if unreadable
        name, path = "external_prm", stage.path("verifiers", "external_prm")
        path.mkdir(parents=True, exist_ok=True)
        save_verifier_config(path, EXTERNAL_KIND, source=str(verifier), prm_kind=type(prm).__name__,
                             num_params=prm.num_params, step_delimiter=steps)
        return {"name": name, "path": str(path), "kind": EXTERNAL_KIND,
                "why": f"your PRM {verifier} (verifier=): no training data to train one"}
    from ttc_lib.verifiers.likelihood_prm import LikelihoodPRM

    backbone_path = stage.read_summary("01_train_generator")["checkpoints"]["verifier_backbone"]
    backbone = stage.generator("verifier_backbone", device=stage.device())
    prm = LikelihoodPRM(backbone, np.array(UNCALIBRATED_COEF), UNCALIBRATED_INTERCEPT, backbone_path,
                        fit_info={"uncalibrated": True})
    name = "likelihood_uncalibrated"
    path = prm.save(stage.path("verifiers", name))
    return {"name": name, "path": str(path), "kind": "likelihood_prm",
            "why": "no verifier= given and no training data: the likelihood PRM of the verifier backbone "
                   f"with default coefficients {list(UNCALIBRATED_COEF)}, intercept {UNCALIBRATED_INTERCEPT} "
                   "(not calibrated on labels)"}


def verifier_without_training(stage: Stage, verifier: str = "", **extra: Any) -> None:
    """Notebook 02 without training data: save a label-free verifier, write the summary, stop."""
    chosen = label_free_verifier(stage, verifier)
    skipped = ["Monte-Carlo step labelling", "verifier training (likelihood calibration, head PRMs, ORM)",
               "verifier validation and test step quality (they need labels or the world's oracle)"]
    reason = "no training data (notebook 00: n_train = 0; give train_source= to train verifiers)"
    stage.write_summary({"chosen_verifier": chosen["name"], "chosen_verifier_path": chosen["path"],
                         "verifier_kind": chosen["kind"], "why": chosen["why"], "skipped": skipped,
                         "skip_reason": reason, **extra})
    print(f"{reason}\nskipped: " + "; ".join(skipped) + f"\nverifier: {chosen['name']} — {chosen['why']}")
    raise StageStopped(f"02 done without training: verifier {chosen['name']} at {chosen['path']}")


def own_checkpoints(generator: str, verifier_backbone: str = "", large_generator: str = "") -> tuple[dict, dict]:
    """Notebook 01 with your own models: (role -> path, role -> record) for the policy (``generator``),
    the verifier backbone (``verifier_backbone``, else the generator) and the larger model (only when
    ``large_generator`` is given). Nothing is trained; records hold what ttc can know (parameters)."""
    paths = {name: path for name, path in (("policy", generator), ("verifier_backbone", verifier_backbone or generator),
                                            ("large", large_generator)) if path}
    return paths, {name: checkpoint_record(path) for name, path in paths.items()}
