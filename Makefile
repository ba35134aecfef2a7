# The two set-up commands of README.md. Both install first, so they work on a fresh machine.
PY ?= python3
PIP_INSTALL = $(PY) -m pip install --quiet --disable-pip-version-check -e ".[train,sim,dev]"

.PHONY: install demo test lint

install:
	$(PIP_INSTALL)

demo: install
	metabot demo

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -q
