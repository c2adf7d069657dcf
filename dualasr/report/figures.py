"""Figures the report makes itself (the other stages' figures are embedded as they are).

``figures/training.png``: training curves of every run of the study.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dualasr.atomic import save_figure
from dualasr.report.inputs import TrainingRun


def plot_training(runs: Sequence[TrainingRun], path: str | Path) -> Path:
    """Train and dev loss per epoch, one panel per language, one colour per model,
    one line style per split (train solid: mean of the epoch's logged running
    means; dev dashed: the end-of-epoch validation), several seeds as several
    lines of one colour. Written atomically."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe in servers and threads

    languages = sorted({r.language for r in runs})
    models = list(dict.fromkeys(r.model for r in runs))  # table order (read_training_runs)
    colours = {m: f"C{i % 10}" for i, m in enumerate(models)}
    fig = Figure(figsize=(5.5 * max(1, len(languages)), 3.6), layout="constrained")
    axes = fig.subplots(1, max(1, len(languages)), squeeze=False)[0]
    for ax, lang in zip(axes, languages, strict=True):
        for run in (r for r in runs if r.language == lang):
            label = f"{run.label} seed {run.seed}"
            for split, style in (("train", "-"), ("dev", "--")):
                curve = run.per_epoch(split)
                if curve:
                    ax.plot(list(curve), list(curve.values()), style, marker="o", ms=3,
                            color=colours[run.model], label=f"{label} {split}")  # fmt: skip
        ax.set_title(f"{lang}: loss per epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (train solid, dev dashed)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small", ncols=2)
    return save_figure(fig, path, dpi=110)
