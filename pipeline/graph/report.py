"""The picture next to a shard set: histograms of what went in and a bar chart of what was dropped.

`histogram(name, values)` bins per-document values on fixed edges (so partial histograms from many
workers just add up); `write_report(sink, hists, drops, cutoff)` draws them into one PNG (a path or a
binary file object).
"""

import numpy as np

EDGES = {
    "doc_chars": np.logspace(0, 8, 81),  # document length in characters, 10 bins per decade
    "tokens_per_char": np.linspace(0, 1, 201),
    "zstd_ratio": np.linspace(0, 1.5, 151),  # compressed / original bytes, zstd level 3
}
TITLES = {
    "doc_chars": "document length (characters, log scale)",
    "tokens_per_char": "tokens per character (compression filter)",
    "zstd_ratio": "zstd compression ratio (compressed / raw)",
}


def histogram(name: str, values) -> np.ndarray:
    """Counts of `values` in the fixed bins of `name`; values outside the edges go to the end bins."""
    edges = EDGES[name]
    clipped = np.clip(np.asarray(values, dtype=np.float64), edges[0], edges[-1])
    return np.histogram(clipped, bins=edges)[0].astype(np.int64)


def write_report(sink, hists: dict, drops: dict, cutoff: float | None = None, quality=None,
                 contamination: dict | None = None) -> None:
    """One PNG: the three histograms (every encoded document), the drop counts per reason, given a
    quality.Cut the histogram of the sampled quality scores with the cut, and with a decontamination
    report the evaluation examples found in the corpus per task and split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    extra = quality is not None or bool(contamination)
    fig, axes = plt.subplots(2, 3 if extra else 2, figsize=(18 if extra else 12, 8))
    for ax, name in zip(axes.flat, EDGES, strict=False):
        edges, counts = EDGES[name], np.asarray(hists.get(name, np.zeros(len(EDGES[name]) - 1)))
        ax.stairs(counts, edges, fill=True, alpha=0.7)
        used = np.flatnonzero(counts)
        if len(used):  # zoom to the bins in use
            lo, hi = edges[max(used[0] - 2, 0)], edges[min(used[-1] + 3, len(edges) - 1)]
            if name == "tokens_per_char" and cutoff:
                lo, hi = min(lo, cutoff * 0.9), max(hi, cutoff * 1.1)
            ax.set_xlim(lo, hi)
        ax.set_title(TITLES[name])
        ax.set_ylabel("documents")
        if name == "doc_chars":
            ax.set_xscale("log")
        if name == "tokens_per_char" and cutoff:
            ax.axvline(cutoff, color="red", linestyle="--", label=f"cutoff {cutoff}")
            ax.legend()
    ax = axes.flat[3]
    reasons = sorted(drops, key=lambda r: (-drops[r], r))
    ax.barh(reasons[::-1], [drops[r] for r in reasons[::-1]])
    ax.set_title("documents dropped, by reason")
    ax.set_xlabel("documents")
    if not reasons:
        ax.text(0.5, 0.5, "nothing dropped", ha="center", va="center", transform=ax.transAxes)
    panels = iter(axes.flat[4:])
    if quality is not None:
        _quality_panel(next(panels), quality)
    if contamination:
        _contamination(next(panels), contamination)
    for ax in panels:
        ax.axis("off")
    fig.suptitle("histograms: every document that reached the tokenizer; drops: every stage", fontsize=10)
    fig.tight_layout()
    fig.savefig(sink, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)


def _quality_panel(ax, cut) -> None:
    scores = np.asarray(cut.sample, dtype=np.float64)
    scores = scores[scores > -1e5]  # documents without words score -1e6
    if len(scores):
        lo, hi = np.percentile(scores, [0.5, 100])
        ax.hist(np.clip(scores, lo, hi), bins=60, range=(lo, hi + 1e-9), alpha=0.7)
    if np.isfinite(cut.threshold):
        ax.axvline(cut.threshold, color="red", linestyle="--", label=f"cut {cut.threshold:.3f}")
        ax.legend()
    ax.set_title(f"quality score (sample of {len(cut.sample):,}; kept: right of the cut)")
    ax.set_ylabel("documents")


def _contamination(ax, report: dict) -> None:
    from pipeline.cleaning import contamination

    rows = contamination.rows(report)[::-1]
    labels = [f"{task} {split} ({found:,}/{ok:,})" for task, split, _, ok, found, _, _ in rows]
    ax.barh(labels, [pct for *_, pct, _ in rows])
    ax.set_title(f"evaluation examples found in the corpus ({report['ngram']}-grams), % of checkable")
    ax.set_xlabel("% of checkable examples")
    if not rows:
        ax.text(0.5, 0.5, "no evaluation sets", ha="center", va="center", transform=ax.transAxes)
