import numpy as np
import pytest
import torch
from PIL import Image

from grmpiqa.pretraining.distortions import DISTORTIONS, LEVELS, gaussian_blur, get_distortion
from pretrain_photos import photo_like

NAMES = list(DISTORTIONS)


def _batch(size: int = 96, seeds=(0, 1, 2)) -> torch.Tensor:
    arrays = np.stack([photo_like(s, size) for s in seeds])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 255.0


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(1.0 / mse)


def _check_monotone(images: torch.Tensor, name: str, seed: int) -> None:
    distortion = DISTORTIONS[name]
    psnr = torch.stack([_psnr(distortion(images, level, seed=seed), images)
                        for level in range(1, LEVELS + 1)], dim=1)
    assert torch.isfinite(psnr).all(), (name, psnr)  # level 1 already changes every image
    drops = psnr[:, :-1] - psnr[:, 1:]
    assert (drops > 0).all(), (name, psnr)


def test_at_least_twenty_types_in_every_kadid_family():
    assert len(DISTORTIONS) >= 20
    families = {d.family for d in DISTORTIONS.values()}
    assert {"blur", "colour", "compression", "noise", "brightness", "spatial", "sharpness",
            "contrast"} <= families
    for required in ("gaussian_blur", "lens_blur", "motion_blur", "saturation_up",
                     "saturation_down", "colour_shift", "colour_quantisation", "jpeg",
                     "white_noise", "colour_noise", "impulse_noise", "multiplicative_noise",
                     "denoised", "brighten", "darken", "mean_shift", "jitter",
                     "non_eccentric_patches", "pixelate", "sharpen", "contrast_down"):
        assert required in DISTORTIONS
    assert "jpeg2000" in DISTORTIONS or "webp" in DISTORTIONS
    assert all(len(d.levels) == LEVELS for d in DISTORTIONS.values())


@pytest.mark.parametrize("name", NAMES)
def test_psnr_falls_with_every_level(name):
    """Full-reference check: PSNR against the original drops strictly from level 1 to 5."""
    _check_monotone(_batch(), name, seed=7)


@pytest.mark.slow
def test_psnr_falls_with_the_level_on_real_photos(livec):
    paths = sorted((livec / "images").iterdir())[:2]
    arrays = [np.asarray(Image.open(p).convert("RGB").resize((244, 244), Image.BICUBIC))
              for p in paths]
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
    for name in NAMES:
        _check_monotone(images, name, seed=3)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_in_range_and_level_zero_is_identity(name):
    images = _batch(48, seeds=(3, 4))
    distortion = DISTORTIONS[name]
    first = distortion(images, 3, seed=11)
    assert first.shape == images.shape and first.dtype == images.dtype
    assert first.min() >= 0 and first.max() <= 1
    assert torch.equal(first, distortion(images, 3, seed=11))
    generator = torch.Generator().manual_seed(11)
    assert torch.equal(first, distortion(images, 3, seed=generator))
    assert torch.equal(distortion(images, 0, seed=11), images)


def test_random_types_depend_on_the_seed():
    images = _batch(48, seeds=(5,))
    for name in ("white_noise", "impulse_noise", "jitter", "colour_blocks", "motion_blur",
                 "non_eccentric_patches"):
        d = DISTORTIONS[name]
        assert not torch.equal(d(images, 4, seed=1), d(images, 4, seed=2)), name


def test_bad_arguments():
    d = get_distortion("jpeg")
    with pytest.raises(ValueError):
        d(_batch(32, seeds=(0,)), 6)
    with pytest.raises(ValueError):
        d(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 1)
    with pytest.raises(KeyError, match="unknown distortion"):
        get_distortion("vaseline")


def test_gaussian_blur_keeps_flat_images_and_the_mean():
    flat = torch.full((2, 3, 20, 20), 0.4)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)
    impulse = torch.zeros(1, 1, 21, 21)
    impulse[0, 0, 10, 10] = 1.0
    blurred = gaussian_blur(impulse, 1.5)
    assert abs(float(blurred.sum()) - 1.0) < 1e-5
    assert blurred[0, 0, 10, 10] == blurred.max()
