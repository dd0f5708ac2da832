"""grmpiqa.io.resize against OpenCV itself (a test-only dependency), and the pipeline around it."""

import numpy as np
import pytest
import torch
from PIL import Image

from grmpiqa.config import PreprocessConfig
from grmpiqa.io.preprocess import load_pixels, squash_crop, to_model_input
from grmpiqa.io.resize import cubic_weights, resize_cubic

cv2 = pytest.importorskip("cv2")

SIZES = [(1, 1), (1, 9), (2, 2), (3, 5), (7, 13), (13, 7), (20, 30000), (30000, 20),
         (30000, 1), (101, 997), (211, 307), (243, 245), (244, 244), (245, 243), (500, 500),
         (997, 512), (3000, 4000)]


def _agreement(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, int]:
    diff = np.abs(ours.astype(np.int32) - theirs.astype(np.int32))
    return float((diff == 0).mean()), int(diff.max())


def _cv2(image: np.ndarray, size: int = 244) -> np.ndarray:
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_matches_opencv_on_noise_of_every_shape(height, width):
    image = np.random.default_rng(height * 31 + width).integers(
        0, 256, (height, width, 3), dtype=np.uint8)
    same, worst = _agreement(resize_cubic(image, 244, 244), _cv2(image))
    assert same >= 0.999 and worst <= 1, (same, worst)


@pytest.mark.parametrize("size", [(9, 1000), (1000, 9), (61, 61), (4, 4)])
def test_matches_opencv_on_smooth_images(size):
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    image = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)),
                      ((x + y) * 7) % 256], axis=-1).astype(np.uint8)
    for target in (224, 244):
        ours = resize_cubic(image, target, target)
        same, worst = _agreement(ours, _cv2(image, target))
        assert same >= 0.999 and worst <= 1, (target, same, worst)


def test_matches_opencv_on_livec_photos(livec):
    files = sorted((livec / "images").iterdir())[:40]
    total, identical, worst = 0, 0, 0
    for path in files:
        theirs = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        ours = load_pixels(str(path), PreprocessConfig(resize=244, crop=244))
        diff = np.abs(ours.permute(1, 2, 0).numpy().astype(int) - _cv2(theirs).astype(int))
        total, identical, worst = total + diff.size, identical + int((diff == 0).sum()), \
            max(worst, int(diff.max()))
    assert identical / total >= 0.999 and worst <= 1, (identical / total, worst)


def test_weights_are_keys_cubic_with_a_minus_075():
    fraction = np.array([0.0, 0.25, 0.5], dtype=np.float32)
    weights = cubic_weights(fraction)
    np.testing.assert_allclose(weights[0], [0, 1, 0, 0], atol=1e-7)
    # a = -0.75 at t = 0.5: the outer taps weigh -0.09375, the inner ones 0.59375
    np.testing.assert_allclose(weights[2], [-0.09375, 0.59375, 0.59375, -0.09375], atol=1e-7)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)


def test_no_antialiasing_when_shrinking():
    """A one-pixel checkerboard shrunk 4x keeps full contrast only without a low-pass filter."""
    board = ((np.indices((1001, 977)).sum(axis=0) % 2) * 255).astype(np.uint8)
    image = np.repeat(board[:, :, None], 3, axis=2)
    ours = resize_cubic(image, 244, 244)
    pillow = np.asarray(Image.fromarray(image).resize((244, 244), Image.Resampling.BICUBIC))
    assert ours.std() > 5 * pillow.std()


def test_identity_size_is_unchanged():
    image = np.random.default_rng(0).integers(0, 256, (244, 244, 3), dtype=np.uint8)
    assert np.array_equal(resize_cubic(image, 244, 244), image)


def test_files_pil_images_and_tensors_get_the_same_pixels(tmp_path):
    cfg = PreprocessConfig(resize=244, crop=224)
    array = np.random.default_rng(3).integers(0, 256, (333, 517, 3), dtype=np.uint8)
    path = tmp_path / "p.png"
    Image.fromarray(array).save(path)
    from_file = load_pixels(str(path), cfg).float() / 255.0
    from_pil = to_model_input(Image.fromarray(array), cfg)[0]
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    from_uint8 = to_model_input(tensor, cfg)[0]
    from_float = to_model_input(tensor.float() / 255.0, cfg)[0]
    expected = torch.from_numpy(_cv2(array)[10:234, 10:234]).permute(2, 0, 1).float() / 255.0
    for got in (from_file, from_pil, from_uint8, from_float):
        assert got.shape == (3, 224, 224)
        assert (got - expected).abs().max() <= 1.5 / 255.0


def test_antialias_true_keeps_pillows_resize():
    cfg = PreprocessConfig(resize=36, crop=32, antialias=True)
    array = np.random.default_rng(4).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    pillow = np.asarray(Image.fromarray(array).resize((36, 36), Image.Resampling.BICUBIC))
    out = squash_crop(Image.fromarray(array), cfg)
    assert torch.equal(out, torch.from_numpy(pillow[2:34, 2:34].copy()).permute(2, 0, 1))


def test_exact_squash_needs_bicubic():
    with pytest.raises(ValueError, match="bicubic"):
        PreprocessConfig(interpolation="bilinear")
    assert PreprocessConfig(interpolation="bilinear", antialias=True).antialias


def test_adapt_and_pretrain_squash_like_scoring(tmp_path):
    """Training crops and evaluation views come from the same squash as ``score``."""
    from grmpiqa.pretraining.tasks import load_photos
    from grmpiqa.training.data import centre_crops, decode_rows
    from grmpiqa.training.labels import LabelRow

    cfg = PreprocessConfig(resize=244, crop=224)
    array = np.random.default_rng(5).integers(0, 256, (411, 289, 3), dtype=np.uint8)
    path = tmp_path / "p.png"
    Image.fromarray(array).save(path)
    expected = torch.from_numpy(_cv2(array)).permute(2, 0, 1)
    adapt_pixels, problems = decode_rows([LabelRow(2, "p.png", str(path), 3.0)], cfg)
    _, pretrain_pixels = load_photos([str(path)], cfg, on_failure=lambda p, e: None)
    assert not problems
    for pixels in (adapt_pixels[0], pretrain_pixels[0]):
        assert (pixels.int() - expected.int()).abs().max() <= 1
        assert torch.equal(centre_crops(pixels, 224), load_pixels(str(path), cfg))


@pytest.mark.parametrize(("height", "width"), [(1, 1), (2, 9), (3, 5), (13, 7), (243, 245),
                                               (500, 500), (867, 1155), (3000, 4000)])
def test_pillow_rows_give_the_pixels_of_the_whole_array(height, width):
    """squash_crop copies only the rows the taps read out of a Pillow image: same pixels."""
    array = np.random.default_rng(height + width).integers(0, 256, (height, width, 3),
                                                           dtype=np.uint8)
    cfg = PreprocessConfig()
    assert torch.equal(squash_crop(Image.fromarray(array), cfg), squash_crop(array, cfg))
