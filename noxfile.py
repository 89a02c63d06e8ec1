"""Developer sessions: tests, lint, typecheck, bench and soak.

Run ``nox -s tests`` (or ``pure``, ``lint``, ``typecheck``, ``bench``, ``soak``).
"""

from __future__ import annotations

import re
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
# A Python the machine does not have is skipped, not an error: run what is there.
nox.options.error_on_missing_interpreters = False

# Read with a pattern rather than tomllib, which the 3.10 nox may run under lacks.
SUPPORTED = re.findall(
    r'"Programming Language :: Python :: (3\.\d+)"',
    Path(__file__).with_name("pyproject.toml").read_text(encoding="utf-8"),
)
"""Every Python version the package claims (its classifiers), so none goes untested."""
PYTHON = "3.11"
"""The one version for the sessions that do not depend on it."""


@nox.session(python=SUPPORTED)
def tests(session: nox.Session) -> None:
    """The whole test suite against the built-in fake server, on every supported Python."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def pure(session: nox.Session) -> None:
    """The whole suite with the C vector parser switched off, as on a machine without a C
    compiler at install time (not among the default sessions)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs, env={"TWELVELABS_ASYNC_NO_EXTENSIONS": "1"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check (with the ASYNC rules) and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[test]", "mypy>=1.11")
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against the official SDK; writes benchmarks/results.md and results.json."""
    session.install("-e", ".[bench,cli]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """The long chaos soak (10,000 tasks under injected faults; bounded, loopback only)."""
    session.install("-e", ".[test]")
    session.run(
        "pytest", "-m", "soak", "--soak-scale=full", "-p", "no:cacheprovider", *session.posargs
    )
