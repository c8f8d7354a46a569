"""The exact types a featurekit model file may contain beyond skops' own trusted defaults.

skops refuses to build any type it does not trust; featurekit trusts only the types listed here plus
the ones each registered head declares (`featurekit_persisted_types`), so adding a head extends the list
without editing this module. tests/unit/test_persist_allowlist.py dumps every registered head and
checks that everything it needs is on this list.
"""

from __future__ import annotations

# scikit-learn / numpy / scipy building blocks of featurekit's heads (exact module.qualname).
BASE_ALLOWED_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.multiclass.OneVsRestClassifier",
        "sklearn.multiclass._ConstantPredictor",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._label.LabelBinarizer",
    }
)


def allowed_types() -> frozenset[str]:
    """BASE_ALLOWED_TYPES plus the types every registered head declares."""
    from featurekit.heads import persisted_types  # heads never import persist: no cycle

    return BASE_ALLOWED_TYPES | persisted_types()
