"""Model creation and loading: the registered tiny config, local checkpoints, pickle safety, clear
errors for another architecture, tower locks, and the trimmed text encoder."""

from __future__ import annotations

import json
import pickle

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from addressclip.checkpoint import save_model_dir
from addressclip.model import (
    REGISTRY_DIR,
    AddressCLIP,
    CheckpointError,
    apply_locks,
    count_parameters,
    create_clip,
    encode_text,
    load_clip_dir,
    resolve_quick_gelu,
)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_clip("AddressCLIP-Tiny")


@pytest.fixture
def other_arch(tmp_path):
    """A second registered architecture (the tiny one at width 64) to make mismatching checkpoints."""
    cfg = json.loads((REGISTRY_DIR / "AddressCLIP-Tiny.json").read_text())
    cfg["vision_cfg"]["width"] = 64
    path = tmp_path / "configs" / "Test-Other-Arch.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return "Test-Other-Arch"


def test_tiny_config_is_a_registered_json_not_code(tiny):
    assert (REGISTRY_DIR / "AddressCLIP-Tiny.json").is_file()
    assert "AddressCLIP-Tiny" in open_clip.list_models()
    model, config = tiny
    n = count_parameters(model)
    assert 2e6 < n["total"] < 12e6          # a few million parameters
    assert n["trainable"] == n["total"]     # both towers trainable by default
    assert config["preprocess_cfg"]["size"] == (64, 64)
    v = model.visual
    assert v.attn_pool is None and v.pool_type == "tok" and not isinstance(v.ln_pre, torch.nn.Identity)


def test_trimmed_text_encoder_equals_open_clip(tiny):
    model, _ = tiny
    tok = open_clip.get_tokenizer("AddressCLIP-Tiny")
    texts = ["Mannerheimintie & Lonnrotinkatu, Kamppi", "x",
             "a street view of a red building with parked cars, Alphakatu & Northtie, Kallio"]
    tokens = tok(texts)
    with torch.no_grad():
        ref = model.encode_text(tokens)
        got = encode_text(model, tokens)
    assert torch.allclose(ref, got, atol=1e-5)
    wrapper = AddressCLIP(model)
    feats = wrapper(torch.randn(2, 3, 64, 64), tokens[:2], torch.tensor([1, 0]), tokens[1:])
    assert feats["address"].shape == (2, 128)
    assert torch.allclose(feats["address"][0], torch.nn.functional.normalize(ref[1], dim=-1), atol=1e-5)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_local_checkpoint_file_loads(tiny, tmp_path, suffix, caplog):
    model, _ = tiny
    path = tmp_path / f"weights{suffix}"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    torch.manual_seed(123)  # a different random init, overwritten by the file
    loaded, _ = create_clip("AddressCLIP-Tiny", str(path))
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert "force-quick-gelu" not in caplog.text          # no OpenAI release of this model


def test_weights_file_for_a_model_openai_released_warns_about_quick_gelu(tmp_path, caplog):
    path = tmp_path / "ViT-B-32.safetensors"
    path.write_bytes(b"")                                   # only its being a file matters here
    assert resolve_quick_gelu("ViT-B-32", str(path), None) is False
    assert "need --force-quick-gelu" in caplog.text
    caplog.clear()
    assert resolve_quick_gelu("ViT-B-32", str(path), True) is True
    assert resolve_quick_gelu("ViT-B-32", "openai", None) is True     # the tag says so
    assert "force-quick-gelu" not in caplog.text


def test_checkpoint_dir_loads_here_and_with_stock_open_clip(tiny, tmp_path):
    model, config = tiny
    save_model_dir(tmp_path / "ckpt", model, config)
    ours, _ = load_clip_dir(tmp_path / "ckpt")
    stock = open_clip.create_model(f"local-dir:{tmp_path / 'ckpt'}")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours.encode_image(x), model.encode_image(x))
        assert torch.allclose(stock.encode_image(x), model.encode_image(x), atol=1e-6)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create a file if unpickled


def test_loading_never_executes_pickled_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        torch.save({"visual.proj": _Evil(str(marker))}, f, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="weights_only"):
        create_clip("AddressCLIP-Tiny", str(path))
    assert not marker.exists()


def test_checkpoint_from_another_architecture_is_a_clear_error(tiny, other_arch, tmp_path):
    other, cfg = create_clip(other_arch)
    path = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path))
    with pytest.raises(CheckpointError, match=r"does not fit .*differ in shape.*visual\.conv1\.weight"):
        create_clip("AddressCLIP-Tiny", str(path))
    # the same through a checkpoint directory whose config says tiny but whose weights are not
    model, config = tiny
    save_model_dir(tmp_path / "ckpt", model, config)
    save_file({k: v.contiguous() for k, v in other.state_dict().items()},
              str(tmp_path / "ckpt" / "open_clip_model.safetensors"))
    with pytest.raises(CheckpointError, match="another --model"):
        load_clip_dir(tmp_path / "ckpt")


def test_unknown_model_or_tag_is_a_clear_error():
    with pytest.raises(CheckpointError, match="unknown model"):
        create_clip("No-Such-Model")
    with pytest.raises(CheckpointError, match="neither a file nor a tag"):
        create_clip("AddressCLIP-Tiny", "/no/such/file.safetensors")


def test_lock_flags_freeze_one_tower():
    m, _ = create_clip("AddressCLIP-Tiny")
    apply_locks(m, lock_image=True, image_unlocked_groups=0, lock_text=False, text_unlocked_layers=0)
    assert not any(p.requires_grad for p in m.visual.parameters())
    assert m.token_embedding.weight.requires_grad
    m, _ = create_clip("AddressCLIP-Tiny")
    apply_locks(m, lock_image=False, image_unlocked_groups=0, lock_text=True, text_unlocked_layers=2)
    assert all(p.requires_grad for p in m.visual.parameters())
    assert not m.token_embedding.weight.requires_grad
    assert not m.transformer.resblocks[0].mlp.c_fc.weight.requires_grad
    # open_clip's groups from the end: the projection, then the last block with ln_final
    assert m.text_projection.requires_grad and m.transformer.resblocks[-1].mlp.c_fc.weight.requires_grad


def test_quick_gelu_follows_the_pretrained_tag_unless_told():
    assert resolve_quick_gelu("ViT-B-16", "openai", None) is True       # OpenAI weights: QuickGELU
    assert resolve_quick_gelu("ViT-B-16", None, None) is False
    assert resolve_quick_gelu("ViT-B-16", "openai", False) is False     # the user decides
    assert resolve_quick_gelu("AddressCLIP-Tiny", None, None) is False


def test_openai_release_file_gets_quick_gelu_by_its_hash(tmp_path, monkeypatch):
    """OpenAI's own ViT-B-32.pt, known by the SHA-256 in its download URL, gets QuickGELU without
    --force-quick-gelu; any other file of the same model keeps plain GELU (with the warning)."""
    import hashlib

    from addressclip import model as m
    release = tmp_path / "ViT-B-32.pt"
    release.write_bytes(b"stand-in for OpenAI's release file")
    digest = hashlib.sha256(release.read_bytes()).hexdigest()
    real = m.open_clip.get_pretrained_cfg

    def cfg(name, tag):
        out = dict(real(name, tag) or {})
        if tag == "openai":
            out["url"] = f"https://openaipublic.azureedge.net/clip/models/{digest}/ViT-B-32.pt"
        return out
    monkeypatch.setattr(m.open_clip, "get_pretrained_cfg", cfg)
    assert m.resolve_quick_gelu("ViT-B-32", str(release), None) is True
    other = tmp_path / "finetuned.pt"
    other.write_bytes(b"someone else's weights")
    assert m.resolve_quick_gelu("ViT-B-32", str(other), None) is False
    assert m.openai_release_sha256("AddressCLIP-Tiny") is None


@pytest.mark.parametrize("name", ["AddressCLIP-Tiny", "ViT-B-32"])
def test_trimmed_text_encoder_equals_the_padded_one_with_gradients(name):
    """Both text towers (ViT-B-32 built from its config, random weights, nothing downloaded): the
    trimmed encoder gives open_clip's features and the same gradients while its transformer runs only
    as many positions as the longest text of the batch, not the 77 of the context."""
    torch.manual_seed(0)
    model, _ = create_clip(name)
    tok = open_clip.get_tokenizer(name)
    tokens = tok(["Mannerheimintie & Lonnrotinkatu, Kamppi", "x",
                  "a street view of a red building with parked cars, Alphakatu & Northtie, Kallio"])
    longest = int(tokens.argmax(-1).max()) + 1
    seen = []
    hook = model.transformer.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
    try:
        ref = model.encode_text(tokens)
        ref_grads = torch.autograd.grad(ref.square().sum(), [model.token_embedding.weight,
                                                             model.transformer.resblocks[0].mlp.c_fc.weight])
        got = encode_text(model, tokens)
        got_grads = torch.autograd.grad(got.square().sum(), [model.token_embedding.weight,
                                                             model.transformer.resblocks[0].mlp.c_fc.weight])
    finally:
        hook.remove()
    assert seen == [tokens.shape[1], longest] and longest < 30
    assert torch.allclose(ref, got, atol=1e-5, rtol=1e-4)
    for a, b in zip(ref_grads, got_grads):       # float32 sums in another order: relative to scale
        assert (a - b).abs().max() <= 1e-5 * a.abs().max()


def test_length_groups_split_only_when_it_pays():
    from addressclip.model import length_groups
    same = torch.full((32,), 20)
    assert [g.tolist() for g in length_groups(same)] == [list(range(32))]
    mixed = torch.tensor([60, 10, 12, 58, 11, 62, 13, 59] * 4)
    groups = length_groups(mixed)
    assert len(groups) >= 2
    assert sorted(torch.cat(groups).tolist()) == list(range(32))          # every row exactly once
    assert mixed[groups[0]].max() < 20 and mixed[groups[-1]].min() > 50   # short ones apart
    cost = sum(len(g) * int(mixed[g].max()) for g in groups)
    assert cost < 0.7 * 32 * 62


@pytest.mark.parametrize("name", ["AddressCLIP-Tiny", pytest.param("ViT-B-32", marks=pytest.mark.slow)])
def test_length_grouped_training_losses_equal_todays(name):
    """The training step's losses and gradients with --text-length-groups equal the default ones
    (float tolerance), with the text tower really run in several groups at their own lengths."""
    from addressclip.losses import AddressCLIPLoss, LossWeights
    from addressclip.train import batch_losses
    torch.manual_seed(0)
    clip, cfg = create_clip(name)
    tok = open_clip.get_tokenizer(name)
    size = cfg["preprocess_cfg"]["size"][0]
    streets = ["Mannerheimintie & Lonnrotinkatu, Kamppi", "Aleksanterinkatu & Mikonkatu, Kluuvi",
               "Bulevardi & Annankatu, Punavuori", "Unioninkatu & Pohjoisesplanadi, Kaartinkaupunki"]
    captions = ["a street view", "a wet street at dusk with a tram, parked cars and a yellow "
                "apartment building with tall windows and a shop sign"]
    n = 8
    batch = {"image": torch.randn(n, 3, size, size), "label": torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]),
             "caption_tokens": tok([f"{captions[i % 2]}, {streets[i % 4]}" for i in range(n)]),
             "coords": torch.rand(n, 2) * 500}
    cand_tokens = tok(streets)
    loss_fn = AddressCLIPLoss(LossWeights())
    results = []
    for grouped in (False, True):
        model = AddressCLIP(clip, text_length_groups=grouped)
        calls = []
        hook = clip.transformer.register_forward_hook(lambda m, a, o, calls=calls: calls.append(a[0].shape[:2]))
        losses = batch_losses(model, loss_fn, batch, cand_tokens, torch.device("cpu"))
        grads = torch.autograd.grad(losses["total"], [clip.token_embedding.weight, clip.visual.conv1.weight])
        hook.remove()
        results.append(({k: float(v.detach()) for k, v in losses.items()}, grads, calls))
    (ref, ref_g, ref_calls), (got, got_g, got_calls) = results
    assert len(ref_calls) == 2 and len(got_calls) > 2          # addresses, captions; then in groups
    assert max(c[1] for c in got_calls[1:]) == ref_calls[1][1] > min(c[1] for c in got_calls[1:])
    assert ref.keys() == got.keys() == {"address", "caption", "geography", "total"}
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=1e-5, abs=1e-6), k
    for a, b in zip(ref_g, got_g):
        assert (a - b).abs().max() <= 1e-4 * a.abs().max()
