"""Screen a variant of the chain model's parameters in sample, without a refit: the pooled and per-year
figures over the reference file's sessions (after the warm-up) in under a second a run.

    python benchmarks/screen_chain_model.py ['{"oi_turnover": 0.015, "monthly_weight": 3}'] [--reference FILE]

The first step of every change tried in benchmarks/calibrate_chain_model.py's docstring: a variant
that does not move these figures is not worth a refit (about 5 minutes) and a cross-validation (about
45). It reads every session's reference GEX, so its figures are in sample, never evidence on their own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from calibrate_chain_model import DEFAULT_REFERENCE, usable  # noqa: E402
from gexhistory.engine.chain_model import ModelParams  # noqa: E402
from gexhistory.engine.validation import compare  # noqa: E402
from gexhistory.engine.yearly import by_year  # noqa: E402
from gexhistory.pipeline.validate import modelled_close_gex  # noqa: E402
from gexhistory.sources.reference import read_reference  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("changes", nargs="?", default="{}", help="JSON object: ModelParams fields and their values")
    ap.add_argument("--reference", default=str(DEFAULT_REFERENCE))
    args = ap.parse_args()
    try:
        changes = json.loads(args.changes)
        params = dataclasses.replace(ModelParams(), **changes)
    except (ValueError, TypeError) as exc:  # not JSON, not an object, or a field ModelParams lacks
        ap.error(f"changes: {exc}")
    ref = read_reference(args.reference)
    model = modelled_close_gex("SPX", ref.dates, ref.close, params)
    ok = usable(ref)
    m = compare(model[ok], ref.gex[ok])
    years = by_year(ref.dates, model, ref.gex, ok)
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"{args.changes}: n={m['n']} spearman={fmt(m['spearman'])} sign={fmt(m['sign_agreement'])} "
          f"neg precision={fmt(m['negative_precision'])} recall={fmt(m['negative_recall'])} "
          f"mean of years={np.mean([v['spearman'] for v in years.values()]):.3f}")
    for y, v in years.items():
        print(f"  {y}: spearman={fmt(v['spearman'])} sign={fmt(v['sign_agreement'])} level={fmt(v['level_ratio'])}")


if __name__ == "__main__":
    main()
