"""``grmpiqa bench``: how fast each precision runs here, and the command line to use."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from grmpiqa.cli.common import (
    cli_errors,
    configure_logging,
    say,
)
from grmpiqa.cli.options import (
    DeviceOption,
    ModelOption,
    QuietOption,
    WeightsOption,
)


@cli_errors
def bench(
    model: ModelOption = None,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option(
        "--batch-size", "-b", min=1,
        help="Images per timed forward pass, at most: fewer where one round of passes "
        "would take over 10 s.")] = 8,
    seconds: Annotated[float, typer.Option(
        "--seconds", min=0.0, help="Time spent on timed passes after the warm-up ones.")] = 5.0,
    quiet: QuietOption = False,
) -> None:
    """Measure images/s of each precision on this machine and print the command to use.

    Runs the model (the cached one, or its architecture with random weights when
    it is not downloaded: same cost) on random pixels; it aims at half a minute
    (78 s measured on a busy 2-core machine).
    Exit status: 0 done, 2 usage error.
    """
    configure_logging(quiet)
    from grmpiqa.scoring.bench import measure_speed

    progress = (lambda _: None) if quiet else (lambda line: say(f"bench: {line}"))
    report = measure_speed(model, weights=weights, device=device, batch_size=batch_size,
                           budget_s=seconds, progress=progress)
    print(render(report, model, weights))
    sys.stdout.flush()


def render(report, model: str | None, weights: str | None) -> str:
    """The report as a few aligned lines for a terminal."""
    where = "random weights, same architecture (the model is not downloaded)" \
        if report.random_weights else "its own weights"
    lines = [
        f"CPU:          {report.cpu}",
        f"instructions: {report.features.describe()}",
        f"devices:      {', '.join(report.devices)}",
        f"model:        {report.model} ({where})",
        f"measured on:  {report.device}, batch {report.batch_size}, random pixels",
        "",
        f"{'precision':<10} {'images/s':>9}  {'vs fp32':>7}  ranking like fp32",
    ]
    exact = next((s.images_per_second for s in report.speeds if s.precision == "fp32"), None)
    for s in report.speeds:
        if s.images_per_second is None:
            lines.append(f"{s.precision:<10} {'-':>9}  {'-':>7}  failed: {s.error}")
            continue
        ratio = f"{s.images_per_second / exact:.2f}x" if exact else "-"
        good = "yes" if s.known_good else "not checked here (no native support)"
        lines.append(f"{s.precision:<10} {s.images_per_second:>9.2f}  {ratio:>7}  {good}")
    lines += decode_lines(report)
    command = ["grmpiqa", "score"]
    if weights:
        command += ["--weights", weights]
    if model:
        command += ["--model", model]
    if report.recommended not in ("auto",):
        command += ["--precision", report.recommended]
    best = report.best
    lines += ["", f"recommended:  {' '.join(command)} PHOTOS"
              + (f"   ({best.precision})" if best is not None else "")]
    lines.append("              (--precision auto keeps exact fp32 scores, comparable across "
                 "machines)")
    return "\n".join(lines)


def decode_lines(report) -> list[str]:
    """Each photo size's decode cost beside the quickest model's, and the split of the
    cores `score` would take for it (CPU only: on a GPU the split is not chosen so)."""
    best = report.best
    if not report.decode or best is None:
        return []
    from grmpiqa.data.policy import Costs, split_cores

    model_s = report.threads / best.images_per_second  # core-seconds per photo
    lines = ["", f"decoding (exact, one core) beside {best.precision} "
             f"({model_s * 1000:.0f} core-ms/photo on {report.threads} threads):",
             f"{'photo':<20} {'ms/photo':>8}  {'limit img/s':>11}  split of {report.cores} cores"]
    for cost in report.decode:
        costs = Costs(cost.seconds, model_s)
        limit = report.cores / (cost.seconds + model_s)
        split = split_cores(report.cores, costs)
        size = f"{cost.width}x{cost.height} ({cost.megapixels:.2g} MP)"
        where = f"{split.workers} decoders, {split.threads} model threads" \
            if report.device == "cpu" else "-"
        lines.append(f"{size:<20} {cost.seconds * 1000:>8.1f}  {limit:>11.2f}  {where}")
    return lines
