"""The exponential moving average (EMA) of a model's weights during training, saved as ``model.pdema``.

After every optimizer step each floating-point tensor of the model's state
dict (parameters and BatchNorm statistics) is folded into its average::

    ema = d * ema + (1 - d) * weight,    d = min(Train.ema_decay, 1 - 1 / (iteration + 1))

which is PaddleSeg's ramp: early iterations, whose average would be dominated
by the initial weights, use a smaller factor. Tensors that are not floating
point are copied. The average starts from the weights training starts from
(after the initial weights are loaded).

The factor depends on the iteration only, so an average restored from a
checkpoint's ``model.pdema`` continues exactly where it stopped (resuming at
iteration N gives the same averages, bit for bit, as one uninterrupted run
on the CPU). ``model.pdema`` is a plain state dict with the model's names:
it loads wherever a ``model.pdparams`` does (``segzoo evaluate``, ``segzoo
export``, ``create_model(pretrained=...)``).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from ..errors import WeightsError

__all__ = ["WeightsEMA"]


def _copy(tensor):
    return tensor.detach().clone()


class WeightsEMA:
    """The running average of ``model``'s state dict (see the module docstring)."""

    def __init__(self, model: Any, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.state = {name: _copy(t) for name, t in model.state_dict().items()}

    def factor(self, iteration: int) -> float:
        """The decay used for the update after ``iteration`` (1-based)."""
        return min(self.decay, 1.0 - 1.0 / (iteration + 1))

    def update(self, model: Any, iteration: int) -> None:
        """Fold the model's weights after ``iteration`` into the average."""
        import paddle

        d = self.factor(iteration)
        with paddle.no_grad():
            for name, value in model.state_dict().items():
                avg = self.state[name]
                if paddle.is_floating_point(avg):
                    value = value.detach()
                    if value.dtype != avg.dtype:
                        value = value.astype(avg.dtype)
                    avg.scale_(d).add_(value * (1.0 - d))  # in place: the fastest form on the CPU
                else:
                    self.state[name] = _copy(value)

    def state_dict(self) -> dict:
        """The averaged weights, named as the model's state dict (what ``model.pdema`` holds)."""
        return dict(self.state)

    def load(self, state: dict, source: str = "model.pdema") -> None:
        """Continue from a saved average (a checkpoint's ``model.pdema``)."""
        import paddle

        missing = sorted(set(self.state) - set(state))
        if missing:
            raise WeightsError(
                f"{source}: the EMA weights lack {len(missing)} tensors of the model (e.g. {missing[0]!r}); "
                "is it a checkpoint of another model?"
            )
        restored = {}
        for name, mine in self.state.items():
            value = state[name]
            value = value if isinstance(value, paddle.Tensor) else paddle.to_tensor(value)
            if tuple(value.shape) != tuple(mine.shape):
                raise WeightsError(
                    f"{source}: {name} has shape {list(value.shape)}, the model {list(mine.shape)}"
                )
            restored[name] = _copy(value).astype(mine.dtype)
        self.state = restored

    @contextmanager
    def applied(self, model: Any) -> Iterator[Any]:
        """Run the block with the averaged weights in ``model``; its own weights come back exactly afterwards."""
        own = {name: _copy(t) for name, t in model.state_dict().items()}
        model.set_state_dict(self.state)
        try:
            yield model
        finally:
            model.set_state_dict(own)
