import pytest
import torch
import torch.nn.functional as F

from fgclip_utils.heads.architectures import HEAD_KINDS, build_head
from fgclip_utils.heads.fgclip_checkpoints import FGCLIP_CHECKPOINTS, download_fgclip_checkpoint, load_fgclip_checkpoint
from fgclip_utils.heads.paper_heads import PAPER_HEAD_KINDS
from fgclip_utils.heads.study_heads import STUDY_HEAD_KINDS


def _emb(n, d, seed):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


@pytest.mark.parametrize("kind", STUDY_HEAD_KINDS)
def test_untrained_study_head_scores_exactly_like_cosine(kind):
    v, t = _emb(32, 64, 0), _emb(32, 64, 1)
    head = build_head(kind, 64, seed=0).eval()
    assert torch.allclose(head.score(v, t), (v * t).sum(-1), atol=1e-6)
    assert torch.allclose(head.similarity_matrix(v, t), v @ t.T, atol=1e-6)


def test_embed_methods_and_parameter_counts():
    d = 512
    counts = {k: build_head(k, d).n_parameters for k in STUDY_HEAD_KINDS}
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


def test_paper_heads_have_the_papers_parameter_counts():
    counts = {k: build_head(k, 512).n_parameters for k in PAPER_HEAD_KINDS}
    assert counts == {"paper-linear": 525_312, "paper-linear-image": 262_656, "paper-linear-text": 262_656,
                      "paper-mlp": 1_050_624, "paper-attention": 1_051_648}
    assert set(HEAD_KINDS) == set(STUDY_HEAD_KINDS) | set(PAPER_HEAD_KINDS)
    assert all(build_head(k, 8).input_space == "raw" for k in PAPER_HEAD_KINDS)
    assert all(build_head(k, 8).input_space == "unit" for k in STUDY_HEAD_KINDS)


def _raw(n, d, seed):  # raw CLIP-like embeddings: norms far from 1
    return 8 * torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_paper_projection_head_scores():
    v, t = _raw(6, 16, 0), _raw(6, 16, 1)
    lin = build_head("paper-linear", 16, seed=0)
    W0, b0 = lin.linear_layers[0][0].weight, lin.linear_layers[0][0].bias
    W1, b1 = lin.linear_layers[1][0].weight, lin.linear_layers[1][0].bias
    mv, mt = v @ W0.T + b0, t @ W1.T + b1
    cos = (F.normalize(mv, dim=-1) * F.normalize(mt, dim=-1)).sum(-1)
    assert torch.allclose(lin.score(v, t), torch.sigmoid(cos), atol=1e-6)
    dot = build_head("paper-linear", 16, seed=0, cosine=False)
    assert torch.allclose(dot.score(v, t), torch.sigmoid((mv * mt).sum(-1)), atol=1e-6)
    expected = torch.sigmoid(F.normalize(mv, dim=-1) @ F.normalize(mt, dim=-1).T)
    assert torch.allclose(lin.similarity_matrix(v, t), expected, atol=1e-6)
    image_only = build_head("paper-linear-image", 16, seed=0)
    W = image_only.linear_layers[0][0]
    expected = (F.normalize(W(v), dim=-1) * F.normalize(t, dim=-1)).sum(-1)  # text kept as CLIP made it
    assert image_only.linear_layers[1] is None and torch.allclose(image_only.score(v, t), torch.sigmoid(expected))
    mlp = build_head("paper-mlp", 16, seed=0)
    side = mlp.linear_layers[0]
    hidden = torch.tanh(side[1](torch.tanh(side[0](v))))  # tanh after every layer, the last included
    assert torch.allclose(mlp.embed_image(v), F.normalize(hidden, dim=-1), atol=1e-6)


def test_paper_attention_head_reads_the_first_channel_of_the_cls_token():
    head = build_head("paper-attention", 16, seed=0).eval()
    v, t = _raw(5, 16, 2), _raw(5, 16, 3)
    cls = head.cls_linear(torch.ones(5, 1))
    x = torch.stack([cls, v, t], dim=1)
    out, _ = head.attention_layers[0](x, x, x)
    assert torch.allclose(head.score(v, t), torch.sigmoid(out[:, 0, 0]), atol=1e-6)
    assert head.attention_layers[0].num_heads == 16
    assert build_head("paper-attention", 512).attention_layers[0].num_heads == 64
    assert torch.allclose(head.similarity_matrix(v, t, chunk=7)[2], head.score(v[2].expand(5, -1), t), atol=1e-6)


def _official_state(sides=(0, 1), dim=512, seed=0, layers=(0,)):
    """A state dict with the keys and shapes of the authors' released files."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for s in sides:
        for index in layers:
            state[f"linear_layers.{s}.{index}.weight"] = torch.randn(dim, dim, generator=g) / dim ** 0.5
            state[f"linear_layers.{s}.{index}.bias"] = torch.randn(dim, generator=g)
    return state


@pytest.mark.parametrize("name, sides, layers, kind", [
    ("fg-ovd_linear-mlp", (0, 1), (0,), "paper-linear"), ("triplet_linear-mlp", (0, 1), (0,), "paper-linear"),
    ("fg-ovd_linear-mlp_te-freezed", (0,), (0,), "paper-linear-image"),
    ("triplet_linear-mlp_te-freezed", (0,), (0,), "paper-linear-image"),
    ("fg-ovd_linear-mlp_ve-freezed", (1,), (0,), "paper-linear-text"),
    ("triplet_linear-mlp_ve-freezed", (1,), (0,), "paper-linear-text"),
    ("fg-ovd_non-linear-mlp", (0, 1), (0, 1), "paper-mlp"),  # as the authors' MLPs module numbers them
    ("triplet_non-linear-mlp", (0, 1), (0, 2), "paper-mlp"),  # a Sequential with the Tanh inside
])
def test_every_released_layout_loads_into_its_paper_head(tmp_path, name, sides, layers, kind):
    state = _official_state(sides, dim=32, layers=layers)
    path = tmp_path / f"own-{name}.pt"  # not the released file name: no hash to check
    torch.save(state, path)
    assert FGCLIP_CHECKPOINTS[name] == kind
    head = load_fgclip_checkpoint(path)
    assert head.kind == kind and not head.training
    v, t = _raw(4, 32, 5), _raw(4, 32, 6)
    maps = []
    for side, x in ((0, v), (1, t)):
        for index in (layers if side in sides else ()):
            x = x @ state[f"linear_layers.{side}.{index}.weight"].T + state[f"linear_layers.{side}.{index}.bias"]
            if kind == "paper-mlp":
                x = torch.tanh(x)
        maps.append(x)
    for cosine in (True, False):
        head = load_fgclip_checkpoint(path, cosine=cosine)
        a, b = (F.normalize(m, dim=-1) for m in maps) if cosine else maps
        assert torch.allclose(head.score(v, t), torch.sigmoid((a * b).sum(-1)), atol=1e-5)


def test_a_file_named_like_a_release_must_be_the_release(tmp_path):
    path = tmp_path / "fg-ovd_linear-mlp.pt"
    torch.save(_official_state(dim=16), path)
    with pytest.raises(ValueError, match="named like the released fg-ovd_linear-mlp.pt but its hash is sha256:"):
        load_fgclip_checkpoint(path)
    assert load_fgclip_checkpoint(path, verify=False).kind == "paper-linear"


@pytest.mark.parametrize("state, message", [
    ({"foo": torch.zeros(1)}, "unexpected key 'foo'"),
    ({"linear_layers.0.0.weight": torch.zeros(4, 4)}, "missing 'linear_layers.0.0.bias'"),
    ({"linear_layers.0.0.weight": torch.zeros(4, 3), "linear_layers.0.0.bias": torch.zeros(4)}, "shape"),
    ({**_official_state((0,), 4), **_official_state((1,), 4, layers=(0, 1))}, "one or two linear layers"),
    ({**_official_state((0,), 4, layers=(0, 1))}, "a two-layer head maps both sides"),
    ({"linear_layers.2.0.weight": torch.zeros(4, 4), "linear_layers.2.0.bias": torch.zeros(4)}, "sides 0"),
    ({"cls_linear.bias": torch.zeros(4)}, "needs 'cls_linear.weight'"),
    ([1, 2, 3], "expected a state dict of tensors"),
])
def test_bad_checkpoints_are_clear_errors(tmp_path, state, message):
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=message) as err:
        load_fgclip_checkpoint(path)
    assert "bad.pt" in str(err.value)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: not a loadable state dict"):
        load_fgclip_checkpoint(tmp_path / "junk.pt")


def test_download_fgclip_checkpoint_verifies_the_release(upstream, tmp_path):
    import io

    from fgclip_utils.data.download import DownloadError

    buf = io.BytesIO()
    torch.save(_official_state(dim=16), buf)
    upstream.serve_asset("fgclip/checkpoints/fg-ovd_linear-mlp.pt", buf.getvalue())
    path = download_fgclip_checkpoint("fg-ovd_linear-mlp", tmp_path)
    assert path.name == "fg-ovd_linear-mlp.pt" and load_fgclip_checkpoint(path).kind == "paper-linear"
    assert "/695c5d6aa467859326ca6bf603a6587716dabfe4/checkpoints/" in upstream.path_of(
        __import__("fgclip_utils").ASSETS["fgclip/checkpoints/fg-ovd_linear-mlp.pt"].url)
    # a file upstream that is not the release is refused and not kept
    upstream.serve_asset("fgclip/checkpoints/triplet_linear-mlp.pt", b"<html>not a checkpoint</html>",
                         record_hash=False)
    with pytest.raises(DownloadError, match="triplet_linear-mlp.pt has sha256:.*expected sha256:7e3b5867"):
        download_fgclip_checkpoint("triplet_linear-mlp", tmp_path)
    assert not (tmp_path / "triplet_linear-mlp.pt").exists()
    assert set(FGCLIP_CHECKPOINTS.values()) == {"paper-linear", "paper-linear-image", "paper-linear-text", "paper-mlp"}


def test_a_head_file_of_another_width_or_with_nan_weights_is_refused_at_load(tmp_path):
    from fgclip_utils.heads.checkpoints import CheckpointError, load_head_state, save_head

    path = tmp_path / "own-linear.pt"
    torch.save(_official_state(dim=32), path)
    with pytest.raises(ValueError, match=r"own-linear.pt: a head of 32-d embeddings, but the backbone gives 64-d"):
        load_fgclip_checkpoint(path, embed_dim=64)
    assert load_fgclip_checkpoint(path, embed_dim=32).kind == "paper-linear"
    state = _official_state(dim=32)
    state[next(iter(state))][0, 0] = float("nan")
    torch.save(state, path)
    with pytest.raises(ValueError, match="holds non-finite weights"):
        load_fgclip_checkpoint(path)

    head = build_head("linear", 8, seed=0)
    with torch.no_grad():
        next(head.parameters()).fill_(float("nan"))
    saved = tmp_path / "study.pt"
    save_head(saved, head, "k")
    with pytest.raises(CheckpointError, match="study.pt: .* holds non-finite weights"):
        load_head_state(saved, build_head("linear", 8, seed=0), "k")


def test_the_paper_attention_score_per_token_equals_their_stacked_forward_pass_and_its_gradients():
    """One attention layer's CLS query is the same for every pair: scoring from per-token terms is their
    [CLS, v, t] forward pass in another order, values and gradients equal to rounding, at far fewer FLOPs."""
    from fgclip_utils.extraction.cost_estimate import step_flops

    head = build_head("paper-attention", 64, seed=0)
    v, t = _raw(12, 64, 2), _raw(9, 64, 3)
    stacked = torch.stack([head.stacked_score(v[i].expand(9, -1), t) for i in range(12)])
    fast = head.similarity_matrix(v, t, chunk=20)  # several chunks
    assert torch.allclose(fast, stacked, atol=1e-6) and fast.shape == (12, 9)
    assert torch.allclose(head.score(v[:9], t), head.stacked_score(v[:9], t), atol=1e-6)
    grads = []
    for scores in (lambda: head.similarity_matrix(v, t),
                   lambda: torch.stack([head.stacked_score(v[i].expand(9, -1), t) for i in range(12)])):
        head.zero_grad()
        (scores() * torch.arange(108.0).view(12, 9)).sum().backward()
        grads.append([p.grad.clone() for p in head.parameters()])
    for a, b in zip(*grads, strict=True):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()
    per_token = step_flops(head, lambda idx: head.similarity_matrix(v[idx], t).sum(), 12)
    per_pair = step_flops(head, lambda idx: torch.stack([head.stacked_score(v[i].expand(9, -1), t)
                                                         for i in idx]).sum(), 12)
    assert per_pair > 5 * per_token
    two_layers = build_head("paper-attention", 16, seed=0)
    two_layers.attention_layers.append(torch.nn.MultiheadAttention(16, 4, batch_first=True))
    v2, t2 = _raw(3, 16, 4), _raw(3, 16, 5)  # more layers: no such factoring, their pass is used as it is
    assert torch.equal(two_layers.score(v2, t2), two_layers.stacked_score(v2, t2))
