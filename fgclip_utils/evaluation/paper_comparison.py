"""This run's numbers in the paper's layout, beside the paper's published ones.

The paper names its rows ``CLIP B/16``, ``linear``, ``linear-image``, ``linear-text``, ``mlp`` and ``attention``,
each at the stages ``vanilla``, ``warmup`` and ``fg-ovd``; this study's paper heads are ``paper-linear`` and so
on. Table A's fine-grained column is the Mean Rank Sum over the eight splits, Table B's the FG-OVD Mean Rank
(their mean). The published COCO recalls come from the authors' evaluation code, so this run's are shown as that
code computes them (``authors_*`` columns); the standard ones are in the run's own table.
"""
from __future__ import annotations

import pandas as pd

from ..data.reported_results import PAPER_METHODS, openclip_coco_reference, paper_results
from .method_results import RECALLS
from .ranking import PAPER_N

PAPER_METHOD = {"cosine": "CLIP B/16", "paper-linear": "linear", "paper-linear-image": "linear-image",
                "paper-linear-text": "linear-text", "paper-mlp": "mlp", "paper-attention": "attention"}
COLUMNS = ("fg", *RECALLS)
HOW_MADE = ("recipe", "start", "seed")  # how this run made a row: stage-2 recipe, warm-up start, seed


def paper_layout(rows: pd.DataFrame, table: str = "B", recalls: str = "authors") -> pd.DataFrame:
    """``rows`` (:func:`~.method_results.method_row` rows with ``kind`` and ``stage``) in the layout of the
    paper's ``table``: method, stage, how this run made it (:data:`HOW_MADE`, empty where ``rows`` lack it), fg
    (Table A: Mean Rank Sum; B: FG-OVD Mean Rank), the six recalls (``recalls="authors"``: as the authors' code
    computes them; ``"standard"``: the standard ones), and their 95% intervals (``<column>_ci_low`` / ``_high``;
    NaN where ``rows`` lack them)."""
    prefix = "authors_" if recalls == "authors" else ""
    scale = len(PAPER_N) if table == "A" else 1  # Table A's sum is 8 times Table B's mean, interval and all
    nan = pd.Series(float("nan"), index=rows.index)
    out = pd.DataFrame({
        "method": rows["kind"].map(PAPER_METHOD),
        "stage": rows["stage"],
        **{c: rows[c].map(_made_label) if c in rows else "" for c in HOW_MADE},
        "fg": rows["mean_rank_sum"] if table == "A" else rows["fg"],
        **{r: rows[f"{prefix}{r}"] for r in RECALLS},
        **{f"fg_ci_{end}": scale * rows.get(f"fg_ci_{end}", nan) for end in ("low", "high")},
        **{f"{r}_ci_{end}": rows.get(f"{prefix}{r}_ci_{end}", nan) for r in RECALLS for end in ("low", "high")},
    })
    return out.dropna(subset=["method"]).reset_index(drop=True)


def _interval_text(low: float, high: float) -> str:
    return f"[{low:.3f}, {high:.3f}]" if low == low else "—"


def _made_label(value) -> str:
    """A :data:`HOW_MADE` value as shown: empty for none (vanilla), a seed as an integer."""
    if value is None or value != value:
        return ""
    return str(int(value)) if isinstance(value, float | int) and not isinstance(value, bool) else str(value)


def paper_vs_ours(rows: pd.DataFrame, table: str = "B", recalls: str = "authors") -> pd.DataFrame:
    """The paper's ``table`` and this run side by side: one row per (method, stage) in the paper's order and per
    way this run made it (:data:`HOW_MADE`: stage-2 recipe, warm-up start), columns (measure, ``paper`` |
    ``this run`` | ``this run 95% CI``); a row this run did not make stays empty on its side."""
    paper = paper_results(table).set_index(["method", "stage"])[list(COLUMNS)]
    ours = paper_layout(rows, table, recalls)
    lines, index = [], []
    for m in PAPER_METHODS:
        for s in ("vanilla", "warmup", "fg-ovd"):
            if (m, s) not in paper.index:
                continue
            made = ours[(ours["method"] == m) & (ours["stage"] == s)]
            for _, r in (made.iterrows() if len(made) else [(None, None)]):
                index.append((m, s, *(r[c] if r is not None else "" for c in HOW_MADE)))
                line = {**{(c, "paper"): paper.loc[(m, s), c] for c in COLUMNS},
                        **{(c, "this run"): r[c] if r is not None else float("nan") for c in COLUMNS}}
                for c in COLUMNS:
                    low, high = (r[f"{c}_ci_{end}"] if r is not None else float("nan") for end in ("low", "high"))
                    line[(c, "this run 95% CI")] = _interval_text(low, high)
                lines.append(line)
    out = pd.DataFrame(lines, index=pd.MultiIndex.from_tuples(index, names=["method", "stage", *HOW_MADE]))
    return out[[(c, side) for c in COLUMNS for side in ("paper", "this run", "this run 95% CI")]]


def seed_spread(rows: pd.DataFrame) -> pd.DataFrame:
    """Each head and stage trained with several seeds (rows with a ``seed`` column): the mean and standard deviation
    across seeds of the FG-OVD Mean Rank and the standard COCO R@1, beside the bootstrap interval of one run (the
    mean of the seeds' interval bounds: the spread over annotations, where the std is the spread over seeds)."""
    made = rows[rows["seed"].notna() & (rows["seed"] != "")] if "seed" in rows else rows.iloc[:0]
    out = []
    for (kind, stage, recipe), group in made.groupby(["kind", "stage", "recipe"], sort=False):
        line = {"method": PAPER_METHOD.get(kind, kind), "stage": stage, "recipe": recipe, "seeds": len(group),
                "fg mean": group["fg"].mean(), "fg std": group["fg"].std(ddof=1) if len(group) > 1 else float("nan"),
                "fg 95% CI (one seed)": _interval_text(group["fg_ci_low"].mean(), group["fg_ci_high"].mean())}
        for r in ("i2t_r1", "t2i_r1"):
            if r in group:
                line[f"{r} mean"] = group[r].mean()
                line[f"{r} std"] = group[r].std(ddof=1) if len(group) > 1 else float("nan")
        out.append(line)
    return pd.DataFrame(out)


def table_b_confidence(rows: pd.DataFrame) -> pd.DataFrame:
    """How sure each of this run's Table B fine-grained numbers is: the FG-OVD Mean Rank with its 95% bootstrap
    interval (annotations resampled within each split), the paper's number and whether the interval excludes it,
    and for a head the paired comparison with vanilla cosine on the same annotations (difference, interval,
    p-value, and whether it differs)."""
    paper = paper_results("B").set_index(["method", "stage"])["fg"]
    ours = rows.assign(method=rows["kind"].map(PAPER_METHOD)).dropna(subset=["method"])
    out = []
    for _, r in ours.iterrows():
        published = paper.get((r["method"], r["stage"]), float("nan"))
        low, high = r.get("fg_ci_low", float("nan")), r.get("fg_ci_high", float("nan"))
        line = {"method": r["method"], "stage": r["stage"], **{c: _made_label(r.get(c, "")) for c in HOW_MADE},
                "fg": r["fg"], "fg 95% CI": _interval_text(low, high), "paper fg": published,
                "paper outside CI": bool(published == published and not low <= published <= high)}
        diff = r.get("fg_vs_vanilla", float("nan"))
        if diff == diff:
            line.update({"Δ vs vanilla": diff,
                         "Δ 95% CI": _interval_text(r["fg_vs_vanilla_ci_low"], r["fg_vs_vanilla_ci_high"]),
                         "p": r["fg_vs_vanilla_p"],
                         "differs from vanilla": not r["fg_vs_vanilla_ci_low"] <= 0 <= r["fg_vs_vanilla_ci_high"]})
        out.append(line)
    return pd.DataFrame(out)


def vanilla_vs_paper(split_table: pd.DataFrame, aggregate: dict | None = None) -> pd.DataFrame:
    """Vanilla CLIP per split at the paper's N (this run; the paper publishes no per-split numbers) and the two
    aggregates beside the paper's: Mean Rank Sum (Table A: 23.8) and FG-OVD Mean Rank (Table B: 2.98). Each row
    names the N it was ranked at (the table's ``paper_n``: the paper's, except on the synthetic benchmark) and
    this run's 95% bootstrap interval: the split table's, and for the aggregates ``aggregate``'s (a
    :func:`~.method_results.fine_grained_row` of the same embeddings), whether the paper's number lies inside."""
    by_split = split_table.set_index("split")
    ranks = by_split["mean_rank_at_n"]

    rows = [{"measure": f"{s} mean rank at N={int(by_split.loc[s, 'paper_n'])}", "paper": float("nan"),
             "this run": ranks.get(s),
             "this run 95% CI": _interval_text(*by_split.loc[s, ["mean_rank_at_n_ci_low", "mean_rank_at_n_ci_high"]])}
            for s in PAPER_N if s in ranks]
    vanilla = {t: paper_results(t).set_index(["method", "stage"]).loc[("CLIP B/16", "vanilla"), "fg"] for t in "AB"}
    complete = all(s in ranks for s in PAPER_N)
    total = float(sum(ranks[s] for s in PAPER_N)) if complete else float("nan")
    low, high = (aggregate or {}).get("fg_ci_low", float("nan")), (aggregate or {}).get("fg_ci_high", float("nan"))
    for measure, paper, value, scale in (("Mean Rank Sum (Table A)", vanilla["A"], total, len(PAPER_N)),
                                         ("FG-OVD Mean Rank (Table B)", vanilla["B"], total / len(PAPER_N), 1)):
        rows.append({"measure": measure, "paper": paper, "this run": value,
                     "this run 95% CI": _interval_text(scale * low, scale * high),
                     "paper inside CI": bool(scale * low <= paper <= scale * high) if low == low else None})
    return pd.DataFrame(rows).set_index("measure")


def released_vs_paper(rows: pd.DataFrame) -> pd.DataFrame:
    """The authors' released heads, scored by cosine and by dot product (``origin`` "released (cosine)" and
    "released (dot)" in ``rows``), beside the paper's rows for the same head and stage: the Mean Rank Sum
    (Table A's measure; the released files date from its run) and COCO image->text R@1 as the authors' code
    computes it (each with this run's 95% bootstrap interval), and which similarity comes closer to Table A."""
    paper = paper_results("A").set_index(["method", "stage"])
    nan = float("nan")
    out = []
    for (kind, stage), group in rows[rows["origin"].str.startswith("released")].groupby(["kind", "stage"], sort=False):
        method = PAPER_METHOD.get(kind)
        if method is None or (method, stage) not in paper.index:
            continue
        by = group.set_index("origin")
        line = {"method": method, "stage": stage, "paper A: mean rank sum": paper.loc[(method, stage), "fg"],
                "paper A: i2t R@1": paper.loc[(method, stage), "i2t_r1"]}
        gaps = {}
        for similarity in ("cosine", "dot"):
            origin = f"released ({similarity})"
            if origin in by.index:
                r = by.loc[origin]
                line[f"{similarity}: mean rank sum"] = r["mean_rank_sum"]
                line[f"{similarity}: mean rank sum 95% CI"] = _interval_text(len(PAPER_N) * r.get("fg_ci_low", nan),
                                                                            len(PAPER_N) * r.get("fg_ci_high", nan))
                line[f"{similarity}: i2t R@1"] = r["authors_i2t_r1"]
                line[f"{similarity}: i2t R@1 95% CI"] = _interval_text(r.get("authors_i2t_r1_ci_low", nan),
                                                                      r.get("authors_i2t_r1_ci_high", nan))
                gaps[similarity] = abs(by.loc[origin, "mean_rank_sum"] - line["paper A: mean rank sum"])
        line["closer to Table A"] = min(gaps, key=gaps.get) if gaps else ""
        out.append(line)
    return pd.DataFrame(out)


def coco_baselines(vanilla: pd.Series | dict, model: str, pretrained: str | None) -> pd.DataFrame:
    """Vanilla CLIP's COCO recalls four ways: this run's standard ones (cosine of L2-normalised embeddings),
    this run's as the authors' evaluation code computes them (each with a row of 95% bootstrap intervals over the
    queries when ``vanilla`` has them), the paper's published row (their code), and
    open_clip's published numbers for the same backbone when there are any (the sanity row of a correct
    baseline)."""
    vanilla = dict(vanilla)
    rows = {"this run: standard recall": {r: vanilla.get(r) for r in RECALLS},
            "this run: the authors' evaluation code": {r: vanilla.get(f"authors_{r}") for r in RECALLS}}
    for name, prefix in (("standard recall", ""), ("the authors' evaluation code", "authors_")):
        if f"{prefix}i2t_r1_ci_low" in vanilla:
            rows[f"this run: {name}, 95% CI"] = {
                r: f"[{vanilla[f'{prefix}{r}_ci_low']:.1f}, {vanilla[f'{prefix}{r}_ci_high']:.1f}]" for r in RECALLS}
    paper = paper_results("B").set_index(["method", "stage"]).loc[("CLIP B/16", "vanilla")]
    rows["paper (Table B, the authors' code)"] = {r: paper[r] for r in RECALLS}
    reference = openclip_coco_reference()
    same_model = reference["model"] == model.removesuffix("-quickgelu")
    match = reference[same_model & (reference["pretrained"] == pretrained)]
    if len(match):
        rows[f"open_clip published ({model}, {pretrained}; CLIP_benchmark)"] = {r: match.iloc[0][r] for r in RECALLS}
    return pd.DataFrame(rows).T
