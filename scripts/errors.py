"""Error types shared by every step, and the one place that maps them to exit codes.

Exit codes: 0 ok, 1 a run or a system failed, 2 bad input or usage.
"""
from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class HarnessError(Exception):
    """Base class: the message is one clear line shown to the user."""

    exit_code = EXIT_FAILED


class BadInput(HarnessError):
    """Bad flag, config file, state file or results file (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class RunFailed(HarnessError):
    """A run, a component or a system failed (exit 1)."""

    exit_code = EXIT_FAILED


class Interrupted(HarnessError):
    """SIGINT/SIGTERM arrived; whatever was started has been stopped."""

    exit_code = 130


F = TypeVar("F", bound=Callable[..., int | None])


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or exc.__class__.__name__


def cli_entry(fn: F) -> F:
    """Wrap a `python -m scripts.x` entry point: one line on stderr and the right exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            code = fn(*args, **kwargs)
        except HarnessError as exc:
            print(f"error: {one_line(exc)}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            sys.exit(130)
        sys.exit(code or 0)

    return wrapper  # type: ignore[return-value]
