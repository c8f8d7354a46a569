"""`logreg-torch`: logreg's L2 objective solved by full-batch L-BFGS in PyTorch (GPU when present).

The same model as `logreg` (standardised features; multinomial softmax for several classes, one sigmoid
for two; independent sigmoids for multi-label y), the same objective as scikit-learn's lbfgs solver,
divided by the summed sample weight so the scale does not depend on N:

    mean_i(s_i · loss_i) + ‖W‖² / (2 · C · Σ s_i)        (intercepts unpenalised)

so at the same C both heads find the same minimiser. The fitted state is plain numpy (coef_, intercept_,
the scaler): predicting and loading need no torch, and skops saves it without pickle.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Tags
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from featurekit.errors import InvalidInputError
from featurekit.heads._base import HEADS
from featurekit.heads._space import LogUniform
from featurekit.heads._torch import torch_device
from featurekit.heads.logreg import AUTO_PENALTY

DEVICES = ("auto", "cpu", "cuda")


@HEADS.register("logreg-torch")
class TorchLogisticRegressionHead(ClassifierMixin, BaseEstimator):
    """Logistic regression (L2) solved by full-batch L-BFGS in PyTorch, on the GPU when present.

    Hyperparameters mean what they mean for `logreg` (C="auto" = 1/(AUTO_PENALTY·n_samples)).
    `device="auto"` uses CUDA when available; `dtype="auto"` solves in float32 on a GPU, float64 on the CPU.
    """

    featurekit_preprocessing: ClassVar[str] = (
        "standardize: StandardScaler fitted on the training rows (standardize=False turns it off)"
    )
    # What `featurekit search` tries (random search with successive halving; logreg: the C sweep).
    featurekit_search_space: ClassVar[dict[str, Any]] = {"C": LogUniform(1e-6, 1e6)}
    featurekit_persisted_types: ClassVar[tuple[str, ...]] = (
        "featurekit.heads.logreg_torch.TorchLogisticRegressionHead",
        "sklearn.preprocessing._data.StandardScaler",
    )

    def __init__(
        self,
        *,
        C: float | str = "auto",
        class_weight: str | dict[Any, float] | None = None,
        max_iter: int = 500,
        tol: float = 1e-5,
        standardize: bool = True,
        device: str = "auto",
        dtype: str = "auto",
    ) -> None:
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.tol = tol
        self.standardize = standardize
        self.device = device
        self.dtype = dtype

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        return tags

    def _check_params(self, *, multilabel: bool) -> None:
        C = self.C
        if not (C == "auto" or (isinstance(C, int | float) and not isinstance(C, bool) and C > 0)):
            raise InvalidInputError(f"C must be a positive number or 'auto', got {C!r}")
        if not isinstance(self.max_iter, int) or isinstance(self.max_iter, bool) or self.max_iter < 1:
            raise InvalidInputError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not isinstance(self.tol, int | float) or not self.tol > 0:
            raise InvalidInputError(f"tol must be a positive number, got {self.tol!r}")
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise InvalidInputError(
                f"device must be one of {', '.join(DEVICES)} or cuda:N, got {self.device!r}"
            )
        if self.dtype not in ("auto", "float32", "float64"):
            raise InvalidInputError(f"dtype must be 'auto', 'float32' or 'float64', got {self.dtype!r}")
        cw = self.class_weight
        if cw is not None and cw != "balanced" and not isinstance(cw, dict):
            raise InvalidInputError(f"class_weight must be None, 'balanced' or a dict, got {cw!r}")
        if multilabel and isinstance(cw, dict):
            raise InvalidInputError(
                "class_weight as a dict is not supported for multi-label y; use 'balanced' or None"
            )

    def fit(self, X: Any, y: Any) -> TorchLogisticRegressionHead:
        Xs, targets, weights = self.prepare_fit(X, y)
        coef, intercept, self.n_iter_ = _solve_lbfgs(
            Xs,
            targets,
            weights,
            C=self.C_,
            multilabel=self.multilabel_,
            max_iter=self.max_iter,
            tol=self.tol,
            device=self.device,
            dtype=self.dtype,
        )
        self.coef_, self.intercept_ = coef, intercept
        return self

    def prepare_fit(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validate, fit the scaler and encode y; returns (standardised X, targets, sample weights).

        Sets every fitted attribute but the solution (coef_, intercept_, n_iter_), which `fit` solves
        for; `featurekit.search` solves many values of C at once from the same preparation.
        targets: (N,) class indices, or (N, C) 0/1 for multi-label; weights (N, 1) or (N, C).
        """
        X, y = validate_data(self, X, y, multi_output=True, dtype=np.float64)
        check_classification_targets(y)
        multilabel = type_of_target(y) == "multilabel-indicator"
        if not multilabel and y.ndim == 2:
            if y.shape[1] != 1:
                raise InvalidInputError(
                    f"y of shape {y.shape} is neither class labels (N,) nor multi-hot (N, C) of 0/1"
                )
            y = column_or_1d(y, warn=True)
        self._check_params(multilabel=multilabel)
        self.multilabel_ = multilabel
        self.scaler_: StandardScaler | None = StandardScaler().fit(X) if self.standardize else None
        Xs = X if self.scaler_ is None else self.scaler_.transform(X)

        targets: np.ndarray  # (N, C) 0/1 floats for multi-label, (N,) class indices otherwise
        if multilabel:
            self.classes_ = np.arange(y.shape[1])
            targets = np.asarray(y, dtype=np.float64)
            weights = self._multilabel_weights(targets)
        else:
            self.classes_, encoded = np.unique(y, return_inverse=True)
            if len(self.classes_) < 2:
                raise InvalidInputError(
                    f"y has only one class ({self.classes_[0]!r}); need at least 2 classes to fit"
                )
            targets = encoded
            per_class = self._class_weights(encoded)
            weights = per_class[encoded][:, None]
        self.C_ = 1.0 / (AUTO_PENALTY * X.shape[0]) if self.C == "auto" else float(self.C)
        return Xs, targets, weights

    def _class_weights(self, encoded: np.ndarray) -> np.ndarray:
        n = len(self.classes_)
        if self.class_weight is None:
            return np.ones(n)
        if self.class_weight == "balanced":
            return np.asarray(compute_class_weight("balanced", classes=np.arange(n), y=encoded))
        assert isinstance(self.class_weight, dict)
        return np.array([float(self.class_weight.get(c, 1.0)) for c in self.classes_])

    def _multilabel_weights(self, Y: np.ndarray) -> np.ndarray:
        """(N, C) row weights of each one-vs-rest problem ('balanced' per label, as OneVsRest would)."""
        if self.class_weight != "balanced":
            return np.ones_like(Y)
        n = Y.shape[0]
        positives = Y.sum(axis=0)
        w_pos = np.where(positives > 0, n / (2 * np.maximum(positives, 1)), 1.0)
        w_neg = np.where(positives < n, n / (2 * np.maximum(n - positives, 1)), 1.0)
        return np.where(Y > 0, w_pos, w_neg)

    def decision_function(self, X: Any) -> np.ndarray:
        """(N,) for binary, (N, K) for multiclass, (N, C) for multi-label."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        Xs = X if self.scaler_ is None else self.scaler_.transform(X)
        scores = Xs @ self.coef_.T + self.intercept_
        return scores[:, 0] if scores.shape[1] == 1 and not self.multilabel_ else scores

    def predict_proba(self, X: Any) -> np.ndarray:
        """(N, K) class probabilities; (N, C) per-label probabilities for multi-label."""
        scores = self.decision_function(X)
        if self.multilabel_:
            return np.asarray(expit(scores))
        if scores.ndim == 1:
            p = expit(scores)
            return np.column_stack([1 - p, p])
        return np.asarray(softmax(scores, axis=1))

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (N,); multi-hot (N, C) int64 for multi-label."""
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba > 0.5).astype(np.int64)
        return np.asarray(self.classes_[np.argmax(proba, axis=1)])


def _solve_lbfgs(
    X: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    *,
    C: float,
    multilabel: bool,
    max_iter: int,
    tol: float,
    device: str,
    dtype: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise the weighted, L2-penalised log loss; returns (coef (K', D), intercept (K',), n_iter)."""
    import torch  # lazily: `import featurekit.heads` never pays for torch

    dev = torch_device(device)
    if dtype == "auto":  # float32 where it is fast (GPU); float64 on the CPU, as scikit-learn computes
        dtype = "float32" if dev.type == "cuda" else "float64"
    tdtype = torch.float64 if dtype == "float64" else torch.float32
    Xt = torch.as_tensor(X, dtype=tdtype, device=dev)
    Wt = torch.as_tensor(weights, dtype=tdtype, device=dev)
    n_classes = int(targets.max()) + 1 if not multilabel else targets.shape[1]
    binary = not multilabel and n_classes == 2
    outputs = targets.shape[1] if multilabel else (1 if binary else n_classes)
    if multilabel or binary:
        Yt = torch.as_tensor(targets if multilabel else targets[:, None], dtype=tdtype, device=dev)
    else:
        Yt = torch.as_tensor(targets, dtype=torch.int64, device=dev)
    coef = torch.zeros(outputs, X.shape[1], dtype=tdtype, device=dev, requires_grad=True)
    intercept = torch.zeros(outputs, dtype=tdtype, device=dev, requires_grad=True)
    # Row weights summed as sklearn does: per sample for single-label, per (sample, label) problem.
    weight_sum = Wt.sum(dim=0) if (multilabel or binary) else Wt.sum()
    penalty = 1.0 / (2.0 * C * weight_sum)
    optimizer = torch.optim.LBFGS(
        [coef, intercept],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tol,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = Xt @ coef.T + intercept
        if multilabel or binary:
            losses = torch.nn.functional.binary_cross_entropy_with_logits(logits, Yt, reduction="none")
            # One independent problem per column, each with its own weight sum and penalty.
            loss = ((Wt * losses).sum(dim=0) / weight_sum + penalty * (coef**2).sum(dim=1)).sum()
        else:
            losses = torch.nn.functional.cross_entropy(logits, Yt, reduction="none")
            loss = (Wt[:, 0] * losses).sum() / weight_sum + penalty * (coef**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    n_iter = int(optimizer.state[coef].get("n_iter", 0))
    return (
        coef.detach().cpu().numpy().astype(np.float64),
        intercept.detach().cpu().numpy().astype(np.float64),
        np.asarray([n_iter], dtype=np.int32),
    )
