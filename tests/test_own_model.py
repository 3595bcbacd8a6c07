"""own_model: the label-free verifiers of notebook 02 and the skip of a stage, on tiny models built here."""

from __future__ import annotations

import json

import pytest
from conftest import save_random_lm

from ttc_lib.pipeline.own_model import StageStopped, label_free_verifier, skip_stage, verifier_without_training
from ttc_lib.pipeline.runs import Stage
from ttc_lib.tasks.steps import join_steps
from ttc_lib.verifiers.kinds import load_verifier

CORPUS = ["What is 3 + 4?\n3 + 4 = 7\nThe answer is \\boxed{7}", "Solve 2x = 8.\nx = 4\nThe answer is \\boxed{4}"] * 10
QUESTIONS = ["What is 3 + 4?", "Solve 2x = 8."]
SOLUTIONS = [join_steps(["3 + 4 = 7", "The answer is \\boxed{7}"]), join_steps(["x = 5", "x = 4", "\\boxed{4}"])]


def _tokenizer(extra=()):
    from ttc_lib.models.tokenizer import build_tokenizer

    tok = build_tokenizer(CORPUS, vocab_size=300)
    tok.add_tokens(list(extra))
    return tok


@pytest.fixture(scope="module")
def qwen2_dir(tmp_path_factory):
    """A standard HF checkpoint of your own: no ttc_config.json, so the prompt style comes from 01."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return save_random_lm(tmp_path_factory.mktemp("own_qwen2"), Qwen2ForCausalLM, Qwen2Config, _tokenizer(),
                          hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                          num_key_value_heads=1, max_position_embeddings=2048)


@pytest.fixture(scope="module")
def shepherd_dir(tmp_path_factory):
    from transformers import MistralConfig, MistralForCausalLM

    return save_random_lm(tmp_path_factory.mktemp("shepherd"), MistralForCausalLM, MistralConfig, _tokenizer(["ки"]),
                          hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                          num_key_value_heads=1, max_position_embeddings=512)


@pytest.fixture
def stage(tmp_path, monkeypatch, qwen2_dir):
    monkeypatch.setenv("TTC_RUNS_DIR", str(tmp_path / "runs"))
    Stage("own", "01_train_generator").write_summary({
        "checkpoints": {"policy": str(qwen2_dir), "verifier_backbone": str(qwen2_dir)},
        "prompt_style": "fewshot", "device": "cpu", "own_models": True, "max_new_tokens": 16})
    return Stage("own", "02_train_verifier")


def test_uncalibrated_likelihood_prm_reloads_with_the_recorded_prompt_style(stage):
    with pytest.raises(StageStopped):
        verifier_without_training(stage, "")
    summary = stage.read_summary()
    assert summary["chosen_verifier"] == "likelihood_uncalibrated" and "not calibrated" in summary["why"]
    assert any("labelling" in s for s in summary["skipped"]) and "n_train = 0" in summary["skip_reason"]
    verifier = load_verifier(summary["chosen_verifier_path"])
    assert verifier.backbone.prompt_style == "fewshot"
    scores = verifier.score(QUESTIONS, SOLUTIONS)
    assert [len(s) for s in scores] == [2, 3] and all(0 < x < 1 for s in scores for x in s)


def test_your_prm_is_saved_as_a_verifier_folder_later_stages_load(stage, shepherd_dir):
    from ttc_lib.verifiers.external_prm import MathShepherdPRM, load_prm

    chosen = label_free_verifier(stage, str(shepherd_dir))
    assert chosen["kind"] == "external_prm" and str(shepherd_dir) in chosen["why"]
    verifier = load_verifier(chosen["path"])
    assert isinstance(verifier, MathShepherdPRM)
    assert verifier.score(QUESTIONS, SOLUTIONS) == load_prm(shepherd_dir).score(QUESTIONS, SOLUTIONS)


def test_a_prm_that_cannot_be_read_fails_before_anything_is_saved(stage, tmp_path):
    with pytest.raises((ValueError, FileNotFoundError, OSError)):
        label_free_verifier(stage, str(tmp_path / "nowhere"))
    assert not (stage.dir / "verifiers" / "external_prm").exists()


def test_skip_stage_writes_the_reason_and_stops(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TTC_RUNS_DIR", str(tmp_path))
    stage = Stage("own", "05_revisions")
    with pytest.raises(StageStopped) as err:
        skip_stage(stage, "no training data")
    assert json.loads((stage.dir / "summary.json").read_text()) == {"skipped": "no training data"}
    assert "no training data" in capsys.readouterr().out
    assert err.value._render_traceback_() == ["stage stopped here: 05_revisions skipped: no training data"]


@pytest.fixture
def paragraph_stage(tmp_path, monkeypatch, qwen2_dir):
    """Notebook 01 of a run whose steps are paragraphs (step_delimiter=blank_line, as math500)."""
    monkeypatch.setenv("TTC_RUNS_DIR", str(tmp_path / "runs"))
    Stage("para", "01_train_generator").write_summary({
        "checkpoints": {"policy": str(qwen2_dir), "verifier_backbone": str(qwen2_dir)}, "prompt_style": "fewshot",
        "step_delimiter": "blank_line", "device": "cpu", "own_models": True, "max_new_tokens": 16})
    return Stage("para", "02_train_verifier")


def test_the_step_contract_01_recorded_reaches_every_model_later_stages_load(paragraph_stage, stage, shepherd_dir):
    from ttc_lib.tasks.steps import BLANK_LINES, LINES

    paragraphs = ["3 + 4 = 7\nso 7", "The answer is \\boxed{7}"]
    assert paragraph_stage.generator().step_contract is BLANK_LINES and stage.generator().step_contract is LINES
    likelihood = load_verifier(label_free_verifier(paragraph_stage)["path"])  # the uncalibrated likelihood PRM
    assert likelihood.step_contract is BLANK_LINES and [len(s) for s in likelihood.score(
        [QUESTIONS[0]], [BLANK_LINES.join(paragraphs)])] == [2]  # two paragraphs, three lines
    chosen = label_free_verifier(paragraph_stage, str(shepherd_dir))
    assert json.loads((paragraph_stage.dir / "verifiers" / "external_prm" / "verifier_config.json").read_text())[
        "step_delimiter"] == "blank_line"
    assert paragraph_stage.verifier(chosen["path"]).step_contract is BLANK_LINES
    lines_prm = label_free_verifier(stage, str(shepherd_dir))["path"]  # saved by a run of lines
    with pytest.raises(ValueError, match="cuts steps by step_delimiter 'newline', but this run's .* is 'blank_line'"):
        paragraph_stage.verifier(lines_prm)
