"""Removers averaged (models.localiser.LocaliserEnsemble): the mean of the members' log-gains,
saved and loaded with the editor, and `foleyflow train ensemble-removers`."""

import pytest
import torch
from editor_tiny import LATENT_BINS, LATENT_CHANNELS, TEXT_DIM, tiny_editor
from test_edit_localiser import SMALL

from foleyflow.errors import InputError
from foleyflow.models.localiser import EditLocaliser, LocaliserEnsemble, build_localiser, ensemble_members
from foleyflow.pipelines.editor import Editor
from foleyflow.pipelines.editor_io import ensemble_removers

REMOVER = {**SMALL, "latent_channels": LATENT_CHANNELS, "latent_bins": LATENT_BINS, "text_dim": TEXT_DIM, "per_bin": True}


def remover(seed: int) -> EditLocaliser:
    torch.manual_seed(seed)
    return EditLocaliser(REMOVER)


def inputs():
    generator = torch.Generator().manual_seed(7)
    return (torch.randn(2, LATENT_CHANNELS, 9, LATENT_BINS, generator=generator),
            torch.randn(2, 3, TEXT_DIM, generator=generator), torch.tensor([[1, 1, 0], [1, 1, 1]]))


def test_an_ensemble_gives_the_mean_of_its_members_log_gains():
    members = [remover(seed) for seed in (1, 2, 3)]
    ensemble = LocaliserEnsemble(members).eval()
    with torch.no_grad():
        outputs = [member.eval()(*inputs()) for member in members]
        assert torch.allclose(ensemble(*inputs()), sum(outputs) / 3, atol=1e-6)
    assert not torch.allclose(outputs[0], outputs[1])  # the members differ, so the mean is not any one of them
    assert ensemble.to_spec() == {**members[0].config.to_dict(), "members": 3}
    assert ensemble_members(ensemble) == members and ensemble_members(members[0]) == [members[0]]


def test_build_localiser_reads_members_and_refuses_bad_ensembles():
    assert type(build_localiser(REMOVER)) is EditLocaliser
    assert type(build_localiser({**REMOVER, "members": 1})) is EditLocaliser
    built = build_localiser({**REMOVER, "members": 3})
    assert isinstance(built, LocaliserEnsemble) and len(built.members) == 3
    for members in (0, 1.5, "2", True):
        with pytest.raises(InputError, match="members must be a whole number"):
            build_localiser({**REMOVER, "members": members})
    with pytest.raises(InputError, match="at least two"):
        LocaliserEnsemble([remover(1)])
    with pytest.raises(InputError, match="share one config"):
        LocaliserEnsemble([remover(1), EditLocaliser({**REMOVER, "width": 2 * REMOVER.get("width", 128)})])


def _saved_editor(folder, seed: int, **options):
    torch.manual_seed(seed)
    return tiny_editor(removal="gains", remover=remover(seed), **options).save_pretrained(folder)


def test_ensemble_removers_keeps_the_first_editor_and_averages_every_remover(tmp_path):
    a, b, c = (_saved_editor(tmp_path / name, seed) for name, seed in (("a", 1), ("b", 2), ("c", 3)))
    pair = ensemble_removers([a, b]).save_pretrained(tmp_path / "ab")
    loaded = Editor.from_pretrained(pair)
    assert loaded.config.remover["members"] == 2 and isinstance(loaded.remover, LocaliserEnsemble)
    first, second = Editor.from_pretrained(a), Editor.from_pretrained(b)
    with torch.no_grad():
        expected = (first.remover(*inputs()) + second.remover(*inputs())) / 2
        assert torch.allclose(loaded.remover(*inputs()), expected, atol=1e-6)
    for key, value in first.unet.state_dict().items():  # the first editor's UNet, not the second's
        assert torch.equal(loaded.unet.state_dict()[key], value)
    # An ensemble given again brings its members: three removers, not two.
    triple = Editor.from_pretrained(ensemble_removers([pair, c]).save_pretrained(tmp_path / "abc"))
    assert len(triple.remover.members) == 3
    with torch.no_grad():
        third = Editor.from_pretrained(c).remover(*inputs())
        assert torch.allclose(triple.remover(*inputs()), (2 * expected + third) / 3, atol=1e-5)


def test_ensemble_removers_refuses_editors_that_read_other_token_states(tmp_path):
    a = _saved_editor(tmp_path / "a", 1)
    plain = tiny_editor().save_pretrained(tmp_path / "plain")
    with pytest.raises(InputError, match="has no remover"):
        ensemble_removers([a, plain])
    other = tiny_editor(removal="gains", remover=remover(2))
    with torch.no_grad():  # another instruction encoder: its LoRA weights changed
        next(p for name, p in other.text_encoder.named_parameters() if "lora_" in name).add_(1.0)
    other_folder = other.save_pretrained(tmp_path / "other")
    with pytest.raises(InputError, match="instruction encoder differs"):
        ensemble_removers([a, other_folder])
    with pytest.raises(InputError, match="at least two"):
        ensemble_removers([a])


def test_the_cli_writes_the_ensemble_and_fails_in_one_line(tmp_path, cli):
    a, b = _saved_editor(tmp_path / "a", 1), _saved_editor(tmp_path / "b", 2)
    code, out, err = cli("train", "ensemble-removers", str(a), str(b), "--out", str(tmp_path / "ab"))
    assert code == 0, err
    assert "ensemble of 2 removers" in out
    assert Editor.from_pretrained(tmp_path / "ab").config.remover["members"] == 2
    assert "members in this order" in (tmp_path / "ab" / "MODEL_CARD.md").read_text()
    plain = tiny_editor().save_pretrained(tmp_path / "plain")
    code, out, err = cli("train", "ensemble-removers", str(a), str(plain), "--out", str(tmp_path / "bad"))
    assert code != 0 and "has no remover" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
