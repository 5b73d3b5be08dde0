"""One SGD step of a fused group (forward, loss, hand-written backward, update, projection),
an epoch of steps with the folds due inside it, and the exact evaluation. The state these work
on (W = W0 + s·U per cell, the folds, the tensors a checkpoint holds) is ``state.py``'s; the
package docstring describes the design; docs/performance.md counts what each step costs."""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from .layout import _act_backward, _act_forward
from .state import (  # noqa: F401 - constants a plug-in may read here (bench_suite.engine.step's former home)
    CUDA_GRAPHS_ENV,
    FOLD_BELOW,
    FOLD_CADENCES,
    FOLD_DANGER,
    NORM_TRACKING_ENV,
    NORM_TRACKINGS,
    P0_TABLE_ENV,
    _GroupState,
)


class _FusedEngine(_GroupState):
    """One fused group: its state (``_GroupState``) and the maths of a step and an evaluation."""

    # ----- forward / backward -----
    def _buffers(self, b: int, dtype: torch.dtype) -> dict[str, torch.Tensor | None]:
        """Work buffers for a batch of ``b`` columns; the padded gather reads a zero row past the
        last feature, which is written once here."""
        L = self.L
        pad = 0 if L.identity else 1
        act = torch.empty(L.M + (0 if L.any_paired else pad), b, dtype=dtype, device=self.device)
        feat = torch.empty(L.F + pad, b, dtype=dtype, device=self.device) if L.any_paired else act
        if pad:
            feat[L.F].zero_()
        return {"act": act, "feat": feat}

    def step_buffers(self, b: int) -> dict[str, torch.Tensor | None]:
        bufs = self._step_bufs.get(b)
        if bufs is None:
            bufs = self._step_bufs[b] = self._buffers(b, self.dtype)
            bufs["pre"] = torch.empty(self.L.M, b, dtype=self.dtype, device=self.device)
            bufs["dpre"] = torch.empty(self.L.M, b, dtype=self.dtype, device=self.device)
        return bufs

    def features(self, preT: torch.Tensor, bufs: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(actT (M, B), featpad (C, R, B)) from pre-activations preT (M, B)."""
        L = self.L
        b = preT.shape[1]
        bufs = bufs or self._buffers(b, preT.dtype)
        act, feat = bufs["act"][: L.M], bufs["feat"]
        for g in L.groups:
            _act_forward(g.activation, preT[g.lo : g.hi], act[g.lo : g.hi])
        if L.any_paired:
            for g in L.groups:
                if g.hp:
                    torch.sub(act[g.p1 : g.p1 + g.hp], act[g.p2 : g.p2 + g.hp], out=feat[g.fp : g.fp + g.hp])
                if g.nf:
                    feat[g.ff : g.ff + g.nf].copy_(act[g.fr : g.fr + g.nf])
        featpad = feat if self.gather is None else feat.index_select(0, self.gather)
        return act, featpad.view(L.C, L.R, b)

    def loss_and_grad(self, out: torch.Tensor, labels: torch.Tensor | None, target: torch.Tensor,
                      grad: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """From outputs ``out`` (C, K, B) and targets (K, B): per-cell sum of the per-sample
        losses (C,), the gradient of the sum of the cells' mean losses w.r.t. ``out`` and
        per-cell correct counts (int64)."""
        b = out.shape[2]
        loss = dout = None
        if "ce" in self.losses:
            logp = torch.log_softmax(out, dim=1)
            loss = logp.gather(1, labels.view(1, 1, b).expand(self.L.C, 1, b)).sum((1, 2)).neg_()
            dout = logp.exp_().sub_(target) if grad else None  # softmax - onehot
        if "mse" in self.losses:
            diff = out - target
            mse = diff.square().sum((1, 2))
            dmse = diff.mul_(2.0) if grad else None
            if loss is None:
                loss, dout = mse, dmse
            else:
                loss = torch.where(self.is_ce, loss, mse)
                dout = torch.where(self.is_ce.view(-1, 1, 1), dout, dmse) if grad else None
        if dout is not None:
            dout.div_(b)
        correct = (out.argmax(1) == labels).sum(-1) if labels is not None else None
        return loss, dout, correct

    @staticmethod
    def output_grad(dout: torch.Tensor, featpad: torch.Tensor) -> torch.Tensor:
        """The output layers' weight gradients (C, K, R): per cell, dout (K, B) times the
        features (R, B) transposed, each entry a sum over the batch.

        Each entry is summed in an order that depends on its own cell only, not on the group's
        padded feature count R (so a cell's numbers do not change with the cells beside it):
        for one output (K = 1) as a row-wise dot product (``linalg.vecdot``: torch's reduction
        over a row's B contiguous numbers, the same loop for every row), for K > 1 as a GEMM
        with the features as its rows (R x B times B x K). A batched product with the features
        as its columns (K x B times B x R) is a GEMV for K = 1, and BLAS (MKL) picks its kernel,
        and with it the order of the sum over B, by R: a cell trained beside wider cells
        rounded differently from the same cell alone (docs/design.md, "Same cell, same number")."""
        if dout.shape[1] == 1:
            return torch.linalg.vecdot(featpad, dout, dim=-1).unsqueeze(1)
        return torch.bmm(featpad, dout.transpose(1, 2)).transpose(1, 2)

    def step(self, idx: torch.Tensor | None) -> None:
        """One SGD step (+ projection) of every cell on the rows ``idx`` (None: all). Nothing
        here reads a value back to the host, so an epoch of steps can be a CUDA graph."""
        L = self.L
        xb = self.x if idx is None else self.x.index_select(0, idx)
        b = xb.shape[0]
        with self.autocast:
            qT = torch.mm(self.U, xb.T)
            p0 = None if self.P0 is not None else torch.mm(self.W0, xb.T)
        qT = qT.to(self.dtype)
        if self.P0 is not None:
            p0 = (self.P0 if idx is None else self.P0.index_select(0, idx)).T
        else:
            p0 = p0.to(self.dtype)
            if self.mirror is not None:  # mirrored rows: the very same numbers as their sources
                p0.index_copy_(0, self.mirror[1], p0.index_select(0, self.mirror[0]))
        bufs = self.step_buffers(b)
        preT = bufs["pre"]
        torch.addcmul(p0, self.s_rows, qT, out=preT)
        act, featpad = self.features(preT, bufs)
        out = torch.bmm(self.V, featpad)  # (C, K, B): every cell's output layer in one product
        if self.classification:
            labels = self.y if idx is None else self.y.index_select(0, idx)
            target = (self.onehot if idx is None else self.onehot.index_select(0, idx)).T
        else:
            labels, target = None, (self.y if idx is None else self.y.index_select(0, idx)).T
        loss, dout, correct = self.loss_and_grad(out, labels, target, grad=True)
        self.loss_acc.add_(loss)
        if correct is not None:
            self.correct_acc.add_(correct)

        # --- backward: output layers (batched), features, activations ---
        dfeatpad = torch.bmm(self.V.transpose(1, 2), dout)  # (C, R, B)
        gv = self.output_grad(dout, featpad)  # (C, K, R)
        dfeat = dfeatpad.view(L.C * L.R, b)
        if self.scatter is not None:
            dfeat = dfeat.index_select(0, self.scatter)
        dpre = bufs["dpre"]  # rows of paired second halves: without their minus (it is in lr_rows)
        for g in L.groups:
            if g.hp:
                d = dfeat[g.fp : g.fp + g.hp]
                for r0 in (g.p1, g.p2):
                    sl = slice(r0, r0 + g.hp)
                    _act_backward(g.activation, d, preT[sl], act[sl], dpre[sl])
            if g.nf:
                sl = slice(g.fr, g.fr + g.nf)
                _act_backward(g.activation, dfeat[g.ff : g.ff + g.nf], preT[sl], act[sl], dpre[sl])

        # --- hidden weights: W <- W - lr·G, i.e. U <- U - (lr/s)·G, with G = dpreᵀ x ---
        if self.momentum:
            # b <- mu·b + G with b = gamma·B: gamma <- mu·gamma, B <- B + G/gamma (one GEMM with
            # accumulate, no pass to decay b), then U <- U - (lr/s)·b = U - (lr/s)·gamma·B
            self.gam.mul_(self.mom_gamma_step)
            self.gam_rows.copy_(self.gam.index_select(0, self.row_cell).unsqueeze(1))
            dpre.div_(self.gam_rows)
            if isinstance(self.autocast, contextlib.nullcontext):
                self.B.addmm_(dpre, xb)
            else:
                with self.autocast:
                    self.B.add_(torch.mm(dpre, xb))
            self.U.addcmul_(self.B, self.a_rows * self.gam_rows, value=-1)
            if self.mom_zero_rows is not None:  # cells without momentum: their buffer is just G
                self.B.index_fill_(0, self.mom_zero_rows, 0)
        else:
            step_rows = dpre.mul_(self.a_rows)  # A = (lr/s)·dL/dpre, so U <- U - A x
            if self.tracking == "lowrank":
                # ||U_r - A_r x||² - ||U_r||² = Σ_b A[r,b]·((A xxᵀ)[r,b] - 2 q[r,b]): B x m work only
                with self.autocast:
                    gram = torch.mm(xb, xb.T)
                    y = torch.addmm(qT, step_rows, gram, beta=-2)
                # in the tracking dtype: with a small radius s shrinks fast and U = (W - W0)/s grows,
                # so these products can leave float32's range between two folds
                self.nrm2.add_(self.segsum(torch.linalg.vecdot(step_rows.to(self.tdt), y.to(self.tdt), dim=1)))
            if isinstance(self.autocast, contextlib.nullcontext):
                self.U.addmm_(step_rows, xb, alpha=-1)
            else:
                with self.autocast:
                    self.U.sub_(torch.mm(step_rows, xb))
        if self.tracking == "exact":
            self.nrm2.copy_(self.segsum(self.row_sq_norms(self.U, may_sync=self.host_check is not None)))

        # --- output weights ---
        if self.momentum:
            self.v_buf.mul_(self.mom_v).add_(gv)
            gv = self.v_buf
        self.V.addcmul_(gv, self.lr_v, value=-1)

        # --- projection: s <- s·min(1, radius / (s·||U||)) per cell ---
        if self.constrained:
            shrink = torch.div(self.radius_t, self.s * self.nrm2.clamp_min(0).sqrt()).clamp_(max=1)
            self.proj_acc.add_(shrink < 1)
            self.s.mul_(shrink)
            self._set_scale_rows()
            if self.host_check is None:  # the device-side fold decision's evidence
                torch.minimum(self.smin, self.s, out=self.smin)
                torch.minimum(self.rho_min, shrink, out=self.rho_min)

    def run_epoch(self, perm: torch.Tensor | None, cadence: int | None) -> None:
        """All steps of one epoch (``perm``: the sample order on the device, None: full batch),
        with the folds due inside it (``cadence``: steps between masked folds, or None). The
        epoch's last step is followed by train_group's epoch-end work instead."""
        self.loss_acc.zero_()
        self.correct_acc.zero_()
        steps = math.ceil(self.n / self.batch)
        for i, s0 in enumerate(range(0, self.n, self.batch)):
            self.step(None if perm is None else perm[s0 : s0 + self.batch])
            if i + 1 == steps:
                break
            if self.constrained:
                if self.host_check is not None:
                    if (i + 1) % self.host_check == 0:
                        self.fold_small_if_needed()
                elif cadence is not None and (i + 1) % cadence == 0:
                    self.fold_small()
            if self.momentum and (i + 1) % self.mom_fold_steps == 0:
                self.fold_momentum()


    def evaluate(self, xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact mean loss and accuracy (float64: a count over n) per cell over a whole split."""
        w = self.hidden_weights()
        chunk = max(256, min(8192, (1 << 26) // max(self.L.M, 1)))
        loss_sum = torch.zeros(self.L.C, device=self.device, dtype=xs.dtype)
        correct = torch.zeros(self.L.C, device=self.device, dtype=torch.long)
        for s0 in range(0, xs.shape[0], chunk):
            xb, yb = xs[s0 : s0 + chunk], ys[s0 : s0 + chunk]
            with self.autocast:
                preT = torch.mm(w, xb.T)
            _, featpad = self.features(preT.to(xs.dtype))
            out = torch.bmm(self.V, featpad)
            if self.classification:
                labels, target = yb, F.one_hot(yb, self.k).to(xs.dtype).T
            else:
                labels, target = None, yb.T
            loss, _, corr = self.loss_and_grad(out, labels, target, grad=False)
            loss_sum += loss
            if corr is not None:
                correct += corr
        return loss_sum / xs.shape[0], correct.to(self.tdt) / xs.shape[0]

