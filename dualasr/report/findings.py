"""Short sentences computed from the study's numbers, never written by hand.

Each function reads rows as the report's inputs hold them (CSV rows: column
name -> string cell, :mod:`dualasr.report.inputs`; CKA rows with numbers) and
returns plain-text sentences naming models by their labels. Every verb follows a sign: a difference that changes sign changes
the sentence ("lowers" / "raises"), a correlation that is not significant at
``ALPHA`` says so instead of claiming a trend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dualasr.data.stats import LanguageStats
from dualasr.layout import OUTPUTS
from dualasr.reference import REFERENCE_CER, REFERENCE_ED_SHARES, REFERENCE_GAP, reference_cka
from dualasr.report.inputs import Row, TrainingRun, number
from dualasr.report.methods import MethodRow
from dualasr.score.ed_gap import ci_degenerate, gap_row
from dualasr.text.divergence import ED_BIN_LABELS

ALPHA = 0.05  # significance level of the Spearman sentences (two-sided p)
SAME = 0.005  # |difference| below this (points, after rounding to 2 decimals) is "unchanged"


def signed(x: float) -> str:
    """``+1.23`` / ``−1.23`` (a real minus sign), for differences in points."""
    return f"{x:+.2f}".replace("-", "−")


def _change(delta: float, output: str, metric: str, baseline: str) -> str:
    what = f"{output} {metric}"
    if abs(delta) < SAME:
        return f"leaves {what} unchanged vs {baseline}"
    verb = "lowers" if delta < 0 else "raises"
    return f"{verb} {what} by {abs(delta):.2f} points vs {baseline}"


def cer_findings(rows: Sequence[Row]) -> list[str]:
    """Per language and model compared with a single-output model (a row with a
    ``baseline``): how its meaning and surface CER (PER on phone-annotated sets)
    compare with its baselines', with the reference study's differences where
    it reports both cells, per test split; with several splits, then whether
    each gap has the same sign on every split (:func:`split_sign_findings`).
    ``rows``: ``tables/cer.csv``."""
    splits = sorted({split_of_row(r) for r in rows})
    sentences = []
    for split in splits:
        on = f" ({split})" if len(splits) > 1 else ""
        sentences += _cer_findings([r for r in rows if split_of_row(r) == split], on)
    return sentences + split_sign_findings(rows)


def split_of_row(row: Row) -> str:
    """The test split of a table row (``test`` for a row that names none)."""
    return row.get("split") or "test"


def split_sign_findings(rows: Sequence[Row]) -> list[str]:
    """With several test splits (``test_seen``, ``test_unseen``): per language,
    model and output, whether its CER minus its baseline's has the same sign on
    every split, so a reader sees which regime drives a finding. ``rows``:
    ``tables/cer.csv``."""
    splits = sorted({split_of_row(r) for r in rows})
    if len(splits) < 2:
        return []
    cer = {(split_of_row(r), r["language"], r["model"], r["output"], r["unit"]): number(r["cer"]) for r in rows}
    sentences = []
    for r in rows:
        if split_of_row(r) != splits[0] or not r.get("baseline"):
            continue
        gaps = {}
        for split in splits:
            ours = cer.get((split, r["language"], r["model"], r["output"], r["unit"]), math.nan)
            theirs = cer.get((split, r["language"], r["baseline"], r["output"], r["unit"]), math.nan)
            gaps[split] = ours - theirs
        if any(math.isnan(g) for g in gaps.values()):
            continue
        signs = {(g > 0) - (g < 0) if abs(g) >= SAME else 0 for g in gaps.values()}
        verdict = "the same sign on every test split" if len(signs) == 1 else "a different sign per test split"
        listed = ", ".join(f"{signed(g)} on {split}" for split, g in gaps.items())
        base_label = next((b["label"] for b in rows if b["model"] == r["baseline"]), r["baseline"])
        sentences.append(f"In {r['language']} {r['output']}, {r['label']} − {base_label} has {verdict} ({listed} points).")
    return sentences


def _cer_findings(rows: Sequence[Row], on: str) -> list[str]:
    by_key = {(r["language"], r["model"], r["output"], r["unit"]): r for r in rows}
    sentences = []
    for lang in sorted({r["language"] for r in rows}):
        mine = [r for r in rows if r["language"] == lang and r.get("baseline")]
        for model in dict.fromkeys(r["model"] for r in mine):
            clauses, deltas, ref = [], [], []
            for output in ("meaning", "surface"):
                for r in (r for r in mine if (r["model"], r["output"]) == (model, output)):
                    base = by_key.get((lang, r["baseline"], output, r["unit"]))
                    ours, theirs = number(r["cer"]), number(base["cer"]) if base else math.nan
                    if math.isnan(ours) or math.isnan(theirs):
                        continue
                    delta = ours - theirs
                    metric = "PER" if r["unit"] == "phone" else "CER"
                    clauses.append(f"{_change(delta, output, metric, base['label'])} ({theirs:.2f} % → {ours:.2f} %)")
                    deltas.append(delta)
                    if r["unit"] == "char":
                        r_ours = REFERENCE_CER.get((lang, model, output))
                        r_base = REFERENCE_CER.get((lang, r["baseline"], output))
                        if r_ours is not None and r_base is not None:
                            ref.append(f"{output} {signed(r_ours - r_base)}")
            if not clauses:
                continue
            text = clauses[0]
            if len(clauses) > 1:
                # "but" when the two outputs move in opposite directions.
                opposite = deltas[0] * deltas[1] < 0 and min(abs(deltas[0]), abs(deltas[1])) >= SAME
                text = ", ".join(clauses[:-1]) + (" but " if opposite else " and ") + clauses[-1]
            label = next(r["label"] for r in mine if r["model"] == model)
            sentence = f"In {lang}{on}, {label} {text}."
            if ref:
                sentence += f" The reference study reports {', '.join(ref)} points."
            sentences.append(sentence)
    return sentences


def _gap_groups(rows: Sequence[Row]) -> list[tuple[str, str, str, str, str]]:
    """(language, output, unit, model, split) in table order: models as the rows list them."""
    keys = list(dict.fromkeys((r["language"], r["output"], r["unit"], r["model"], split_of_row(r)) for r in rows))
    order = list(dict.fromkeys(k[3] for k in keys))
    return sorted(keys, key=lambda k: (k[0], ("surface", "meaning").index(k[1]) if k[1] in ("surface", "meaning")
                                       else 2, k[2], k[4], order.index(k[3])))  # fmt: skip


def gap_findings(rows: Sequence[Row]) -> list[str]:
    """From ``tables/ed_gap.csv``: per language, output and model, whether the gap
    DO - SO rises or falls with the divergence (Spearman's ρ on the ``all`` row,
    significant at :data:`ALPHA`), and which ED bins have a 95 % CI excluding 0."""
    sentences = []
    several = len({split_of_row(r) for r in rows}) > 1
    for lang, output, unit, model, split in _gap_groups(rows):
        cells = {r["ed_bin"]: r for r in rows if (r["language"], r["output"], r["unit"], r["model"], split_of_row(r))
                 == (lang, output, unit, model, split)}  # fmt: skip
        if several:  # every sentence names its test split
            lang = f"{lang} ({split})"
        every = cells.get("all") or next(iter(cells.values()))
        name, baseline = every["label"], every["baseline_label"]
        what = f"the {output} gap {name} − {baseline}" + (
            " (PER)" if unit == "phone" else ""
        )
        where = f"In {lang}, {what}"
        if every["ed_bin"] == "all":
            rho, p, n = (
                number(every.get("spearman_rho")),
                number(every.get("spearman_p")),
                every.get("spearman_n", ""),
            )
            if math.isnan(rho):
                sentences.append(
                    f"{where}: Spearman ρ with ED is undefined (too few utterances, or ED or gap constant)."
                )
            else:
                stat = f"Spearman ρ = {signed(rho)}, p = {p:.2g}, n = {n}"
                if p < ALPHA:
                    trend = "grows" if rho > 0 else "falls"
                    text = f"{where} {trend} with ED ({stat})"
                else:
                    text = f"{where} shows no significant trend with ED ({stat})"
                # The reference gap is DO vs SO, as the score stage matches it.
                ref = REFERENCE_GAP.get((lang, output)) if any(c.get("reference_gap") for c in cells.values()) else None
                if ref is not None:
                    text += f"; the reference study's goes from {signed(ref[0])} at ED 0 to {signed(ref[-1])} at ED >10"
                sentences.append(text + ".")
        excluding, degenerate = [], []
        tested = 0
        for label in ED_BIN_LABELS:
            r = cells.get(label)
            if r is None or not number(r.get("n")) > 0:
                continue
            low, high, gap = number(r.get("ci_low")), number(r.get("ci_high")), number(r.get("gap"))
            if math.isnan(low) or math.isnan(high):
                continue
            if ci_degenerate(gap_row(r)):
                degenerate.append(f"ED {label} (n={r['n']})")
                continue
            tested += 1
            if low > 0 or high < 0:
                side = f"{name} worse" if low > 0 else f"{name} better"
                excluding.append(
                    f"ED {label} ({signed(gap)} [{signed(low)}, {signed(high)}], {side})"
                )
        caveat = (f" {_join(degenerate)} {'has' if len(degenerate) == 1 else 'have'} too few utterances "
                  "for a CI (every resample gives the same gap).") if degenerate else ""  # fmt: skip
        if excluding:
            sentences.append(f"In {lang} {output}, the 95 % CI of {name} − {baseline} excludes 0 at "
                             f"{_join(excluding)}.{caveat}")  # fmt: skip
        elif tested:
            sentences.append(
                f"In {lang} {output}, no ED bin's 95 % CI of {name} − {baseline} excludes 0 "
                f"({tested} bin(s) with a CI).{caveat}"
            )
        elif caveat:
            sentences.append(f"In {lang} {output}:{caveat}")
    return sentences


def _join(items: Sequence[str]) -> str:
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + items[-1]


def corpus_findings(stats: dict[str, LanguageStats]) -> list[str]:
    """From the corpus statistics: how far each language's ED-bin shares are from
    the reference study's Table 1 (largest absolute difference, in points)."""
    sentences = []
    for lang, st in stats.items():
        if lang not in REFERENCE_ED_SHARES or not st.total:
            continue
        ours = [100 * st.bins[b] / st.total for b in ED_BIN_LABELS]
        diffs = [o - 100 * r for o, r in zip(ours, REFERENCE_ED_SHARES[lang], strict=True)]
        worst = max(range(len(diffs)), key=lambda i: abs(diffs[i]))
        sentences.append(
            f"In {lang}, the ED-bin shares are within {abs(diffs[worst]):.1f} points of the reference study's "
            f"Table 1 (largest difference at ED {ED_BIN_LABELS[worst]}: {ours[worst]:.1f} % vs "
            f"{100 * REFERENCE_ED_SHARES[lang][worst]:.1f} %)."
        )
    return sentences


def training_findings(runs: Sequence[TrainingRun]) -> list[str]:
    """From the metrics logs: in how many runs the dev loss fell from the first to
    the last epoch, which runs it rose in or became non-finite, and in how many
    the best dev loss is at the last epoch (still improving when training stopped)."""
    curves = [(run, run.per_epoch("dev")) for run in runs]
    curves = [(run, dev) for run, dev in curves if dev]
    if not curves:
        return []

    def name(run: TrainingRun) -> str:
        return f"{run.language} {run.label} seed {run.seed}"

    broken = [name(r) for r, dev in curves if any(not math.isfinite(v) for v in dev.values())]
    finite = [(r, dev) for r, dev in curves if all(math.isfinite(v) for v in dev.values())]
    several = [(r, dev) for r, dev in finite if len(dev) > 1]
    fell = [(r, dev) for r, dev in several if list(dev.values())[-1] < list(dev.values())[0]]
    rose = [name(r) for r, dev in several if list(dev.values())[-1] >= list(dev.values())[0]]
    sentences = []
    if several:
        r0, dev0 = several[0]
        first, last = list(dev0.items())[0], list(dev0.items())[-1]
        sentences.append(
            f"The dev loss fell from the first to the last epoch in {len(fell)} of {len(several)} run(s) "
            f"(e.g. {name(r0)}: {first[1]:.4g} at epoch {first[0]} → {last[1]:.4g} at epoch {last[0]})."
        )
        if rose:
            sentences.append(f"It did not fall in: {', '.join(rose)}.")
        at_end = [r for r, dev in several if min(dev, key=dev.get) == max(dev)]
        if at_end:
            sentences.append(
                f"The best dev loss is at the last epoch in {len(at_end)} of {len(several)} run(s): "
                "those models were still improving when training stopped."
            )
    if broken:
        sentences.append(f"Non-finite dev loss in: {', '.join(broken)}.")
    return sentences


def cka_findings(rows: Sequence[dict], part: str) -> list[str]:
    """From a CKA table of the analyze stage (rows with numbers,
    :func:`dualasr.report.inputs.read_cka`): per language and pair, the
    same-layer CKA (mean over seeds) at the first and the last layer and its
    minimum, with the reference study's first and last values where it reports
    the pair (matched by the runs compared, not by the pair's name)."""
    diagonal: dict[tuple[str, str], dict[int, list[float]]] = {}
    sides = {}
    for r in rows:
        if r["layer_x"] != r["layer_y"] or math.isnan(r["cka"]):
            continue
        diagonal.setdefault((r["lang"], r["pair"]), {}).setdefault(r["layer_x"], []).append(r["cka"])
        sides[(r["lang"], r["pair"])] = ((r["model_x"], r["output_x"]), (r["model_y"], r["output_y"]))
    sentences = []
    for (lang, pair), layers in diagonal.items():
        values = {layer: sum(v) / len(v) for layer, v in layers.items()}
        first, last = min(values), max(values)
        low = min(values, key=values.get)
        text = f"In {lang}, {part} CKA of {pair} "
        if first == last:
            text += f"is {values[first]:.2f} (layer {first})"
        else:
            text += f"goes from {values[first]:.2f} at layer {first} to {values[last]:.2f} at layer {last}"
            if low not in (first, last):
                text += f" (lowest {values[low]:.2f} at layer {low})"
        ref = sorted(reference_cka(part, lang, *sides[(lang, pair)]).items())
        if len(ref) > 1:
            text += f"; the reference study's goes from {ref[0][1]:.2f} at layer {ref[0][0]} to {ref[-1][1]:.2f} at layer {ref[-1][0]}"
        elif ref:
            text += f"; the reference study reports {ref[0][1]:.2f} at layer {ref[0][0]}"
        sentences.append(text + ".")
    return sentences


GOAL = "no negative transfer on either output: the 95 % CI of the gap reaches 0 or below in every ED bin"


def method_findings(rows: Sequence[MethodRow]) -> list[str]:
    """Per language (and test split, when there are several): which dual-output models meet the goal (:data:`GOAL`) on
    both outputs, and for each that does not, its output and ED bin whose CI
    lies furthest above 0; a model lacking a CI on an output is undecided."""
    out = []
    several = len({r.split for r in rows}) > 1
    for lang, split in sorted({(r.language, r.split) for r in rows}):
        mine = [r for r in rows if (r.language, r.split) == (lang, split)]
        meets, fails, undecided = [], [], []
        for model in dict.fromkeys(r.model for r in mine):
            outputs = [r for r in mine if r.model == model]
            label = outputs[0].label
            worst = [(w, r) for r in outputs if (w := r.worst_bin()) is not None]
            if worst:
                w, r = max(worst, key=lambda wr: wr[0].ci_low)
                fails.append(f"{label} ({r.output}, ED {w.ed_bin}: {signed(w.gap)} [{signed(w.ci_low)}, "
                             f"{signed(w.ci_high)}])")  # fmt: skip
            elif any(r.meets_goal is None for r in outputs) or {r.output for r in outputs} != set(OUTPUTS):
                undecided.append(label)
            else:
                meets.append(label)
        parts = [f"{_join(meets)} {'meets' if len(meets) == 1 else 'meet'} the goal" if meets
                 else "no dual-output model meets the goal"]  # fmt: skip
        if fails:
            parts.append(f"negative transfer remains in {_join(fails)}")
        if undecided:
            parts.append(f"{_join(undecided)} cannot be judged (an output or a CI is missing)")
        where = f"{lang} {split}" if several else lang
        out.append(f"{where}: " + "; ".join(parts) + f" (goal: {GOAL}).")
    return out
