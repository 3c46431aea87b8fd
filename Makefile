# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out
# test processes (pytest-xdist), one per core of the 2-core CI machine; whole files go to one process, so a
# file's module fixtures are built once
JOBS ?= 2

.PHONY: setup demo test test-large clean

setup: $(VENV)/.installed

# quiet: `make demo` prints the project's own lines, not pip's
$(VENV)/.installed: setup.cfg setup.py pyproject.toml constraints.txt zippy_tf/keypoints/_hamming.c
	@echo "setting up $(VENV) (pinned TensorFlow 2.16 + tf-keras, larq, LCE; once, a few minutes)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	@$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e ".[cpu,test]"
	@touch $@

PAIR := $(OUT)/hpatches_sets/generated/v_chelsea_006

# Main job: match a generated viewpoint pair with the shipped ZippyPoint (out/matches.png), then build ZippyPoint
# and the KP2D baseline, export them to fp32 / int8 / LCE flatbuffers and benchmark them in one run.
# TensorFlow's C++ and absl log lines are hidden; each step says what it does, then prints its JSON result.
demo: export TF_CPP_MIN_LOG_LEVEL = 3
demo: setup
	@echo "1/2 matching a generated viewpoint pair with the shipped ZippyPoint weights -> $(OUT)/matches.png"
	@$(BIN)/python -c "import zippy_tf.data.hpatches as h; h.standard_test_set('generated', '$(OUT)/hpatches_sets')"
	@$(BIN)/zippy-tf match $(PAIR)/1.ppm $(PAIR)/3.ppm --output $(OUT)/matches.png
	@echo "2/2 ZippyPoint and KP2D exported to fp32 / int8 / LCE flatbuffers, timed interleaved on this CPU" \
		"-> $(OUT)/latency.json, $(OUT)/latency.png"
	@$(BIN)/python benchmarks/latency.py --output_dir $(OUT)

test: setup
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile tests

# the slow end-to-end runs (`large` marker: multi-device equivalence, full training and tracking runs); CI runs them
# after `make test`
test-large: setup
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile --run-large -m large tests

clean:
	rm -rf $(VENV) $(OUT)
