"""The GPU decoding path: its CPU-testable parts here, the CUDA run where a GPU exists."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from grmpiqa.config import PreprocessConfig
from grmpiqa.data.dataset import ImageFiles, collate
from grmpiqa.data.gpu_decode import (
    EncodedJpeg,
    GpuDecoder,
    orient,
    probe_jpeg,
    resolve_gpu_decode,
    squash_crop_tensor,
)
from grmpiqa.data.resize_torch import resize_cubic
from grmpiqa.errors import ConfigError
from grmpiqa.io.inputs import DEFAULT_EXTENSIONS
from grmpiqa.io.shards import ShardIndex, expand_shards
from grmpiqa.scoring.engine import score_batches
from photos import texture
from tarshards import jpeg_bytes, write_shard

CFG = PreprocessConfig(resize=40, crop=32)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _chw(array):
    return torch.from_numpy(np.array(array)).permute(2, 0, 1).contiguous()


def _hwc(tensor):
    return tensor.permute(1, 2, 0).cpu().numpy()


def _jpeg(seed=0, size=(48, 40), orientation=None, mode="RGB"):
    image = Image.fromarray(texture(seed, size)).convert(mode)
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow(orientation):
    data = _jpeg(orientation=orientation)
    assert probe_jpeg(data, 10**9) == orientation
    with Image.open(io.BytesIO(data)) as stored:
        stored.load()
        expected = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"))
        raw = np.asarray(stored.convert("RGB"))
    assert np.array_equal(_hwc(orient(_chw(raw), orientation)), expected)


def test_probe_sends_everything_else_to_the_cpu():
    buffer = io.BytesIO()
    Image.fromarray(texture(1)).save(buffer, "PNG")
    assert probe_jpeg(buffer.getvalue(), 10**9) is None  # not a JPEG
    assert probe_jpeg(_jpeg(mode="CMYK"), 10**9) is None  # nvJPEG gets CMYK colours wrong
    assert probe_jpeg(_jpeg()[:10], 10**9) is None  # Pillow cannot parse it: CPU reports
    assert probe_jpeg(_jpeg(size=(48, 40)), 48 * 40 - 1) is None  # over --max-pixels
    assert probe_jpeg(_jpeg(mode="L"), 10**9) == 1


SHAPES = [(1, 1), (2, 3), (3, 50), (4, 4), (7, 13), (243, 245), (500, 500), (1000, 20),
          (20, 1000), (3000, 4000)]


def _agreement(ours, theirs):
    diff = np.abs(ours.astype(np.int32) - theirs.astype(np.int32))
    return float((diff == 0).mean()), int(diff.max())


@pytest.mark.parametrize(("height", "width"), SHAPES)
def test_torch_kernel_matches_opencv(height, width):
    cv2 = pytest.importorskip("cv2")
    image = np.random.default_rng(height * 7 + width).integers(0, 256, (height, width, 3),
                                                                dtype=np.uint8)
    for size in (224, 244):
        theirs = cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC)
        same, worst = _agreement(_hwc(resize_cubic(_chw(image), size, size)), theirs)
        assert same >= 0.999 and worst <= 1, (size, same, worst)


def test_torch_kernel_on_livec_photos_and_batches(livec):
    cv2 = pytest.importorskip("cv2")
    files = sorted((livec / "images").iterdir())[:10]
    arrays = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    total = same = 0
    for array in arrays:
        theirs = cv2.resize(array, (244, 244), interpolation=cv2.INTER_CUBIC)
        ours = _hwc(resize_cubic(_chw(array), 244, 244))
        total += ours.size
        same += int((ours == theirs).sum())
        assert np.abs(ours.astype(int) - theirs).max() <= 1
    assert same / total >= 0.999
    batch = torch.stack([_chw(a) for a in arrays if a.shape == arrays[0].shape][:3])
    one_by_one = torch.stack([resize_cubic(x, 244, 244) for x in batch])
    assert torch.equal(resize_cubic(batch, 244, 244), one_by_one)


@pytest.mark.parametrize(("height", "width"), [*SHAPES, (30000, 20), (20, 30000), (1, 9)])
def test_torch_kernel_equals_the_numpy_kernel(height, width):
    """The GPU path's squash and the CPU path's (grmpiqa.io.resize) give the same pixels."""
    from grmpiqa.io.resize import resize_cubic as resize_numpy

    image = np.random.default_rng(height + 3 * width).integers(0, 256, (height, width, 3),
                                                               dtype=np.uint8)
    for size in (224, 244, 7):
        assert np.array_equal(_hwc(resize_cubic(_chw(image), size, size)),
                              resize_numpy(image, size, size)), size


def test_gpu_path_pixels_equal_the_cpu_path(tmp_path):
    """Whole path on CPU tensors (torchvision's CPU decoder standing in for nvJPEG): the
    same pixels as the CPU path's Pillow decode and numpy squash, EXIF rotation included."""
    cfg = PreprocessConfig(resize=244, crop=224)
    files = _mixed_inputs(tmp_path / "p")
    folder = tmp_path / "big"
    folder.mkdir()
    for i, (size, orientation) in enumerate([((640, 480), 1), ((333, 500), 6), ((1001, 3), 8)]):
        (folder / f"{i}.jpg").write_bytes(_jpeg(i, size, orientation=orientation))
        files.append(str(folder / f"{i}.jpg"))
    dataset = ImageFiles(files, cfg, gpu_jpeg=True)
    decoder = GpuDecoder(cfg, torch.device("cpu"), dataset.decode_on_cpu,
                         decode=_torchvision_on_cpu())
    jpegs = [item for _, item, _, _ in (dataset[i] for i in range(len(files)))
             if isinstance(item, EncodedJpeg)]
    assert len(jpegs) == 6
    on_gpu = torch.stack(decoder.finish(jpegs))
    on_cpu = torch.stack([dataset.decode_on_cpu(j) for j in jpegs])
    diff = (on_gpu.int() - on_cpu.int()).abs()
    assert int(diff.max()) <= 1 and float((diff == 0).float().mean()) >= 0.999


def test_no_antialiasing_when_shrinking():
    board = ((np.indices((401, 397)).sum(axis=0) % 2) * 255).astype(np.uint8)
    image = np.repeat(board[:, :, None], 3, axis=2)
    ours = _hwc(resize_cubic(_chw(image), 100, 100))
    pillow = np.asarray(Image.fromarray(image).resize((100, 100), Image.Resampling.BICUBIC))
    assert ours.std() > 5 * pillow.std()


def test_resize_refuses_other_dtypes():
    with pytest.raises(ValueError, match="uint8"):
        resize_cubic(torch.zeros(3, 4, 4), 2, 2)


def test_auto_stays_off_without_cuda():
    assert resolve_gpu_decode("auto", torch.device("cpu"), CFG) is False
    assert resolve_gpu_decode("off", torch.device("cpu"), CFG) is False
    with pytest.raises(ConfigError, match="CUDA"):
        resolve_gpu_decode("on", torch.device("cpu"), CFG)
    with pytest.raises(ConfigError, match="auto, on, off"):
        resolve_gpu_decode("maybe", torch.device("cpu"), CFG)


def _mixed_inputs(folder):
    """JPEG files (one rotated), a PNG, a broken file, and tar members."""
    folder.mkdir()
    (folder / "a.jpg").write_bytes(_jpeg(1))
    (folder / "b.jpg").write_bytes(_jpeg(2, orientation=6))
    Image.fromarray(texture(3)).save(folder / "c.png")
    (folder / "d.jpg").write_bytes(b"\xff\xd8\xff broken")
    shard = write_shard(folder / "s.tar", [("m0", {"jpg": jpeg_bytes(4)}),
                                           ("m1", {"png": jpeg_bytes(5, fmt="PNG")})])
    files = [str(folder / n) for n in ("a.jpg", "b.jpg", "c.png", "d.jpg")]
    return files + expand_shards([str(shard)], ShardIndex(DEFAULT_EXTENSIONS))


def _torchvision_on_cpu(refuse=()):
    """nvJPEG's stand-in: torchvision's CPU decoder, refusing the names in ``refuse``."""
    from torchvision.io import ImageReadMode, decode_jpeg

    def decode(jpegs, device):
        return [None if j.name.endswith(refuse) else
                decode_jpeg(j.data, mode=ImageReadMode.RGB).to(device) for j in jpegs]
    return decode


def test_workers_leave_jpegs_encoded_for_the_gpu(tmp_path):
    paths = _mixed_inputs(tmp_path / "p")
    dataset = ImageFiles(paths, CFG, gpu_jpeg=True)
    items = [dataset[i] for i in range(len(paths))]
    kinds = [type(p).__name__ if e is None else "error" for _, p, e, _ in items]
    assert kinds == ["EncodedJpeg", "EncodedJpeg", "Tensor", "error", "EncodedJpeg", "Tensor"]
    assert items[1][1].orientation == 6
    batch = collate(items)
    assert sorted(batch.encoded) == [0, 1, 4] and batch.pixels.shape[0] == 2


def test_batches_assemble_in_order_with_cpu_fallback(tmp_path):
    paths = _mixed_inputs(tmp_path / "p")
    dataset = ImageFiles(paths, CFG, gpu_jpeg=True)
    batch = collate([dataset[i] for i in range(len(paths))])
    decoder = GpuDecoder(CFG, torch.device("cpu"), dataset.decode_on_cpu,
                         decode=_torchvision_on_cpu(refuse=("a.jpg",)))
    pixels, good, errors = decoder.assemble(batch)
    assert good == [0, 1, 2, 4, 5] and sorted(errors) == [3] and decoder.fallbacks == 1
    assert pixels.shape == (5, 3, 32, 32) and pixels.dtype == torch.uint8
    upright = ImageOps.exif_transpose(Image.open(paths[1])).convert("RGB")
    expected = squash_crop_tensor(_chw(np.asarray(upright)), CFG)
    assert (pixels[1].int() - expected.int()).abs().max() <= 2  # JPEG decoders may differ by 1-2
    assert torch.equal(pixels[0], dataset.decode_on_cpu(batch.encoded[0]))  # the fallback


def test_a_refused_jpeg_the_cpu_cannot_read_either_gets_an_error():
    decoder = GpuDecoder(CFG, torch.device("cpu"),
                         lambda jpeg: (_ for _ in ()).throw(ValueError("cannot decode")),
                         decode=lambda jpegs, device: [None] * len(jpegs))
    jpeg = EncodedJpeg(torch.zeros(4, dtype=torch.uint8), 1, "x.jpg")
    assert decoder.finish([jpeg]) == ["cannot decode"]


def test_scores_through_the_gpu_path_on_cpu_tensors(tiny_model, tmp_path):
    paths = _mixed_inputs(tmp_path / "p")
    dataset = ImageFiles(paths, tiny_model.preprocess, gpu_jpeg=True)
    decoder = GpuDecoder(tiny_model.preprocess, torch.device("cpu"), dataset.decode_on_cpu,
                         decode=_torchvision_on_cpu())
    batches = [collate([dataset[i] for i in range(3)]),
               collate([dataset[i] for i in range(3, len(paths))])]
    rows = list(score_batches(tiny_model, batches, paths, decoder))
    assert [r.path for r in rows] == paths
    assert [r.ok for r in rows] == [True, True, True, False, True, True]


def _gpu_test_photos(folder):
    """64 LIVEC photos where they are (the device machine: .bench/livec), else synthetic
    JPEGs of several sizes, some rotated by EXIF."""
    from conftest import LIVEC, REPO_ROOT

    for candidate in (REPO_ROOT / ".bench" / "livec" / "images", LIVEC / "images"):
        if candidate.is_dir():
            return [str(p) for p in sorted(candidate.glob("*.[jJ][pP][gG]"))[:64]]
    folder.mkdir()
    paths = []
    for i in range(32):
        size = [(640, 480), (500, 500), (333, 500), (1200, 900)][i % 4]
        path = folder / f"{i:02d}.jpg"
        y, x = np.mgrid[0:size[1], 0:size[0]]
        smooth = np.stack([x * 255 // size[0], y * 255 // size[1], (x + y + 17 * i) % 256], -1)
        noisy = np.clip(smooth + texture(i, size).astype(int) // 8 - 16, 0, 255)
        image = Image.fromarray(noisy.astype(np.uint8))
        exif = Image.Exif()
        exif[0x0112] = 6 if i % 3 == 0 else 1
        image.save(path, "JPEG", quality=90, exif=exif.tobytes())
        paths.append(str(path))
    return paths


@cuda
def test_nvjpeg_matches_the_cpu_decoder_and_scores(tiny_hub, tmp_path):
    """On the device: pixels and scores of the GPU path against the CPU path, printed."""
    from grmpiqa.scoring.engine import score_paths
    from grmpiqa.weights.loading import load_model
    from grmpiqa.weights.manifest import parse_manifest

    files = _gpu_test_photos(tmp_path / "photos")
    gpu_model = load_model("grmp-tiny", device="cuda", precision="fp32",
                           manifest=parse_manifest(tiny_hub.manifest, "tiny"))
    on = [r.score for r in score_paths(files, gpu_model, gpu_decode="on", workers=2)]
    off = [r.score for r in score_paths(files, gpu_model, gpu_decode="off", workers=2)]
    diffs = np.abs(np.array(on) - np.array(off))
    dataset = ImageFiles(files, gpu_model.preprocess, gpu_jpeg=True, draft=False)
    decoder = GpuDecoder(gpu_model.preprocess, torch.device("cuda"), dataset.decode_on_cpu)
    jpegs = [dataset[i][1] for i in range(len(files))]
    gpu_pixels = torch.stack(decoder.finish(jpegs)).cpu()
    cpu_pixels = torch.stack([dataset.decode_on_cpu(j) for j in jpegs])
    pixel = (gpu_pixels.int() - cpu_pixels.int()).abs()
    print(f"\nGPU vs CPU decode on {len(files)} photos: pixels max |diff| "
          f"{int(pixel.max())}, mean |diff| {float(pixel.float().mean()):.4f}, identical "
          f"{float((pixel == 0).float().mean()):.4f}; scores max |diff| {diffs.max():.2e}")
    assert decoder.fallbacks == 0
    assert diffs.max() < 2e-2
