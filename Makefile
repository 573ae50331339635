# The README's two commands:
#   make demo   set up .venv, then run the demo on digits (pipeline + dashboard on 127.0.0.1)
#   make test   set up .venv, then run the test suite
# Setup runs once: it is redone only when pyproject.toml changes (or .venv is deleted).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# constraints.txt pins the test environment (torch, and every other package at the version the suite last passed
# with); the package's own dependencies stay open. The Dockerfile installs the same way (tests/test_env_files.py).
STAMP  := $(VENV)/.scarlab-installed

.PHONY: demo test setup clean-venv lock

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
	$(PY) -m compileall -q scarlab dashboard  # bytecode, which an editable install and PYTHONDONTWRITEBYTECODE skip
	$(PY) -c 'import umap'  # umap-learn compiles its numba code into numba's cache once (~10 s): here, not in a fit
	touch $@

clean-venv:
	rm -rf $(VENV)

# constraints.txt redone from today's releases: the package and its dev extra in a scratch venv under the torch pins
# alone, then every version pip chose, pinned for that venv's Python (the header above "-- resolved" is kept).
LOCK := /tmp/scarlab-lock
lock:
	rm -rf $(LOCK) && $(PYTHON) -m venv $(LOCK)
	grep -E '^torch(vision)?==[^;]*$$' constraints.txt > $(LOCK)/torch.txt
	$(LOCK)/bin/python -m pip install -c $(LOCK)/torch.txt -e '.[dev]'
	sed '/^# -- resolved by make lock/q' constraints.txt > $(LOCK)/new.txt
	v=$$($(LOCK)/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])') && \
	  $(LOCK)/bin/python -m pip freeze --all --exclude-editable | grep -Ev '^(pip|torch|torchvision)==' \
	  | sed "s/$$/ ; python_version == \"$$v\"/" >> $(LOCK)/new.txt
	mv $(LOCK)/new.txt constraints.txt && rm -rf $(LOCK)
	@echo "constraints.txt redone: git diff constraints.txt, then make test"
