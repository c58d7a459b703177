"""Table B's rows: every FG-OVD Mean Rank with its interval, a head against vanilla cosine on the same annotations,
and each row saying how it was made (stage-2 recipe, warm-up start)."""
import pandas as pd
import pytest
import torch

import fgclip_utils as fg
from fgclip_utils.evaluation.method_results import RECALLS
from fgclip_utils.evaluation.similarity import SimilarityHead
from fgclip_utils.extraction.embedding_cache import SplitEmbeddings


def _split(name: str, rows: int, n_neg: int, seed: int) -> SplitEmbeddings:
    """Rows whose cosine prefers the negatives (a shared direction in dim 7) while dim 1 marks the positive."""
    g = torch.Generator().manual_seed(seed)
    image = torch.nn.functional.normalize(torch.eye(8)[0] + 0.05 * torch.randn(rows, 8, generator=g), dim=-1)
    positive = torch.eye(8)[0] + 0.9 * torch.eye(8)[1] + 0.05 * torch.randn(rows, 8, generator=g)
    negative = torch.eye(8)[0] + 0.5 * torch.eye(8)[7] + 0.05 * torch.randn(rows * n_neg, 8, generator=g)
    text = torch.nn.functional.normalize(torch.cat([positive, negative]), dim=-1)
    negatives = rows + torch.arange(rows * n_neg).view(rows, n_neg)
    return SplitEmbeddings(image=image, text=text, captions=[str(i) for i in range(len(text))],
                           positive=torch.arange(rows), negatives=negatives, annotation_ids=torch.arange(rows),
                           meta={"key": name, "split": name})


class MarkReader(SimilarityHead):
    """A head that reads the positive's mark (better than cosine here), or, ``blind``, scores like cosine."""

    def __init__(self, blind: bool = False):
        super().__init__()
        self.blind = blind

    def score(self, image_emb, text_emb):
        cos = torch.nn.functional.cosine_similarity(image_emb, text_emb, dim=-1)
        return cos if self.blind else text_emb[:, 1]


@pytest.fixture(scope="module")
def test_splits():
    return {s: _split(s, 60 + 10 * i, n, i) for i, (s, n) in enumerate(fg.PAPER_N.items())}


def test_every_fg_has_an_interval_and_a_head_is_compared_with_vanilla_on_the_same_annotations(test_splits):
    vanilla = fg.method_row("vanilla", test_splits, None, kind="cosine", stage="vanilla")
    better = fg.method_row("reader", test_splits, None, MarkReader(), kind="paper-linear", stage="fg-ovd")
    same = fg.method_row("blind", test_splits, None, MarkReader(blind=True), kind="paper-mlp", stage="fg-ovd")
    for row in (vanilla, better, same):
        assert row["fg_ci_low"] <= row["fg"] <= row["fg_ci_high"]
        for s in fg.PAPER_N:
            assert row[f"mr_{s}_ci_low"] <= row[f"mr_{s}"] <= row[f"mr_{s}_ci_high"]
    assert "fg_vs_vanilla" not in vanilla  # vanilla is the reference
    assert better["fg"] == pytest.approx(1.0) and vanilla["fg"] > 2  # cosine ranks the positive last
    assert better["fg_vs_vanilla"] == pytest.approx(better["fg"] - vanilla["fg"])
    assert better["fg_vs_vanilla_ci_high"] < 0 and better["fg_vs_vanilla_p"] < 0.01
    assert same["fg_vs_vanilla"] == 0 and same["fg_vs_vanilla_p"] == 1.0
    # one split short: no aggregate, so no interval either
    short = fg.method_row("short", {s: e for s, e in test_splits.items() if s != "hard"}, None, MarkReader())
    assert short["fg"] != short["fg"] and short["fg_ci_low"] != short["fg_ci_low"] and "fg_vs_vanilla" not in short


def test_table_b_keeps_one_row_per_recipe_and_says_how_sure_each_number_is(test_splits):
    rows = pd.DataFrame([
        fg.method_row("vanilla", test_splits, None, kind="cosine", stage="vanilla", recipe="", start=""),
        fg.method_row("linear corrected", test_splits, None, MarkReader(), kind="paper-linear", stage="fg-ovd",
                      recipe="corrected", start="trained warm-up", seed=123),
        fg.method_row("linear as-run", test_splits, None, MarkReader(blind=True), kind="paper-linear",
                      stage="fg-ovd", recipe="as-run", start="released warm-up", seed=123),
    ]).assign(**dict.fromkeys(RECALLS, 0.0))
    side = fg.paper_vs_ours(rows, "B", recalls="standard")
    linear = side.loc[("linear", "fg-ovd")]
    assert list(linear.index) == [("corrected", "trained warm-up", "123"), ("as-run", "released warm-up", "123")]
    assert (linear[("fg", "paper")] == 1.46).all()  # the published number beside each of this run's rows
    assert linear[("fg", "this run")].tolist() == pytest.approx([rows.loc[1, "fg"], rows.loc[2, "fg"]])
    assert side.loc[("mlp", "fg-ovd")][("fg", "this run")].isna().all()  # a row this run did not make
    sure = fg.table_b_confidence(rows).set_index(["method", "recipe"])
    assert sure.loc[("linear", "corrected"), "differs from vanilla"]
    assert not sure.loc[("linear", "as-run"), "differs from vanilla"]
    assert sure.loc[("linear", "corrected"), "paper outside CI"]  # 1.46 is not 1.0 +- nothing
    assert sure.loc[("CLIP B/16", ""), "paper fg"] == 2.98 and sure.loc[("CLIP B/16", ""), "seed"] == ""


def test_vanilla_beside_the_paper_gives_every_interval_and_says_whether_the_paper_lies_inside(test_splits):
    table = fg.evaluate_splits(test_splits)
    aggregate = fg.method_row("vanilla", test_splits, None)
    side = fg.vanilla_vs_paper(table, aggregate)
    b = side.loc["FG-OVD Mean Rank (Table B)"]
    assert b["this run"] == pytest.approx(aggregate["fg"])
    assert b["this run 95% CI"] == f"[{aggregate['fg_ci_low']:.3f}, {aggregate['fg_ci_high']:.3f}]"
    assert b["paper inside CI"] == (aggregate["fg_ci_low"] <= 2.98 <= aggregate["fg_ci_high"])
    a = side.loc["Mean Rank Sum (Table A)"]  # the sum's interval is eight times the mean's
    assert a["this run 95% CI"] == f"[{8 * aggregate['fg_ci_low']:.3f}, {8 * aggregate['fg_ci_high']:.3f}]"
    hard = side.loc[f"hard mean rank at N={fg.PAPER_N['hard']}"]
    low, high = table.set_index("split").loc["hard", ["mean_rank_at_n_ci_low", "mean_rank_at_n_ci_high"]]
    assert hard["this run 95% CI"] == f"[{low:.3f}, {high:.3f}]"
    assert fg.vanilla_vs_paper(table).loc["FG-OVD Mean Rank (Table B)", "this run 95% CI"] == "—"


def test_seeds_are_summarised_as_mean_and_spread_beside_one_run_s_interval():
    rows = pd.DataFrame([{"kind": "paper-linear", "stage": "fg-ovd", "recipe": "corrected", "seed": seed, "fg": fg_,
                          "fg_ci_low": fg_ - 0.1, "fg_ci_high": fg_ + 0.1, "i2t_r1": 40.0 + seed - 123}
                         for seed, fg_ in ((123, 1.5), (124, 1.7), (125, 1.6))]
                        + [{"kind": "cosine", "stage": "vanilla", "recipe": "", "seed": float("nan"), "fg": 3.0,
                            "fg_ci_low": 2.9, "fg_ci_high": 3.1, "i2t_r1": 41.0}])
    spread = fg.seed_spread(rows)
    assert len(spread) == 1  # vanilla has no seed
    line = spread.iloc[0]
    assert line["method"] == "linear" and line["seeds"] == 3
    assert line["fg mean"] == pytest.approx(1.6) and line["fg std"] == pytest.approx(0.1)
    assert line["fg 95% CI (one seed)"] == "[1.500, 1.700]" and line["i2t_r1 std"] == pytest.approx(1.0)
