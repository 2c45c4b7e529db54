"""Suite-wide rule: where GANFORGE_NO_SKIPS is set (CI, which has every extra and ../shared/data), any skipped
test or module fails the run, so that a missing install step or data set cannot hide behind a green run.

Also the tiny trained runs several modules share (tiny_run, tiny_ema_run, tiny_conditional_run)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

MAX_WORKERS = 4  # each worker holds its own torch and test data: a few GB, so not one per core on a big machine


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject.toml's addopts): a worker per core, at most MAX_WORKERS."""
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


_TEST_CACHE = [""]  # the cache folder pytest_configure made, if it made one


def pytest_configure(config: pytest.Config) -> None:
    """A worker of pytest-xdist computes on one thread, and so do the processes it starts (OMP_NUM_THREADS): with a
    worker per core, a second OpenMP thread only waits for a busy core (measured in this project: runs 3-10x
    slower when two processes of two threads share two cores).

    The feature cache ($GANFORGE_CACHE, which runs' `--metrics` and `evaluate` fill) is a folder of this process's
    own, removed at the end: the suite must not leave its test extractors' features in the user's ~/.cache."""
    if not os.environ.get("GANFORGE_CACHE"):
        os.environ["GANFORGE_CACHE"] = _TEST_CACHE[0] = tempfile.mkdtemp(prefix="ganforge-test-cache-")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _TEST_CACHE[0]:
        shutil.rmtree(_TEST_CACHE[0], ignore_errors=True)


# The modules that take longest (.ci/run's --durations), handed to the workers first: one started last would leave
# its worker running alone at the end (the demo's 50-kimg run: 4 to 11 minutes on one thread).
LONGEST_FIRST = ("test_demo_quality.py", "test_modern_training.py", "test_metrics_inception.py", "test_notebook.py",
                 "test_progan_training.py", "test_compile.py")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: every module's tests keep their order


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("GANFORGE_NO_SKIPS") and skipped:
        reasons = sorted({str(r.longrepr[2]) if isinstance(r.longrepr, tuple) else str(r.longrepr) for r in skipped})
        print(f"\n{len(skipped)} skipped where GANFORGE_NO_SKIPS is set (CI must run every test):")
        for reason in reasons:
            print(f"  {reason}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# The tiny trained runs of the generate, explore, export and serve tests (explore_helpers.py), written once here.
# Module scope, as when each module trained its own: the tests only read them (the hostile ones damage a copy), but
# a session-wide run would keep one_thread() set over every module after it. While a module's run is alive its
# tests run on one thread, as before. explore_helpers is imported on use: it loads the CLI and torch.


def _module_folder(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, what: str) -> Path:
    return tmp_path_factory.mktemp(f"{request.module.__name__.rsplit('.', 1)[-1]}-{what}")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A DCGAN of width 8 after 0.3 kimg (two ticks) on 256 MNIST digits, without G-EMA."""
    from explore_helpers import one_thread, train_tiny_run

    with one_thread():
        yield train_tiny_run(_module_folder(tmp_path_factory, request, "tiny"), ema=False)


@pytest.fixture(scope="module")
def tiny_ema_run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    """The same run with G-EMA (--ema-kimg 1), which is what `export` ships."""
    from explore_helpers import one_thread, train_tiny_run

    with one_thread():
        yield train_tiny_run(_module_folder(tmp_path_factory, request, "tiny-ema"), ema=True)


@pytest.fixture(scope="module")
def tiny_conditional_run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A class-conditional DCGAN of width 8 after 0.1 kimg, its classes MNIST's digits "0".."9"."""
    from explore_helpers import one_thread, train_tiny_conditional_run

    with one_thread():
        yield train_tiny_conditional_run(_module_folder(tmp_path_factory, request, "tiny-conditional"))
