r"""The batched engine's meta-loss and meta-gradient against the reference's (:mod:`.reference`).

For one meta-batch, the meta-loss :math:`\mathcal{L}(\theta)` of the model (:meth:`GraphMetaLearner.meta_loss
<graphmeta.GraphMetaLearner.meta_loss>`) and its gradient :math:`\nabla_\theta \mathcal{L}` with respect to
every trainable parameter :math:`\theta_p`, computed by the engine and again by the task-by-task, node-by-node
reference; the two must agree,

.. math::
    |\mathcal{L} - \mathcal{L}^{\mathrm{ref}}| \le \mathrm{atol} + \mathrm{rtol}\, |\mathcal{L}^{\mathrm{ref}}|,
    \qquad
    |\nabla_{\theta_p} \mathcal{L} - \nabla_{\theta_p} \mathcal{L}^{\mathrm{ref}}|
    \le \mathrm{atol} + \mathrm{rtol}\, |\nabla_{\theta_p} \mathcal{L}^{\mathrm{ref}}|
    \quad \text{elementwise, for every } p,

where a parameter the reference's loss does not reach (autograd's ``None``) must get no gradient or
a zero one from the engine. The same comparison holds one engine run against another (a GPU run
against a CPU run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch

from ..data import TaskBatch
from .reference import Data, reference_meta_loss


class MetaGradient(NamedTuple):
    """A meta-loss and its gradient with respect to each trainable parameter, in
    ``model.parameters()`` order (``None`` where the loss does not reach a parameter)."""

    loss: torch.Tensor
    grads: tuple[torch.Tensor | None, ...]


def meta_gradient(loss: torch.Tensor, parameters: Sequence[torch.Tensor]) -> MetaGradient:
    """``loss`` and its gradient with respect to ``parameters`` (``None`` for one it does not reach)."""
    return MetaGradient(loss, torch.autograd.grad(loss, list(parameters), allow_unused=True))


def engine_and_reference_meta_gradients(model: Any, support: Data, query: Data, support_observed: Data | None = None,
                                        query_observed: Data | None = None
                                        ) -> tuple[MetaGradient, MetaGradient, dict[str, torch.Tensor]]:
    """The engine's and the reference's :class:`MetaGradient` of ``model`` on the meta-batch of
    ``support`` and ``query`` (the data of :meth:`~graphmeta.TaskBatch.from_tensors`, with optional
    ``observed`` masks), with respect to its trainable parameters, and the engine's metrics."""
    batch = TaskBatch.from_tensors(model.graph, support, query, support_observed, query_observed)
    parameters = [p for p in model.parameters() if p.requires_grad]
    loss, metrics = model.meta_loss(batch)
    engine = meta_gradient(loss, parameters)
    reference = meta_gradient(reference_meta_loss(model, support, query, support_observed, query_observed), parameters)
    return engine, reference, metrics


def assert_meta_gradients_close(actual: MetaGradient, expected: MetaGradient, *, rtol: float, atol: float) -> None:
    """``actual`` equals ``expected`` within ``rtol`` and ``atol`` (module docstring), compared on
    ``expected``'s device; where ``expected`` has no gradient, ``actual`` has none or a zero one."""
    device = expected.loss.device
    torch.testing.assert_close(actual.loss.to(device), expected.loss, rtol=rtol, atol=atol)
    assert len(actual.grads) == len(expected.grads), (len(actual.grads), len(expected.grads))
    for p, (grad, reference) in enumerate(zip(actual.grads, expected.grads)):
        if reference is None:
            assert grad is None or not grad.any(), f"parameter {p}: a gradient where the expected loss has none"
        else:
            assert grad is not None, f"parameter {p}: no gradient where the expected loss has one"

            def named(message: str, p: int = p) -> str:
                return f"parameter {p}: {message}"

            torch.testing.assert_close(grad.to(device), reference, rtol=rtol, atol=atol, msg=named)


def assert_meta_gradient_equals_reference(model: Any, support: Data, query: Data,
                                          support_observed: Data | None = None, query_observed: Data | None = None,
                                          *, rtol: float = 1e-6, atol: float = 1e-9) -> Mapping[str, torch.Tensor]:
    """The engine's meta-loss and meta-gradient of ``model`` equal the reference's
    (:func:`engine_and_reference_meta_gradients`, :func:`assert_meta_gradients_close`); returns the
    engine's metrics, for further checks."""
    engine, reference, metrics = engine_and_reference_meta_gradients(model, support, query, support_observed,
                                                                     query_observed)
    assert_meta_gradients_close(engine, reference, rtol=rtol, atol=atol)
    return metrics
