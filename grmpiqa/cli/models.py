"""``grmpiqa models``: each named model, the Hub files it needs, what is cached; and
``grmpiqa models download NAME``: fetch them ahead of time for offline use."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from grmpiqa.cli.common import cli_errors, configure_logging, say

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.weights.download import FileStatus, ModelFiles

app = typer.Typer(
    help="List the models, the Hub files each needs and what is cached; `grmpiqa models "
         "download NAME` fetches them ahead of time, for offline use.",
    invoke_without_command=True, no_args_is_help=False, add_completion=False,
    rich_markup_mode=None,
)


def _size(status: FileStatus) -> str:
    from grmpiqa.errors import format_size

    return format_size(status.size) if status.size is not None else "size unknown"


@app.callback(invoke_without_command=True)
@cli_errors
def models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the models, the Hub files each needs and for which commands, whether each is in
    the local cache, and its size (from the cache, else the Hub's when it can be reached)."""
    if ctx.invoked_subcommand is not None:
        return
    configure_logging()
    from grmpiqa.weights.download import list_models

    rows = list_models()
    if as_json:
        json.dump([row.to_dict() for row in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    print(_listing(rows), end="")


def _listing(rows: list[ModelFiles]) -> str:
    """A line per model, then one per file: its role, the commands that need it, whether it
    is cached, its size and where it lives on the Hub."""
    cells = [[f.role, ", ".join(f.needed_for), "cached" if f.cached else "not cached",
              _size(f), f.file.label + ("" if f.file.revision else " (unpinned)")]
             for row in rows for f in row.files]
    widths = [max(len(c[i]) for c in cells) for i in range(4)] if cells else []
    lines, n = [], 0
    for row in rows:
        default = " (default)" if row.default else ""
        lines.append(f"{row.name}{default}  {row.kind}, scoring files {row.cache_state}: "
                     f"{row.description}")
        for _ in row.files:
            role, uses, cache, size, label = cells[n]
            n += 1
            lines.append(f"  {role:<{widths[0]}}  for {uses:<{widths[1]}}  "
                         f"{cache:<{widths[2]}}  {size:>{widths[3]}}  {label}")
    return "\n".join(lines) + "\n"


@app.command("download", no_args_is_help=True)
@cli_errors
def download(
    names: Annotated[list[str], typer.Argument(
        metavar="NAME", help="Models of the manifest (see `grmpiqa models`).",
        show_default=False)],
    with_backbone: Annotated[bool, typer.Option(
        "--with-backbone", help="Also the pristine CLIP backbone that adapt and pretrain "
        "need (scoring with the authors' checkpoints does not).")] = False,
    cache_dir: Annotated[str | None, typer.Option(
        "--cache-dir", metavar="DIR", show_default="HF_HUB_CACHE",
        help="The Hugging Face cache folder to fill (the same as HF_HUB_CACHE=DIR).")] = None,
    force_download: Annotated[bool, typer.Option(
        "--force-download", help="Download again even what is cached.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="No progress bars and no summary: only the paths.")] = False,
) -> None:
    """Fetch the Hub files that models need into the local Hugging Face cache, so that
    they later run offline (with HF_HUB_OFFLINE=1). Like `hf download`: progress on
    stderr, the local path of each file on stdout, then a summary on stderr."""
    configure_logging(quiet)
    from grmpiqa.errors import WeightsError, WeightsUnavailable
    from grmpiqa.weights.download import download_model
    from grmpiqa.weights.hub import hub_cache_folder
    from grmpiqa.weights.manifest import load_manifest

    manifest = load_manifest()
    for name in names:
        manifest.get(name)  # every name checked before anything is downloaded
    for name in names:
        try:
            result = download_model(name, with_backbone=with_backbone, manifest=manifest,
                                    hf_cache=cache_dir, force=force_download,
                                    progress_bars=not quiet)
        except WeightsUnavailable as exc:
            again = "unset it to download" if exc.offline else \
                "run this again once it can be reached (check the network, HF_ENDPOINT and " \
                "any proxy)"
            raise WeightsError(f"{exc.message('')}; {again}") from None
        needed = result.needed(with_backbone)
        for status in needed:
            print(status.path, flush=True)
        if not quiet:
            _summarise(result, needed, hub_cache_folder(cache_dir))


def _summarise(result: ModelFiles, needed: list[FileStatus], folder: str) -> None:
    """What was downloaded, what the model is now ready for, and what it still lacks."""
    from grmpiqa.errors import format_size
    from grmpiqa.weights.manifest import SCORE

    for status in needed:
        if status.downloaded:
            say(f"downloaded {status.file.label} ({_size(status)})")
    uses = sorted({u for f in result.files for u in f.needed_for}, key=lambda u: (u != SCORE, u))
    ready = [u for u in uses if all(f.cached for f in result.files if u in f.needed_for)]
    covered = [f for f in result.files if set(f.needed_for) & set(ready)]
    count = f"{len(covered)} file{'s' if len(covered) != 1 else ''}"
    say(f"{result.name}: ready for {_and(ready)} offline: {count}, "
        f"{format_size(sum(f.size or 0 for f in covered))}, in {folder}")
    missing = [f for f in result.files if not f.cached]
    if missing:
        files = ", ".join(f"{f.file.label} ({_size(f)})" for f in missing)
        say(f"{result.name}: {_and([u for u in uses if u not in ready])} also need {files}: "
            "add --with-backbone")


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
