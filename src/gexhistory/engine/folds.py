"""The cross-validation of the chain model's calibration, as parameters: for each two-year span of
2011-2022, the ModelParams fitted on every other year of the reference (SqueezeMetrics SPX GEX).

The defaults (engine/params.py) were fitted on all of 2011-05..2022-12, so no year of the shared
reference file is out of sample for them. These sets were each fitted without one span, exactly as
the defaults were (benchmarks/crossvalidate_chain_model.py: both search stages from the same start,
stage 3's strikes_added_within, then flow_scale for the level, rounded to 4 decimals), and are copied
from its record, benchmarks/results/crossvalidation_edges.json (stages 1 and 2 as recorded in
crossvalidation.json, which the search reproduces exactly). `gexhistory validate` scores each year of
a reference file that falls in a span with that span's set: a year judged by parameters that never
saw its GEX.

A change of the model that moves the defaults invalidates these too: rerun the cross-validation and
copy its parameters here (tests/test_validate.py checks that validate reproduces its figures).
"""

from __future__ import annotations

import dataclasses

from gexhistory.engine.params import ModelParams

CROSSVALIDATION_COMMAND = "python benchmarks/crossvalidate_chain_model.py"

# The fitted parameters, in this order (the unfitted ones are ModelParams' defaults).
FITTED = ("oi_turnover", "activity_elasticity", "dte_decay_days", "dte_decay_days_midweek", "monthly_weight",
          "put_call_volume", "put_call_vol_elasticity", "call_center_sd", "put_center_sd", "call_width_sd",
          "put_width_sd", "iv_premium", "skew_slope", "strikes_added_within", "flow_scale")
# (first year, last year held out, the values fitted without them, in FITTED's order)
FOLDS = (
    (2011, 2012, (   0.012,   0.8295,    80.31,  47.6319,   4.5348,   0.8058,   0.1903,
                    1.0312,  -2.2586,   0.6307,   0.8255,   1.3803,  -0.3574,     0.12,   0.0592)),
    (2013, 2014, (  0.0186,   0.8255,     87.5,  50.3716,   4.3769,      0.8,   0.1477,
                    0.4266,  -1.0679,   1.0145,   0.5803,   1.3532,   -0.344,     0.12,   0.0949)),
    (2015, 2016, (  0.0186,    0.936,  79.2958,  42.3894,   5.2031,   0.7064,   0.1889,
                       1.2,  -2.0031,   1.0595,   0.9052,   1.2807,   -0.368,     0.12,   0.0913)),
    (2017, 2018, (   0.017,   0.7521, 102.4815,  40.1344,   5.9714,   0.6088,   0.0758,
                    0.9046,  -1.5143,   0.5388,   0.9056,   1.2461,  -0.3069,     0.12,   0.0478)),
    (2019, 2020, (  0.0228,   0.6425, 106.1012,  41.7775,   4.8569,   0.8271,   0.1553,
                    1.0323,  -2.3677,   0.5193,   1.3807,     1.25,  -0.2152,     0.12,   0.0603)),
    (2021, 2022, (  0.0268,   0.8768, 109.7678,  76.6089,   8.3064,   0.8313,   0.0995,
                    1.1566,  -1.4959,   1.1151,    1.108,    1.523,   -0.012,     0.08,   0.1318)),
)


def fold_params() -> list[tuple[int, int, ModelParams]]:
    """[(first year, last year, the parameters fitted without those years)], in year order."""
    return [(a, b, dataclasses.replace(ModelParams(), **dict(zip(FITTED, values, strict=True))))
            for a, b, values in FOLDS]
