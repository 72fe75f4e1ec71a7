"""One progress bar per stage, on stderr, advanced by the stage's work items in this process."""

import sys

_BARS: dict = {}


def advance(stage: str, total: int, n: int = 1, unit: str = "item") -> None:
    """Count `n` more of `total` for `stage`; the bar closes when the total is reached."""
    from tqdm import tqdm

    bar = _BARS.get(stage)
    if bar is None:
        bar = _BARS[stage] = tqdm(total=total, desc=stage, unit=unit, unit_scale=unit == "B", leave=False,
                                  mininterval=1.0, file=sys.stderr, dynamic_ncols=True)
    bar.update(n)
    if bar.n >= total:
        bar.close()
        del _BARS[stage]
