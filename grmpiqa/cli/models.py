"""``grmpiqa models``: what each named model is and whether it is already cached."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from grmpiqa.cli.common import cli_errors, configure_logging


@cli_errors
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the models of the weights manifest and whether their files are in the local cache."""
    configure_logging()
    from grmpiqa.weights import hub
    from grmpiqa.weights.manifest import load_manifest

    manifest = load_manifest()
    rows = []
    for entry in manifest.models.values():
        files = entry.hub_files()
        cached = [hub.cached_path(f) is not None for f in files]
        status = "cached" if all(cached) else ("partly cached" if any(cached) else "not cached")
        pinned = all(f.revision and f.sha256 for f in files)
        rows.append({
            "name": entry.name,
            "default": entry.name == manifest.default,
            "kind": entry.config.kind,
            "backbone": entry.backbone.name,
            "cache": status,
            "pinned": pinned,
            "files": [f.label for f in files],
            "description": entry.description,
        })
    if as_json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("name", "kind", "cache", "pinned", "description"):
        table.add_column(column)
    for row in rows:
        name = row["name"] + (" (default)" if row["default"] else "")
        table.add_row(name, row["kind"], row["cache"], "yes" if row["pinned"] else "no",
                      row["description"])
    Console(soft_wrap=True).print(table)
