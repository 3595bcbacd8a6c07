"""How much memory generation work may take: fixed budgets on CPU, shares of free memory on CUDA.

Rules:
- CPU keeps fixed budgets (the CPU world's chunks and batches, hence its samples' batch
  compositions, stay what they were).
- CUDA: "free" is what the driver reports free plus what PyTorch's caching allocator holds
  unused, plus buffers the caller will reuse (the decode KV pool), measured when work is planned.
- Rows per decode chunk: a row costs its KV cache (own tokens; for a DynamicCache the prompt too),
  its vocabulary-sized temporaries (logits, sampling scores, the top-p sort) and its activations.
  CPU: at most CPU_MAX_ROWS rows in CPU_KV_BUDGET of KV cache (the vocabulary is small there);
  CUDA: as many rows as CUDA_DECODE_SHARE of free memory holds, at most CUDA_MAX_ROWS.
- Teacher forcing (likelihood PRM, token_logprobs): floats of logits per forward, CPU_LOGITS_BUDGET
  on CPU, CUDA_LOGITS_SHARE of free memory on CUDA.
"""

from __future__ import annotations

import torch

CPU_KV_BUDGET = 4 << 30  # bytes of KV cache per decode chunk on CPU
CPU_MAX_ROWS = 512  # rows per decode chunk on CPU (the cap the CPU world's chunks were made with)
CUDA_DECODE_SHARE = 0.4  # share of free GPU memory a decode chunk may fill
CUDA_MAX_ROWS = 8192  # rows per decode chunk on CUDA: bounds one step's latency (a guard, not a measured optimum)
# bytes per vocabulary entry per decode row: logits (model dtype), float32 scores, top-p's probs,
# sorted values, int64 order, cumsum and masks; the Gumbel noise is made in bounded blocks
VOCAB_BYTES_PER_ROW = 48
CPU_LOGITS_BUDGET = 1 << 27  # floats of logits per teacher-forcing forward on CPU
CUDA_LOGITS_SHARE = 0.25  # share of free GPU memory a teacher-forcing forward's logits may fill
LOGITS_BYTES_PER_FLOAT = 12  # logits in the model's dtype + their float32 copy + log_softmax's output


def free_bytes(device: torch.device, reusable: int = 0) -> int:
    """Bytes the next allocations on CUDA ``device`` can take: driver-free memory, the caching
    allocator's unused reserve, and ``reusable`` bytes the caller holds and will reuse."""
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + cached + reusable)


def decode_rows(model, device: torch.device, width: int, reusable: int = 0) -> int:
    """Rows per decode chunk (module rules) for ``model`` caching ``width`` tokens per row."""
    cfg = model.config.get_text_config()
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    item = model.dtype.itemsize
    kv = 2 * cfg.num_hidden_layers * heads * head_dim * width * item
    if device.type != "cuda":
        return int(max(1, min(CPU_MAX_ROWS, CPU_KV_BUDGET // kv)))
    vocab = cfg.vocab_size
    activations = (4 * cfg.hidden_size + 3 * getattr(cfg, "intermediate_size", 4 * cfg.hidden_size)) * item
    per_row = kv + vocab * VOCAB_BYTES_PER_ROW + activations
    budget = CUDA_DECODE_SHARE * free_bytes(device, reusable)
    return int(max(1, min(CUDA_MAX_ROWS, budget // per_row)))


def logits_budget(device: torch.device) -> int:
    """Floats of logits one teacher-forcing forward may hold (module rules)."""
    if device.type != "cuda":
        return CPU_LOGITS_BUDGET
    return int(CUDA_LOGITS_SHARE * free_bytes(device) // LOGITS_BYTES_PER_FLOAT)
