"""Error types and the CLI exit codes they map to."""

from __future__ import annotations

from typing import Iterable, List

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_INPUT = 2
EXIT_GATE = 3


class EdgeAgentError(Exception):
    """A runtime failure (exit code 1)."""

    exit_code = EXIT_RUNTIME


class InputError(EdgeAgentError):
    """Bad input from the user: arguments, files, models, label sets (exit code 2)."""

    exit_code = EXIT_INPUT


class ConfigError(InputError):
    """One or more configuration problems, each naming the key path and the value."""

    def __init__(self, errors: Iterable[str], source: str = "configuration") -> None:
        self.errors: List[str] = list(errors)
        self.source = source
        super().__init__(f"{source}: {len(self.errors)} error(s):\n  " + "\n  ".join(self.errors))


class MissingDependency(InputError):
    """An optional dependency that the requested feature needs is not installed."""


class GateFailed(EdgeAgentError):
    """A check or an accuracy gate failed (exit code 3)."""

    exit_code = EXIT_GATE


class EngineIncompatible(EdgeAgentError):
    """An engine file this runtime cannot load (another runtime version or device): rebuild it."""
