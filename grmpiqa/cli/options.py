"""Option types shared by the commands, each defined once. No torch here (``--help`` stays fast)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from grmpiqa.config import BurstOptions
from grmpiqa.io.inputs import DEFAULT_EXTENSIONS
from grmpiqa.workflow.xmp import DEFAULT_THRESHOLDS

DEFAULT_RATING_THRESHOLDS = ",".join(f"{t:g}" for t in DEFAULT_THRESHOLDS)
ScoreFormat = Literal["table", "csv", "jsonl", "tsv", "paths", "parquet"]
GpuDecode = Literal["auto", "on", "off"]
SortKey = Literal["score", "-score", "path"]
# the photo applications of grmpiqa.workflow.xmp_targets.APPS (tests check they agree)
PhotoApp = Literal["lightroom", "capture-one", "darktable", "digikam", "bridge"]

# the model and how it runs
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
BatchSizeOption = Annotated[int | None, typer.Option(
    "--batch-size", "-b", min=1, metavar="N", show_default="8 on the CPU, 32 on a GPU",
    help="Images per forward pass.")]
WorkersOption = Annotated[int | None, typer.Option(
    "--workers", "-j", min=0, metavar="N",
    show_default="scoring on CPU: measured; else 1 on CPU, up to 16 on GPU",
    help="Decoding processes (0: decode in the main process). By default scoring on the CPU "
    "splits the cores between decoders and model threads by the costs measured as it goes.")]
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
NoCacheOption = Annotated[bool, typer.Option(
    "--no-cache", help="Neither read nor write the score catalogue: score every photo again "
    "(`grmpiqa cache` shows it; docs/catalogue.md).")]
TrainingBatchSizeOption = Annotated[int | None, typer.Option(
    "--batch-size", "-b", min=1, metavar="N", help="Images per training step.")]
SeedOption = Annotated[int, typer.Option(
    "--seed", help="Seed of every random choice (splits, crops, flips, dropout).")]
MaxPixelsOption = Annotated[int, typer.Option(
    "--max-pixels", min=1, metavar="N",
    help="Refuse images with more pixels (decompression bombs).")]
GpuDecodeOption = Annotated[GpuDecode, typer.Option(
    "--gpu-decode", metavar="auto|on|off",
    help="Decode JPEGs on the GPU (nvJPEG) and squash them there with the same kernel; "
         "auto: on CUDA devices.")]
QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress bar and no per-file messages on stderr.")]

# inputs
PathsArgument = Annotated[list[str], typer.Argument(
    help="Image files, folders (searched recursively), globs, WebDataset .tar shards "
         "(rows SHARD.tar/MEMBER), or - to read a list of paths from stdin.",
    show_default=False)]
RecursiveOption = Annotated[bool, typer.Option(
    "--recursive/--no-recursive", help="Search folders recursively.")]
ExtOption = Annotated[list[str] | None, typer.Option(
    "--ext", metavar="EXTS", show_default=",".join(DEFAULT_EXTENSIONS),
    help="File extensions picked up in folders (repeat or comma-separate).")]
NullOption = Annotated[bool, typer.Option(
    "--null", "-0", help="NUL ends each record, like sort -z: in the list read from stdin "
                         "(-) and after each path of --format paths (for xargs -0).")]
ShardOption = Annotated[str | None, typer.Option(
    "--shard", metavar="K/N", help="Score only shard K of N (0 <= K < N) of the sorted "
    "input list (a .tar shard counts as one entry); N jobs with K = 0..N-1 cover every "
    "image exactly once.")]

# outputs
FormatOption = Annotated[ScoreFormat | None, typer.Option(
    "--format", "-f", metavar="FORMAT", show_default="table on a terminal, else CSV",
    help="Output format: table, csv, jsonl, tsv, paths, parquet. With --output, taken from "
         "its extension (.csv, .tsv, .jsonl, .ndjson, .parquet) unless given; parquet needs "
         "--output and the extra grmpiqa[parquet].")]
OutputOption = Annotated[str | None, typer.Option(
    "--output", "-o", metavar="FILE",
    help="Write rows to this file (atomically) instead of stdout; its folder is created. "
         "Refused: a folder, one of the photos, a photo extension.")]
ResumeOption = Annotated[bool, typer.Option(
    "--resume", help="With --output FILE: keep the rows FILE already holds (or FILE.part, "
    "left by a killed run) and score only the photos missing from it; rows of another "
    "model or precision are refused.")]
SortOption = Annotated[SortKey | None, typer.Option(
    "--sort", metavar="KEY", show_default=False,
    help="Print rows sorted by KEY: score (worst first), -score (best first) or path; "
         "failed files last. Rows then wait for the last photo.")]
TopOption = Annotated[int | None, typer.Option(
    "--top", metavar="N", min=1, show_default=False,
    help="Only the first N scored rows after sorting; without --sort, the N best (-score).")]
MinScoreOption = Annotated[float | None, typer.Option(
    "--min-score", metavar="X", show_default=False,
    help="Only rows with score >= X (failed files are left out).")]
MaxScoreOption = Annotated[float | None, typer.Option(
    "--max-score", metavar="X", show_default=False,
    help="Only rows with score <= X (failed files are left out).")]
SummaryOption = Annotated[bool, typer.Option(
    "--summary", help="After the rows, print on stderr: count, mean, quartiles, a histogram "
                      "and the number of failures.")]

# photo workflow
XmpOption = Annotated[bool, typer.Option(
    "--xmp", help="Write each scored photo's star rating (xmp:Rating 1-5) into its XMP sidecar "
                  "(IMG_1.jpg -> IMG_1.xmp), keeping all the sidecar already holds.")]
XmpForOption = Annotated[PhotoApp | None, typer.Option(
    "--xmp-for", metavar="APP", show_default=False,
    help="Write the XMP where APP reads it: lightroom, bridge, digikam (inside JPEG, TIFF and "
         "DNG files; RAW: a sidecar), darktable (IMG_1.jpg.xmp), capture-one (IMG_1.xmp). "
         "See docs/workflow.md.")]
RatingThresholdsOption = Annotated[str | None, typer.Option(
    "--rating-thresholds", metavar="T2,T3,T4,T5", show_default=DEFAULT_RATING_THRESHOLDS,
    help="With --xmp: scores at which 2, 3, 4 and 5 stars begin (below T2: 1 star). Weights "
         "adapted to star ratings write their own stars (rounded score_label) unless this "
         "is given.")]
BurstsOption = Annotated[bool, typer.Option(
    "--bursts", help="Group bursts and near-duplicates (EXIF capture time, perceptual hash, "
    "layout and the model's embedding from the same pass). score adds the columns burst and "
    "burst_rank (1 = best of its group; empty for a photo alike no other); rows then wait "
    "for the last photo.")]
SimilarityOption = Annotated[float | None, typer.Option(
    "--similarity", metavar="S", min=0.0, max=1.0, show_default=f"{BurstOptions.similarity:g}",
    help="With --bursts: how alike in layout (correlation 0..1) two photos must be to group "
         "them; lower groups more.")]
TimeGapOption = Annotated[float | None, typer.Option(
    "--time-gap", metavar="SECONDS", min=0.0, show_default=f"{BurstOptions.time_gap:g}",
    help="With --bursts: frames of one camera at most this far apart (EXIF time) are one "
         "burst unless their content clearly differs.")]
ExplainOption = Annotated[bool, typer.Option(
    "--explain", help="Also measure each photo's defects: columns sharpness, noise, exposure "
    "(EV), clipped, compression and why (blur, noise, underexposed, overexposed, "
    "compression); see docs/explain.md.")]
ReportOption = Annotated[str | None, typer.Option(
    "--report", metavar="FILE.html", show_default=False,
    help="Also write an HTML page of thumbnails sorted by score (bursts together, a "
         "histogram, failed files), with its thumbnails in FILE_files/; works offline.")]

# the labels CSV read by adapt, evaluate and pretrain
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


def burst_options(bursts: bool, similarity: float | None, time_gap: float | None
                  ) -> BurstOptions | None:
    """--bursts with its two settings; a setting without --bursts is a usage error."""
    if not bursts:
        for flag, value in (("--similarity", similarity), ("--time-gap", time_gap)):
            if value is not None:
                raise typer.BadParameter("only means something with --bursts", param_hint=flag)
        return None
    defaults = BurstOptions()
    return BurstOptions(similarity=defaults.similarity if similarity is None else similarity,
                        time_gap=defaults.time_gap if time_gap is None else time_gap)
