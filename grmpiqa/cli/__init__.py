"""The ``grmpiqa`` command: :mod:`grmpiqa.cli.app` and one module per command.

Each command parses options, calls the library and prints.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # ``grmpiqa.cli:main`` is the console script; importing the app lazily keeps
    # ``import grmpiqa.cli.common`` from building the whole typer application.
    if name == "main":
        from grmpiqa.cli.app import main

        return main
    raise AttributeError(f"module 'grmpiqa.cli' has no attribute {name!r}")
