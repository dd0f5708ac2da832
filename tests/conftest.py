"""Shared fixtures: a tiny random CLIP in a real, temporary Hugging Face cache.

The environment is set before anything imports huggingface_hub (it reads
HF_HUB_CACHE and HF_HUB_OFFLINE once, at import), so the product's own
download code runs offline against the cache these fixtures write.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="grmpiqa-tests-"))
os.environ["HF_HOME"] = str(_SESSION_ROOT / "hf-home")
os.environ["HF_HUB_CACHE"] = str(_SESSION_ROOT / "hf-home" / "hub")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRMPIQA_CACHE"] = str(_SESSION_ROOT / "grmpiqa-cache")
os.environ.pop("GRMPIQA_MANIFEST", None)
os.environ.pop("GRMPIQA_DEBUG", None)
# Tiny test models: one thread is faster than two, and far faster on a busy machine
# (OpenMP threads spin waiting for each other); subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
# The real LIVE Challenge photos where this project keeps them; GRMPIQA_TEST_LIVEC points
# elsewhere (a path that does not exist runs the tests on the generated stand-in).
LIVEC = Path(os.environ.get("GRMPIQA_TEST_LIVEC") or REPO_ROOT.parent / "shared" / "data" / "livec")


@dataclass(frozen=True)
class TinyHub:
    hf_cache: Path
    manifest_path: Path
    manifest: dict


def _livec_present() -> bool:
    return (LIVEC / "images").is_dir() and (LIVEC / "mos.csv").is_file()


def pytest_report_header(config):
    return f"LIVEC photos: {LIVEC}" if _livec_present() else \
        f"LIVEC photos: not at {LIVEC}; the tests that use them run on a generated stand-in"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_ROOT, ignore_errors=True)


@pytest.fixture(autouse=True)
def _own_catalogue(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test starts with an empty score catalogue: no test is served another's scores."""
    folder = tmp_path_factory.mktemp("catalogue")
    monkeypatch.setenv("GRMPIQA_CATALOGUE", str(folder / "catalogue.sqlite"))


@pytest.fixture(scope="session")
def tiny_hub() -> TinyHub:
    """Tiny backbone + authors'-layout GRMP checkpoint in the session's Hub cache."""
    from fakehub import tiny_manifest

    hf_cache = Path(os.environ["HF_HUB_CACHE"])
    manifest = tiny_manifest(hf_cache)
    path = _SESSION_ROOT / "tiny_manifest.json"
    path.write_text(json.dumps(manifest, indent=1))
    return TinyHub(hf_cache, path, manifest)


@pytest.fixture
def use_tiny_manifest(tiny_hub: TinyHub, monkeypatch: pytest.MonkeyPatch) -> TinyHub:
    monkeypatch.setenv("GRMPIQA_MANIFEST", str(tiny_hub.manifest_path))
    return tiny_hub


@pytest.fixture(scope="session")
def tiny_model(tiny_hub: TinyHub):
    from grmpiqa.weights.loading import load_model
    from grmpiqa.weights.manifest import parse_manifest

    manifest = parse_manifest(tiny_hub.manifest, str(tiny_hub.manifest_path))
    return load_model("grmp-tiny", device="cpu", manifest=manifest)


@pytest.fixture(scope="session")
def tiny_zeroshot(tiny_hub: TinyHub):
    from grmpiqa.weights.loading import load_model
    from grmpiqa.weights.manifest import parse_manifest

    manifest = parse_manifest(tiny_hub.manifest, str(tiny_hub.manifest_path))
    return load_model("zeroshot-tiny", device="cpu", manifest=manifest)


@pytest.fixture(scope="session")
def livec() -> Path:
    """The LIVEC folder (``images/*.JPG``, ``mos.csv``), or where it is absent a generated
    stand-in of the same layout (tests/livec_stand_in.py): these tests never skip."""
    if _livec_present():
        return LIVEC
    from livec_stand_in import write_livec_stand_in

    return write_livec_stand_in(_SESSION_ROOT / "livec-stand-in")
