# The kit's everyday commands. Each one creates the virtual environment first if needed.
#   make demo   the end-to-end demo (processes, or Docker once its images are built)
#   make test   the test suite (Docker, MariaDB and browser tests skip where missing)
#   make test-fast  the unit tests only: pure logic, under a minute
#   make test-notebooks-docker | test-notebooks-etcd  the notebook series on Docker and
#               MariaDB, or with etcd as the Directory (CI runs both after make test)
#   make lab    JupyterLab on the notebook series
#   make bench  the benchmarks (ARGS=--quick for a five-minute run)
#   make render every notebook executed to HTML in build/notebooks/ (with its time), and
#               each one's main picture in docs/pictures/ (see docs/instructor.md)
#   make wheelhouse  every wheel the kit installs, into wheelhouse/: copy that folder to a
#               room without the internet; there `make venv` installs from it alone
#   make down   remove what one workdir's stack runs (instances, Directory, database,
#               monolith, watchdog, found by the workdir's marks): $MWKIT_WORKDIR, else
#               <repo>/.mwkit, the notebooks' default; another folder's stack needs
#               ARGS="--workdir DIR". A notebook whose kernel died needs no `make down`:
#               its stack's watchdog removes it (a stack started with `mwkit up --detach`
#               and no --owner has no watchdog and runs until `mwkit down`).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.mwkit-installed
WHEELHOUSE ?= wheelhouse
PIP     = $(BIN)/python -m pip --disable-pip-version-check
# With a wheelhouse/ folder (make wheelhouse), every install comes from it, never the net.
OFFLINE = $(if $(wildcard $(WHEELHOUSE)/*.whl),--no-index --find-links $(WHEELHOUSE))
# httpbin (the transparency tests' real app) pins greenlet<3 on Python 3.11, which
# playwright cannot use; it never imports greenlet, so it goes in without its pins.
NO_DEPS_EXTRAS = 'httpbin>=0.10.4' brotlicffi decorator six

.PHONY: demo test test-fast test-notebooks-docker test-notebooks-etcd bench lab lint down venv render wheelhouse

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing mwkit and its dependencies into $(VENV) $(if $(OFFLINE),from $(WHEELHOUSE)/ ,)..."
	@$(PIP) install --quiet $(OFFLINE) --upgrade pip
	@$(PIP) install --quiet $(OFFLINE) -e '.[dev]'
	@$(PIP) install --quiet $(OFFLINE) --no-deps $(NO_DEPS_EXTRAS)
	@touch $(STAMP)

# pip, setuptools (to build mwkit itself), every dependency of .[dev] and the extras above
# (mwkit itself installs from this checkout). The wheels fit this machine's OS, processor
# and Python: make it on the kind of machine the room uses, with the $(PYTHON) the venv is
# made from, and again after pyproject.toml changed. Playwright's browser (tests only) and
# the Docker images are not in it: see docs/instructor.md, "Offline preparation".
wheelhouse:
	$(PYTHON) -m pip download --dest $(WHEELHOUSE) pip 'setuptools>=68' wheel '.[dev]'
	$(PYTHON) -m pip download --dest $(WHEELHOUSE) --no-deps $(NO_DEPS_EXTRAS)
	@du -sh $(WHEELHOUSE)

demo: $(STAMP)
	$(BIN)/mwkit demo $(ARGS)

NBVAL = --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest $(NBVAL) --durations=25 tests notebooks $(ARGS)

test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest tests/unit $(ARGS)

# The series on Docker with MariaDB, and once more with a three-member etcd cluster as the
# Directory (on processes). Both leave out 07b, the policy lab: it measures Sherlock's
# policies, the same on every runtime and Directory, and takes two minutes a run; and 07c,
# the approaches (dnsmasq and HAProxy on loopback beside processes: the same everywhere).
NOT_ON_EVERY_RUNTIME = --ignore=notebooks/07b_the_fault_and_policy_lab.ipynb \
	--ignore=notebooks/07c_approaches_and_trade_offs.ipynb

test-notebooks-docker: $(STAMP)
	MWKIT_RUNTIME=docker MWKIT_DB=mariadb $(BIN)/pytest $(NBVAL) $(NOT_ON_EVERY_RUNTIME) notebooks $(ARGS)

test-notebooks-etcd: $(STAMP)
	MWKIT_RUNTIME=process MWKIT_REGISTRY=etcd $(BIN)/pytest $(NBVAL) $(NOT_ON_EVERY_RUNTIME) notebooks $(ARGS)

bench: $(STAMP)
	bash benchmarks/setup.sh
	$(BIN)/python -m benchmarks $(ARGS)

render: $(STAMP)
	$(BIN)/python scripts/render_notebooks.py $(ARGS)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

lint: $(STAMP)
	$(BIN)/ruff check .

down: $(STAMP)
	$(BIN)/mwkit down $(ARGS)
