"""The paper's two-stage recipe on the synthetic benchmark: the stages' mechanics as the authors run them,
checkpoints reused by key, and what it is for: stage 2 lowers the Hard mean rank below vanilla CLIP."""
from dataclasses import replace

import pytest
import torch

from fgclip_utils.data.benchmark_data import load_benchmark
from fgclip_utils.evaluation.fine_grained import evaluate_split
from fgclip_utils.extraction.embedding_cache import embed_splits
from fgclip_utils.heads import paper_recipe
from fgclip_utils.heads.paper_recipe import RowData, paper_training_data, train_paper_heads
from fgclip_utils.profiles import get_profile


@pytest.fixture(scope="module")
def setting(tiny_clip, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("FGCLIP_CACHE", str(tmp_path_factory.mktemp("paper-cache")))
    P = get_profile("smoke")
    P = replace(P, data=replace(P.data, n_objects=120, n_train_objects=400))
    data = paper_training_data(P, tiny_clip, progress=False)
    yield P, data
    mp.undo()


def test_stage_two_lowers_the_hard_mean_rank_below_vanilla(setting, tiny_clip):
    P, data = setting
    test = embed_splits(tiny_clip, load_benchmark(P, "test"), ["hard"], progress=False)["hard"]
    vanilla = evaluate_split(test, split="hard").summary["mean_rank_at_n"]
    heads = train_paper_heads(P, tiny_clip, data, kinds=["paper-linear", "paper-mlp"], device="cpu", progress=False)
    for kind, result in heads.items():
        tuned = evaluate_split(test, result.finetune.head.score, split="hard").summary["mean_rank_at_n"]
        assert tuned < vanilla - 0.5, (kind, vanilla, tuned)
        history = result.finetune.history
        assert history["epoch"].tolist() == list(range(11)) and history["train_loss"].isna().tolist()[0]
        best = history[history["epoch"] >= 1]["val_loss"].idxmin()  # first of equals, as strict '<' keeps
        assert result.finetune.best_epoch == int(history.loc[best, "epoch"])
        assert result.warmup.history["val_mean_rank"].isna().all()  # stage 1 ranks nothing
        assert result.warmup_source == "trained here" and result.finetune.trained
    # a second call finds both stages' checkpoints by key and trains nothing
    again = train_paper_heads(P, tiny_clip, data, kinds=["paper-linear"], device="cpu", progress=False)
    assert not again["paper-linear"].warmup.trained and not again["paper-linear"].finetune.trained
    assert all(torch.equal(a, b) for a, b in zip(again["paper-linear"].finetune.head.state_dict().values(),
                                                 heads["paper-linear"].finetune.head.state_dict().values(),
                                                 strict=True))


def test_stage_two_rows_need_ten_negatives(setting):
    from fgclip_utils.extraction.embedding_cache import SplitEmbeddings

    _, data = setting
    negatives = torch.full((3, 12), -1, dtype=torch.long)
    negatives[0, :10] = torch.arange(1, 11)  # 10 negatives: kept
    negatives[1, :9] = torch.arange(1, 10)  # 9: dropped, as the authors' dataset drops it
    negatives[2, :12] = torch.arange(1, 13)  # 12: kept, with its first 10
    emb = SplitEmbeddings(image=torch.eye(3, 16), text=torch.eye(13, 16), captions=[str(i) for i in range(13)],
                          positive=torch.zeros(3, dtype=torch.long), negatives=negatives,
                          annotation_ids=torch.arange(3), meta={"key": "k"})
    rows = RowData.from_split(emb)
    assert len(rows) == 2 and rows.candidates.tolist() == [list(range(11)), list(range(11))]
    assert len(data.finetune_train) == 400 and data.warmup_train is not None


def test_stage_two_can_start_from_a_released_warmup(setting, tiny_clip, upstream, monkeypatch):
    import io

    P, data = setting
    g = torch.Generator().manual_seed(0)
    state = {f"linear_layers.{s}.0.{f}": (torch.randn(64, 64, generator=g) / 8 if f == "weight" else torch.zeros(64))
             for s in (0, 1) for f in ("weight", "bias")}
    buf = io.BytesIO()
    torch.save(state, buf)
    upstream.serve_asset("fgclip/checkpoints/triplet_linear-mlp.pt", buf.getvalue())
    monkeypatch.setattr(paper_recipe, "released_heads_fit", lambda bundle: True)  # a 64-d stand-in release
    heads = train_paper_heads(P, tiny_clip, data, kinds=["paper-linear"], warmup_start="released", device="cpu",
                              progress=False)
    result = heads["paper-linear"]
    assert result.warmup is None and result.warmup_source == "released triplet_linear-mlp.pt"
    assert torch.equal(result.warmup_head.linear_layers[0][0].weight, state["linear_layers.0.0.weight"])
    assert not torch.equal(result.finetune.head.linear_layers[0][0].weight, state["linear_layers.0.0.weight"])
    with pytest.raises(ValueError, match="warmup_start must be"):
        train_paper_heads(P, tiny_clip, data, kinds=["paper-linear"], warmup_start="nope")


@pytest.mark.parametrize("lr", [1e9, 1e30])
@pytest.mark.parametrize("kind", ["paper-linear", "paper-mlp"])
def test_a_diverged_paper_head_stops_and_saves_nothing(setting, tiny_clip, tmp_path, kind, lr):
    from fgclip_utils.heads.paper_heads import build_paper_head
    from fgclip_utils.heads.training import TrainingDiverged

    P, data = setting
    stage = replace(P.paper.finetune, lr=lr, epochs=2)
    checkpoint = tmp_path / f"{kind}.pt"
    with pytest.raises(TrainingDiverged, match=rf"{kind} fg-ovd: .* at epoch 1"):
        paper_recipe.train_stage(build_paper_head(kind, tiny_clip.embed_dim, seed=0), data.finetune_train,
                                 data.finetune_val, stage, checkpoint, "k", device="cpu", progress=False)
    assert not checkpoint.exists() and not list(tmp_path.iterdir())


def test_as_run_stage_two_scores_normalise_captions_across_the_row_as_the_authors_training_did():
    import torch.nn.functional as F

    from fgclip_utils.heads.paper_heads import build_paper_head

    g = torch.Generator().manual_seed(0)
    image, text = torch.randn(6, 16, generator=g) * 3, torch.randn(40, 16, generator=g) * 3
    candidates = torch.randint(0, 40, (6, 11), generator=g)
    for kind in ("paper-linear", "paper-linear-image", "paper-linear-text", "paper-mlp"):
        head = build_paper_head(kind, 16, seed=1)
        as_run = RowData(image, text, candidates, "k", as_run=True).batch_scores(head, torch.arange(6))
        corrected = RowData(image, text, candidates, "k").batch_scores(head, torch.arange(6))
        # the authors' FG-OVD path: (B, d) crops normalised per row, (B, 11, d) captions along dim 1, batched dot
        v = F.normalize(head._layers(image, 0), p=2, dim=1)
        t = F.normalize(head._layers(text[candidates], 1), p=2, dim=1)
        theirs = torch.sigmoid((v.unsqueeze(1) @ t.transpose(2, 1)).squeeze(1))
        assert torch.allclose(as_run, theirs, atol=1e-6)
        assert (as_run - corrected).abs().max() > 1e-3  # not the per-vector (test-time) scoring
        assert torch.allclose(corrected, head.score(image[:, None].expand(-1, 11, -1).reshape(-1, 16),
                                                    text[candidates.reshape(-1)]).view(6, 11), atol=1e-6)
    attention = build_paper_head("paper-attention", 16, seed=1)  # unaffected: no normalisation
    assert torch.equal(RowData(image, text, candidates, as_run=True).batch_scores(attention, torch.arange(6)),
                       RowData(image, text, candidates).batch_scores(attention, torch.arange(6)))


def test_both_stage_two_recipes_train_beside_each_other_and_only_where_they_differ(setting, tiny_clip):
    P, data = setting
    kinds = ["paper-linear", "paper-attention"]
    corrected = train_paper_heads(P, tiny_clip, data, kinds=kinds, device="cpu", progress=False)
    as_run = train_paper_heads(P, tiny_clip, data, kinds=kinds, as_run=True, device="cpu", progress=False)
    assert [corrected[k].recipe for k in kinds] == ["corrected", "either"]
    assert [as_run[k].recipe for k in kinds] == ["as-run", "either"]
    assert not as_run["paper-linear"].warmup.trained  # stage 1 is shared
    assert as_run["paper-linear"].finetune.trained and as_run["paper-linear"].finetune.key != \
        corrected["paper-linear"].finetune.key
    first = next(iter(corrected["paper-linear"].finetune.head.state_dict().values()))
    assert not torch.equal(first, next(iter(as_run["paper-linear"].finetune.head.state_dict().values())))
    # attention scores the same either way: its corrected checkpoint is loaded, not trained again
    assert not as_run["paper-attention"].finetune.trained
    assert as_run["paper-attention"].finetune.key == corrected["paper-attention"].finetune.key
    assert paper_recipe.as_run_applies("paper-mlp", cosine=True) and not paper_recipe.as_run_applies(
        "paper-mlp", cosine=False)


def test_another_seed_trains_both_stages_anew_beside_the_paper_s(setting, tiny_clip):
    P, data = setting
    paper = train_paper_heads(P, tiny_clip, data, kinds=["paper-linear"], device="cpu", progress=False)
    other = train_paper_heads(P, tiny_clip, data, kinds=["paper-linear"], seed=124, device="cpu", progress=False)
    assert (paper["paper-linear"].seed, other["paper-linear"].seed) == (123, 124)
    assert other["paper-linear"].warmup.trained and other["paper-linear"].finetune.trained
    assert other["paper-linear"].warmup.key != paper["paper-linear"].warmup.key
    weights = [next(iter(r["paper-linear"].finetune.head.state_dict().values())) for r in (paper, other)]
    assert not torch.equal(*weights)
    again = train_paper_heads(P, tiny_clip, data, kinds=["paper-linear"], seed=124, device="cpu", progress=False)
    assert not again["paper-linear"].finetune.trained  # found by key: each seed has its own checkpoints
    from fgclip_utils.results import history_table
    assert history_table("paper-linear", "fg-ovd", "as-run", 124) == "nb02_history_paper-linear_fg-ovd-as-run-seed124"
    assert history_table("paper-linear", "fg-ovd", "corrected", 123) == "nb02_history_paper-linear_fg-ovd"
    assert history_table("paper-linear", "warmup", "", 124.0) == "nb02_history_paper-linear_warmup-seed124"  # a CSV's


def test_a_saturated_paper_head_is_divergence_even_with_finite_loss_and_bounded_weights(setting, tiny_clip, tmp_path):
    # a dot-product head whose sigmoid sits at 1.0 for every pair: the loss stays at its saturation value, the
    # weights stay far below the explosion limit, and every positive ties with its negatives (ranked last)
    from fgclip_utils.heads.paper_heads import build_paper_head
    from fgclip_utils.heads.training import TrainingDiverged

    P, data = setting
    head = build_paper_head("paper-linear", tiny_clip.embed_dim, seed=0, cosine=False)
    with torch.no_grad():
        for side in head.linear_layers:
            side[0].bias.fill_(1e3)
    checkpoint = tmp_path / "saturated.pt"
    with pytest.raises(TrainingDiverged, match=r"paper-linear fg-ovd: every validation score is the same number "
                                               r"at epoch 0"):
        paper_recipe.train_stage(head, data.finetune_train, data.finetune_val, replace(P.paper.finetune, epochs=1),
                                 checkpoint, "k", device="cpu", progress=False)
    assert not checkpoint.exists()


def test_released_warm_ups_say_which_kinds_still_train_stage_one(tiny_clip, monkeypatch, capsys):
    assert paper_recipe.needs_warmup(["paper-linear"], "released", tiny_clip)  # released heads need OpenAI B/16
    assert "the released heads do not fit fgclip-tiny" in capsys.readouterr().out
    monkeypatch.setattr(paper_recipe, "released_heads_fit", lambda bundle: True)
    assert not paper_recipe.needs_warmup(["paper-linear", "paper-mlp"], "released", tiny_clip)
    assert capsys.readouterr().out == ""
    assert paper_recipe.needs_warmup(["paper-linear", "paper-attention"], "released", tiny_clip)
    out = capsys.readouterr().out
    assert "paper-attention still train stage 1" in out and "no released warm-up exists" in out
    assert "paper-linear" not in out and paper_recipe.needs_warmup(["paper-linear"], "train", tiny_clip)
    assert capsys.readouterr().out == ""
