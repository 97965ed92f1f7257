# The kit's everyday commands. Each one creates the virtual environment first if needed.
#   make demo   the end-to-end demo (processes, or Docker once its images are built)
#   make test   the test suite (Docker, MariaDB and browser tests skip where missing)
#   make test-fast  the unit tests only: pure logic, under a minute
#   make lab    JupyterLab on the notebook series
#   make bench  the benchmarks (ARGS=--quick for a one-minute run)
#   make down   remove whatever a crashed run left behind

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.mwkit-installed

.PHONY: demo test test-fast test-notebooks-docker bench lab lint down venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing mwkit and its dependencies into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@# httpbin (the transparency tests' real app) pins greenlet<3 on Python 3.11, which
	@# playwright cannot use; it never imports greenlet, so it goes in without its pins.
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		'httpbin>=0.10.4' brotlicffi decorator six
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mwkit demo $(ARGS)

NBVAL = --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest $(NBVAL) tests notebooks $(ARGS)

test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest tests/unit $(ARGS)

test-notebooks-docker: $(STAMP)
	MWKIT_RUNTIME=docker MWKIT_DB=mariadb $(BIN)/pytest $(NBVAL) notebooks $(ARGS)

bench: $(STAMP)
	bash benchmarks/setup.sh
	$(BIN)/python -m benchmarks $(ARGS)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

lint: $(STAMP)
	$(BIN)/ruff check .

down: $(STAMP)
	$(BIN)/mwkit down
