# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out
# test processes (pytest-xdist), one per core of the 2-core CI machine; whole files go to one process, so a
# file's module fixtures are built once
JOBS ?= 2

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg setup.py pyproject.toml constraints.txt zippy_tf/keypoints/_hamming.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
	touch $@

PAIR := $(OUT)/hpatches_sets/generated/v_chelsea_006

# Main job: match a generated viewpoint pair with the shipped ZippyPoint (out/matches.png), then build ZippyPoint
# and the KP2D baseline, export them to fp32 / int8 / LCE flatbuffers and benchmark them in one run.
demo: setup
	$(BIN)/python -c "import zippy_tf.data.hpatches as h; h.standard_test_set('generated', '$(OUT)/hpatches_sets')"
	$(BIN)/zippy-tf match $(PAIR)/1.ppm $(PAIR)/3.ppm --output $(OUT)/matches.png
	$(BIN)/python benchmarks/latency.py --output_dir $(OUT)

test: setup
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile tests

clean:
	rm -rf $(VENV) $(OUT)
