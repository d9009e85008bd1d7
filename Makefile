# The README's two commands: `make repro` and `make test`. Both create .venv when missing and
# reinstall the pinned dependencies whenever requirements.txt changes.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: repro ablations test ui submit slurm results clean-venv

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

# Stage commands call `python`/`dvc`: put the project's venv first on PATH. `dvc repro` with the
# trainings side by side, one per core (pipeline/commands/reproduce.py; ARGS="--jobs 1": plain dvc repro).
repro: $(STAMP)
	PATH="$(BIN):$$PATH" DVC_NO_ANALYTICS=1 $(BIN)/python -m pipeline.commands.reproduce dvc.yaml $(ARGS)

# The controlled experiment's controls (seeds, |c|, time lag, size, reordering): ablations/dvc.yaml,
# reports/ablations/README.md. Reuses (or first reproduces) the headline pair of `make repro`; trains
# like `make repro` (ARGS="--jobs 1": plain `dvc repro ablations/dvc.yaml`).
ablations: $(STAMP)
	PATH="$(BIN):$$PATH" DVC_NO_ANALYTICS=1 $(BIN)/python -m pipeline.commands.reproduce ablations/dvc.yaml $(ARGS)

test: $(STAMP)
	PATH="$(BIN):$$PATH" $(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)

# MLflow UI over the project's store, on loopback only; prints the URL of the BLEU-by-length comparison.
ui: $(STAMP)
	PATH="$(BIN):$$PATH" $(BIN)/python -m pipeline.commands.ui --host 127.0.0.1 --port 5000

# The pipeline as a Ray job on the cluster at cluster.address / $RAY_ADDRESS (README: "Clusters").
# ARGS is passed on, e.g. make submit ARGS="--stage tune@lm-gru --wait".
submit: $(STAMP)
	PATH="$(BIN):$$PATH" $(BIN)/python -m pipeline.commands.submit $(ARGS)

# The pipeline as one SLURM job (params.yaml: cluster.slurm), e.g. make slurm ARGS="--dry-run".
slurm: $(STAMP)
	PATH="$(BIN):$$PATH" $(BIN)/python -m pipeline.commands.slurm $(ARGS)

# A finished cluster job's results into this checkout: make results EXP=slurm-1234 (docs/clusters.md).
results: $(STAMP)
	PATH="$(BIN):$$PATH" $(BIN)/python -m pipeline.commands.results $(EXP)
