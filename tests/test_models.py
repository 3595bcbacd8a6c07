"""ModelSpec validation, presets, and checkpoints that round-trip through plain transformers."""

from __future__ import annotations

import json

import pytest
import torch

from ttc_lib.models.checkpoints import (
    MODEL_SPECS,
    ModelSpec,
    build_model,
    count_params,
    get_spec,
    load_checkpoint,
    save_checkpoint,
)

TINY = ModelSpec("tiny-test", hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)


@pytest.mark.parametrize("field, value", [("hidden_size", 0), ("num_layers", -1), ("num_heads", 2.5),
                                          ("intermediate_size", None), ("max_position_embeddings", 0)])
def test_spec_rejects_bad_field_naming_it(field, value):
    kwargs = dict(name="x", hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
    kwargs[field] = value
    with pytest.raises(ValueError, match=field):
        ModelSpec(**kwargs)


def test_spec_heads_must_divide_hidden():
    with pytest.raises(ValueError, match="num_heads"):
        ModelSpec("x", hidden_size=30, num_layers=1, num_heads=4, intermediate_size=8)


def test_unknown_preset_lists_known():
    with pytest.raises(ValueError, match="small"):
        get_spec("huge")


def test_preset_sizes(tiny_tokenizer):
    # the count depends a little on the vocabulary; the cpu profile's policy has 1,090,176 params
    # (docs/results/cpu/README.md, section 01)
    small = count_params(build_model("small", tiny_tokenizer))
    assert 1.0e6 < small < 1.12e6
    large = MODEL_SPECS["large"]
    per_layer = 4 * large.hidden_size ** 2 + 3 * large.hidden_size * large.intermediate_size
    assert 12 < per_layer * large.num_layers / small < 16  # the paper's ~14x larger model
    medium = MODEL_SPECS["medium"]
    assert 2.5 < (4 * medium.hidden_size ** 2 + 3 * medium.hidden_size * medium.intermediate_size) \
        * medium.num_layers / small < 5
    x2 = count_params(build_model("small_x2", tiny_tokenizer))
    assert 2.0 < x2 / small < 2.5  # the cpu profile's larger model: about twice the policy


def test_build_model_is_llama_with_tied_embeddings(tiny_tokenizer):
    model = build_model(TINY, tiny_tokenizer, seed=0)
    cfg = model.config
    assert cfg.model_type == "llama" and cfg.hidden_act == "silu" and cfg.tie_word_embeddings
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert cfg.vocab_size == len(tiny_tokenizer)
    assert (cfg.pad_token_id, cfg.eos_token_id) == (tiny_tokenizer.pad_token_id, tiny_tokenizer.eos_token_id)
    unique = count_params(model)
    assert unique == sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    again = build_model(TINY, tiny_tokenizer, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))


def test_checkpoint_round_trips_through_auto_classes(tmp_path, tiny_tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = build_model(TINY, tiny_tokenizer, seed=1).eval()
    path = save_checkpoint(model, tiny_tokenizer, tmp_path / "ckpt", {"name": "tiny-test", "training": {"steps": 3}})
    assert (path / "model.safetensors").exists() and not list(tmp_path.glob(".ckpt.*"))
    config = json.loads((path / "ttc_config.json").read_text())
    assert config["prompt_style"] == "plain" and config["spec"]["hidden_size"] == 32

    loaded = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    text = "Start with 4. Multiply by 5. What is the result?\n"
    assert tok(text).input_ids == tiny_tokenizer(text).input_ids and tok.padding_side == "left"
    ids = torch.tensor([tiny_tokenizer(text).input_ids])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits)

    model2, tok2, cfg2 = load_checkpoint(path)
    assert not model2.training and cfg2["training"] == {"steps": 3}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))


def test_save_replaces_and_a_failed_save_leaves_nothing(tmp_path, tiny_tokenizer, monkeypatch):
    model = build_model(TINY, tiny_tokenizer, seed=0)
    path = tmp_path / "ckpt"
    save_checkpoint(model, tiny_tokenizer, path, {"name": "a"})
    save_checkpoint(model, tiny_tokenizer, path, {"name": "b"})
    assert json.loads((path / "ttc_config.json").read_text())["name"] == "b"

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(tiny_tokenizer), "save_pretrained", boom)
    with pytest.raises(RuntimeError):
        save_checkpoint(model, tiny_tokenizer, tmp_path / "other", {"name": "c"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no half checkpoint, no tmp dir


def test_lead_fixture_checkpoint_loads(tiny_checkpoint):
    model, tok, cfg = load_checkpoint(tiny_checkpoint)
    assert cfg["name"] == "tiny" and model.config.num_hidden_layers == 2 and tok.pad_token_id is not None


def _broken(path, how):
    if how == "no weights":
        (path / "model.safetensors").unlink()
    elif how == "truncated weights":
        data = (path / "model.safetensors").read_bytes()
        (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif how == "garbage weights":
        (path / "model.safetensors").write_bytes(b"not a safetensors file")
    elif how == "bad config":
        (path / "config.json").write_text("{oops")
    elif how == "no config":
        (path / "config.json").unlink()
    elif how == "bad ttc_config":
        (path / "ttc_config.json").write_text("[1, 2")


@pytest.mark.parametrize("how", ["no weights", "truncated weights", "garbage weights", "bad config",
                                 "no config", "bad ttc_config"])
def test_broken_checkpoint_error_names_path(tmp_path, tiny_tokenizer, how):
    path = save_checkpoint(build_model(TINY, tiny_tokenizer), tiny_tokenizer, tmp_path / "ckpt", {"name": "x"})
    _broken(path, how)
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


def test_missing_checkpoint_error_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="not-a-model-here"):
        load_checkpoint("not-a-model-here")  # a bare name: looked up in the local HF cache only


def test_remote_code_is_not_run_unless_asked(tmp_path, tiny_tokenizer):
    path = save_checkpoint(build_model(TINY, tiny_tokenizer), tiny_tokenizer, tmp_path / "ckpt", {"name": "x"})
    marker = tmp_path / "ran"
    (path / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    config = json.loads((path / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.Evil"}
    (path / "config.json").write_text(json.dumps(config))
    try:
        load_checkpoint(path)
    except ValueError:
        pass  # refusing is fine too; running the file is not
    assert not marker.exists()


def test_checkpoint_record_reads_ttc_training_or_counts_params(tmp_path, tiny_tokenizer):
    from ttc_lib.models.checkpoints import checkpoint_record

    model = build_model(TINY, tiny_tokenizer, seed=1)
    ours = save_checkpoint(model, tiny_tokenizer, tmp_path / "ours", {"name": "t", "training": {"params": 7, "tokens": 9}})
    assert checkpoint_record(ours) == {"params": 7, "tokens": 9}
    theirs = tmp_path / "theirs"  # a plain HF checkpoint: no ttc_config.json
    model.save_pretrained(theirs)
    tiny_tokenizer.save_pretrained(theirs)
    record = checkpoint_record(theirs)
    assert record["params"] == count_params(model) and record["tokens"] is None and record["training_flops"] is None


# ------------------------------------------------------------------ model_identity (cache keys)
def test_model_identity_is_the_training_fingerprint_and_changes_when_retrained(tmp_path, tiny_tokenizer):
    from ttc_lib.models.identity import model_identity

    path = tmp_path / "policy"
    save_checkpoint(build_model(TINY, tiny_tokenizer, seed=1), tiny_tokenizer, path, {"training": {"fingerprint": "f1"}})
    first = model_identity(path)
    assert first == "f1" and model_identity(path) == first  # stable while the checkpoint is unchanged
    save_checkpoint(build_model(TINY, tiny_tokenizer, seed=2), tiny_tokenizer, path, {"training": {"fingerprint": "f2"}})
    assert model_identity(path) == "f2"  # retrained in place: a new identity at the same path
    assert model_identity("owner/model") == "owner/model"  # a hub id is its own identity


def test_model_identity_of_a_checkpoint_without_fingerprint_follows_its_files(tmp_path, tiny_tokenizer):
    import time

    from ttc_lib.models.identity import model_identity

    path = tmp_path / "own"
    save_checkpoint(build_model(TINY, tiny_tokenizer, seed=1), tiny_tokenizer, path, {"name": "own"})
    first = model_identity(path)
    load_checkpoint(path)  # reading it changes nothing
    assert model_identity(path) == first
    time.sleep(0.05)  # file times tick in jiffies: the rewrite must land on a later one
    save_checkpoint(build_model(TINY, tiny_tokenizer, seed=2), tiny_tokenizer, path, {"name": "own"})
    assert model_identity(path) != first


def test_model_identity_of_saved_verifiers(tmp_path, tiny_tokenizer):
    import time

    from ttc_lib.models.identity import model_identity
    from ttc_lib.verifiers.base import save_verifier_config

    head = tmp_path / "head"
    save_verifier_config(head, "head_prm", name="head", backbone="backbone", fingerprint="h1")
    assert model_identity(head) == "h1"  # a trained head: its fingerprint (backbone, data, config)

    backbone = save_checkpoint(build_model(TINY, tiny_tokenizer, seed=1), tiny_tokenizer, tmp_path / "bb", {})
    likelihood = tmp_path / "likelihood"
    save = lambda coef: save_verifier_config(likelihood, "likelihood_prm", backbone=str(backbone), coef=coef)  # noqa: E731
    save([1.0, 2.0])
    first = model_identity(likelihood)
    save([1.0, 2.0])  # refitted to the same numbers (02 re-saves it every run): same identity
    assert model_identity(likelihood) == first
    save([1.0, 3.0])
    refit = model_identity(likelihood)
    assert refit != first
    time.sleep(0.05)
    save_checkpoint(build_model(TINY, tiny_tokenizer, seed=2), tiny_tokenizer, backbone, {})
    assert model_identity(likelihood) != refit  # same coefficients on a retrained backbone: another verifier
