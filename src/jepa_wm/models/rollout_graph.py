"""WorldModel rollouts as TorchScript graphs: one C++ call per rollout instead of hundreds of Python ops.

A plan is a few hundred small torch ops. Called eagerly, each one takes and releases Python's GIL,
so in a ROS node every subscription callback that holds the GIL stalls the planner's thread.
A traced graph runs in the TorchScript interpreter, which releases the GIL for the whole rollout
and skips the per-op Python overhead. Graphs are traced once per input shape and dtype (the
planner calls with the same [S, H, J] every tick) and frozen (weights become constants).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from jepa_wm.models.layers import KVCache
from jepa_wm.models.world_model import WorldModel


class _Imagine(nn.Module):
    """model.imagine from a single observed step (no earlier context to cache)."""

    def __init__(self, model: WorldModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, latent: torch.Tensor, joint_positions: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.model.imagine(latent, joint_positions, actions, None)


class TracedImagine:
    """Drop-in for ``WorldModel.imagine`` that runs a traced graph per (shapes, dtype).

    With an earlier-context cache (more than one observed step) it falls back to the eager
    model: those calls are rare and their cache layout varies.
    """

    def __init__(self, model: WorldModel) -> None:
        self.model = model.eval()
        self._graphs: dict[tuple, torch.jit.ScriptModule] = {}

    def __call__(
        self, latent: torch.Tensor, joint_positions: torch.Tensor, actions: torch.Tensor, cache: list[KVCache] | None
    ) -> torch.Tensor:
        if cache is not None:
            return self.model.imagine(latent, joint_positions, actions, cache)
        inputs = (latent, joint_positions, actions)
        key = tuple((tuple(t.shape), t.dtype, t.device) for t in inputs)
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graphs[key] = self._trace(inputs)
        return graph(*inputs)

    def _trace(self, inputs: tuple[torch.Tensor, ...]) -> torch.jit.ScriptModule:
        # Inference-mode tensors cannot be traced; normal copies of them can.
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # Shape-dependent branches are fixed per graph, which is why graphs are keyed by shape.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # torch 2.13 marks trace/freeze deprecated in favour of torch.compile, which plans ~1.3x
            # faster still but compiles for ~70 s per shape on a 2-core CPU: too slow for a node start.
            warnings.simplefilter("ignore", DeprecationWarning)
            examples = tuple(t.clone() for t in inputs)
            traced = torch.jit.trace(_Imagine(self.model), examples, check_trace=False)
            return torch.jit.freeze(traced.eval())
