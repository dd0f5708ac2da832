
import pytest
import torch

from grmpiqa.training.regularisation import (
    SCENES,
    project_gradient,
    regulate_gradients,
    scene_cross_entropy,
    scene_prompts,
)


def test_conflicting_or_orthogonal_semantic_gradient_leaves_quality_alone():
    gd = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    opposite = torch.tensor([[-1.0, 0.0], [0.0, 0.0]])  # <G_d, G_g> = -1
    orthogonal = torch.tensor([[2.0, -1.0], [0.0, 0.0]])  # <G_d, G_g> = 0
    for gg in (opposite, orthogonal, torch.zeros(2, 2), None):
        assert torch.equal(project_gradient(gd, gg, 5.0), gd)


def test_agreeing_semantic_gradient_is_removed_lambda_times():
    gd = torch.tensor([3.0, 4.0])
    gg = torch.tensor([1.0, 0.0])  # <G_d, G_g> = 3, |G_g|^2 = 1
    assert project_gradient(gd, gg, 1.0).tolist() == [0.0, 4.0]  # plain projection
    assert project_gradient(gd, gg, 5.0).tolist() == [3.0 - 15.0, 4.0]
    gg = torch.tensor([2.0, 2.0])  # dot 14, |G_g|^2 8: G_d - lam * 14/8 * G_g
    assert project_gradient(gd, gg, 2.0).tolist() == pytest.approx([3 - 7.0, 4 - 7.0])
    assert torch.equal(project_gradient(gd, gg, 0.0), gd)  # lambda 0: no regularisation


def test_projection_with_lambda_one_is_orthogonal_to_the_semantic_gradient():
    torch.manual_seed(0)
    gd, gg = torch.randn(4, 5), torch.randn(4, 5)
    gg = gg if torch.sum(gd * gg) > 0 else -gg
    out = project_gradient(gd, gg, 1.0)
    assert abs(float(torch.sum(out * gg))) < 1e-5
    assert out.shape == gd.shape and out.dtype == gd.dtype


def test_rule_is_applied_tensor_by_tensor():
    gd = [torch.tensor([1.0, 0.0]), torch.tensor([1.0]), None]
    gg = [torch.tensor([1.0, 0.0]), torch.tensor([-1.0]), torch.tensor([9.0])]
    out = regulate_gradients(gd, gg, 5.0)
    assert out[0].tolist() == [-4.0, 0.0] and out[1].tolist() == [1.0] and out[2] is None
    with pytest.raises(ValueError):
        regulate_gradients(gd, gg[:2], 5.0)


def test_scene_cross_entropy_matches_its_definition():
    student = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    teacher = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
    p_t = torch.softmax(teacher, -1)
    expected = -(p_t * torch.log_softmax(student, -1)).sum(-1).mean()
    assert float(scene_cross_entropy(student, teacher)) == pytest.approx(float(expected))
    # identical distributions: the cross-entropy is the entropy
    same = scene_cross_entropy(teacher, teacher)
    entropy = -(p_t * torch.log(p_t)).sum(-1).mean()
    assert float(same) == pytest.approx(float(entropy))


def test_nine_scene_prompts():
    prompts = scene_prompts()
    assert len(prompts) == len(SCENES) == 9
    assert prompts[0] == "a photo of a animal" and "a photo of a still life" in prompts
