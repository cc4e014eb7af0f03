"""Low-rank fast weights: a weight matrix kept as theta minus the outer products gradient steps add.

The support gradient of a linear layer ``z = x W + b`` is a sum of outer products over its
input rows, ``dL/dW = sum_k x_k^T dL/dz_k`` (:class:`OuterProducts`), so after ``S`` steps on
``K`` shots each (task, node)'s weight is ``W = theta - U`` with ``U`` of rank ``S K``
(:class:`LowRankWeight`). A layer reads it as ``x W = x theta - (x left^T) right``: one matmul
per node shared by the tasks, and ``K x R`` products, so the ``[T, N, d_in, d_out]`` fast
weights and their gradients are never formed. Also here: the two batched products this needs
with gradients laid out as their inputs (:class:`TransposedProduct`, :func:`batched_matmul`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch


def batched_matmul(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a [B, M, d] @ b [B, d, P]`` (``+ bias [B, 1, P]``); with one column (``P = 1``) and more
    than one matrix, a multiply-and-sum over ``d``, which is several times faster, forward and
    backward, than MKL's batched matrix-vector product (a single one is as fast as it)."""
    if b.shape[-1] == 1 and b.shape[0] > 1:
        out = (a * b.transpose(1, 2)).sum(-1, keepdim=True)
        return out if bias is None else out + bias
    return torch.bmm(a, b) if bias is None else torch.baddbmm(bias, a, b)


def node_parts(tensor: torch.Tensor, index: torch.Tensor, sizes: Sequence[int], dim: int) -> list[torch.Tensor]:
    """The node rows ``index`` of ``tensor`` along ``dim``, in consecutive parts of ``sizes``, with one
    gather and one split: its backward is one scatter and one concatenation, where a gather per part
    would scatter into a zero tensor of the whole size for each."""
    return list(tensor.index_select(dim, index).split(list(sizes), dim))


class TransposedProduct(torch.autograd.Function):
    """Batched ``a^T @ b`` (``transpose="first"``) or ``a @ b^T`` (``"second"``), with each gradient
    laid out like its input. Autograd's own gradient of a transposed operand is the transpose of
    a product, so an activation ``[K, d]`` would get a ``d``-major gradient and every element-wise
    op after it (an activation's backward) would stride across memory."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor, transpose: str) -> torch.Tensor:
        ctx.transpose, ctx.gram = transpose, a is b
        ctx.save_for_backward(a, b)
        return torch.bmm(a.transpose(1, 2), b) if transpose == "first" else torch.bmm(a, b.transpose(1, 2))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        a, b = ctx.saved_tensors
        first = ctx.transpose == "first"
        if ctx.gram:  # a^T a or a a^T: both gradients in one product, (G + G^T) acting on a
            if not ctx.needs_input_grad[0]:
                return None, None, None
            symmetric = grad + grad.transpose(1, 2)
            return (torch.bmm(a, symmetric) if first else torch.bmm(symmetric, a)), None, None
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = torch.bmm(b, grad.transpose(1, 2)) if first else torch.bmm(grad, b)
        if ctx.needs_input_grad[1]:
            grad_b = torch.bmm(a, grad) if first else torch.bmm(grad.transpose(1, 2), a)
        return grad_a, grad_b, None


@dataclass(frozen=True)
class OuterProducts:
    r"""``U[t, n] = scale[n, t] * sum_k left[n, t, k]^T right[n, t, k]`` for every (task, node), node
    axis first: ``left [N, T, R, d_in]``, ``right [N, T, R, d_out]``, ``scale`` a number or
    ``[N, T, 1, 1]``, ``U [T, N, d_in, d_out]``.

    The gradient of a loss through a linear layer ``z = x W + b`` is one of these,
    ``dL/dW = sum_k x_k^T dL/dz_k`` over the layer's input rows ``x_k``, so a bank can hand its
    weight gradients over without forming them; a step's rate goes into ``scale``, so the
    factors are the tensors the gradient was read from, not copies.
    """

    left: torch.Tensor
    right: torch.Tensor
    scale: torch.Tensor | float = 1.0

    @property
    def rank(self) -> int:
        return self.left.shape[2]

    def scaled_right(self) -> torch.Tensor:
        """``scale * right``."""
        return self.right if isinstance(self.scale, float) and self.scale == 1.0 else self.right * self.scale

    def dense(self) -> torch.Tensor:
        """``U [T, N, d_in, d_out]`` (stored node-major)."""
        N, T, R, d_in = self.left.shape
        right = self.scaled_right()
        if right.shape[-1] == 1:  # one column: see batched_matmul
            return (self.left * right).sum(2).unsqueeze(-1).transpose(0, 1)
        products = TransposedProduct.apply(self.left.reshape(N * T, R, d_in), right.reshape(N * T, R, -1), "first")
        return products.reshape(N, T, d_in, -1).transpose(0, 1)

    def scaled(self, scale: torch.Tensor | float) -> OuterProducts:
        """``scale * U``; ``scale`` a number or one per (node, task), ``[N, T, 1, 1]``."""
        return OuterProducts(self.left, self.right, self.scale * scale)

    def squared_norm(self) -> torch.Tensor:
        r"""``||U[t, n]||_F^2`` as ``[T, N]``: ``scale^2 sum((L^T R)^2)`` from the ``d_in x d_out`` product, or
        ``scale^2 sum((L L^T) * (R R^T))`` from the ``R x R`` Gram matrices, whichever takes fewer
        multiplications (``R d_in d_out`` against ``R^2 (d_in + d_out)``); clamped at 0: where ``U`` is
        nearly 0 the Gram sum's rounding can fall below it."""
        N, T, R, d_in = self.left.shape
        d_out = self.right.shape[-1]
        left, right = self.left.reshape(N * T, R, d_in), self.right.reshape(N * T, R, d_out)
        if d_in * d_out <= R * (d_in + d_out):
            sums = TransposedProduct.apply(left, right, "first").square().sum((1, 2))
        else:
            grams = TransposedProduct.apply(left, left, "second") * TransposedProduct.apply(right, right, "second")
            sums = grams.sum((1, 2))
        norms = sums.reshape(N, T, 1, 1) * self.scale ** 2
        return norms.reshape(N, T).transpose(0, 1).clamp(min=0)

    def nodes(self, index: torch.Tensor) -> OuterProducts:
        """The node rows ``index`` only."""
        scale = self.scale if isinstance(self.scale, float) or self.scale.dim() < 4 else self.scale[index]
        return OuterProducts(self.left[index], self.right[index], scale)

    def node_parts(self, index: torch.Tensor, sizes: Sequence[int]) -> list[OuterProducts]:
        """:meth:`nodes` of the rows ``index``, in consecutive parts of ``sizes`` (:func:`node_parts`)."""
        scales = ([self.scale] * len(sizes) if isinstance(self.scale, float) or self.scale.dim() < 4
                  else node_parts(self.scale, index, sizes, 0))
        return [OuterProducts(left, right, scale) for left, right, scale in
                zip(node_parts(self.left, index, sizes, 0), node_parts(self.right, index, sizes, 0), scales)]

    def detach(self) -> OuterProducts:
        scale = self.scale if isinstance(self.scale, float) else self.scale.detach()
        return OuterProducts(self.left.detach(), self.right.detach(), scale)

    @staticmethod
    def cat(terms: Sequence[OuterProducts]) -> OuterProducts:
        """The sum of ``terms`` as one (their ranks add; their scales go into the copies of ``right``)."""
        terms = [t for t in terms if t.rank] or terms[:1]
        if len(terms) == 1:
            return terms[0]
        return OuterProducts(torch.cat([t.left for t in terms], dim=2),
                             torch.cat([t.scaled_right() for t in terms], dim=2))


class LowRankWeight:
    r"""A fast weight matrix ``W [T, N_b, d_in, d_out]`` kept as its shared meta-initialisation minus
    a low-rank update, ``W[t, n] = initial[n] - U[t, n]`` (``initial [N_b, d_in, d_out]``, ``U`` an
    :class:`OuterProducts`).

    Gradient steps on a linear layer produce exactly this: ``S`` steps on ``K`` support shots add
    rank ``S K``. A layer then computes ``x W[t, n] = x initial[n] - scale (x left^T) right``: one
    matmul per node over all ``T K`` rows and small ``K x R`` products, never the
    ``[T, N_b, d_in, d_out]`` tensor (see :class:`~graphmeta.learners.banks.mlp.MLPBank`). Rank 0 is
    theta shared by every task.

    Everywhere else it is its dense value: torch functions and arithmetic operators accept it
    (PyTorch's ``__torch_function__`` protocol for tensor-likes), and ``shape``, ``detach`` and
    ``clone`` behave as on the dense tensor, so code written for dense fast weights keeps working.
    """

    def __init__(self, initial: torch.Tensor, update: OuterProducts) -> None:
        self.initial = initial
        self.update = update

    @staticmethod
    def shared(initial: torch.Tensor, num_tasks: int) -> LowRankWeight:
        """``initial [N_b, d_in, d_out]`` for each of ``num_tasks`` tasks (rank 0)."""
        N, d_in, d_out = initial.shape
        return LowRankWeight(initial, OuterProducts(initial.new_zeros(N, num_tasks, 0, d_in),
                                                    initial.new_zeros(N, num_tasks, 0, d_out)))

    @property
    def rank(self) -> int:
        return self.update.rank

    @property
    def shape(self) -> torch.Size:
        N, d_in, d_out = self.initial.shape
        return torch.Size((self.update.left.shape[1], N, d_in, d_out))

    @property
    def dtype(self) -> torch.dtype:
        return self.initial.dtype

    @property
    def device(self) -> torch.device:
        return self.initial.device

    def dense(self) -> torch.Tensor:
        """``W [T, N_b, d_in, d_out]``; at rank 0 a view of ``initial``, no copy."""
        shared = self.initial.unsqueeze(0).expand(self.shape)
        return shared if self.rank == 0 else shared - self.update.dense()

    def stepped(self, gradient: OuterProducts, rate: torch.Tensor | float) -> LowRankWeight:
        """``W - rate * gradient``, its rank grown by the gradient's."""
        return LowRankWeight(self.initial, OuterProducts.cat([self.update, gradient.scaled(rate)]))

    def nodes(self, index: torch.Tensor) -> LowRankWeight:
        """The bank rows ``index`` only."""
        return LowRankWeight(self.initial[index], self.update.nodes(index))

    def node_parts(self, index: torch.Tensor, sizes: Sequence[int]) -> list[LowRankWeight]:
        """:meth:`nodes` of the rows ``index``, in consecutive parts of ``sizes`` (:func:`node_parts`)."""
        return [LowRankWeight(initial, update) for initial, update in
                zip(node_parts(self.initial, index, sizes, 0), self.update.node_parts(index, sizes))]

    def detach(self) -> LowRankWeight:
        return LowRankWeight(self.initial.detach(), self.update.detach())

    def clone(self) -> torch.Tensor:
        return self.dense().clone()

    def __repr__(self) -> str:
        return f"LowRankWeight(shape={tuple(self.shape)}, rank={self.rank})"

    @classmethod
    def __torch_function__(cls, func: Callable, types: Any, args: Sequence[Any] = (),
                           kwargs: Mapping[str, Any] | None = None) -> Any:
        return func(*_dense_values(args), **{key: _dense_values(value) for key, value in (kwargs or {}).items()})

    def __add__(self, other: Any) -> torch.Tensor:
        return torch.add(self, other)

    def __radd__(self, other: Any) -> torch.Tensor:
        return torch.add(other, self)

    def __sub__(self, other: Any) -> torch.Tensor:
        return torch.sub(self, other)

    def __rsub__(self, other: Any) -> torch.Tensor:
        return torch.sub(other, self)

    def __mul__(self, other: Any) -> torch.Tensor:
        return torch.mul(self, other)

    def __rmul__(self, other: Any) -> torch.Tensor:
        return torch.mul(other, self)


def _dense_values(value: Any) -> Any:
    """``value`` with every :class:`LowRankWeight` in it (or in its lists and tuples) made dense."""
    if isinstance(value, LowRankWeight):
        return value.dense()
    if isinstance(value, (list, tuple)):
        return type(value)(_dense_values(item) for item in value)
    return value


def dense_weights(weights: Mapping[str, torch.Tensor | LowRankWeight]) -> dict[str, torch.Tensor]:
    """``weights`` with every :class:`LowRankWeight` formed as its dense tensor."""
    return {name: w.dense() if isinstance(w, LowRankWeight) else w for name, w in weights.items()}


def update_mean_square(initial: torch.Tensor | LowRankWeight, adapted: torch.Tensor | LowRankWeight
                       ) -> torch.Tensor:
    """``[T, N_b]``: the mean over its entries of ``(adapted - initial)^2`` per (task, node); from
    the factors when both are low-rank on the same meta-initialisation, without the dense update."""
    if (isinstance(initial, LowRankWeight) and isinstance(adapted, LowRankWeight)
            and adapted.initial is initial.initial):
        difference = OuterProducts.cat([adapted.update, initial.update.scaled(-1.0)])
        return difference.squared_norm() / initial.initial[0].numel()
    return (adapted - initial).flatten(2).pow(2).mean(-1)
