"""The cross-validation of the chain model's calibration, as parameters: for each two-year span of
2011-2022, the ModelParams fitted on every other year of the reference (SqueezeMetrics SPX GEX).

The defaults (engine/params.py) were fitted on all of 2011-05..2022-12, so no year of the shared
reference file is out of sample for them. These sets were each fitted without one span, exactly as
the defaults were (benchmarks/crossvalidate_chain_model.py: both search stages from the same start,
then flow_scale for the level, rounded to 4 decimals), and are copied from its record,
benchmarks/results/crossvalidation.json. `gexhistory validate` scores each year of a reference file
that falls in a span with that span's set: a year judged by parameters that never saw its GEX.

A change of the model that moves the defaults invalidates these too: rerun the cross-validation and
copy its parameters here (tests/test_validate.py checks that validate reproduces its figures).
"""

from __future__ import annotations

import dataclasses

from gexhistory.engine.params import ModelParams

CROSSVALIDATION_COMMAND = "python benchmarks/crossvalidate_chain_model.py"

# (first year, last year held out, the fitted values; the unfitted ones are ModelParams' defaults)
FOLDS = (
    (2011, 2012, dict(oi_turnover=0.0149, activity_elasticity=0.6465, dte_decay_days=79.9931,
                      dte_decay_days_midweek=45.4583, monthly_weight=5.041, put_call_volume=0.7039,
                      put_call_vol_elasticity=0.0203, call_center_sd=0.1874, put_center_sd=-0.8062,
                      call_width_sd=1.2457, put_width_sd=0.7616, iv_premium=1.4046, skew_slope=-0.3674,
                      flow_scale=0.158)),
    (2013, 2014, dict(oi_turnover=0.0173, activity_elasticity=0.7248, dte_decay_days=77.9287,
                      dte_decay_days_midweek=48.7153, monthly_weight=5.1956, put_call_volume=1.0384,
                      put_call_vol_elasticity=0.1067, call_center_sd=-0.2, put_center_sd=-1.2924,
                      call_width_sd=1.1685, put_width_sd=0.78, iv_premium=1.5094, skew_slope=-0.3324,
                      flow_scale=0.1861)),
    (2015, 2016, dict(oi_turnover=0.0208, activity_elasticity=0.5991, dte_decay_days=91.9,
                      dte_decay_days_midweek=47.8165, monthly_weight=5.7051, put_call_volume=0.974,
                      put_call_vol_elasticity=0.0957, call_center_sd=0.1354, put_center_sd=-1.2029,
                      call_width_sd=1.0898, put_width_sd=0.7552, iv_premium=1.5997, skew_slope=-0.2535,
                      flow_scale=0.1658)),
    (2017, 2018, dict(oi_turnover=0.0098, activity_elasticity=0.6428, dte_decay_days=103.8699,
                      dte_decay_days_midweek=38.9195, monthly_weight=9.47, put_call_volume=0.4604,
                      put_call_vol_elasticity=-0.0409, call_center_sd=1.2, put_center_sd=-2.247,
                      call_width_sd=0.5457, put_width_sd=1.0177, iv_premium=0.9711, skew_slope=-0.342,
                      flow_scale=0.036)),
    (2019, 2020, dict(oi_turnover=0.0157, activity_elasticity=0.6436, dte_decay_days=77.5895,
                      dte_decay_days_midweek=35.7391, monthly_weight=3.536, put_call_volume=0.8525,
                      put_call_vol_elasticity=0.1043, call_center_sd=0.821, put_center_sd=-1.3945,
                      call_width_sd=1.0828, put_width_sd=1.3962, iv_premium=1.2929, skew_slope=-0.2887,
                      flow_scale=0.1303)),
    (2021, 2022, dict(oi_turnover=0.019, activity_elasticity=0.9768, dte_decay_days=109.7678,
                      dte_decay_days_midweek=68.9589, monthly_weight=7.8664, put_call_volume=0.8653,
                      put_call_vol_elasticity=0.0995, call_center_sd=1.2, put_center_sd=-1.5649,
                      call_width_sd=0.9831, put_width_sd=1.159, iv_premium=1.6, skew_slope=-0.012,
                      flow_scale=0.1566)),
)


def fold_params() -> list[tuple[int, int, ModelParams]]:
    """[(first year, last year, the parameters fitted without those years)], in year order."""
    return [(a, b, dataclasses.replace(ModelParams(), **fitted)) for a, b, fitted in FOLDS]
