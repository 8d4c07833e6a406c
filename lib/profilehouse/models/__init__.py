"""Customer models over the lakehouse's transactions; one module per model.

- :mod:`.clv`: customer lifetime value (BG/NBD purchases, Gamma-Gamma spend, discounted CLV).

Each model reads its section of ``conf/models.yaml``; its functions take DataFrames and values
and return DataFrames or column expressions, leaving reading and writing to the caller.
"""

from profilehouse.models.clv import (
    BgNbdFit,
    ClvFitError,
    ClvFitReport,
    ClvSettings,
    GammaGammaFit,
    HoldoutBucket,
    bgnbd_log_likelihood,
    build_calibration_holdout,
    build_clv_predictions,
    build_fit_report,
    build_holdout_comparison,
    build_rfm_summary,
    build_rfm_tuples,
    build_spend_tuples,
    clv_expr,
    evaluate_clv_holdout,
    expected_purchases_expr,
    expected_spend_expr,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    hyp2f1_truncation_error,
    load_clv_settings,
    probability_alive_expr,
)

__all__ = [
    "BgNbdFit",
    "ClvFitError",
    "ClvFitReport",
    "ClvSettings",
    "GammaGammaFit",
    "HoldoutBucket",
    "bgnbd_log_likelihood",
    "build_calibration_holdout",
    "build_clv_predictions",
    "build_fit_report",
    "build_holdout_comparison",
    "build_rfm_summary",
    "build_rfm_tuples",
    "build_spend_tuples",
    "clv_expr",
    "evaluate_clv_holdout",
    "expected_purchases_expr",
    "expected_spend_expr",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_log_likelihood",
    "hyp2f1_truncation_error",
    "load_clv_settings",
    "probability_alive_expr",
]
