"""``grmpiqa cache``: the score catalogue's size and rows per model; ``clear`` and ``prune``."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer

from grmpiqa.cli.common import cli_errors, configure_logging, say

app = typer.Typer(
    help="The score catalogue: where it is, its size, and the photos it remembers per model; "
         "`grmpiqa cache clear` forgets them all, `grmpiqa cache prune` what is no longer "
         "needed.",
    invoke_without_command=True, no_args_is_help=False, add_completion=False,
    rich_markup_mode=None,
)
CatalogueOption = Annotated[str | None, typer.Option(
    "--catalogue", metavar="FILE", show_default="GRMPIQA_CATALOGUE, else "
    "GRMPIQA_CACHE/catalogue.sqlite", help="The catalogue file.")]


def _warn(text: str) -> None:
    say(f"warning: {text}")


@app.callback(invoke_without_command=True)
@cli_errors
def cache(
    ctx: typer.Context,
    catalogue: CatalogueOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the catalogue file, its size on disk, and per model key the photos it remembers
    (and how many with embeddings and burst signals), most recently used first."""
    if ctx.invoked_subcommand is not None:
        return
    configure_logging()
    from grmpiqa.catalogue.maintenance import catalogue_summary
    from grmpiqa.errors import format_size

    summary = catalogue_summary(catalogue, warn=_warn)
    if as_json:
        json.dump({"path": summary.path, "bytes": summary.bytes, "files": summary.files,
                   "models": [{"key": m.key, "photos": m.photos,
                               "with_features": m.with_features, "used": m.used}
                              for m in summary.models]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    print(f"{summary.path}: {format_size(summary.bytes)}, {summary.files} files known")
    for m in summary.models:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(m.used))
        print(f"  {m.key}  {m.photos} photos ({m.with_features} with features), "
              f"last used {used}")


@app.command("clear")
@cli_errors
def clear(catalogue: CatalogueOption = None) -> None:
    """Forget every remembered score (the next runs score every photo again)."""
    configure_logging()
    from grmpiqa.catalogue.maintenance import clear_catalogue

    removed = clear_catalogue(catalogue, warn=_warn)
    say(f"forgot {removed} scores")


@app.command("prune")
@cli_errors
def prune(
    catalogue: CatalogueOption = None,
    unused_days: Annotated[float | None, typer.Option(
        "--unused-days", metavar="DAYS", min=0, help="Also forget the scores of models not "
        "used for this many days.")] = None,
    model: Annotated[list[str] | None, typer.Option(
        "--model-key", metavar="KEY", help="Also forget the scores of this model key (as "
        "`grmpiqa cache` lists them); repeat for more.")] = None,
) -> None:
    """Forget photos no longer on disk where the catalogue last saw them, the scores no
    photo refers to any more, and (when asked) the scores of models no longer used."""
    configure_logging()
    from grmpiqa.catalogue.maintenance import prune_catalogue
    from grmpiqa.errors import format_size

    done = prune_catalogue(catalogue, unused_days=unused_days, models=model or (), warn=_warn)
    say(f"forgot {done.files} files no longer on disk, {done.scores} scores and "
        f"{done.models} models; {format_size(done.bytes_before)} -> "
        f"{format_size(done.bytes_after)}")
