# Two entry points: `make serve` and `make test`. Both bootstrap what they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: setup repository serve triton test lock clean

setup: $(STAMP)

# torch first and alone: the local CPU wheel; anything else could pull a CUDA build.
$(STAMP): pyproject.toml constraints.txt
	@echo "Setting up $(VENV) with the pinned dependencies (first time: 3-4 minutes)..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(BIN)/pip install -qq --disable-pip-version-check -c constraints.txt -e '.[all]'
	@echo "Compiling librosa's numba kernels once (cached), so the gateway starts in seconds..."
	$(BIN)/python -c "from bentos.audio import warm_up; warm_up()"
	@rm -f $(VENV)/.installed-* && touch $@

# Train, evaluate and export every model that has no version yet: the reference models, trained once
# on the project's own generated data (cached in .djserve/), registered in MLflow with their
# held-out metrics. `djserve export MODEL --checkpoint ...` serves your own weights instead.
repository: setup
	$(BIN)/djserve train all --if-missing --export

serve: repository
	$(BIN)/djserve serve

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lock:
	$(BIN)/pip freeze --exclude-editable | sed '1i # Full lock of the dev environment (pip install -c constraints.txt). Regenerate: make lock' > constraints.txt

clean:
	rm -rf .djserve model_repository/*/.staging-*
