# The two commands of the README, and helpers around them.
.PHONY: demo test venv stop status lock bench fresh-check

# options of `scimflow demo`, e.g. make demo ARGS="--no-wait --stream-seconds 60"
ARGS ?=

demo:            ## the main job: whole local stack + Airflow, demo DAG run, Ctrl-C stops
	bash scripts/demo.sh $(ARGS)

test:            ## set-up, ruff, mypy and every test tier (starts and stops its own services)
	bash scripts/test.sh

venv:            ## the virtual environment from requirements.lock
	bash scripts/bootstrap.sh

stop:            ## stop every local service the demo started
	.venv/bin/scimflow services down

status:
	.venv/bin/scimflow services status

lock:            ## re-resolve requirements.lock after changing pyproject.toml
	.venv/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 -o requirements.lock

bench:
	.venv/bin/python bench/services_start.py

fresh-check:     ## the README's two commands on a fresh Debian 12 (debootstrap, chroot; root; minutes)
	bash scripts/fresh-machine-check.sh $(ARGS)
