"""FeatureSMOTE: SMOTE in a model's feature space, inside the training loop."""

from __future__ import annotations

import numbers
from typing import Any, Optional, Tuple

import torch
from torch import Tensor, nn

from .. import _validate
from .._labels import check_labels, infer_num_classes
from .._repr import changed_args
from .._validate import all_finite

__all__ = ["FeatureSMOTE"]


class FeatureSMOTE(nn.Module):
    """Append synthetic features of the under-represented classes of each batch.

    Put it between a backbone and its classifier head: in training mode,
    ``forward(features [B, D], labels [B])`` returns ``(features [B + S, D],
    labels [B + S])``, the batch first, then S new points, each
    ``x + u * (x_nn - x)`` with ``u ~ U[0, 1)``, ``x`` a random batch sample
    of the class and ``x_nn`` a random one of its ``k_neighbors`` nearest
    same-class neighbours (itself excluded). The output is differentiable with
    respect to the batch features (gradients reach the backbone through both
    ends of every segment that lies in the batch). In eval mode the inputs are
    returned unchanged. Labels follow balancedtorch's one rule: integers, or
    integral floats (returned in the labels' dtype); anything else is refused.

    Args:
        k_neighbors (int): neighbours per sample (default 5); classes with
            fewer candidates use what they have, a class with a single sample
            and nothing in memory gets no synthetic points.
        sampling_strategy: how many points each class present in the batch gets:
            ``"balanced"`` (default): up to the batch's largest class count;
            a float r in (0, 1]: up to ``int(r * largest count)``;
            ``"prior"``: up to ``round(B * max running prior)``, the running
            class prior being an exponential average of the batches' class
            shares (``momentum``; needs ``num_classes``), so a class's target does
            not jump with each batch's sampling noise;
            a dict {class: target count per batch}.
        memory_size (int): default 0 (no memory); with > 0, a per-class
            ring buffer of the last ``memory_size`` detached features of each
            class joins the neighbour candidates (needs ``num_classes``); rare
            classes then find neighbours even when a batch holds only one of
            their samples.
        num_classes (int, optional): needed by ``memory_size > 0`` and "prior".
        momentum (float): update rate of the running prior, in (0, 1]. Default 0.01.
        generator (torch.Generator, optional): default source of randomness
            (``forward(..., generator=)`` overrides it); same generator state,
            same output.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> backbone, head = torch.nn.Linear(12, 8), torch.nn.Linear(8, 10)
        >>> images, labels = torch.randn(32, 12), torch.randint(0, 10, (32,)) ** 2 // 10  # long-tailed
        >>> smote = bt.resample.FeatureSMOTE(k_neighbors=5, memory_size=256, num_classes=10)
        >>> feats, y = smote(backbone(images), labels)  # the batch, then synthetic rare-class features
        >>> loss = torch.nn.functional.cross_entropy(head(feats), y)
        >>> loss.backward()  # the synthetic features are differentiable
        >>> bool(feats.shape[0] > 32), bool((y[:32] == labels).all())
        (True, True)
    """

    def __init__(
        self,
        k_neighbors: int = 5,
        sampling_strategy: Any = "balanced",
        memory_size: int = 0,
        num_classes: Optional[int] = None,
        momentum: float = 0.01,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__()
        owner = "FeatureSMOTE"
        _validate.integer(k_neighbors, "k_neighbors", low=1, caller=owner)
        _validate.integer(memory_size, "memory_size", low=0, caller=owner)
        _validate.num_classes(num_classes, optional=True, caller=owner)
        if (memory_size > 0 or sampling_strategy == "prior") and num_classes is None:
            raise ValueError("FeatureSMOTE: memory_size > 0 and sampling_strategy='prior' need num_classes")
        if isinstance(sampling_strategy, str):
            if sampling_strategy not in ("balanced", "prior"):
                raise ValueError(
                    f"FeatureSMOTE: sampling_strategy must be 'balanced', 'prior', a float or a dict, got {sampling_strategy!r}"
                )
        elif isinstance(sampling_strategy, dict):
            for c, n in sampling_strategy.items():
                _validate.integer(n, f"sampling_strategy[{c!r}]", low=0, caller=owner)
        elif isinstance(sampling_strategy, numbers.Real) and not isinstance(sampling_strategy, bool):
            if not 0 < sampling_strategy <= 1:
                raise ValueError(f"FeatureSMOTE: a float sampling_strategy must be in (0, 1], got {sampling_strategy}")
        else:
            raise ValueError(
                f"FeatureSMOTE: sampling_strategy must be 'balanced', 'prior', a float or a dict, got {sampling_strategy!r}"
            )
        if not 0 < momentum <= 1:
            raise ValueError(f"FeatureSMOTE: momentum must be in (0, 1], got {momentum}")
        self.k_neighbors = int(k_neighbors)
        self.sampling_strategy = sampling_strategy
        self.memory_size = int(memory_size)
        self.num_classes = num_classes
        self.momentum = float(momentum)
        self.generator = generator
        if num_classes is not None:
            self.register_buffer("class_prior", torch.full((num_classes,), 1.0 / num_classes))
            self.register_buffer("memory_filled", torch.zeros(num_classes, dtype=torch.long))
            self.register_buffer("memory_next", torch.zeros(num_classes, dtype=torch.long))
        self.memory: Optional[Tensor] = None  # [num_classes, memory_size, D], created at the first batch

    def extra_repr(self) -> str:
        """The constructor arguments that differ from their defaults (``nn.Module`` prints them in its repr).

        Example:
            >>> import balancedtorch as bt
            >>> bt.resample.FeatureSMOTE(k_neighbors=3, memory_size=64, num_classes=10)
            FeatureSMOTE(k_neighbors=3, memory_size=64, num_classes=10)
        """
        return changed_args(
            self,
            {
                "k_neighbors": self.k_neighbors,
                "sampling_strategy": self.sampling_strategy,
                "memory_size": self.memory_size,
                "num_classes": self.num_classes,
                "momentum": self.momentum,
                "generator": self.generator,
            },
        )

    def _targets(self, counts: Tensor, batch: int) -> Tensor:
        """Synthetic points per class (classes absent from the batch get none)."""
        s = self.sampling_strategy
        present = counts > 0
        if s == "balanced":
            target = counts.max().expand_as(counts)
        elif s == "prior":
            target = torch.round(batch * self.class_prior.max()).long().expand_as(counts)
        elif isinstance(s, dict):
            target = torch.zeros_like(counts)
            for c, n in s.items():
                if 0 <= int(c) < counts.numel():
                    target[int(c)] = n
        else:
            target = (counts.max().double() * float(s)).long().expand_as(counts)
        return torch.where(present, (target - counts).clamp_min(0), torch.zeros_like(counts))

    def forward(self, features: Tensor, labels: Tensor, generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
        """Append synthetic points of the under-represented classes to the batch (training mode only).

        Args:
            features (Tensor[B, D]): floating features of the batch (any
                floating dtype, any device); gradients flow back through the
                synthetic points to the rows they interpolate.
            labels (Tensor[B]): class indices, integers or integral floats,
                in ``[0, num_classes)`` when ``num_classes`` is set.
            generator (torch.Generator, optional): source of randomness for
                this call, on the features' device; default the module's
                ``generator``, else torch's global RNG.

        Returns:
            (Tensor[B + S, D], Tensor[B + S]): the batch first, unchanged,
            then S synthetic rows in ascending class order; the features
            keep ``features``' dtype and device, the labels ``labels``'
            dtype. In eval mode (or for an empty batch) the inputs
            themselves, S = 0. With ``memory_size > 0`` the batch's
            (detached) features are also written to the per-class memory.

        Raises:
            ValueError: features not a floating 2-D tensor or not finite;
                labels not 1-D class indices (one-hot targets are named as
                such), out of range, or not one per feature row.
            TypeError: labels is not a tensor.

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> smote = bt.resample.FeatureSMOTE(k_neighbors=2, generator=torch.Generator().manual_seed(0))
            >>> feats, y = smote(torch.randn(6, 4), torch.tensor([0, 0, 0, 0, 1, 1]))
            >>> feats.shape, y.tolist()
            (torch.Size([8, 4]), [0, 0, 0, 0, 1, 1, 1, 1])
        """
        if not isinstance(features, Tensor) or features.dim() != 2:
            raise ValueError(
                f"FeatureSMOTE: features must be a 2-D tensor [B, D], got {getattr(features, 'shape', type(features))}"
            )
        if not features.is_floating_point():
            raise ValueError(f"FeatureSMOTE: features must be floating point, got {features.dtype}")
        if not isinstance(labels, Tensor):
            raise TypeError(f"FeatureSMOTE: labels must be a torch.Tensor, got {type(labels).__name__}")
        if labels.dim() != 1:
            # raises, naming one-hot / multi-hot (B, C) targets as such
            check_labels(labels, "labels", caller="FeatureSMOTE", allow_empty=True)
        if labels.shape[0] != features.shape[0]:
            raise ValueError(
                f"FeatureSMOTE: labels must be a 1-D tensor with one label per feature row ({features.shape[0]}), "
                f"got shape {tuple(labels.shape)}"
            )
        if not self.training or features.shape[0] == 0:
            # the dtype is still checked (bool, complex, non-integral floats are not labels)
            if labels.dtype == torch.bool or labels.is_complex() or labels.is_floating_point():
                check_labels(labels, "labels", caller="FeatureSMOTE", allow_empty=True)
            return features, labels
        # integer (or integral float) class indices in [0, num_classes), as everywhere (balancedtorch._labels)
        y = check_labels(labels, "labels", caller="FeatureSMOTE", num_classes=self.num_classes, device=features.device)
        if not all_finite(features.detach()):
            raise ValueError("FeatureSMOTE: features contain NaN or inf")
        gen = generator if generator is not None else self.generator
        B, D = features.shape
        K = self.num_classes if self.num_classes is not None else infer_num_classes(y, caller="FeatureSMOTE")
        counts = torch.bincount(y, minlength=K)
        if self.sampling_strategy == "prior":
            with torch.no_grad():
                self.class_prior.mul_(1 - self.momentum).add_(counts.to(self.class_prior.dtype) / B, alpha=self.momentum)
        n_new = self._targets(counts, B)

        out_feat, out_y = features, labels
        if int(n_new.sum()) > 0:
            synth, synth_y = self._synthesise(features, y, counts, n_new, gen)
            out_feat = torch.cat([features, synth])
            out_y = torch.cat([labels, synth_y.to(labels.dtype).to(labels.device)])
        if self.memory_size > 0:
            self._remember(features.detach(), y, counts)
        return out_feat, out_y

    def _synthesise(self, features, y, counts, n_new, gen):
        """Synthetic points for the classes with n_new > 0, in class order.

        The classes that get points are batched by size: those with between
        2^(b-1) and 2^b batch rows share one [S, P, P + M] distance
        computation between each class's rows (padded to the bucket's
        largest, P) and its candidates (its batch rows and its memory slots),
        so a step costs a few tensor operations per size bucket (at most
        log2(B) + 1 buckets), not per class: a 1,000-class batch does not
        loop over its classes.

        It keeps this search rather than ``bt.ops.knn(groups=, ref=,
        ref_groups=)`` (the samplers' one same-class search) because a class
        with k or fewer candidates here uses the ones it has, which ``knn``
        refuses, and because ``knn`` searches group by group (host syncs per
        group on CUDA), which a per-step layer over many classes cannot afford.
        """
        device = features.device
        B, D = features.shape
        use_memory = self.memory is not None and self.memory.shape[2] == D and self.memory.device == device
        M = self.memory_size if use_memory else 0
        inf = float("inf")
        parts = []  # (base row, batch neighbour row, memory slot, neighbour from the batch, class) per bucket
        with torch.no_grad():
            f = features.detach().float()
            order = torch.argsort(y, stable=True)  # rows grouped by class
            starts = torch.cumsum(counts, 0) - counts
            need = ((n_new > 0) & (counts > 0)).nonzero().squeeze(1)
            if need.numel() == 0:
                return features[:0], y[:0]
            size = counts[need]
            bucket = torch.ceil(torch.log2(size.double())).long()  # classes with 2^(b-1) < rows <= 2^b
            for b in torch.unique(bucket).tolist():
                in_b = bucket == b
                cs = need[in_b]
                P = int(size[in_b].max())  # rows padded to the bucket's largest class
                n_rows = counts[cs]
                slot = torch.arange(P, device=device)
                row_ok = slot < n_rows.unsqueeze(1)  # [S, P]
                rows = order[(starts[cs].unsqueeze(1) + slot).clamp_max(B - 1)]  # [S, P]; padding: any row
                fb = f[rows]  # [S, P, D]
                if M:
                    cand = torch.cat([fb, self.memory[cs]], 1)  # [S, P + M, D]
                    mem_ok = torch.arange(M, device=device) < self.memory_filled[cs].unsqueeze(1)
                    col_ok = torch.cat([row_ok, mem_ok], 1)
                else:
                    cand, col_ok = fb, row_ok
                k = min(self.k_neighbors, cand.shape[1] - 1)
                if k < 1:
                    continue  # lone samples with nothing remembered: no neighbour to interpolate towards
                dist = torch.cdist(fb, cand).pow_(2).masked_fill_(~col_ok.unsqueeze(1), inf)
                dist[:, :, :P].diagonal(dim1=1, dim2=2).fill_(inf)  # not itself
                nd, ni = dist.topk(k, dim=2, largest=False, sorted=True)
                n_valid = torch.isfinite(nd).sum(2) * row_ok  # [S, P]
                eligible = n_valid > 0
                n_elig = eligible.sum(1)
                per_class = torch.where(n_elig > 0, n_new[cs], torch.zeros_like(n_elig))
                total = int(per_class.sum())
                if total == 0:
                    continue
                s = torch.repeat_interleave(torch.arange(cs.numel(), device=device), per_class, output_size=total)
                u = torch.rand((2, total), generator=gen, device=device, dtype=torch.float64)
                # the eligible rows of each class first, in row order
                ranked = torch.sort((~eligible).to(torch.uint8), dim=1, stable=True).indices
                ne = n_elig[s]
                pick = ranked[s, (u[0] * ne).long().clamp_max(ne - 1)]
                nv = n_valid[s, pick]
                local = ni[s, pick, (u[1] * nv).long().clamp_max(nv - 1)]
                parts.append(
                    (
                        rows[s, pick],
                        rows[s, local.clamp_max(P - 1)],
                        cs[s] * max(1, self.memory_size) + (local - P).clamp_min(0),
                        local < P,
                        cs[s],
                    )
                )
            if not parts:
                return features[:0], y[:0]
            base_i, batch_i, mem_i, from_batch, classes = (torch.cat(c) for c in zip(*parts))
            by_class = torch.argsort(classes, stable=True)
            base_i, batch_i, mem_i, from_batch, classes = (t[by_class] for t in (base_i, batch_i, mem_i, from_batch, classes))
            from_batch = from_batch.unsqueeze(1)
            steps = torch.rand(base_i.numel(), generator=gen, device=device, dtype=torch.float64)
        start = features.index_select(0, base_i)
        end = features.index_select(0, batch_i)
        if M and not bool(from_batch.all()):
            remembered = self.memory.view(-1, D).index_select(0, mem_i).to(features.dtype)
            end = torch.where(from_batch, end, remembered)
        return torch.lerp(start, end, steps.to(features.dtype).unsqueeze(1)), classes

    @torch.no_grad()
    def _remember(self, feats: Tensor, y: Tensor, counts: Tensor) -> None:
        """Write each class's last (up to) M rows of this batch into its ring buffer; ``counts``: the batch's class counts."""
        K, M = self.num_classes, self.memory_size
        if self.memory is None or self.memory.shape[2] != feats.shape[1] or self.memory.device != feats.device:
            self.memory = torch.zeros((K, M, feats.shape[1]), dtype=torch.float32, device=feats.device)
            self.memory_filled.zero_()
            self.memory_next.zero_()
        # rank of each row within its class in this batch; the last M of each class are written
        order = torch.argsort(y, stable=True)
        ys = y[order]
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(ys.numel(), device=y.device) - starts[ys]
        keep = rank >= (counts[ys] - M)
        rows, ys, rank = order[keep], ys[keep], rank[keep]
        first = (counts - M).clamp_min(0)
        slot = (self.memory_next[ys] + rank - first[ys]) % M
        self.memory[ys, slot] = feats[rows].float()
        written = torch.minimum(counts, torch.full_like(counts, M))
        self.memory_next.copy_((self.memory_next + written) % M)
        self.memory_filled.copy_(torch.minimum(self.memory_filled + written, torch.full_like(counts, M)))
