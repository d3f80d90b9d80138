# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The verified data copies beside the project (CI, offline machines); else the loader downloads.
ifneq ($(wildcard ../shared/data/winequality-red.csv),)
export COURSE_DATA_HOME ?= $(abspath ../shared/data)
endif
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: demo test test-fast lint release bench student-wheel clean

$(STAMP): pyproject.toml student/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# tensorflow-cpu (older checkouts) and tensorflow (what dlcourse needs) cannot coexist
	$(PY) -m pip uninstall --quiet --yes tensorflow-cpu 2>/dev/null || true
	$(PY) -m pip install --quiet -e ./student -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m autograder demo

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" -n 2 --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check autograder student tests benchmarks
	$(VENV)/bin/ruff format --check autograder student tests benchmarks

release: $(STAMP)
	$(PY) -m autograder release

bench: $(STAMP)
	$(PY) benchmarks/bench_grade_learning_rate.py

# The wheel students install (dlcourse only: no grader, no answers); see tests/test_student_dist.py.
# student/build is removed first: setuptools would put stale files left there into the wheel.
student-wheel: $(STAMP)
	rm -rf dist/student student/build
	$(PY) -m pip wheel --no-deps -w dist/student ./student

clean:
	rm -rf demo submitted autograded feedback results exports gradebook.db
