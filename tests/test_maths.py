import math

import pytest
import torch

from grmpiqa.model.maths import clip_logits, quality_bce, quality_from_logits


def test_quality_is_softmax_probability_of_the_first_class():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [-50.0, 50.0]])
    q = quality_from_logits(logits)
    assert q.tolist() == pytest.approx([0.5, 0.75, 0.0], abs=1e-7)


def test_quality_needs_two_classes():
    with pytest.raises(ValueError):
        quality_from_logits(torch.zeros(2, 3))


def test_clip_logits_are_scaled_cosines():
    image = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    text = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    logits = clip_logits(image, text, torch.tensor(math.log(100.0)))
    expected = 100.0 * torch.tensor([[1.0, 1 / math.sqrt(2)], [0.0, 1 / math.sqrt(2)]])
    assert torch.allclose(logits, expected, atol=1e-4)


def test_bce_matches_the_formula():
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])  # q = 0.75, 0.5
    target = torch.tensor([1.0, 0.2])
    expected = -(math.log(0.75) + (0.2 * math.log(0.5) + 0.8 * math.log(0.5))) / 2
    assert quality_bce(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_bce_is_finite_for_confident_predictions():
    logits = torch.tensor([[200.0, -200.0]])
    assert torch.isfinite(quality_bce(logits, torch.tensor([0.0])))
