# The README's two commands:
#   make demo   set up .venv, then run the demo on digits (pipeline + dashboard on 127.0.0.1)
#   make test   set up .venv, then run the test suite
# Setup runs once: it is redone only when pyproject.toml changes (or .venv is deleted).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# constraints.txt pins torch for the test environment (other versions download gigabytes or do not pair with
# torchvision); the package's own dependencies stay open. The Dockerfile installs the same way
# (tests/test_env_files.py checks it).
STAMP  := $(VENV)/.scarlab-installed

.PHONY: demo test setup clean-venv

demo: $(STAMP)
	$(VENV)/bin/scarlab demo

# one pytest worker per core (pytest-xdist; each test module stays on one worker, so its fixtures are made once; the
# modules go out in tests/conftest.py's order, longest first, not xdist's default of most tests first)
test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadscope --no-loadscope-reorder

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e '.[dev]'
	touch $@

clean-venv:
	rm -rf $(VENV)
