# ttc — the two commands: `make run` (the whole study) and `make test` (unit tests + notebooks).
# Knobs (override on the command line, e.g. `make run PROFILE=ci`). Comments sit on their own
# lines because make keeps trailing blanks in a value.

# params/<PROFILE>.yaml: ci | cpu | gpu | math500
PROFILE ?= cpu
# the interpreter that creates .venv (Python >= 3.11)
PYTHON ?= python3
# installed FIRST so a CPU machine gets the CPU wheel and never gigabytes of CUDA packages;
# on your GPU machine e.g. TORCH_INSTALL="torch --index-url <your CUDA wheel index>"
TORCH_INSTALL ?= torch==2.13.0
# extra notebook parameters, e.g. SET="seed=1 n_test=200"
SET ?=
# your own Hugging Face generator (local dir or cached hub id) and MATH-format test data, e.g.
# make run PROFILE=math500 GENERATOR=$HOME/models/qwen2.5-math-1.5b DATA=$HOME/data/math500.jsonl
GENERATOR ?=
DATA ?=
# optional: your PRM (Math-Shepherd or Qwen2.5-Math-PRM layout), used by notebook 02 without training data
VERIFIER ?=

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Ray, the optional executor (SET="executor=ray", docs/scaling.md): installed by `make ray` and `make test`
RAY_STAMP := $(VENV)/.ray-installed
STAGES := 00_data 01_train_generator 02_train_verifier 03_difficulty_bins 04_search \
          05_revisions 06_compute_optimal 07_ttc_vs_pretraining 08_claims
OVERRIDES := $(foreach s,$(SET),--set $(s)) $(if $(GENERATOR),--set generator=$(GENERATOR)) \
             $(if $(DATA),--set source=$(DATA)) $(if $(VERIFIER),--set verifier=$(VERIFIER))
TEST_RUNS := $(CURDIR)/build/test-runs

.PHONY: run test unit lint lab install ray clean benchmarks scale-out gpu-check record publish $(STAGES)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_INSTALL)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

$(RAY_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,ray]"
	touch $(RAY_STAMP)

ray: $(RAY_STAMP)

run: $(STAMP)
	$(PY) -m ttc_lib.pipeline run --profile $(PROFILE) $(OVERRIDES)

$(STAGES): $(STAMP)
	$(PY) -m ttc_lib.pipeline run --profile $(PROFILE) --stages $@ $(OVERRIDES)

# a finished run into docs/results/$(PROFILE): figures, executed notebooks, timings, a README from its summaries
publish: $(STAMP)
	$(PY) -m ttc_lib.pipeline publish $(PROFILE)

test: $(RAY_STAMP)
	rm -rf $(TEST_RUNS)
	TQDM_DISABLE=1 TTC_RUNS_DIR=$(TEST_RUNS) $(PY) -m pytest -q tests --nbval-lax --nbval-current-env notebooks

lint: $(STAMP)
	$(VENV)/bin/ruff check ttc_lib tests benchmarks experiments notebooks

unit: $(RAY_STAMP)
	TQDM_DISABLE=1 $(PY) -m pytest -q tests

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

benchmarks: $(STAMP)
	$(PY) benchmarks/generation.py

# executor: ray vs local on the same pool and search grid, one line of speed-ups (docs/scaling.md)
scale-out: $(RAY_STAMP)
	$(PY) benchmarks/scale_out.py

# the engine on random models of real shapes (1.5B policy, 7B PRM): one line per figure; needs CUDA
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py

clean:
	rm -rf build data/runs

# after changing a notebook's contract cell: re-run the ci profile and store its expected output
record: $(STAMP)
	rm -rf $(TEST_RUNS)
	TQDM_DISABLE=1 TTC_RUNS_DIR=$(TEST_RUNS) $(PY) -m ttc_lib.pipeline record
