import pytest
import torch
import torch.nn.functional as F

from fgclip_utils.heads.architectures import HEAD_KINDS, build_head
from fgclip_utils.heads.fgclip_checkpoints import FGCLIP_CHECKPOINTS, download_fgclip_checkpoint, load_fgclip_checkpoint


def _emb(n, d, seed):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


@pytest.mark.parametrize("kind", HEAD_KINDS)
def test_untrained_head_scores_exactly_like_cosine(kind):
    v, t = _emb(32, 64, 0), _emb(32, 64, 1)
    head = build_head(kind, 64, seed=0).eval()
    assert torch.allclose(head.score(v, t), (v * t).sum(-1), atol=1e-6)
    assert torch.allclose(head.similarity_matrix(v, t), v @ t.T, atol=1e-6)


def test_embed_methods_and_parameter_counts():
    d = 512
    counts = {k: build_head(k, d).n_parameters for k in HEAD_KINDS}
    assert counts["linear"] == 2 * (d * d + d) and counts["linear-image"] == counts["linear-text"] == d * d + d
    assert counts["mlp"] > counts["linear"] and counts["attention"] > 0
    lin = build_head("linear-image", 8)
    x = _emb(3, 8, 2)
    assert torch.allclose(lin.embed_text(x), x) and lin.embed_image(x).shape == (3, 8)
    assert not hasattr(build_head("attention", 8), "embed_image")
    with pytest.raises(ValueError, match="unknown head kind"):
        build_head("bilinear", 8)


def test_similarity_matrix_matches_pairwise_scores_after_training_like_change():
    head = build_head("attention", 16, seed=1).eval()
    with torch.no_grad():
        torch.nn.init.normal_(head.out[-1].weight)  # make the correction non-zero
    v, t = _emb(5, 16, 3), _emb(7, 16, 4)
    full = head.similarity_matrix(v, t, chunk=8)
    pair = torch.stack([head.score(v[i].expand(7, -1), t) for i in range(5)])
    assert torch.allclose(full, pair, atol=1e-5)


def test_seeded_construction_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = build_head("mlp", 16, seed=4), build_head("mlp", 16, seed=4)
    after = torch.rand(1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert torch.equal(before, after)


def _official_state(sides=(0, 1), dim=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {}
    for s in sides:
        state[f"linear_layers.{s}.0.weight"] = torch.randn(dim, dim, generator=g)
        state[f"linear_layers.{s}.0.bias"] = torch.randn(dim, generator=g)
    return state


def test_official_checkpoint_loads_into_linear_head(tmp_path):
    state = _official_state()
    path = tmp_path / "fg-ovd_linear-mlp.pt"
    torch.save(state, path)
    head = load_fgclip_checkpoint(path)
    assert head.kind == "linear"
    v, t = _emb(4, 512, 5), _emb(4, 512, 6)
    # the authors' model: linear map per side (no activation), then cosine
    ref_v = F.normalize(v @ state["linear_layers.0.0.weight"].T + state["linear_layers.0.0.bias"], dim=-1)
    ref_t = F.normalize(t @ state["linear_layers.1.0.weight"].T + state["linear_layers.1.0.bias"], dim=-1)
    assert torch.allclose(head.score(v, t), (ref_v * ref_t).sum(-1), atol=1e-5)


@pytest.mark.parametrize("sides, kind", [((0,), "linear-image"), ((1,), "linear-text")])
def test_frozen_side_checkpoints_load_into_one_sided_heads(tmp_path, sides, kind):
    path = tmp_path / "c.pt"
    torch.save(_official_state(sides, dim=32), path)
    assert load_fgclip_checkpoint(path).kind == kind


@pytest.mark.parametrize("state, message", [
    ({"foo": torch.zeros(1)}, "expected keys"),
    ({"linear_layers.0.0.weight": torch.zeros(4, 4)}, "missing 'linear_layers.0.0.bias'"),
    ({"linear_layers.0.0.weight": torch.zeros(4, 3), "linear_layers.0.0.bias": torch.zeros(4)}, "shapes"),
    ({**_official_state((0,), 4), "linear_layers.0.1.weight": torch.zeros(4, 4)}, "single linear layers"),
])
def test_bad_checkpoints_are_clear_errors(tmp_path, state, message):
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=message):
        load_fgclip_checkpoint(path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_fgclip_checkpoint(tmp_path / "junk.pt")


def test_download_fgclip_checkpoint_from_local_server(server, tmp_path, monkeypatch):
    import io
    buf = io.BytesIO()
    torch.save(_official_state(dim=16), buf)
    server.add("checkpoints/fg-ovd_linear-mlp.pt", buf.getvalue())
    server.add("checkpoints/triplet_linear-mlp.pt", b"<html>not a checkpoint</html>")
    from dataclasses import replace

    from fgclip_utils.data import assets
    for name in ("fg-ovd_linear-mlp", "triplet_linear-mlp"):
        key = f"fgclip/checkpoints/{name}.pt"
        monkeypatch.setitem(assets.ASSETS, key, replace(assets.ASSETS[key], url=server.url(f"checkpoints/{name}.pt")))
    path = download_fgclip_checkpoint("fg-ovd_linear-mlp", tmp_path)
    assert load_fgclip_checkpoint(path).kind == "linear"
    from fgclip_utils.data.download import DownloadError
    with pytest.raises(DownloadError, match="validation"):
        download_fgclip_checkpoint("triplet_linear-mlp", tmp_path)
    assert not (tmp_path / "triplet_linear-mlp.pt").exists()
    assert set(FGCLIP_CHECKPOINTS.values()) == {"linear", "linear-image", "linear-text"}
