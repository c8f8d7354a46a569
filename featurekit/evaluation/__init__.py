"""Metrics (by scikit-learn scorer name) and train/test splits on numpy arrays.

Never imports torch, nor matplotlib (only the `save_*_png` functions do, when called).
"""

from featurekit.evaluation.binary import eer_threshold, far_frr_hter, min_hter_threshold
from featurekit.evaluation.calibration import expected_calibration_error
from featurekit.evaluation.confusion import confusion_matrix_list, save_confusion_matrix_png
from featurekit.evaluation.metrics import (
    METRICS,
    MULTI_LABEL_METRICS,
    SINGLE_LABEL_METRICS,
    MetricFn,
    compute_metrics,
    expand_proba,
    format_metrics,
)
from featurekit.evaluation.multilabel import (
    TAIL_THRESHOLDS,
    per_class_voc11_average_precision,
    save_tail_accuracy_png,
    tail_accuracy_curve,
    voc11_average_precision,
)
from featurekit.evaluation.splits import SplitResult, labelled_rows, split_train_test, split_validation

__all__ = [
    "METRICS",
    "MULTI_LABEL_METRICS",
    "SINGLE_LABEL_METRICS",
    "TAIL_THRESHOLDS",
    "MetricFn",
    "SplitResult",
    "compute_metrics",
    "confusion_matrix_list",
    "eer_threshold",
    "expand_proba",
    "expected_calibration_error",
    "far_frr_hter",
    "format_metrics",
    "labelled_rows",
    "min_hter_threshold",
    "per_class_voc11_average_precision",
    "save_confusion_matrix_png",
    "save_tail_accuracy_png",
    "split_train_test",
    "split_validation",
    "tail_accuracy_curve",
    "voc11_average_precision",
]
