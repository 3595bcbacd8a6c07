"""Bring your own model, end to end: the math500 profile on a tiny random Qwen2 and a MATH fixture.

The checkpoint is a standard Hugging Face folder (no ttc_config.json: the prompt style comes from
the profile), randomly initialised, so it never writes a parsable answer: every stage must cope
with pass@1 = 0. There is no training data, so 02 uses the uncalibrated likelihood PRM and says
why, 05 and 07 (no larger model) write ``{"skipped": ...}``; every other stage its summary.
"""

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "math_tiny.jsonl"
STAGES = ["00_data", "01_train_generator", "02_train_verifier", "03_difficulty_bins", "04_search",
          "05_revisions", "06_compute_optimal", "07_ttc_vs_pretraining", "08_claims"]
TINY = ["n_test=0", "max_new_tokens=24", "eval_samples=1", "n_samples=4", "per_bin=1", "pool_budgets=[1,2,4]",
        "n_subsets=2", "search_budgets=[2]", "headline_per_bin=0", "headline_budgets=[2]", 'search_specs=[{"strategy": "beam", "width": 2, "lookahead": 0}]',
        "n_seeds=1", "n_splits=2", "solve_budgets=[2]", "solve_questions=2", "torch_threads=1",
        "publish_claims=false",  # a test run never writes docs/results/math500/claims.md
        "allow_cpu=true"]  # math500 requires_gpu: the tests run it on CPU


def tiny_qwen2(path: Path) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from ttc_lib.models.tokenizer import build_tokenizer
    from ttc_lib.tasks import load_jsonl
    from ttc_lib.tasks.prompts import format_prompt

    problems = load_jsonl(FIXTURE)
    tokenizer = build_tokenizer([format_prompt(p.question, "fewshot") + p.solution for p in problems], vocab_size=400)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    Qwen2ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    assert not (path / "ttc_config.json").exists()
    return path


def tiny_shepherd(path: Path, tokenizer_dir: Path) -> Path:
    """A Math-Shepherd-layout PRM (causal LM, step tag " ки", good/bad tokens "+"/"-"), random."""
    import torch
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.add_tokens(["ки"])
    torch.manual_seed(1)
    config = MistralConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                           pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    MistralForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_make_passes_generator_and_data():
    out = subprocess.run(["make", "-n", "run", "PROFILE=math500", "GENERATOR=/m", "DATA=/d.jsonl", "VERIFIER=/p"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "--profile math500" in out and "--set generator=/m" in out and "--set source=/d.jsonl" in out
    assert "--set verifier=/p" in out


def test_math500_profile_end_to_end_without_training_data(tmp_path, monkeypatch):
    from ttc_lib.pipeline import runner as pipeline

    monkeypatch.setenv("TTC_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    model = tiny_qwen2(tmp_path / "tiny-qwen2")
    pipeline.run("math500", overrides=[f"generator={model}", f"source={FIXTURE}", *TINY])

    summaries = {s: json.loads((tmp_path / "runs" / "math500" / s / "summary.json").read_text()) for s in STAGES}
    skipped = {s for s, d in summaries.items() if isinstance(d.get("skipped"), str)}
    assert skipped == {"05_revisions", "07_ttc_vs_pretraining"}
    assert "training data" in summaries["05_revisions"]["skipped"]
    assert "larger model" in summaries["07_ttc_vs_pretraining"]["skipped"]
    assert not (tmp_path / "runs" / "math500" / "05_revisions" / "results.parquet").exists()

    assert summaries["00_data"]["n_train"] == 0 and summaries["00_data"]["n_test"] == 12
    first = summaries["01_train_generator"]
    assert first["own_models"] and first["prompt_style"] == "fewshot" and "large" not in first["checkpoints"]
    verifier = summaries["02_train_verifier"]
    assert verifier["chosen_verifier"] == "likelihood_uncalibrated"
    assert any("labelling" in s for s in verifier["skipped"]) and verifier["why"]
    assert summaries["03_difficulty_bins"]["questions"] == 12
    assert summaries["04_search"]["accuracy"]
    sixth = summaries["06_compute_optimal"]
    assert set(sixth["efficiency_ratio_curve"]) == {"best_of_n_weighted", "best_fixed"}
    assert {row["status"] for row in sixth["efficiency_ratio_curve"]["best_fixed"]["oracle"].values()} == {"all_zero"}
    skipped_ratio = sixth["efficiency_ratio_summary"]["revisions"]["parallel"]["oracle"]
    assert skipped_ratio["estimate"] is None and "05 was skipped" in skipped_ratio["reason"]
    assert set(sixth["skipped"]) == {"revisions", "pooled"}

    # your own PRM (verifier=): 02 saves it as a verifier folder that 03 and 04 load and search with
    prm = tiny_shepherd(tmp_path / "tiny-shepherd", model)
    pipeline.run("math500", stages=["02_train_verifier", "03_difficulty_bins", "04_search"],
                 overrides=[f"generator={model}", f"source={FIXTURE}", f"verifier={prm}", *TINY])
    runs = tmp_path / "runs" / "math500"
    verifier = json.loads((runs / "02_train_verifier" / "summary.json").read_text())
    assert verifier["chosen_verifier"] == "external_prm" and str(prm) in verifier["why"]
    assert json.loads((runs / "04_search" / "summary.json").read_text())["verifier"] == "tiny-shepherd"
