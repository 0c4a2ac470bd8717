"""The optimizer and learning-rate schedule of a model, from its config.

Every model's config (:class:`segzoo.ModelConfig`) says ``optimizer``
(``sgd``: momentum SGD with L2 weight decay, PaddleSeg's default; ``adamw``:
AdamW with decoupled weight decay), ``learning_rate``, ``weight_decay``,
``momentum``, ``warmup_iters``, ``lr_power`` and ``grad_clip``. The schedule
is a polynomial decay from ``learning_rate`` to 0 over the iterations after
the warm-up, ``lr = base · (1 - t/T)^power`` (``lr_power`` 1 is a linear
decay), preceded by a linear warm-up from ``base/1000`` over
``warmup_iters`` iterations when that is non-zero. A warm-up as long as the
whole run is shortened to half of it (and logged), so a short run still
decays.
"""

from __future__ import annotations

import logging

from ..errors import ConfigError

__all__ = ["build_scheduler", "build_optimizer", "effective_warmup"]

log = logging.getLogger("segzoo.train")


def effective_warmup(warmup_iters: int, total_iters: int) -> int:
    """The warm-up actually used: at most half of a run it would cover entirely."""
    if warmup_iters >= total_iters:
        return total_iters // 2
    return warmup_iters


def build_scheduler(config, total_iters: int):
    """A ``paddle.optimizer.lr.LRScheduler`` stepped once per iteration."""
    import paddle

    base = float(config.learning_rate)
    warmup = effective_warmup(int(config.warmup_iters), int(total_iters))
    if warmup != config.warmup_iters:
        log.warning(
            "warm-up of %d iterations is not shorter than the run (%d); using %d",
            config.warmup_iters,
            total_iters,
            warmup,
        )
    decay = paddle.optimizer.lr.PolynomialDecay(
        learning_rate=base, decay_steps=max(int(total_iters) - warmup, 1), end_lr=0.0, power=float(config.lr_power)
    )
    if warmup > 0:
        return paddle.optimizer.lr.LinearWarmup(
            learning_rate=decay, warmup_steps=warmup, start_lr=base / 1000.0, end_lr=base
        )
    return decay


def build_optimizer(config, parameters, scheduler):
    """The model's optimizer over ``parameters`` (see the module docstring)."""
    import paddle

    clip = paddle.nn.ClipGradByGlobalNorm(float(config.grad_clip)) if config.grad_clip else None
    if config.optimizer == "adamw":
        return paddle.optimizer.AdamW(
            learning_rate=scheduler,
            parameters=parameters,
            weight_decay=float(config.weight_decay),
            grad_clip=clip,
        )
    if config.optimizer == "sgd":
        decay = paddle.regularizer.L2Decay(float(config.weight_decay)) if config.weight_decay else None
        return paddle.optimizer.Momentum(
            learning_rate=scheduler,
            momentum=float(config.momentum),
            parameters=parameters,
            weight_decay=decay,
            grad_clip=clip,
        )
    raise ConfigError(f"Model.optimizer: {config.optimizer!r} is not supported; use sgd or adamw")
