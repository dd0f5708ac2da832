"""The ``grmpiqa`` command: parsing only; the work happens in the library.

Exit codes: 0 success; 1 some files failed (their rows carry the error);
2 usage or configuration error; 3 internal error (a bug); 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
import typer.main

from grmpiqa import __version__
from grmpiqa.cli import adapt as adapt_command
from grmpiqa.cli import bench as bench_command
from grmpiqa.cli import cache as cache_command
from grmpiqa.cli import cull as cull_command
from grmpiqa.cli import evaluate as evaluate_command
from grmpiqa.cli import models as models_command
from grmpiqa.cli import pretrain as pretrain_command
from grmpiqa.cli import score as score_command
from grmpiqa.cli import suggest as suggest_command
from grmpiqa.env import set_debug

app = typer.Typer(
    name="grmpiqa",
    help="Perceptual quality scores for photographs with GRMP-IQA "
         "(higher is better, 0..1). Global flag: --debug (or GRMPIQA_DEBUG=1) shows tracebacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"grmpiqa {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """Perceptual quality scores for photographs with GRMP-IQA."""


app.command("score", no_args_is_help=True)(score_command.score)
app.add_typer(models_command.app, name="models")
app.command("cull", no_args_is_help=True)(cull_command.cull)
app.command("pretrain", no_args_is_help=True)(pretrain_command.pretrain)
app.command("adapt", no_args_is_help=True)(adapt_command.adapt)
app.command("evaluate", no_args_is_help=True)(evaluate_command.evaluate)
app.command("suggest", no_args_is_help=True)(suggest_command.suggest)
app.command("bench")(bench_command.bench)
app.add_typer(cache_command.app, name="cache")


def readable_metavars(command: Any) -> Any:
    """Metavars named after the option (``OUTPUT``, ``PATHS...``) where none is given,
    instead of typer's ``<str>`` and ``<list[str]>``."""
    for param in command.params:
        if param.metavar is None and not getattr(param, "is_flag", False):
            param.metavar = param.name.upper()
        if param.param_type_name == "argument":  # its metavar says it all
            param.display_type_rich = lambda ctx: None
    for sub in getattr(command, "commands", {}).values():
        readable_metavars(sub)
    return command


def main(argv: list[str] | None = None) -> None:
    """Console entry point; ``--debug`` is accepted anywhere before ``--``."""
    args = list(sys.argv[1:] if argv is None else argv)
    end = args.index("--") if "--" in args else len(args)
    if "--debug" in args[:end]:
        args.pop(args.index("--debug"))
        set_debug()
    readable_metavars(typer.main.get_command(app))(args=args, prog_name="grmpiqa")
