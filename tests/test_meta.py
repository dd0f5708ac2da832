import numpy as np
import pytest
import torch

from grmpiqa.errors import ConfigError, InputError
from grmpiqa.pretraining.distortions import DISTORTIONS
from grmpiqa.pretraining.meta import (
    MetaTrainer,
    PretrainSettings,
    model_for_pretraining,
    prompt_parameters,
    split_groups,
)
from grmpiqa.pretraining.run import pretrain
from grmpiqa.pretraining.tasks import (
    ColumnChoice,
    LabelledRow,
    LabelledTasks,
    SyntheticTasks,
    normalised_labels,
    read_task_labels,
)
from pretrain_photos import photo_like

FAST = dict(meta_lr=1.0, inner_lr=1e-2, batch_size=8)


@pytest.fixture
def fresh_model(tiny_hub):
    from grmpiqa.weights.manifest import parse_manifest

    manifest = parse_manifest(tiny_hub.manifest, str(tiny_hub.manifest_path))
    torch.manual_seed(0)
    return model_for_pretraining("grmp-tiny", device="cpu", manifest=manifest)


def _photos(count: int, size: int = 36) -> torch.Tensor:
    arrays = np.stack([photo_like(100 + i, size) for i in range(count)])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous()


def _tasks(names=("gaussian_blur", "white_noise", "darken", "jpeg"), count=8):
    return SyntheticTasks(_photos(count), [DISTORTIONS[n] for n in names])


class RecordingTasks(SyntheticTasks):
    def __init__(self, *args):
        super().__init__(*args)
        self.calls = []

    def examples(self, task, groups, seed):
        self.calls.append((task, tuple(groups)))
        return super().examples(task, groups, seed)


def test_only_prompts_train(fresh_model):
    params = prompt_parameters(fresh_model)
    assert "text_context.ctx" in params
    assert {"visual_prompts.prompt_embeddings", "visual_prompts.deep_prompt_embeddings",
            "visual_prompts.prompt_proj.weight", "visual_prompts.prompt_proj.bias",
            "visual_prompts.prompt_norm.weight", "visual_prompts.prompt_norm.bias"} <= set(params)
    assert all(p.requires_grad for p in params.values())
    assert not any(p.requires_grad for p in fresh_model.clip.parameters())


def test_zeroshot_models_cannot_be_pretrained(tiny_hub):
    from grmpiqa.weights.manifest import parse_manifest

    manifest = parse_manifest(tiny_hub.manifest, str(tiny_hub.manifest_path))
    with pytest.raises(ConfigError, match="needs a 'grmp' model"):
        model_for_pretraining("zeroshot-tiny", device="cpu", manifest=manifest)


def test_short_pretrain_lowers_heldout_loss_and_leaves_clip_alone(fresh_model):
    clip_before = {k: v.clone() for k, v in fresh_model.clip.state_dict().items()}
    prompts_before = {k: v.clone() for k, v in fresh_model.learned_state().items()}
    result = pretrain(fresh_model, _tasks(), PretrainSettings(epochs=3, seed=0, **FAST))
    summary = result.summary
    assert summary["heldout_loss"] < summary["initial_heldout_loss"] - 0.005, summary
    assert summary["best_epoch"] == min(result.history, key=lambda r: r.heldout.loss).epoch
    assert summary["heldout_groups"] == 2 and summary["train_groups"] == 6
    for key, value in fresh_model.clip.state_dict().items():
        assert torch.equal(value, clip_before[key]), key
    assert set(result.tensors) == set(prompts_before)
    assert not torch.equal(result.tensors["text_context.ctx"], prompts_before["text_context.ctx"])


def test_heldout_photos_never_train_and_splits_are_disjoint(fresh_model):
    tasks = RecordingTasks(_photos(10), [DISTORTIONS["jpeg"], DISTORTIONS["pixelate"]])
    trainer = MetaTrainer(fresh_model, tasks, PretrainSettings(epochs=1, inner_steps=1, **FAST))
    held = set(trainer.heldout_groups)
    assert len(held) == 2 and not held & set(trainer.train_groups)
    tasks.calls.clear()
    trainer.run_epoch(1)
    assert len(tasks.calls) == 4  # support and query for each of 2 tasks
    for (task_a, support), (task_b, query) in zip(tasks.calls[::2], tasks.calls[1::2],
                                                  strict=True):
        assert task_a == task_b and not set(support) & set(query)
        assert not (set(support) | set(query)) & held
        assert len(support) == 6 and len(query) == 2  # 80/20 of the 8 training photos


def test_every_task_starts_from_the_epochs_meta_parameters(fresh_model):
    starts = []

    class Watching(MetaTrainer):
        def _loss(self, progress):
            inner = super()._loss(progress)
            first = []

            def loss_fn(batch):
                if not first:
                    first.append(True)
                    starts.append({k: p.detach().clone() for k, p in self.parameters.items()})
                return inner(batch)
            return loss_fn

    trainer = Watching(fresh_model, _tasks(), PretrainSettings(epochs=1, **FAST))
    meta = {k: v.clone() for k, v in trainer.meta.items()}
    trainer.run_epoch(1)
    assert len(starts) == 4
    for start in starts:
        assert all(torch.equal(start[k], meta[k]) for k in meta)
    assert not torch.equal(trainer.meta["text_context.ctx"], meta["text_context.ctx"])


def test_progress_counts_match_the_plan(fresh_model):
    trainer = MetaTrainer(fresh_model, _tasks(count=7), PretrainSettings(epochs=1, **FAST))
    seen = []
    trainer.run_epoch(1, seen.append)
    assert sum(seen) == trainer.images_per_epoch(1)


def test_too_few_photos_is_a_clear_error(fresh_model):
    with pytest.raises(ValueError, match="need at least 3"):
        MetaTrainer(fresh_model, _tasks(count=2), PretrainSettings())


def test_split_groups():
    g = torch.Generator().manual_seed(0)
    rest, part = split_groups(list(range(10)), 0.2, g)
    assert len(part) == 2 and sorted(rest + part) == list(range(10))
    rest, part = split_groups([4, 9], 0.2, g)
    assert len(rest) == len(part) == 1


def test_synthetic_labels_span_zero_to_one():
    examples = _tasks(count=3).examples(0, [0, 2], seed=1)
    assert examples.pixels.shape == (12, 3, 36, 36) and examples.pixels.dtype == torch.uint8
    assert examples.labels.tolist() == pytest.approx([1, 1, .8, .8, .6, .6, .4, .4, .2, .2, 0, 0])


def test_labelled_tasks_normalise_per_task_and_keep_groups_whole():
    rows = [LabelledRow(f"i{i}.png", score, task, f"ref{i % 3}")
            for i, (score, task) in enumerate([(1.0, "a"), (3.0, "a"), (5.0, "a"),
                                               (10.0, "b"), (20.0, "b"), (40.0, "b")])]
    pixels = torch.zeros(6, 3, 4, 4, dtype=torch.uint8)
    tasks = LabelledTasks(pixels, rows)
    assert tasks.names == ("a", "b") and tasks.group_count == 3
    assert tasks.labels.tolist() == pytest.approx([0, 0.5, 1, 0, 1 / 3, 1])
    assert tasks.count(1, [0, 2]) == 2
    assert tasks.examples(1, [2], seed=0).labels.tolist() == pytest.approx([1.0])
    flipped = LabelledTasks(pixels, rows, higher_is_better=False)
    assert flipped.labels.tolist() == pytest.approx([1, 0.5, 0, 1, 2 / 3, 0])
    with pytest.raises(InputError, match="all its labels are equal"):
        LabelledTasks(pixels[:2], [rows[0], LabelledRow("x", 1.0, "a", "r")])
    with pytest.raises(ValueError):
        normalised_labels([2.0, 2.0], True)


def test_read_task_labels(tmp_path):
    from grmpiqa.training.labels import LabelsError

    csv_path = tmp_path / "kadid.csv"
    csv_path.write_text("dist_img,ref_img,dmos,var,distortion\n"
                        "I01_01_01.png,I01.png,4.5,0.1,01\nI01_01_02.png,I01.png,3.0,0.2,01\n")
    rows = read_task_labels(csv_path)
    assert rows[0] == LabelledRow("I01_01_01.png", 4.5, "01", "I01.png")
    rows = read_task_labels(csv_path, ColumnChoice(label="var", group=None))
    assert rows[1].score == 0.2
    csv_path.write_text("image,mos\na.png,3\n")
    with pytest.raises(LabelsError, match="no task column"):
        read_task_labels(csv_path)
    csv_path.write_text("image,mos,task\na.png,3,x\nb.png,high,x\n,2,\n")
    with pytest.raises(LabelsError) as info:
        read_task_labels(csv_path)
    message = str(info.value)
    assert "kadid.csv: 3 problems" in message
    assert "line 3: score 'high' is not a number" in message
    assert "line 4: no image path" in message and "line 4: no task" in message
    with pytest.raises(LabelsError, match="no column 'nope'"):
        read_task_labels(csv_path, ColumnChoice(task="nope"))
    with pytest.raises(LabelsError, match="no such file"):
        read_task_labels(tmp_path / "missing.csv")
    csv_path.write_bytes("image;mos;task\r\na.png;3,5;x\r\n".encode("utf-16"))
    assert read_task_labels(csv_path)[0].score == 3.5  # a spreadsheet's UTF-16 export
