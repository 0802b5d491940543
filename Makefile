# The two commands the README opens with: `make demo` (the whole loop on synthetic photos)
# and `make test` (the test suite). Both create the virtual environment on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv docs clean-demo

venv: $(STAMP)

# torch/torchvision are pinned to the CPU-runnable builds this machine carries on disk.
# ultralytics depends on opencv-python (GUI build, needs libGL), label-studio-sdk on
# opencv-python-headless; both install into one cv2/ folder and the last one wins. We run on
# servers without a display, so we deliberately keep the headless build, reinstalled last.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[server,dev]'
	$(PY) -m pip uninstall --quiet -y opencv-python
	$(PY) -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
		"$$(grep -i '^opencv-python-headless==' constraints.txt)"
	$(PY) -c "import cv2, torch, torchvision, ultralytics, label_studio_sdk, pycocotools, onnxruntime; print('environment ready: torch', torch.__version__, 'cv2', cv2.__version__)"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/annotator demo demo-workspace

# Lint, format check and type check first (seconds), then the suite.
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest -q -p no:cacheprovider

docs: $(STAMP)
	$(VENV)/bin/typer annotator.cli utils docs --name annotator --output docs/cli.md

clean-demo:
	-$(VENV)/bin/annotator review serve --stop -w demo-workspace/workspace
	rm -rf demo-workspace
