"""benchmarks/gpu_check.py --tiny: every figure line printed, in `name: value unit (details)` form."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
LINE = re.compile(r"^(\S+): (\S+) (\S+) \((.+)\)$")


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_prints_every_figure(tmp_path, one_thread):
    gc = _load()
    out = tmp_path / "figures.txt"
    lines = gc.main(["--tiny", "--out", str(out)])
    assert out.read_text().splitlines() == lines
    parsed = {}
    for line in lines:
        m = LINE.match(line)
        assert m, f"not `name: value unit (details)`: {line!r}"
        parsed[m[1]] = (m[2], m[4])
    expected = ["logits_max_abs_diff", "chunk_rows", "step_full_time_ratio", "prm_tokens_per_s", "peak_memory[prm]"]
    for rows in gc.TINY["rows"]:
        expected += [f"tokens_per_s[engine,rows={rows}]", f"tokens_per_s[generate,rows={rows}]",
                     f"speedup[rows={rows}]", f"peak_memory[engine,rows={rows}]",
                     f"peak_memory[generate,rows={rows}]"]
    assert sorted(parsed) == sorted(expected)
    for name, (value, details) in parsed.items():
        if value == "n/a":  # memory on CPU only, and said so
            assert name.startswith("peak_memory") and "not measured on cpu" in details
            continue
        x = float(value)
        assert math.isfinite(x) and (x >= 0 if name == "logits_max_abs_diff" else x > 0), name
    assert parsed["logits_max_abs_diff"][1].endswith(": within")  # fp32 on CPU: ~1e-7


def test_cuda_absent_is_refused_naming_tiny(capsys, monkeypatch):
    import torch

    gc = _load()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        gc.main([])
    err = capsys.readouterr().err
    assert "--tiny" in err and "--device cpu" in err
