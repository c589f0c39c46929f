# vsfusion: two commands set everything up on a fresh machine.
#   make demo   creates .venv, installs, runs the whole pipeline on the built-in demo data, prints results
#   make test   runs the test suite (model tests under the TensorFlow and the JAX backend)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SEED ?= 0
OUT ?= runs/demo
BENCH_ARGS ?=
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: demo test test-fast lint bench clean venv venv-pose test-pose chromium

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.runtime

# Pose extraction (vsfusion.data.pose) gets its own environment: mediapipe 0.10.21 pins protobuf<5
# and numpy<2, TensorFlow 2.21 needs protobuf>=6.31. Then: $(POSE_VENV)/bin/python -m vsfusion.data.pose
POSE_VENV ?= .venv-pose
$(POSE_VENV)/.pose: pyproject.toml
	test -x $(POSE_VENV)/bin/python || $(PYTHON) -m venv $(POSE_VENV)
	$(POSE_VENV)/bin/python -m pip install -q --upgrade pip
	$(POSE_VENV)/bin/python -m pip install -q -e '.[pose]' 'pytest>=8'
	touch $@

venv-pose: $(POSE_VENV)/.pose

test-pose: $(POSE_VENV)/.pose
	$(POSE_VENV)/bin/python -m pytest -q tests/data/test_pose.py

demo: $(VENV)/.runtime
	$(PY) reproduce.py --dataset demo --out $(OUT) --preset fast --seed $(SEED)

# Test files are spread over TEST_WORKERS processes (pytest-xdist), whole files per worker, so a
# module's fixtures (tiny trained runs) are built once; TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The served page's browser test (tests/server/test_page.py) drives Debian's Chromium; it is
# installed here where apt-get can run (root, or sudo without a password), else that test skips.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else SUDO=none; fi; \
	  if [ "$$SUDO" != none ] && command -v apt-get >/dev/null; then \
	    $$SUDO apt-get install -y -q chromium || { $$SUDO apt-get update -q && \
	      $$SUDO apt-get install -y -q chromium; } || echo "chromium: apt-get failed; the browser test will skip"; \
	  else echo "chromium: not installed and apt-get cannot run here; the browser test will skip"; fi; }

test: $(VENV)/.dev chromium
	$(PYTEST)
	KERAS_BACKEND=jax $(PYTEST) -m backend

test-fast: $(VENV)/.dev
	$(PYTEST) -m "not slow"

lint: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(VENV)/.dev  # BENCH_ARGS="--imitate avx2" measures as a CPU without AVX-512 would
	$(PY) bench/run.py --out bench/results.json $(BENCH_ARGS)

clean:
	rm -rf runs checkpoints data/demo .pytest_cache
