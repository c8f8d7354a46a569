"""Many L2 logistic regressions on the same features at once: a batched L-BFGS in PyTorch.

Each problem k minimises logreg's objective at its own C_k (the objective of scikit-learn's lbfgs
solver, divided by the summed sample weight, as in `heads/logreg_torch.py`):

    mean_i(s_i · loss_i) + ‖W_k‖² / (2 · C_k · Σ s_i)        (intercepts unpenalised)

The problems share X, so one matrix product X @ [W_1 … W_K] serves all of them: the features are read
once per iteration instead of K times (on a CPU that product is bound by memory bandwidth, on a GPU by
kernel launches, so K problems cost little more than one). Each problem keeps its own L-BFGS history,
its own step size (Armijo backtracking) and its own stopping test, scipy's L-BFGS-B tests that
scikit-learn uses (max |gradient| ≤ tol, or a relative decrease of the objective below ftol), and
drops out of the batch once it has converged. Warm starts (`init`) let a sweep start each C from the
solution at a neighbouring C.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from featurekit.errors import InvalidInputError
from featurekit.heads._torch import torch_device

logger = logging.getLogger(__name__)

HISTORY = 10  # scipy's L-BFGS-B default (maxcor), which scikit-learn's lbfgs uses
ARMIJO = 1e-4
MAX_BACKTRACKS = 30


@dataclass(frozen=True)
class LinearSolution:
    """One problem's minimiser: coef (O, D) and intercept (O,), O = classes (1 for binary)."""

    C: float
    coef: np.ndarray
    intercept: np.ndarray
    n_iter: int
    converged: bool


class BatchedLogisticSolver:
    """Solves logistic regressions at many values of C on the same (standardised) features.

    `targets`: (N,) class indices 0..K-1 for single-label y (K = 2 gives one sigmoid, as scikit-learn),
    or (N, L) 0/1 for multi-label y (L independent sigmoids). `weights`: (N,) or (N, L) sample weights.
    """

    def __init__(
        self,
        X: np.ndarray,
        targets: np.ndarray,
        weights: np.ndarray | None = None,
        *,
        multilabel: bool = False,
        device: str = "auto",
        dtype: str = "float32",
        max_iter: int = 1000,
        tol: float = 1e-4,
    ) -> None:
        import torch  # lazily: the search package is importable without torch

        if max_iter < 1:
            raise InvalidInputError(f"max_iter must be at least 1, got {max_iter}")
        if not tol > 0:
            raise InvalidInputError(f"tol must be positive, got {tol}")
        self.device = torch_device(device)
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
        self.max_iter, self.tol = max_iter, tol
        # scipy's ftol as scikit-learn sets it (64·eps of float64), in float32 too: a looser float32
        # test stops visibly early (0.4 points of accuracy on CIFAR features); a stalled float32
        # objective still stops it, as its decrease is then exactly 0.
        self.ftol = 64 * float(np.finfo(np.float64).eps)
        self.multilabel = multilabel
        self.X = torch.as_tensor(np.ascontiguousarray(X), dtype=self.dtype, device=self.device)
        n, self.n_features = self.X.shape
        if multilabel:
            self.n_outputs = int(targets.shape[1])
            self.sigmoid = True
            self.Y = torch.as_tensor(targets, dtype=self.dtype, device=self.device)
        else:
            n_classes = int(targets.max()) + 1
            self.sigmoid = n_classes == 2  # one logit, as scikit-learn's binary LogisticRegression
            self.n_outputs = 1 if self.sigmoid else n_classes
            self.Y = (
                torch.as_tensor(targets[:, None], dtype=self.dtype, device=self.device)
                if self.sigmoid
                else torch.as_tensor(targets, dtype=torch.int64, device=self.device)
            )
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
        if self.sigmoid and w.ndim == 1:
            w = np.repeat(w[:, None], self.n_outputs, axis=1)
        self.W = torch.as_tensor(w, dtype=self.dtype, device=self.device)
        # Sum of weights per independent problem: per sigmoid column, or one for the softmax.
        self.weight_sum = self.W.sum(dim=0) if self.sigmoid else self.W.sum()

    @property
    def n_params(self) -> int:
        return self.n_outputs * (self.n_features + 1)

    def solve(
        self, Cs: Sequence[float], init: Sequence[LinearSolution | None] | None = None
    ) -> list[LinearSolution]:
        """Minimisers for every C in `Cs`, each started from `init[k]` (or zeros), solved together."""
        import torch

        Cs = [float(c) for c in Cs]
        if not Cs:
            return []
        if any(not c > 0 for c in Cs):
            raise InvalidInputError(f"every C must be positive, got {Cs}")
        K = len(Cs)
        theta = torch.zeros(K, self.n_params, dtype=self.dtype, device=self.device)
        for k, start in enumerate(init or [None] * K):
            if start is not None:
                theta[k] = torch.as_tensor(
                    np.concatenate([start.coef, start.intercept[:, None]], axis=1).ravel(),
                    dtype=self.dtype,
                    device=self.device,
                )
        penalty = torch.tensor([1.0 / (2.0 * c) for c in Cs], dtype=self.dtype, device=self.device)
        with torch.no_grad():
            theta, n_iter, converged = self._lbfgs(theta, penalty)
        params = theta.view(K, self.n_outputs, self.n_features + 1).double().cpu().numpy()
        return [
            LinearSolution(
                C=Cs[k],
                coef=params[k, :, :-1].copy(),
                intercept=params[k, :, -1].copy(),
                n_iter=int(n_iter[k]),
                converged=bool(converged[k]),
            )
            for k in range(K)
        ]

    # ------------------------------------------------------------------ objective

    def _objective(self, theta: Any, penalty: Any) -> tuple[Any, Any]:
        """Objective (K,) and gradient (K, P) of the problems in `theta` (K, P); analytic, no autograd."""
        import torch

        K = theta.shape[0]
        n_out, D = self.n_outputs, self.n_features
        params = theta.view(K, n_out, D + 1)
        coef, intercept = params[:, :, :D], params[:, :, D]
        # One product for all K problems: (N, D) @ (D, K·n_out).
        logits = (self.X @ coef.reshape(K * n_out, D).T).view(-1, K, n_out) + intercept
        if self.sigmoid:
            Y = self.Y[:, None, :]
            losses = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, Y.expand_as(logits), reduction="none"
            )
            W = self.W[:, None, :]
            data = ((W * losses).sum(dim=0) / self.weight_sum).sum(dim=1)  # (K,)
            residual = W * (torch.sigmoid(logits) - Y) / self.weight_sum  # (N, K, n_out)
            scale = penalty[:, None, None] / self.weight_sum[None, :, None]  # per column
        else:
            log_p = torch.log_softmax(logits, dim=2)
            picked = log_p.gather(2, self.Y[:, None, None].expand(-1, K, 1))[:, :, 0]  # (N, K)
            w = self.W[:, None]
            data = -(w * picked).sum(dim=0) / self.weight_sum
            residual = log_p.exp_()
            residual[torch.arange(residual.shape[0], device=self.device), :, self.Y] -= 1.0
            residual *= w[:, :, None] / self.weight_sum
            scale = (penalty / self.weight_sum)[:, None, None]
        reg = (scale * coef.pow(2)).sum(dim=(1, 2))
        grad_coef = (residual.reshape(-1, K * n_out).T @ self.X).view(K, n_out, D) + 2.0 * scale * coef
        grad_intercept = residual.sum(dim=0)
        grad = torch.cat([grad_coef, grad_intercept[:, :, None]], dim=2).view(K, -1)
        return data + reg, grad

    # ------------------------------------------------------------------ L-BFGS

    def _lbfgs(self, theta: Any, penalty: Any) -> tuple[Any, np.ndarray, np.ndarray]:
        import torch

        K, P = theta.shape
        f, g = self._objective(theta, penalty)
        n_iter = np.zeros(K, dtype=np.int64)
        converged = (g.abs().amax(dim=1) <= self.tol).cpu().numpy()
        S = torch.zeros(HISTORY, K, P, dtype=self.dtype, device=self.device)
        Yh = torch.zeros_like(S)
        rho = torch.zeros(HISTORY, K, dtype=self.dtype, device=self.device)  # 0: empty slot
        newest = -1  # ring-buffer position of the newest pair
        stored = 0
        for _ in range(self.max_iter):
            active = np.flatnonzero(~converged)
            if len(active) == 0:
                break
            idx = torch.as_tensor(active, device=self.device)
            t_, f_, g_ = theta[idx], f[idx], g[idx]
            order = [(newest - j) % HISTORY for j in range(stored)]  # newest first
            d = self._direction(g_, S[:, idx], Yh[:, idx], rho[:, idx], order)
            gd = (g_ * d).sum(dim=1)
            uphill = gd >= 0  # numerically lost curvature: fall back to steepest descent
            if bool(uphill.any()):
                d[uphill] = -g_[uphill]
                gd = (g_ * d).sum(dim=1)
            step = torch.ones(len(active), dtype=self.dtype, device=self.device)
            if stored == 0:  # first iteration: scipy's first step 1/‖g‖ keeps it bounded
                step = torch.clamp(1.0 / g_.norm(dim=1), max=1.0)
            new_t, new_f, new_g, ok = self._armijo(t_, f_, gd, d, step, penalty[idx])
            s, y = new_t - t_, new_g - g_
            sy = (s * y).sum(dim=1)
            newest = (newest + 1) % HISTORY
            stored = min(stored + 1, HISTORY)
            S[newest].zero_()
            Yh[newest].zero_()
            rho[newest].zero_()
            good = sy > 1e-10  # convex objective: only round-off breaks the curvature condition
            S[newest, idx] = s
            Yh[newest, idx] = y
            rho[newest, idx] = torch.where(good, 1.0 / torch.where(good, sy, 1.0), 0.0)
            decrease = (f_ - new_f) / torch.clamp(torch.maximum(f_.abs(), new_f.abs()), min=1.0)
            done = (new_g.abs().amax(dim=1) <= self.tol) | (decrease <= self.ftol) | ~ok
            theta[idx], f[idx], g[idx] = new_t, new_f, new_g
            n_iter[active] += 1
            converged[active] = done.cpu().numpy()
        if not converged.all():
            logger.info(
                "%d of %d problems stopped at max_iter=%d before converging (tol=%g)",
                int((~converged).sum()),
                K,
                self.max_iter,
                self.tol,
            )
        return theta, n_iter, converged

    @staticmethod
    def _direction(g: Any, S: Any, Y: Any, rho: Any, order: list[int]) -> Any:
        """The two-loop recursion, per problem (rho = 0 marks a skipped pair)."""
        q = g.clone()
        alphas = []
        for j in order:
            a = rho[j] * (S[j] * q).sum(dim=1)
            q -= a[:, None] * Y[j]
            alphas.append(a)
        if order:
            j = order[0]
            sy = (S[j] * Y[j]).sum(dim=1)
            yy = (Y[j] * Y[j]).sum(dim=1)
            gamma = sy / yy.clamp(min=1e-30)
            q *= gamma.where(rho[j] > 0, gamma.new_ones(()))[:, None]
        for j, a in zip(reversed(order), reversed(alphas), strict=True):
            b = rho[j] * (Y[j] * q).sum(dim=1)
            q += S[j] * (a - b)[:, None]
        return -q

    def _armijo(
        self, theta: Any, f: Any, gd: Any, d: Any, step: Any, penalty: Any
    ) -> tuple[Any, Any, Any, Any]:
        """Backtracking until f(θ + t·d) ≤ f(θ) + ARMIJO·t·∇f·d, each problem with its own t."""
        import torch

        new_t, new_f, new_g = theta.clone(), f.clone(), torch.zeros_like(theta)
        pending = torch.ones(len(f), dtype=torch.bool, device=self.device)
        for _ in range(MAX_BACKTRACKS):
            p = torch.nonzero(pending).flatten()
            trial = theta[p] + step[p, None] * d[p]
            f_try, g_try = self._objective(trial, penalty[p])
            accept = f_try <= f[p] + ARMIJO * step[p] * gd[p]
            taken = p[accept]
            new_t[taken], new_f[taken], new_g[taken] = trial[accept], f_try[accept], g_try[accept]
            pending[taken] = False
            if not bool(pending.any()):
                break
            step = torch.where(pending, step * 0.5, step)
        ok = ~pending  # a problem that found no descent is at its minimum to working precision
        if bool(pending.any()):
            p = torch.nonzero(pending).flatten()
            _, g_here = self._objective(theta[p], penalty[p])
            new_g[p] = g_here
        return new_t, new_f, new_g, ok
