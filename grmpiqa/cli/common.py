"""Shared option types, error handling and stderr reporting for every command.

Nothing here imports torch: ``grmpiqa --help`` must stay instant.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from grmpiqa.errors import GrmpiqaError, WeightsError, WeightsUnavailable

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_INTERNAL = 3
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

ModelOption = Annotated[str | None, typer.Option(
    "--model", "-m", metavar="NAME",
    help="Model name from the weights manifest (see `grmpiqa models`).",
    show_default="grmp-clive50")]
WeightsOption = Annotated[str | None, typer.Option(
    "--weights", "-w", metavar="FILE",
    help="A local weights file: grmpiqa .safetensors, or the authors' .pt "
    "(read on --model's backbone).")]
DeviceOption = Annotated[str, typer.Option(
    "--device", "-d", metavar="DEVICE",
    help="auto, cpu, cuda, cuda:N or mps. auto: CUDA, then MPS, then CPU.")]
BatchSizeOption = Annotated[int, typer.Option(
    "--batch-size", "-b", min=1, metavar="N", help="Images per forward pass.")]
WorkersOption = Annotated[int | None, typer.Option(
    "--workers", "-j", min=0, metavar="N", show_default="1 on CPU, up to 16 on GPU",
    help="Decoding processes (0: decode in the main process).")]
PrecisionOption = Annotated[str, typer.Option(
    "--precision", metavar="MODE", show_default="auto",
    help="auto: exact (fp32 on CPU, fp16 on GPU), comparable across machines. fast: the "
    "quickest with fp32's ranking here (bf16 on CPUs with native bf16, else int8; fp16 on "
    "GPU). Or fp32, fp16, bf16, int8. `grmpiqa bench` measures them.")]
CompileOption = Annotated[bool, typer.Option(
    "--compile", help="torch.compile the image encoder (pays on GPUs for long runs).")]
FastDecodeOption = Annotated[bool, typer.Option(
    "--fast-decode", help="Decode big JPEGs at 1/2, 1/4 or 1/8 scale: faster on 12 MP photos, "
    "but not the pixels the model was trained on (scores move; see docs/method.md).")]
QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress bar and no per-file messages on stderr.")]


def check_model_options(model: str | None, weights: str | None, device: str,
                        precision: str) -> None:
    """--model, --weights, --device and --precision, checked before the seconds a model
    takes to load (and also when there is nothing to score)."""
    from grmpiqa.model.acceleration import resolve_precision
    from grmpiqa.model.devices import resolve_device
    from grmpiqa.weights.loading import looks_like_path
    from grmpiqa.weights.manifest import load_manifest

    for name in (weights, model):
        if name is not None and looks_like_path(name) and not os.path.isfile(name):
            raise WeightsError(f"{name}: no such weights file")
    if model is None or not looks_like_path(model):
        manifest = load_manifest()
        manifest.get(model or manifest.default)

    resolve_precision(precision, resolve_device(device))


def debug_enabled() -> bool:
    return os.environ.get("GRMPIQA_DEBUG", "").strip() not in ("", "0", "false", "no")


def say(message: str) -> None:
    """One line on stderr, prefixed with the program name."""
    print(f"grmpiqa: {message}", file=sys.stderr, flush=True)


def configure_logging(quiet: bool = False) -> None:
    logger = logging.getLogger("grmpiqa")
    if not any(getattr(h, "_grmpiqa", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("grmpiqa: %(levelname)s: %(message)s"))
        handler._grmpiqa = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
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
            say(f"error: {_message(exc)}")
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
        except Exception as exc:
            if debug_enabled():
                traceback.print_exc()
            say(f"internal error: {type(exc).__name__}: {exc} "
                "(this is a bug; run with --debug for the traceback)")
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]


def _message(exc: GrmpiqaError) -> str:
    """The error's message; missing weights end with the command that fetches them."""
    if not isinstance(exc, WeightsUnavailable):
        return str(exc)
    from grmpiqa.weights.download import model_for_files

    found = model_for_files([label for label, _ in exc.files], exc.model)
    name, backbone = found if found is not None else (exc.model or "NAME", False)
    return exc.message(f"`grmpiqa models download {name}"
                       + (" --with-backbone`" if backbone else "`"))


def interrupt_exit_code(exc: BaseException) -> int:
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
