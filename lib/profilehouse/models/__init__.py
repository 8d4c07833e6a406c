"""Customer models over the lakehouse's transactions; one module per model.

- :mod:`.clv`: customer lifetime value (BG/NBD purchases, Gamma-Gamma spend, discounted CLV).
- :mod:`.segments`: customer segments (K-means, k by silhouette, named by rules), RFM value
  tiers, and the adjusted Rand index to compare segments with known groups.
- :mod:`.propensity`: propensity objectives (population, label after the snapshot, features),
  the time-split snapshot dates and the leakage checks.
- :mod:`.logistic`, :mod:`.evaluation`: the MLlib logistic regression (with reason codes) and
  its validation report; :mod:`.byo` trains it on any table from a YAML spec.
- :mod:`.registry`: every trained model versioned in MLflow and ``ops.model_versions``.
- :mod:`.scores`, :mod:`.profile`: ``gold.model_scores`` and ``gold.customer_profile``.
- :mod:`.stage`: the models stage that runs all of them over the gold snapshots.

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
from profilehouse.models.segments import (
    RfmTierModel,
    RfmTierProfile,
    RfmTierSettings,
    SegmentationError,
    SegmentationModel,
    SegmentationSettings,
    SegmentProfile,
    SilhouettePoint,
    adjusted_rand_index,
    assign_rfm_tiers,
    assign_segments,
    high_low_features,
    load_rfm_tier_settings,
    load_segmentation_settings,
    segment_names,
    segment_summary,
    silhouette_curve,
    train_rfm_tiers,
    train_segmentation,
    transform_expr,
    validate_rfm_tier_settings,
    validate_segmentation_settings,
)

__all__ = [
    "BgNbdFit",
    "ClvFitError",
    "ClvFitReport",
    "ClvSettings",
    "GammaGammaFit",
    "HoldoutBucket",
    "RfmTierModel",
    "RfmTierProfile",
    "RfmTierSettings",
    "SegmentProfile",
    "SegmentationError",
    "SegmentationModel",
    "SegmentationSettings",
    "SilhouettePoint",
    "adjusted_rand_index",
    "assign_rfm_tiers",
    "assign_segments",
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
    "high_low_features",
    "hyp2f1_truncation_error",
    "load_clv_settings",
    "load_rfm_tier_settings",
    "load_segmentation_settings",
    "probability_alive_expr",
    "segment_names",
    "segment_summary",
    "silhouette_curve",
    "train_rfm_tiers",
    "train_segmentation",
    "transform_expr",
    "validate_rfm_tier_settings",
    "validate_segmentation_settings",
]
