# labmgr's task runner. `make run` and `make test` install whatever is missing first.
.PHONY: run test setup check bench clean

run:
	@scripts/setup run
	@scripts/run

test:
	@scripts/setup test
	@scripts/test

setup:
	@scripts/setup test

# The fast checks alone: lint, import rules, types.
check:
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports && .venv/bin/mypy

bench:
	@scripts/setup run
	@.venv/bin/python -m bench

# Removes the virtual environment, the front-end libraries and the local data (labs, users).
clean:
	rm -rf .venv node_modules var
