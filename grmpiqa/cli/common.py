"""Error handling, exit codes and stderr reporting for every command (options: cli/options.py).

Nothing here imports torch: ``grmpiqa --help`` must stay instant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from grmpiqa.errors import GrmpiqaError, OutputError, WeightsError, WeightsUnavailable

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_OUTPUT = 4  # an output could not be written (GrmpiqaError's OutputError)
# the option a library parameter is given by, where it is not --the-parameter
FLAGS = {"name": "--model", "thresholds": "--rating-thresholds", "fast_decode": "--fast-decode",
         "draft": "--fast-decode", "out": "--out", "app": "--xmp-for"}
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up (saving rows) runs."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def install_signal_handlers() -> None:
    """SIGTERM (a scheduler's time limit, ``kill``) stops the run like Ctrl-C would."""
    import signal

    with contextlib.suppress(ValueError):  # only the main thread may set handlers
        signal.signal(signal.SIGTERM, _raise_terminated)

F = TypeVar("F", bound=Callable[..., Any])

def check_model_options(model: str | None, weights: str | None, device: str,
                        precision: str) -> None:
    """--model, --weights, --device and --precision, checked before the seconds a model
    takes to load (and also when there is nothing to score)."""
    from grmpiqa.model.acceleration import resolve_precision
    from grmpiqa.model.devices import resolve_device
    from grmpiqa.weights.manifest import load_manifest, looks_like_path

    for name in (weights, model):
        if name is not None and looks_like_path(name) and not os.path.isfile(name):
            raise WeightsError(f"{name}: no such weights file")
    if model is None or not looks_like_path(model):
        manifest = load_manifest()
        manifest.get(model or manifest.default)

    resolve_precision(precision, resolve_device(device))


def debug_enabled() -> bool:
    from grmpiqa.env import debug

    return debug()


def say(message: str) -> None:
    """One line on stderr, prefixed with the program name."""
    print(f"grmpiqa: {message}", file=sys.stderr, flush=True)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes, not the one it was made with
    (a command run in-process, as by typer's test runner, swaps it and closes it after)."""

    _grmpiqa = True

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(quiet: bool = False) -> None:
    logger = logging.getLogger("grmpiqa")
    if not any(getattr(h, "_grmpiqa", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("grmpiqa: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug_enabled() else
                    logging.ERROR if quiet else logging.WARNING)
    for noisy in ("open_clip", "root", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def cli_errors(func: F) -> F:
    """Turn expected failures into one clean line and a documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GrmpiqaError as exc:
            if debug_enabled():
                traceback.print_exc()
            say(f"error: {error_text(exc)}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            say("terminated" if isinstance(exc, Terminated) else "interrupted")
            raise typer.Exit(interrupt_exit_code(exc)) from None
        except (typer.Exit, typer.Abort, SystemExit, typer.TyperException):
            raise
        except BrokenPipeError:
            # The reader went away (``| head``): stop quietly, like other Unix tools.
            _silence_stdout()
            raise typer.Exit(EXIT_OK) from None
        except OSError as exc:  # the system refused a file: say which and why, never a "bug"
            if debug_enabled():
                traceback.print_exc()
            say(f"error: {os_error_line(exc)}")
            raise typer.Exit(EXIT_OUTPUT) from None
        except Exception as exc:
            if debug_enabled():
                traceback.print_exc()
            say(f"internal error: {type(exc).__name__}: {exc} "
                "(this is a bug; run with --debug for the traceback)")
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]


def flag_for(param: str) -> str:
    """The command-line option for a library parameter: ``batch_size`` -> ``--batch-size``."""
    return FLAGS.get(param, "--" + param.replace("_", "-"))


def error_text(exc: GrmpiqaError) -> str:
    """The error in the command line's words: its option names, and how to go on."""
    if isinstance(exc, WeightsUnavailable):
        return _fetch_hint(exc)
    text = f"{flag_for(exc.param)} {exc.detail}" if exc.param else exc.detail
    if isinstance(exc, OutputError) and exc.partial and exc.kept:
        text += "; once that is fixed, run the same command with --resume to finish"
    problems = getattr(exc, "problems", None)
    if problems and any(getattr(p, "param", None) for p in problems):
        # a labels problem that one option fixes (every path misses: --root) names it
        told = [dataclasses.replace(p, message=f"{p.message} Give it with "
                                    f"{flag_for(p.param)} DIR.") if p.param else p
                for p in problems]
        text = str(type(exc)(exc.source, told))  # type: ignore[attr-defined]
    return text


def _fetch_hint(exc: WeightsUnavailable) -> str:
    """Missing weights end with the command that fetches them."""
    from grmpiqa.weights.download import model_for_files

    found = model_for_files([label for label, _ in exc.files], exc.model)
    name, backbone = found if found is not None else (exc.model or "NAME", False)
    return exc.message(f"`grmpiqa models download {name}"
                       + (" --with-backbone`" if backbone else "`"))


def os_error_line(exc: OSError) -> str:
    from grmpiqa.errors import os_error_text
    from grmpiqa.io.output import display_path

    name = exc.filename if isinstance(exc.filename, str) else None
    return f"{display_path(name)}: {os_error_text(exc)}" if name else os_error_text(exc)


def interrupt_exit_code(exc: BaseException) -> int:
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
