import math

import pytest
import torch

from grmpiqa.training.data import centre_crops, random_crops, split_validation
from grmpiqa.training.finetune import AdaptOptions, TrainingState


def test_random_crops_stay_inside_and_flip_about_half():
    pixels = torch.arange(2 * 3 * 8 * 8, dtype=torch.int64).remainder(256).to(torch.uint8)
    pixels = pixels.view(2, 3, 8, 8)
    generator = torch.Generator().manual_seed(0)
    seen_flips = 0
    for _ in range(50):
        crops = random_crops(pixels, 6, generator, include_last=False)
        assert crops.shape == (2, 3, 6, 6) and crops.dtype == torch.uint8
        for i in range(2):
            found = False
            for flip in (False, True):
                view = pixels[i].flip(-1) if flip else pixels[i]
                for y in range(3):
                    for x in range(3):
                        window = view[:, y:y + 6, x:x + 6]
                        if torch.equal(window, crops[i]):
                            found, seen_flips = True, seen_flips + flip
            assert found
    assert 20 < seen_flips < 80
    again = random_crops(pixels, 6, torch.Generator().manual_seed(0))
    assert torch.equal(again, random_crops(pixels, 6, torch.Generator().manual_seed(0)))


def test_random_crops_can_reach_the_last_offset():
    pixels = torch.zeros(64, 1, 3, 3)
    pixels[:, :, 2, :] = 1.0  # only a crop at offset y = 1 holds the last row
    crops = random_crops(pixels, 2, torch.Generator().manual_seed(0))
    assert crops.dtype == torch.float32 and bool((crops[:, :, 1, :] == 1.0).any())
    kept = random_crops(pixels, 2, torch.Generator().manual_seed(0), include_last=False)
    assert not bool((kept == 1.0).any())


def test_centre_crop_is_the_scoring_view():
    pixels = torch.zeros(1, 3, 244, 244, dtype=torch.uint8)
    pixels[..., 10:234, 10:234] = 7
    crop = centre_crops(pixels, 224)
    assert crop.shape == (1, 3, 224, 224) and bool((crop == 7).all())


def test_validation_split_is_seeded_stratified_and_needs_five_images():
    targets = [i / 49 for i in range(50)]
    train, val = split_validation(targets, 0.2, seed=0)
    assert len(val) == 10 and sorted(train + val) == list(range(50))
    assert [v // 5 for v in val] == list(range(10))  # one image per fifth of the range
    assert split_validation(targets, 0.2, seed=0) == (train, val)
    assert split_validation(targets, 0.2, seed=1) != (train, val)
    assert split_validation(targets[:20], 0.2, seed=0) == (list(range(20)), [])
    assert split_validation(targets, 0.0, seed=0) == (list(range(50)), [])


def test_plateau_schedule_decays_and_stops():
    options = AdaptOptions(schedule="authors", patience=2, decay=0.5, lr=1e-6, min_lr=4e-7)
    state = TrainingState(lr=options.lr)
    assert state.after_evaluation(0.1, options) is True
    assert state.after_evaluation(0.3, options) is True and state.best_metric == 0.3
    assert not state.after_evaluation(0.3, options)  # equal is no improvement
    assert not state.after_evaluation(0.2, options) and state.lr == 1e-6
    assert not state.after_evaluation(0.2, options) and state.lr == 5e-7  # third miss: decay
    assert state.stopped == "" and state.bad_evaluations == 0
    for _ in range(3):
        state.after_evaluation(0.0, options)
    assert state.lr == 2.5e-7 and state.stopped.startswith("learning rate fell below")
    restored = TrainingState.from_dict(state.to_dict())
    assert restored == state


def test_options_are_checked():
    for bad in ({"lam": -1.0}, {"epochs": 0}, {"val_fraction": 0.7}, {"lr": 0.0},
                {"trainable": "all"}, {"lam": math.nan}):
        with pytest.raises(ValueError):
            AdaptOptions(**bad)
    assert "epochs" not in AdaptOptions().resume_key()
