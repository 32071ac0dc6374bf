# Two set-up commands for a fresh machine:  `make demo`  and  `make test`  (see README.md).
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
SORTNET := $(VENV)/bin/sortnet
DEMO    ?= runs/demo
BUDGET  ?= 5m

.PHONY: demo test test-all install clean-demo

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Fashion-MNIST: present, else Debian's dataset-fashion-mnist (apt-get, when root or passwordless sudo),
# else the official download, else a message saying which files to put where (sortnet/data/fetch.py);
# trained within a $(BUDGET) time budget, evaluated on the official test split, a few test images predicted.
demo: $(VENV)/.installed
	rm -rf $(DEMO) $(DEMO)-images
	$(SORTNET) datasets --fetch fashion-mnist
	$(SORTNET) datasets --export fashion-mnist --split test --limit 8 --out $(DEMO)-images
	$(SORTNET) train fashion-mnist --time-budget $(BUDGET) --out $(DEMO)
	$(SORTNET) evaluate $(DEMO)/model.safetensors fashion-mnist
	$(SORTNET) predict $(DEMO)/model.safetensors $(DEMO)-images --top-k 3
	@echo "model file: $(DEMO)/model.safetensors"

test: $(VENV)/.test-installed
	$(VENV)/bin/pytest -q

test-all: $(VENV)/.test-installed
	$(VENV)/bin/pytest -q -m ''

clean-demo:
	rm -rf $(DEMO) $(DEMO)-images
