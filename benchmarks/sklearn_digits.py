"""``python -m benchmarks.sklearn_digits``: DigitnetClassifier vs MLPClassifier on scikit-learn's 8x8 digits.

5-fold ``cross_val_score`` of ``make_pipeline(MinMaxScaler(), clf)`` at each estimator's default parameters,
for a few seeds; prints a Markdown table (the figure quoted in docs/sklearn.md). The BLAS runs on one
thread for both (digitnet trains MLPs on one anyway): a small network's GEMMs gain nothing from more, and
spinning BLAS threads slow everything down when another process holds a core.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import cross_val_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from threadpoolctl import threadpool_limits

from digitnet.sklearn import DigitnetClassifier


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3, help="random_state 0 .. N-1")
    p.add_argument("--only", choices=["digitnet", "sklearn"], help="run one estimator only")
    args = p.parse_args(argv)
    X, y = load_digits(return_X_y=True)
    print("| estimator (default parameters) | random_state | 5-fold accuracy (mean) | folds |")
    print("|---|---|---|---|")
    for name, make in (("DigitnetClassifier()", DigitnetClassifier), ("MLPClassifier()", MLPClassifier)):
        if args.only and (args.only == "digitnet") != (make is DigitnetClassifier):
            continue
        means = []
        for seed in range(args.seeds):
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore", ConvergenceWarning)
                scores = cross_val_score(make_pipeline(MinMaxScaler(), make(random_state=seed)), X, y, cv=5)
            means.append(scores.mean())
            print(f"| {name} | {seed} | {scores.mean():.4f} | {' '.join(f'{s:.3f}' for s in scores)} |", flush=True)
        print(f"| {name} | mean of {args.seeds} | {np.mean(means):.4f} | |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
