"""Options shared by the commands that read a labels CSV (``adapt``, ``evaluate``)."""

from __future__ import annotations

from typing import Annotated

import typer

LabelsArgument = Annotated[str, typer.Argument(
    help="CSV with a header: an image column (path/image/file/filename) and a score column "
         "(score/mos/label/rating); , ; or tab separated.", show_default=False)]
ImageColumnOption = Annotated[str | None, typer.Option(
    "--image-column", help="Name of the column holding the image paths.")]
ScoreColumnOption = Annotated[str | None, typer.Option(
    "--score-column", help="Name of the column holding the scores.")]
RootOption = Annotated[str | None, typer.Option(
    "--root", help="Folder that relative image paths start from.",
    show_default="the CSV's folder")]
LowerIsBetterOption = Annotated[bool, typer.Option(
    "--lower-is-better", help="Scores are DMOS-style: lower means better quality.")]
WorkersOption = Annotated[int, typer.Option(
    "--workers", "-j", min=0, help="Decoding processes (0: decode in the main process).")]
