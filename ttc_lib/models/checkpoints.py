"""Model specs, from-scratch Llama-style models, and checkpoints that carry their own config.

A checkpoint is a standard Hugging Face directory (``config.json``, ``model.safetensors``,
tokenizer files) that ``AutoModelForCausalLM``/``AutoTokenizer.from_pretrained`` load, plus
``ttc_config.json``: the ModelSpec, the prompt style and the training record (steps, tokens,
params, training FLOPs, wall time, parent checkpoint). Checkpoints are written to a temporary
directory and renamed, so a killed run never leaves a half checkpoint behind.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ttc_lib.storage import atomic_dir, json_default

TTC_CONFIG_FILE = "ttc_config.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")  # safetensors only: data, not code


@dataclass(frozen=True)
class ModelSpec:
    """Shape of a Llama-style decoder (RMSNorm, RoPE, SwiGLU MLP, tied input/output embeddings)."""

    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int  # SwiGLU inner width
    max_position_embeddings: int = 512  # RoPE, so only a limit: the longest 8-op problem is ~150 tokens

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"ModelSpec.name must be a non-empty string, got {self.name!r}")
        for field in ("hidden_size", "num_layers", "num_heads", "intermediate_size",
                      "max_position_embeddings"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ModelSpec.{field} must be a positive int, got {value!r} (spec {self.name!r})")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"ModelSpec.num_heads={self.num_heads} must divide hidden_size="
                             f"{self.hidden_size} (spec {self.name!r})")
        if (self.hidden_size // self.num_heads) % 2:
            raise ValueError(f"ModelSpec.num_heads={self.num_heads}: head size hidden_size/num_heads="
                             f"{self.hidden_size // self.num_heads} must be even for RoPE (spec {self.name!r})")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> "ModelSpec":
        return cls(**row)


# Presets. Parameter counts are for a ~316-token vocabulary (tied embeddings counted once).
# Measured on the project's 2-core CPU with ttc_lib.training (ArithmeticWorld, 20k train problems,
# batch 32, bf16 autocast, one thread, quiet machine; about 2x slower under contention):
# small ~7.7k training tokens/s, medium ~3.5k. pass@1 below: T=1 samples, 100 test problems a level.
MODEL_SPECS: dict[str, ModelSpec] = {
    # Plumbing only (tests, ci profile): ~30k params, learns nothing useful.
    "tiny": ModelSpec("tiny", hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64),
    # The policy: 1.09M params. lr 2e-3: 700 steps -> pass@1 .55 at 1 op ... .03 at 8 (mean .21);
    # 1000 steps (2.5M tokens, ~5.5 min) -> .89 ... .45 (mean .71); 1500 steps -> mean .72-.92
    # across 3 seeds: arithmetic "clicks" around there, so the seed matters.
    "small": ModelSpec("small", hidden_size=128, num_layers=4, num_heads=4, intermediate_size=512),
    # 2.4M params, 2.2x small: the cpu profile's larger model, on the policy's own recipe (its
    # context rows, batches, steps and schedule): ~1.3x the policy's time per step on one core, about
    # the time the policy and the verifier backbone take together on the other (notebook 01's
    # training table records both); medium on the same rows would not fit the 45-minute budget.
    "small_x2": ModelSpec("small_x2", hidden_size=192, num_layers=4, num_heads=4, intermediate_size=768),
    # 4.28M params, 3.9x small. lr 1e-3, 1000 steps (2.5M tokens,
    # ~12 min single-threaded) -> pass@1 .95 ... .65 (mean .85) vs small's .71 at the same steps.
    # Wide-and-shallow trains fastest per parameter on CPU; a deeper, larger model gets too few
    # steps in minutes on 2 cores to get past the point where the arithmetic clicks.
    "medium": ModelSpec("medium", hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024),
    # The paper's ~14x larger model (GPU profile): 15.2M params, 13.9x small. Not trained here.
    "large": ModelSpec("large", hidden_size=384, num_layers=6, num_heads=6, intermediate_size=1664),
}


def get_spec(spec: str | ModelSpec) -> ModelSpec:
    """A ModelSpec from itself or a preset name."""
    if isinstance(spec, ModelSpec):
        return spec
    try:
        return MODEL_SPECS[spec]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model spec {spec!r}; presets: {sorted(MODEL_SPECS)}") from None


def spec_from_config(config: Any, name: str = "custom") -> ModelSpec:
    """The ModelSpec of a Llama-style HF config (for models built outside build_model)."""
    return ModelSpec(name, hidden_size=config.hidden_size, num_layers=config.num_hidden_layers,
                     num_heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
                     max_position_embeddings=config.max_position_embeddings)


def build_model(spec: str | ModelSpec, tokenizer: Any, seed: int | None = None):
    """A freshly initialised LlamaForCausalLM of ``spec`` for ``tokenizer``'s vocabulary (fp32).

    ``seed`` seeds the initialisation (torch's global RNG) so one seed gives one model.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    spec = get_spec(spec)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size, num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads, num_key_value_heads=spec.num_heads,  # plain MHA
        max_position_embeddings=spec.max_position_embeddings, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    if seed is not None:
        torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):  # generate() reads these
        setattr(model.generation_config, key, getattr(config, key))
    return model


def count_params(model: Any) -> int:
    """Number of distinct parameters (tied embedding/output weights counted once): the N of 6·N·D."""
    return sum(p.numel() for p in model.parameters())  # parameters() yields a shared tensor once


def save_checkpoint(model: Any, tokenizer: Any, path: str | Path, ttc_config: dict) -> Path:
    """Write a standard HF checkpoint dir (safetensors) plus ``ttc_config.json``, atomically.

    Everything is written to a temporary sibling directory, which is then renamed to ``path``;
    an existing ``path`` is replaced (moved aside first, removed last).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = dict(ttc_config)
    config.setdefault("prompt_style", "plain")
    config.setdefault("spec", spec_from_config(model.config, config.get("name", "custom")).to_dict())
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / TTC_CONFIG_FILE).write_text(json.dumps(config, indent=2, default=json_default) + "\n")
    return path


def read_ttc_config(path: str | Path) -> dict:
    """``ttc_config.json`` of a checkpoint dir; {} for a checkpoint ttc did not train."""
    file = Path(path) / TTC_CONFIG_FILE
    if not file.exists():
        return {}
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"checkpoint {path}: {file} is corrupt ({err})") from None
    if not isinstance(config, dict):
        raise ValueError(f"checkpoint {path}: {file} must hold a JSON object")
    return config


def checkpoint_record(path_or_id: str | Path) -> dict:
    """The training record of a checkpoint (parameters, tokens, FLOPs, wall time, loss curve):
    ttc's own from its ttc_config.json; for a model ttc did not train, its parameter count and
    ``None`` for what ttc cannot know (its pretraining tokens and FLOPs)."""
    record = read_ttc_config(path_or_id).get("training") if Path(path_or_id).expanduser().is_dir() else None
    if record:
        return record
    model, _, _ = load_checkpoint(path_or_id)
    return {"params": count_params(model), "tokens": None, "training_flops": None, "wall_seconds": None,
            "final_loss": None, "loss_curve": []}


def load_checkpoint(path_or_id: str | Path, device: str = "cpu", trust_remote_code: bool = False,
                    dtype: Any = None):
    """(model in eval mode on ``device``, tokenizer, ttc_config) from a checkpoint dir; ttc_config
    is {} for a checkpoint ttc did not train (then the caller must name its prompt style).

    ``path_or_id`` is a local directory, or a hub id already in the local Hugging Face cache
    (nothing is ever downloaded). Weights must be safetensors; remote code runs only when
    ``trust_remote_code=True`` is asked for by name. Errors name the path at fault.
    ``dtype`` defaults to the checkpoint's own dtype.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(path_or_id).expanduser()
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "local_files_only": True}
    if local.exists():
        _check_checkpoint_dir(local)
        source: str | Path = local
        ttc_config = read_ttc_config(local)
    elif _looks_like_hub_id(str(path_or_id)) and _in_hub_cache(str(path_or_id)):
        source, ttc_config = str(path_or_id), {}
    else:
        raise FileNotFoundError(f"checkpoint {path_or_id!s}: no such directory ({local.resolve()}), "
                                "and no such model in the local Hugging Face cache (ttc never downloads)")
    from transformers.utils import logging as hf_logging

    # ttc's own checkpoints load in milliseconds, many times per notebook: no progress bar
    quiet = bool(ttc_config) and hf_logging.is_progress_bar_enabled()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype or "auto",
                                                     use_safetensors=True, **kwargs)
    except Exception as err:  # transformers' errors don't always say which checkpoint failed
        where = f"checkpoint {source}" if local.exists() else (
            f"{source!r} (not a local directory; looked in the local Hugging Face cache only)")
        raise ValueError(f"could not load {where}: {type(err).__name__}: {err}") from err
    finally:
        if quiet:
            hf_logging.enable_progress_bar()
    return model.to(device).eval(), tokenizer, ttc_config


def _check_checkpoint_dir(path: Path) -> None:
    """Clear errors for the common ways a checkpoint dir is broken, before transformers sees it."""
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint {path} is not a directory")
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"checkpoint {path} has no config.json (not a Hugging Face checkpoint dir)")
    try:
        json.loads((path / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"checkpoint {path}: config.json is corrupt ({err})") from None
    weights = [path / f for f in WEIGHT_FILES if (path / f).exists()]
    if not weights:
        other = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt"))
        hint = f" (found {other}: convert them to safetensors; pickled weights are not loaded)" if other else ""
        raise FileNotFoundError(f"checkpoint {path} has no model.safetensors weights{hint}")
    if weights[0].name == "model.safetensors":
        _check_safetensors(weights[0])
    read_ttc_config(path)  # a corrupt ttc_config.json fails here, naming the file


def _check_safetensors(file: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as fh:
            for key in fh.keys():  # reading each tensor catches truncation, not just a bad header
                fh.get_slice(key)
    except Exception as err:
        raise ValueError(f"checkpoint weights {file} are corrupt or truncated ({err})") from None


def _looks_like_hub_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) <= 2 and all(parts) and not text.startswith((".", "~"))


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # a malformed id, or no huggingface_hub: treat as not cached
        return False
