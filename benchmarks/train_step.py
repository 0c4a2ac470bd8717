"""Time one training step (forward, loss, backward, AdamW step) of segzoo against paddleseg's own code.

The peer is the same paddleseg 2.8.0 network with paddleseg's original
``avg_max_reduce_channel_helper`` put back (channel max through ``paddle.max``,
whose backward is slow on the CPU); segzoo's is the one ``segzoo_plugins.paddleseg_compat``
installs (``paddle.topk`` when a gradient flows). Both run in this process on
the same weights and batch, alternating round by round, so a change in the
machine's load hits both alike. Prints the median step time of each and the
ratio segzoo / paddleseg.

    python benchmarks/train_step.py                                  # PP-LiteSeg-T and -B, 128x128, batch 8
    python benchmarks/train_step.py --models PP-LiteSeg-T --size 256 --batch-size 4 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["PP-LiteSeg-T", "PP-LiteSeg-B"])
    p.add_argument("--size", type=int, default=128, help="side of the square training crop")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3, help="rounds of --steps steps per side")
    p.add_argument("--steps", type=int, default=4, help="timed steps per round (after one warm-up step)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import paddle

    from segzoo_plugins import paddleseg_compat as compat
    from segzoo.models import build_model
    from segzoo.registry import get_registry

    paddle.set_device("cpu")
    compat.import_paddleseg()
    from paddleseg.models.layers import tensor_fusion_helper as helper

    sides = {"segzoo": helper.avg_max_reduce_channel_helper,
             "paddleseg": compat.ORIGINALS["tensor_fusion_helper.avg_max_reduce_channel_helper"]}
    registry = get_registry()
    print(f"training step, {args.batch_size}x3x{args.size}x{args.size}, CPU ({os.cpu_count()} cores), "
          f"paddle {paddle.__version__}")
    for name in args.models:
        model_config = registry.config(name, num_classes=4, crop_size=(args.size, args.size))
        net = build_model(name, model_config)
        net.train()
        opt = paddle.optimizer.AdamW(1e-4, parameters=net.parameters())
        paddle.seed(0)
        x = paddle.randn([args.batch_size, 3, args.size, args.size])
        y = paddle.randint(0, 4, [args.batch_size, args.size, args.size]).astype("int64")

        def step():
            out = registry.train_step(name, model_config, net, x, y)
            out["loss"].backward()
            opt.step()
            opt.clear_grad()

        times: dict[str, list[float]] = {side: [] for side in sides}
        try:
            for _ in range(args.rounds):
                for side, fn in sides.items():
                    helper.avg_max_reduce_channel_helper = fn
                    step()  # warm-up after the switch
                    for _ in range(args.steps):
                        t0 = time.perf_counter()
                        step()
                        times[side].append(time.perf_counter() - t0)
        finally:
            helper.avg_max_reduce_channel_helper = sides["segzoo"]
        med = {side: statistics.median(v) * 1000 for side, v in times.items()}
        print(f"{name:14s} segzoo {med['segzoo']:7.1f} ms   paddleseg {med['paddleseg']:7.1f} ms   "
              f"segzoo / paddleseg {med['segzoo'] / med['paddleseg']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
