# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.trainwise-installed
# CPU wheel of torch first (a bare `torch` requirement would pull a multi-GB CUDA build).
TORCH_PIN ?= torch==2.13.0
EXTRAS ?= dev,plot,tasks,yaml,data

.PHONY: venv demo test test-slow docs bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

# measure -> plan -> report on the built-in character GPT (text shipped with Python); a few minutes on 2 cores
demo: $(STAMP)
	$(PY) -m trainwise.cli.main measure --task char-gpt --steps 200 --checkpoints 5 --rounds 8 --out runs/demo
	$(PY) -m trainwise.cli.main plan --from runs/demo --tokens 50M --throughput 20000tok/s --out runs/demo/plan
	$(PY) -m trainwise.cli.main report runs/demo -o runs/demo/report.html

test: $(STAMP) docs
	$(PY) -m pytest -q -m "not slow"

# the documentation site in site/, warnings as errors (mkdocs.yml: strict); about 5 s
docs: $(STAMP)
	$(PY) -c "import mkdocs, material, mkdocstrings_handlers.python" 2>/dev/null || $(PY) -m pip install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

test-slow: $(STAMP)
	$(PY) -m pytest -q -m "slow"

clean:
	rm -rf $(VENV) runs build dist site src/*.egg-info
