"""The peer: paddleseg 2.8.0's own networks, built as PaddleX's official configs build them.

segzoo's answers are checked against these, never against segzoo itself: each
network here is constructed from paddleseg's classes with the arguments of
PaddleX's model config (``../shared/MODELS.md``), without any segzoo code in the
network (no shape-free pooling, no folded decoder, no batch-safe MaskFormer),
then given segzoo's state dict (the names are paddleseg's, so every tensor
must load). :func:`reference_labels` runs it the way paddleseg's and PaddleX's
inference do: the image normalised, fed at its own size, the argmax taken.

SeaFormer has no paddleseg class: :data:`NO_PADDLESEG` names it, and its
network is checked against the official implementation's numerical fixture
in ``tests/plugins/seaformer``.
"""

from __future__ import annotations

import numpy as np

#: models paddleseg 2.8.0 has no network for (checked against the official fixture instead)
NO_PADDLESEG = ("SeaFormer_tiny", "SeaFormer_small", "SeaFormer_base", "SeaFormer_large")

#: the ``scale`` of ``moderate_weights`` under which a model's seeded masks of a photo are not one class
#: (OCRNet's deep head saturates at 2.0: one class, or two, where argmax ties would decide)
WEIGHT_SCALE = {"OCRNet_HRNet-W18": 0.5, "OCRNet_HRNet-W48": 0.5}


def weight_scale(name: str) -> float:
    return WEIGHT_SCALE.get(name, 2.0)


def _constructors():
    from segzoo_plugins.paddleseg_compat import import_paddleseg

    import_paddleseg()
    from paddleseg.models import OCRNet, PPLiteSeg, SegFormer, DeepLabV3, DeepLabV3P, MaskFormer
    from paddleseg.models.backbones import HRNet_W18, HRNet_W48, ResNet50_vd, ResNet101_vd, STDC1, STDC2
    from paddleseg.models.backbones import mix_transformer, swin_transformer

    def deeplab(cls, backbone, indices):
        return lambda n: cls(n, backbone(output_stride=8, multi_grid=[1, 2, 4]), backbone_indices=indices,
                             aspp_ratios=[1, 12, 24, 36], aspp_out_channels=256, align_corners=False)

    def segformer(variant, dim):
        return lambda n: SegFormer(n, getattr(mix_transformer, f"MixVisionTransformer_{variant}")(), embedding_dim=dim)

    def maskformer(variant):
        backbone = getattr(swin_transformer, f"SwinTransformer_{variant}_patch4_window7_224_maskformer")
        return lambda n: MaskFormer(n, backbone())

    table = {
        "Deeplabv3-R50": deeplab(DeepLabV3, ResNet50_vd, [3]),
        "Deeplabv3-R101": deeplab(DeepLabV3, ResNet101_vd, [3]),
        "Deeplabv3_Plus-R50": deeplab(DeepLabV3P, ResNet50_vd, [0, 3]),
        "Deeplabv3_Plus-R101": deeplab(DeepLabV3P, ResNet101_vd, [0, 3]),
        "OCRNet_HRNet-W18": lambda n: OCRNet(n, HRNet_W18(), backbone_indices=[0]),
        "OCRNet_HRNet-W48": lambda n: OCRNet(n, HRNet_W48(), backbone_indices=[0]),
        "PP-LiteSeg-T": lambda n: PPLiteSeg(n, STDC1(), arm_out_chs=[32, 64, 128], seg_head_inter_chs=[32, 64, 64]),
        "PP-LiteSeg-B": lambda n: PPLiteSeg(n, STDC2()),
        "MaskFormer_tiny": maskformer("tiny"),
        "MaskFormer_small": maskformer("small"),
    }
    for variant in ("B0", "B1"):
        table[f"SegFormer-{variant}"] = segformer(variant, 256)
    for variant in ("B2", "B3", "B4", "B5"):
        table[f"SegFormer-{variant}"] = segformer(variant, 768)
    return table


def reference_network(name: str, num_classes: int, state_dict: dict):
    """paddleseg's network for ``name`` (PaddleX's config) holding ``state_dict``, in eval mode.

    Every tensor of ``state_dict`` must fit a parameter of the same name and shape, and every
    parameter must be given: otherwise segzoo's network is not paddleseg's and this raises.
    """
    layer = _constructors()[name](num_classes)
    own = layer.state_dict()
    missing = sorted(set(own) - set(state_dict))
    extra = sorted(set(state_dict) - set(own))
    wrong = sorted(k for k in set(own) & set(state_dict) if list(own[k].shape) != list(state_dict[k].shape))
    if missing or extra or wrong:
        raise AssertionError(f"{name}: segzoo's state dict is not paddleseg's: missing {missing[:5]}, "
                             f"extra {extra[:5]}, other shapes {wrong[:5]}")
    layer.set_state_dict(state_dict)
    layer.eval()
    return layer


def reference_scores(layer, bgr: np.ndarray, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> np.ndarray:
    """paddleseg's class scores ``C×H×W`` for one BGR image fed at its own size (PaddleX's Normalize)."""
    import paddle

    rgb = bgr[:, :, ::-1].astype(np.float32) / 255.0
    x = ((rgb - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).transpose(2, 0, 1)
    with paddle.no_grad():
        out = layer(paddle.to_tensor(np.ascontiguousarray(x)[None]))
    return np.asarray(out[0].numpy()[0], np.float32)


def reference_labels(layer, bgr: np.ndarray, **norm) -> np.ndarray:
    """paddleseg's label map for one BGR image at its own size (the argmax of :func:`reference_scores`)."""
    return reference_scores(layer, bgr, **norm).argmax(0)


def tie_margin(scores: np.ndarray) -> np.ndarray:
    """Per pixel, the gap between the best and the second-best class score (argmax ties are tiny gaps)."""
    top2 = np.sort(scores, axis=0)[-2:]
    return top2[1] - top2[0]


#: the share of pixels that must agree with the peer
MIN_AGREEMENT = 0.999
#: a pixel whose two best reference scores are closer than this share of the score range is an argmax tie
TIE = 1e-3


def assert_agrees(mask: np.ndarray, scores: np.ndarray, what: str) -> float:
    """``mask`` equals the argmax of the peer's ``scores`` on >= 99.9 % of the pixels, or differs only at ties.

    A tie is a pixel whose best two reference scores are within :data:`TIE` of the score range: float
    rounding (a different kernel, fused operations, the order of a sum) may pick either class there. Deep
    attention networks with random weights amplify rounding, so their masks may differ at a few such
    pixels; a pixel that differs with a clear margin is a real difference and fails. Returns the agreement.
    """
    label = scores.argmax(0)
    assert mask.shape == label.shape, f"{what}: mask {mask.shape}, expected {label.shape}"
    differ = mask != label
    agree = 1.0 - float(differ.mean())
    if agree >= MIN_AGREEMENT:
        return agree
    margins = tie_margin(scores)[differ] / max(float(np.abs(scores).max()), 1e-12)
    clear = int((margins > TIE).sum())
    assert clear == 0, (
        f"{what}: {agree:.4%} of the pixels agree with paddleseg's network, and {clear} of the "
        f"{int(differ.sum())} that differ are not ties (largest margin {margins.max():.2e} of the score range)"
    )
    return agree


def paddlex_program(name: str, layer, out_dir, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
    """The inference folder PaddleX ships for ``name``, from ``layer`` (a :func:`reference_network`).

    Built as PaddleX builds its official models: paddleseg's ``WrappedModel(argmax)``, traced with a
    dynamic N×3×H×W by ``paddle.jit.to_static`` and saved by ``paddle.jit.save`` (PIR ``inference.json``),
    beside an ``inference.yml`` with PaddleX's ``Global`` and ``Deploy`` sections only (no ``segzoo:``).
    """
    from pathlib import Path

    import paddle
    import yaml
    from paddleseg.deploy.export import WrappedModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = [paddle.static.InputSpec(shape=[None, 3, None, None], dtype="float32", name="x")]
    static = paddle.jit.to_static(WrappedModel(layer, "argmax"), input_spec=spec, full_graph=True)
    paddle.jit.save(static, str(out / "inference"))
    deploy = {
        "model": "inference.json",
        "params": "inference.pdiparams",
        "transforms": [{"type": "Normalize", "mean": list(mean), "std": list(std)}],
        "input_shape": [-1, 3, -1, -1],
        "output_op": "argmax",
        "output_dtype": "int32",
    }
    (out / "inference.yml").write_text(yaml.safe_dump({"Deploy": deploy, "Global": {"model_name": name}}))
    return out


class _OwnNetwork:
    """A model without a paddleseg network (SeaFormer): segzoo's own layer, giving ``[scores]`` as paddleseg's do."""

    def __init__(self, name, config, layer):
        import segzoo

        self.registry, self.name, self.config, self.layer = segzoo.get_registry(), name, config, layer

    def __call__(self, x):
        return [self.registry.postprocess(self.name, self.config, self.layer(x))]


def seeded_peer(name: str):
    """``(config, layer, peer, program_layer)`` for ``name`` with seeded moderate weights.

    ``layer`` is segzoo's network; ``peer`` is paddleseg's network holding the same weights (segzoo's own
    layer called directly for :data:`NO_PADDLESEG` models), to compare with; ``program_layer`` is what
    PaddleX's program is traced from (:func:`paddlex_program`).
    """
    import paddle
    import segzoo

    from ..inference.conftest import moderate_weights

    registry = segzoo.get_registry()
    config = registry.config(name)
    paddle.seed(0)
    layer = registry.build_model(name, config)
    moderate_weights(layer, seed=0, scale=weight_scale(name))
    layer.eval()
    if name in NO_PADDLESEG:
        return config, layer, _OwnNetwork(name, config, layer), layer
    peer = reference_network(name, config.num_classes, layer.state_dict())
    return config, layer, peer, peer
