# The two commands of the quick start: `make course` and `make test`.
# Both create .venv on first use and install the kit into it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install course test unit notebooks widgets-compat colab-rehearsal gpu-course-cpu site site-test lint clean-runs

install: $(STAMP)

# constraints.txt holds the versions CI tests; torch is installed first and never replaced.
$(STAMP): pyproject.toml constraints.txt scripts/install_torch.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	bash scripts/install_torch.sh $(BIN)/python
	$(BIN)/python scripts/check_env.py  # before pip: a torch too old would make pip replace it
	$(BIN)/python -m pip install --quiet -e ".[dev]" -c constraints.txt
	$(BIN)/python scripts/check_env.py
	touch $(STAMP)

# Execute every notebook in order on the default profile (COURSE_PROFILE overrides), printing
# each cell as it finishes; executed copies go to runs/notebooks/, figures to runs/figures/.
course: install
	$(BIN)/python scripts/run_course.py

# Unit tests, then every notebook under nbval, all in the `smoke` profile and offline.
# One thread per process: the tiny models gain nothing from more, and the tests start several processes.
test: install unit notebooks
unit notebooks: export OMP_NUM_THREADS = 1

unit: install
	COURSE_PROFILE=smoke HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests

# Each notebook alone, in a fresh course home of its own, as on Colab and Kaggle (no 00_setup before it).
notebooks: install
	rm -rf runs/test
	for nb in notebooks/[0-9][0-9]_*.ipynb; do \
	  COURSE_PROFILE=smoke COURSE_HOME=$(CURDIR)/runs/test/$$(basename $$nb .ipynb) HF_HUB_OFFLINE=1 COURSE_INTERACTIVE=0 \
	    $(BIN)/python -m pytest --nbval-lax --nbval-cell-timeout=900 -p no:cacheprovider -q $$nb || exit 1; \
	done

# Colab ships ipywidgets 7.7.1 and draws only 7.x natively; .venv has 8.x. The widget tests again on
# 7.7.1, installed beside .venv and put first on the path (--no-deps: the rest is .venv's own), with
# the front-end packages released with it. The tests check that 7.7.1 is what they imported.
WIDGETS7 := .venv-widgets7
WIDGETS7_VERSION := 7.7.1
WIDGETS7_PACKAGES := ipywidgets==$(WIDGETS7_VERSION) widgetsnbextension==3.6.1 jupyterlab_widgets==1.1.1 \
	ipython_genutils==0.2.0

$(WIDGETS7)/.installed: | $(STAMP)
	rm -rf $(WIDGETS7)
	$(BIN)/python -m pip install --quiet --no-deps --target $(WIDGETS7) $(WIDGETS7_PACKAGES)
	touch $@

widgets-compat: install $(WIDGETS7)/.installed
	PYTHONPATH=$(CURDIR)/$(WIDGETS7) EXPECTED_IPYWIDGETS=$(WIDGETS7_VERSION) COURSE_PROFILE=smoke HF_HUB_OFFLINE=1 \
	  OMP_NUM_THREADS=1 $(BIN)/python -m pytest -p no:cacheprovider -q tests/test_widgets.py

# The notebooks' install cell on a Colab-shaped venv (Colab's older libraries, ipywidgets 7.7.1), with the
# kit from a local clone instead of GitHub; then notebooks 00 and 01 in the smoke profile. Several minutes.
colab-rehearsal:
	bash scripts/colab_rehearsal.sh

# The gpu profile's code paths on the CPU: Stable Diffusion 1.5's architecture with random weights
# (4 GB, built into gpu-course-check/), fp32 at 64 px, steps and class images cut, in a fresh
# course home. The notebooks chosen cover the most distinct gpu code paths: 00 the gpu defaults
# (cat toy, the learner's own photos); 05 textual inversion, class images, prior preservation,
# DreamBooth from the learned word, a face; 06 EMA and the memory table (8-bit AdamW, fp16 refused
# on the CPU, bf16, checkpointing, accumulation, cached latents); 07 full DreamBooth (notebook 01's
# path) against LoRA. Left out: 01-04 (learning rates, prior on/off, schedulers, the text encoder),
# 12-20 min each on 2 shared cores. GPU_CHECK_NOTEBOOKS= (empty) runs all eight.
# Report: gpu-course-check/gpu_course_check_cpu.md.
GPU_CHECK_NOTEBOOKS ?= 00 05 06 07
gpu-course-cpu: install
	$(BIN)/python scripts/gpu_course_check.py gpu-course-check --cpu --fresh $(GPU_CHECK_NOTEBOOKS)

# The course as a website (site/), from the notebooks `make course` executed (runs/notebooks/) and its
# figures, with the README as home page and docs/. SITE_NOTEBOOKS points it at another run's copies.
# The builder and the browser driver are the `site` extra, installed into .venv (torch stays as it is).
# site-test opens every page in headless Chromium (Debian's, unpacked into .chromium/ without root).
# docs/site.md says why it is built this way.
SITE_NOTEBOOKS ?= runs/notebooks
SITE_STAMP := $(VENV)/.site-installed

$(SITE_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -e ".[site]" -c constraints.txt
	$(BIN)/python scripts/check_env.py
	touch $@

site: $(SITE_STAMP)
	$(BIN)/python scripts/build_site.py --notebooks $(SITE_NOTEBOOKS) --out site

site-test: $(SITE_STAMP)
	bash scripts/install_chromium.sh .chromium
	$(BIN)/python scripts/site_test.py --site site --chromium .chromium/run-chromium --screenshots docs/images

lint: install
	$(BIN)/python -m ruff check helpers tests scripts benchmarks

clean-runs:
	rm -rf runs
