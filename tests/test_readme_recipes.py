"""The shell recipes of README.md (and docs/*.md) pass as written, on the tiny test model.

Every fenced ``bash`` block is taken from the documents as they are, split
into commands (continuation lines joined) and run with ``bash -o pipefail``,
block after block as a reader follows a document, in one folder per document
laid out as the recipes expect (``photos/``, ``shoot/``, ``library`` for
``/library``, label CSVs, ``rejects/``): a later block may use what an
earlier one wrote (``adapt --out mine.safetensors``, then ``--weights
mine.safetensors``). A command passes when
it exits 0 without an error line. Commands that cannot run here are listed in
SKIPPED with the reason; nothing else is left out.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from photos import texture
from tarshards import good_samples, write_shard
from xmp_photos import packet

# each test runs the grmpiqa command in a subprocess: seconds to a minute apiece
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")

# pattern on a command -> why it cannot run in the test suite
SKIPPED = [
    (r"^pip install\b", "installs packages from the network"),
    (r"\bgrmpiqa models download\b", "downloads from the Hub; tests/test_download.py runs it "
                                    "against a fake Hub on 127.0.0.1"),
    (r"^(pytest|ruff check|\.ci/run)\b", "the development loop itself, not a recipe"),
    (r"\btorchrun\b", "several ranks; tests/test_scale.py runs torchrun with 2 CPU processes"),
    (r"\bparallel\b", "GNU parallel over four GPUs (-d cuda:{})"),
    (r"(--device|-d) cuda", "needs a CUDA GPU"),
    (r"\bgrmpiqa pretrain\b", "minutes of meta-training even on the tiny model; "
                              "tests/test_pretrain_cli.py runs pretrain"),
    (r"\bmeta\.safetensors\b", "needs meta.safetensors from the skipped pretrain recipe"),
]
if shutil.which("exiftool") is None:
    SKIPPED.append((r"\bexiftool\b", "exiftool is not installed"))
# the recipes' absolute example paths, mapped into the prepared folder
PLACES = [(re.compile(r"(?<![\w./-])/library\b"), "library")]


def bash_blocks(document: Path) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each fenced ``bash``/``sh``/``shell`` block."""
    blocks, current, start, indent = [], None, 0, ""
    for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
        fence = _FENCE.match(line)
        if current is None and fence and fence.group(2) in ("bash", "sh", "shell", "console"):
            current, start, indent = [], number, fence.group(1)
        elif current is not None and fence and not fence.group(2):
            blocks.append((start, current))
            current = None
        elif current is not None:
            current.append(line[len(indent):] if line.startswith(indent) else line)
    return blocks


def commands(lines: list[str]) -> list[str]:
    """One command per line, backslash continuations joined, comments and blanks dropped."""
    out, pending = [], ""
    for line in lines:
        line = pending + line
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        text = line.strip()
        if text and not text.startswith("#"):
            out.append(text)
    return out


def skip_reason(command: str) -> str | None:
    for pattern, reason in SKIPPED:
        if re.search(pattern, command):
            return reason
    return None


def _photo(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(texture(seed)).save(path, "PNG" if path.suffix == ".png" else "JPEG")


def prepare(root: Path) -> None:
    """The folders and files the recipes name, with camera-style names; the label CSVs
    list the photos of ``labelled/``; ``catalogue/`` holds photos rated in XMP sidecars,
    ``ratings.csv`` and ``rate.csv`` stand for a downloaded rating page's CSV; ``shards/``
    holds WebDataset tar shards."""
    names = ["day1/IMG_0001.JPG", "day1/IMG_0002.JPG", "day1/IMG_0003.jpg",
             "day 2/IMG_0004.JPG", "day 2/IMG_0005.JPG", "day 2/scan.png", "IMG_0006.JPG",
             "IMG_0007.JPG", "IMG_0008.png", "IMG_0009.JPG"]
    for seed, name in enumerate(names):
        _photo(root / "shoot" / name, seed)
    for seed, name in enumerate(["IMG_0101.JPG", "b.jpg", "c.png", "sub/d.jpg"]):
        _photo(root / "photos" / name, 20 + seed)
        _photo(root / "library" / name, 30 + seed)
        _photo(root / "good-photos" / name, 40 + seed)
    for seed, name in enumerate(f"IMG_{i:04d}.JPG" for i in range(201, 211)):
        _photo(root / "catalogue" / name, 50 + seed)  # a rated catalogue: 1 to 5 stars
        (root / "catalogue" / name).with_suffix(".xmp").write_bytes(packet(1 + seed % 5))
    (root / "shards").mkdir()  # WebDataset shards (docs/scale.md)
    write_shard(root / "shards" / "00000.tar", good_samples(0, 3))
    write_shard(root / "shards" / "00001.tar", good_samples(3, 3))
    # the labelled photos have their own folder: the cull recipes move photos out of shoot/
    for seed, name in enumerate(names):
        _photo(root / "labelled" / name, seed)
    for label_file in ("my_labels.csv", "held_out.csv", "labels.csv", "ratings.csv",
                       "rate.csv"):
        with open(root / label_file, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", "score"])
            for i, name in enumerate(names):
                writer.writerow([f"labelled/{name}", 1 + (i * 7) % 10])


CASES = [pytest.param(doc, start, lines, id=f"{doc.relative_to(REPO)}:{start}")
         for doc in DOCUMENTS for start, lines in bash_blocks(doc)]


_FOLDERS: dict[Path, Path] = {}


@pytest.fixture
def document_folder(tmp_path_factory, document):
    """One prepared folder per document, shared by its blocks in document order."""
    if document not in _FOLDERS:
        _FOLDERS[document] = tmp_path_factory.mktemp("recipes")
        prepare(_FOLDERS[document])
    return _FOLDERS[document]


@pytest.mark.parametrize(("document", "start", "lines"), CASES)
def test_recipe_block_runs_as_written(tiny_hub, document_folder, document, start, lines):
    tmp_path = document_folder
    env = {**os.environ, "GRMPIQA_MANIFEST": str(tiny_hub.manifest_path),
           # what a Slurm array job and a Kubernetes indexed job set
           "SLURM_ARRAY_TASK_ID": "3", "JOB_COMPLETION_INDEX": "3"}
    ran, skipped = [], []
    for command in commands(lines):
        reason = skip_reason(command)
        if reason is not None:
            skipped.append(f"{command!r}: {reason}")
            continue
        for pattern, replacement in PLACES:
            command = pattern.sub(replacement, command)
        out = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=tmp_path, env=env,
                             capture_output=True, timeout=600)
        errors = out.stderr.decode("utf-8", "replace")
        # exiftool's documented status 2: every file failed the -if condition (none matched)
        no_match = command.startswith("exiftool ") and " -if " in command and not errors
        assert out.returncode == 0 or (no_match and out.returncode == 2), (
            f"{document.name}:{start}: {command}\n{errors}")
        assert "grmpiqa: error" not in errors and "Traceback" not in errors, (command, errors)
        ran.append(command)
    if not ran:
        pytest.skip("; ".join(skipped))


def test_recipe_parser_finds_the_readme_blocks(tmp_path):
    """The extraction itself: README's blocks are found, indented ones included."""
    blocks = bash_blocks(REPO / "README.md")
    found = [c for _, lines in blocks for c in commands(lines)]
    assert any(c.startswith("grmpiqa score ") for c in found)
    sample = tmp_path / "sample.md"
    sample.write_text("  ```bash\n  grmpiqa a \\\n    --b  # c\n  # d\n  ```\n"
                      "```python\nx\n```\n")
    assert [commands(lines) for _, lines in bash_blocks(sample)] == [["grmpiqa a    --b  # c"]]
