"""Batched MLP policies: a population of genomes ``[B, D]`` evaluated as one batch.

A genome is the flat vector of all weights of one small MLP. ``unflatten`` cuts the whole
population into per-layer weight tensors (views, no copy) and ``forward`` runs every individual
on its own observation with one ``baddbmm`` per layer.

Genome layout, layer after layer: the weight matrix ``[in, out]`` row-major, then the biases
(one scalar per layer for :class:`SereneMLP`, one per output unit for :class:`TanhMLP`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LayerWeights:
    """Weights of one layer for a whole population: ``weight [B, in, out]``, ``bias [B, 1, b]``."""

    weight: torch.Tensor
    bias: torch.Tensor | None


class BatchedMLP:
    """Base class: layer sizes, genome size, genome <-> weights, batched forward.

    Args:
        sizes: layer sizes from input to output, e.g. ``(5, 5, 5, 2)``.
    """

    name = "mlp"

    def __init__(self, sizes: tuple[int, ...] | list[int]) -> None:
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) <= 0:
            raise ValueError(f"layer sizes must be >= 2 positive ints, got {sizes}")
        self.sizes = sizes
        self.bias_sizes = tuple(self._bias_size(out) for out in sizes[1:])
        self.genome_size = sum(
            i * o + b for i, o, b in zip(sizes[:-1], sizes[1:], self.bias_sizes, strict=True)
        )

    @property
    def obs_size(self) -> int:
        """Input size."""
        return self.sizes[0]

    @property
    def action_size(self) -> int:
        """Output size."""
        return self.sizes[-1]

    def _bias_size(self, out: int) -> int:
        raise NotImplementedError

    def activation(self, x: torch.Tensor, last: bool) -> torch.Tensor:
        """Activation after layer (``last`` is True for the output layer)."""
        raise NotImplementedError

    def check(self, genomes: torch.Tensor) -> None:
        """Raise ``ValueError`` for a genome tensor of the wrong shape or with NaN/inf values."""
        if not isinstance(genomes, torch.Tensor):
            raise TypeError(f"genomes must be a torch.Tensor, got {type(genomes).__name__}")
        if genomes.ndim != 2 or genomes.shape[1] != self.genome_size:
            raise ValueError(
                f"genomes must have shape [B, {self.genome_size}] for layer sizes {self.sizes}, "
                f"got {list(genomes.shape)}"
            )
        if not torch.isfinite(genomes).all():
            raise ValueError("genomes contain NaN or infinite values")

    def unflatten(self, genomes: torch.Tensor) -> list[LayerWeights]:
        """Per-layer weights of every genome (views into ``genomes``)."""
        self.check(genomes)
        batch = genomes.shape[0]
        layers = []
        pos = 0
        for i, o, b in zip(self.sizes[:-1], self.sizes[1:], self.bias_sizes, strict=True):
            weight = genomes[:, pos : pos + i * o].view(batch, i, o)
            pos += i * o
            bias = genomes[:, pos : pos + b].view(batch, 1, b) if b else None
            pos += b
            layers.append(LayerWeights(weight, bias))
        return layers

    def flatten(self, layers: list[LayerWeights]) -> torch.Tensor:
        """Inverse of :meth:`unflatten`: ``[B, genome_size]``."""
        parts = []
        for layer in layers:
            parts.append(layer.weight.reshape(layer.weight.shape[0], -1))
            if layer.bias is not None:
                parts.append(layer.bias.reshape(layer.bias.shape[0], -1))
        return torch.cat(parts, 1)

    def forward(self, layers: list[LayerWeights], obs: torch.Tensor) -> torch.Tensor:
        """Actions ``[B, out]`` for observations ``[B, in]`` (individual b uses genome b)."""
        return self.forward_rows(layers, obs.unsqueeze(1)).squeeze(1)

    def actions_on(self, genomes: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Actions ``[B, P, out]`` of every genome on the same states ``[P, in]`` (e.g. DvD's
        probe states)."""
        layers = self.unflatten(genomes)
        return self.forward_rows(layers, states.expand(genomes.shape[0], *states.shape))

    def fold_normaliser(
        self, genomes: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
    ) -> torch.Tensor:
        """Genomes that act on raw observations as ``genomes`` act on ``(obs - mean) / std``.

        ``mean``/``std`` are ``[B, in]`` (one normaliser per genome, e.g. DvD's per-agent
        running statistics). The first layer absorbs them: ``W' = W / std``,
        ``b' = b - (mean / std) W``. Needs one bias per unit in the first layer.
        """
        if self.bias_sizes[0] != self.sizes[1]:
            raise ValueError(f"{self.name} policies have no per-unit first-layer bias to fold into")
        layers = self.unflatten(genomes)
        first = layers[0]
        scaled = (mean / std).unsqueeze(1)  # [B, 1, in]
        weight = first.weight / std.unsqueeze(2)
        bias = first.bias - torch.bmm(scaled, first.weight)
        return self.flatten([LayerWeights(weight, bias), *layers[1:]])

    def forward_rows(self, layers: list[LayerWeights], h: torch.Tensor) -> torch.Tensor:
        """Network on ``h [B, P, in]``: genome b on its own P rows -> ``[B, P, out]``."""
        last = len(layers) - 1
        for k, layer in enumerate(layers):
            if layer.bias is None:
                h = torch.bmm(h, layer.weight)
            else:
                h = torch.baddbmm(layer.bias, h, layer.weight)
            h = self.activation(h, k == last)
        return h

    def __call__(self, genomes: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Convenience: ``forward(unflatten(genomes), obs)``."""
        return self.forward(self.unflatten(genomes), obs)

    def to_dict(self) -> dict:
        """JSON description (kind and sizes)."""
        return {"kind": self.name, "sizes": list(self.sizes)}


class SereneMLP(BatchedMLP):
    """SERENE-family MLP: one scalar bias per layer, ``2*sigmoid(x) - 1`` on every layer.

    Genome size = sum over layers of ``in*out + 1``; 63 for HardMaze's 5->5->5->2.
    """

    name = "serene"

    def _bias_size(self, out: int) -> int:
        return 1

    def unflatten(self, genomes: torch.Tensor) -> list[LayerWeights]:
        """Per-layer weights, pre-scaled by 1/2 (exact) for the tanh form of the activation."""
        return [
            LayerWeights(layer.weight * 0.5, layer.bias * 0.5)
            for layer in super().unflatten(genomes)
        ]

    def flatten(self, layers: list[LayerWeights]) -> torch.Tensor:
        return super().flatten([LayerWeights(la.weight * 2, la.bias * 2) for la in layers])

    def activation(self, x: torch.Tensor, last: bool) -> torch.Tensor:
        # 2*sigmoid(x) - 1 == tanh(x/2); the 1/2 is folded into the weights by unflatten.
        # (torch's CPU sigmoid rounds differently in its vectorised and scalar paths, which
        # would make results depend on the batch size; tanh does not.)
        return torch.tanh(x)


class TanhMLP(BatchedMLP):
    """Standard MLP: one bias per unit, tanh on every layer (``output_bias=False`` drops the
    output layer's biases, as in DvD's policies)."""

    name = "tanh"

    def __init__(self, sizes: tuple[int, ...] | list[int], *, output_bias: bool = True) -> None:
        self.output_bias = output_bias
        self._n_layers = len(sizes) - 1
        self._layer = 0
        super().__init__(sizes)

    def _bias_size(self, out: int) -> int:
        self._layer += 1
        return out if (self.output_bias or self._layer < self._n_layers) else 0

    def activation(self, x: torch.Tensor, last: bool) -> torch.Tensor:
        return torch.tanh(x)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "output_bias": self.output_bias}


class ReluMLP(TanhMLP):
    """MLP with ReLU hidden layers and one bias per unit: ``tanh`` output (actors, e.g.
    TD3's) or linear output with ``output="linear"`` (critics)."""

    name = "relu"

    def __init__(
        self, sizes: tuple[int, ...] | list[int], *, output_bias: bool = True, output="tanh"
    ) -> None:
        if output not in ("tanh", "linear"):
            raise ValueError(f"output must be tanh or linear, got {output!r}")
        self.output = output
        super().__init__(sizes, output_bias=output_bias)

    def activation(self, x: torch.Tensor, last: bool) -> torch.Tensor:
        if not last:
            return torch.relu(x)
        return torch.tanh(x) if self.output == "tanh" else x

    def to_dict(self) -> dict:
        return {**super().to_dict(), "output": self.output}


def linear_init(policy: BatchedMLP, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` genomes initialised as ``torch.nn.Linear`` does: weights and biases
    ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    layers = policy.unflatten(torch.zeros(count, policy.genome_size))
    for layer in layers:
        bound = layer.weight.shape[1] ** -0.5
        layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * bound)
        if layer.bias is not None:
            layer.bias.copy_((torch.rand(layer.bias.shape, generator=generator) * 2 - 1) * bound)
    return policy.flatten(layers)


POLICIES = {"serene": SereneMLP, "tanh": TanhMLP, "relu": ReluMLP}


def make_policy(kind: str, sizes: tuple[int, ...] | list[int], **options) -> BatchedMLP:
    """Build a policy family by name (``serene`` or ``tanh``)."""
    if kind not in POLICIES:
        raise KeyError(f"unknown policy kind {kind!r}; known: {', '.join(sorted(POLICIES))}")
    return POLICIES[kind](sizes, **options)


PAPER_HIDDEN: dict[str, tuple[int, ...]] = {
    "hardmaze": (5, 5),  # 5 -> 5 -> 5 -> 2: 63 genes
    "curling": (5, 5, 5),  # 6 -> 5 -> 5 -> 5 -> 2: 94 genes
    "redundant-arm": (5, 5),  # 20 -> 5 -> 5 -> 20: 228 genes
}
"""Hidden layers of the SERENE-family policy per environment, as in the papers."""


def serene_sizes(
    obs_size: int,
    action_size: int,
    hidden: tuple[int, ...] | list[int] | None = None,
    *,
    env: str | None = None,
) -> tuple:
    """Layer sizes of the SERENE policy: ``hidden`` if given, else the papers' hidden layers
    for ``env`` (:data:`PAPER_HIDDEN`), else two hidden layers of 5."""
    if hidden is None:
        hidden = PAPER_HIDDEN.get(env or "", (5, 5))
    return (obs_size, *hidden, action_size)
