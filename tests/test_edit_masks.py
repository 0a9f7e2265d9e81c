import pytest
import torch

from foleyflow.errors import InputError
from foleyflow.pipelines.edit_network import split_mask_channel
from foleyflow.pipelines.masks import ground_truth_latent_mask, pool_frame_mask


def test_pool_frame_mask_marks_every_latent_frame_touched_by_the_span():
    frames = torch.zeros(1, 16, dtype=torch.bool)
    frames[0, 5:9] = True  # mel frames 5..8 -> latent frames 1 and 2 at 4 mel frames each
    assert pool_frame_mask(frames, 4).tolist() == [[0.0, 1.0, 1.0, 0.0]]


def test_ground_truth_mask_keeps_only_changed_frames_of_the_span():
    source = torch.zeros(1, 2, 4, 3)
    target = source.clone()
    target[:, :, 1] = 1.0  # the event changes latent frame 1 only
    target[:, :, 3] = 5.0  # a change outside the span is not part of the edit
    frames = torch.zeros(1, 16, dtype=torch.bool)
    frames[0, 4:12] = True  # span covers latent frames 1 and 2
    mask = ground_truth_latent_mask(frames, target, source)
    assert mask.shape == (1, 1, 4, 1)
    assert mask.flatten().tolist() == [0.0, 1.0, 0.0, 0.0]


def test_ground_truth_mask_is_empty_when_nothing_changes():
    source = torch.randn(2, 2, 4, 3)
    frames = torch.ones(2, 16, dtype=torch.bool)
    assert ground_truth_latent_mask(frames, source.clone(), source).sum() == 0


def test_split_mask_channel():
    output = torch.randn(2, 9, 4, 3)
    prediction, logits = split_mask_channel(output, 8)
    assert torch.equal(prediction, output[:, :8]) and torch.equal(logits, output[:, 8:])
    same, none = split_mask_channel(output[:, :8], 8)
    assert none is None and torch.equal(same, output[:, :8])


def test_expected_span_closed_forms():
    """One run as long as the probabilities' sum, placed where their mean is highest; per row."""
    from foleyflow.pipelines.masks import expected_span

    probability = torch.full((2, 20), 0.1)
    probability[0, 12:14] = 0.6  # sum 2 + 1.0 = 3.0 -> 3 frames, the best 3-frame window is 12..14 or 11..13
    probability[1] = 0.0
    probability[1, 3] = 0.4  # sum 0.4 -> at least one frame, at the peak
    spans = expected_span(probability)
    assert spans[0].sum() == 3 and spans[0, 12:14].all() and spans[1].tolist() == [0, 0, 0, 1] + [0] * 16
    assert expected_span(torch.ones(1, 7)).sum() == 7


def test_localiser_add_span_applies_to_add_instructions_only():
    from foleyflow.pipelines.masks import MaskEvidence, MaskOptions, estimated_mask

    evidence = MaskEvidence(4)
    evidence.localised = torch.full((1, 30), 0.2)  # nowhere above 0.5; sum 6
    evidence.localised[0, 20] = 0.3
    expected = MaskOptions(dilate=0, ramp=0, add_span="expected")
    add = estimated_mask("localiser", evidence, expected, task="add")[0, 0, :, 0]
    assert add.sum() == 6 and add[20] == 1
    for options, task in ((expected, "remove"), (expected, None), (MaskOptions(dilate=0, ramp=0), "add")):
        assert estimated_mask("localiser", evidence, options, task=task).sum() == 0
    with pytest.raises(InputError, match="add_span"):
        MaskOptions(add_span="anywhere")


def test_a_task_threshold_overrides_the_mask_threshold_for_that_task_only():
    from foleyflow.pipelines.editor import EditorConfig
    from foleyflow.pipelines.masks import MaskEvidence, MaskOptions, estimated_mask

    evidence = MaskEvidence(4)
    evidence.localised = torch.tensor([[0.2, 0.6, 0.8, 0.95, 0.6, 0.2]])
    options = MaskOptions(threshold=0.5, dilate=0, ramp=0, task_thresholds={"replace": 0.9})
    marked = lambda task: estimated_mask("localiser", evidence, options, task=task)[0, 0, :, 0].tolist()  # noqa: E731
    assert marked("remove") == marked(None) == marked("add") == [0, 1, 1, 1, 1, 0]
    assert marked("replace") == [0, 0, 0, 1, 0, 0]
    assert options.threshold_for("localiser", "replace") == 0.9 and options.threshold_for("diffedit", "add") == 0.5
    assert MaskOptions(task_thresholds={"add": 0.3}).threshold_for("localiser", "remove") == 0.5  # the method's default
    for bad, message in (({"erase": 0.5}, "tasks are add, remove, replace"), ({"replace": 1.5}, r"lie in \[0, 1\]")):
        with pytest.raises(InputError, match=message):
            MaskOptions(task_thresholds=bad)
    config = EditorConfig(mask_threshold=0.5, mask_task_thresholds={"replace": 0.9})
    assert config.mask_options().threshold_for("localiser", "replace") == 0.9
    assert EditorConfig.from_dict(dict(mask_threshold=0.5, mask_task_thresholds={"replace": 0.9})) == config
