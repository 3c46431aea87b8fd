# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
	touch $@

# Main job: build ZippyPoint and the KP2D baseline, export to fp32 / int8 / LCE flatbuffers, benchmark in one run.
demo: setup
	$(BIN)/python benchmarks/latency.py --output_dir $(OUT)

test: setup
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) $(OUT)
