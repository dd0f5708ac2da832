import hashlib
import logging

import pytest

from fakehub import repo_folder, write_hub_file
from grmpiqa.errors import WeightsError, WeightsUnavailable
from grmpiqa.weights import hub
from grmpiqa.weights.manifest import HubFile


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "hub"


def test_fetch_uses_the_local_cache_offline(cache):
    path, _ = write_hub_file(cache, "org/name", "w.bin", b"hello")
    got = hub.fetch(HubFile("org/name", "w.bin"), cache)
    assert got.read_bytes() == b"hello"
    assert got == path


def test_pinned_revision_selects_that_commit_not_main(cache):
    old_commit = "a" * 40
    new_commit = "b" * 40
    write_hub_file(cache, "org/name", "w.bin", b"old", commit=old_commit)
    write_hub_file(cache, "org/name", "w.bin", b"new", commit=new_commit)  # refs/main -> new
    assert hub.fetch(HubFile("org/name", "w.bin"), cache).read_bytes() == b"new"
    pinned = HubFile("org/name", "w.bin", revision=old_commit)
    assert hub.fetch(pinned, cache).read_bytes() == b"old"


def test_sha256_is_verified(cache):
    write_hub_file(cache, "org/name", "w.bin", b"payload")
    good = hashlib.sha256(b"payload").hexdigest()
    assert hub.fetch(HubFile("org/name", "w.bin", sha256=good), cache).read_bytes() == b"payload"


def test_sha256_mismatch_is_refused_and_evicted(cache):
    path, _ = write_hub_file(cache, "org/name", "w.bin", b"tampered")
    blob = path.resolve()
    wrong = HubFile("org/name", "w.bin", sha256="0" * 64)
    with pytest.raises(WeightsError, match="sha256 mismatch") as info:
        hub.fetch(wrong, cache)
    assert "org/name/w.bin" in str(info.value)
    assert not path.exists() and not blob.exists()
    assert hub.cached_path(wrong, cache) is None


def test_missing_file_offline_is_a_clear_error(cache, caplog):
    write_hub_file(cache, "org/name", "other.bin", b"x")
    missing = HubFile("org/name", "w.bin")
    with caplog.at_level(logging.WARNING, logger="grmpiqa"):
        with pytest.raises(WeightsUnavailable, match=r"org/name/w.bin is not in the Hugging "
                           r"Face cache .*; HF_HUB_OFFLINE is set, so nothing is downloaded"):
            hub.fetch(missing, cache)
        with pytest.raises(WeightsError):
            hub.fetch(missing, cache)
    unpinned = [r for r in caplog.records if "without a pinned revision" in r.getMessage()]
    assert unpinned == []  # offline: only the reason nothing could be downloaded


def test_cached_path_never_touches_the_network(cache):
    assert hub.cached_path(HubFile("org/none", "w.bin"), cache) is None
    write_hub_file(cache, "org/name", "w.bin", b"x")
    assert hub.cached_path(HubFile("org/name", "w.bin"), cache) is not None
    assert repo_folder(cache, "org/name").is_dir()


def test_file_sha256_is_remembered_until_the_file_changes(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"one")
    assert hub.file_sha256(target) == hashlib.sha256(b"one").hexdigest()
    target.write_bytes(b"two!")
    assert hub.file_sha256(target) == hashlib.sha256(b"two!").hexdigest()


def test_missing_weights_message_names_files_sizes_and_the_way_out():
    from grmpiqa.errors import format_size

    assert [format_size(n) for n in (999, 1000, 604_948_817, 1_200_000_000)] == [
        "999 B", "1.0 kB", "604.9 MB", "1.2 GB"]
    exc = WeightsUnavailable([("org/a/w.pt", 604_948_817), ("org/b/c.json", None)],
                             "the Hub (http://x) cannot be reached (ConnectError: refused)",
                             "/cache/hub")
    named = exc.for_model("m", [HubFile("org/a", "w.pt")])
    assert str(named) == (
        "m needs org/a/w.pt, which is not in the Hugging Face cache /cache/hub; the Hub "
        "(http://x) cannot be reached (ConnectError: refused). Fetch it while online with "
        "grmpiqa.download_model('m'); then HF_HUB_OFFLINE=1 uses the cache without asking "
        "the Hub")
    assert exc.message("").startswith(
        "org/a/w.pt (604.9 MB), org/b/c.json are not in the Hugging Face cache /cache/hub;")


def test_the_command_line_names_the_download_command(use_tiny_manifest):
    from grmpiqa.cli.common import error_text as _message
    from grmpiqa.weights.manifest import load_manifest

    entry = load_manifest().get("grmp-tiny")
    backbone = entry.backbone.weights
    exc = WeightsUnavailable([(backbone.label, None)], "offline", "/c", offline=True)
    # a backbone missing while adapting: the model that has it, with its backbone
    assert "with `grmpiqa models download grmp-tiny --with-backbone`, or copy" in _message(exc)
    scoring = WeightsUnavailable([(entry.weights.file.label, None)], "offline", "/c",
                                 offline=True, model="grmp-tiny")
    assert "with `grmpiqa models download grmp-tiny`, or copy" in _message(scoring)
    stray = WeightsUnavailable([("org/x/y.bin", None)], "offline", "/c", offline=True)
    assert "`grmpiqa models download NAME`" in _message(stray)
