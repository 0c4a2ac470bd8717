"""SegFormer's all-MLP decoder as exported: the fuse convolution moved before the upsampling.

paddleseg's decoder projects each encoder stage ``c_i`` to E channels (a
Linear per pixel, ``P_i c_i + b_i``), upsamples the three coarser ones to the
1/4 map, concatenates the four (4E channels) and fuses them with a 1×1
convolution ``W = [W_4 W_3 W_2 W_1]`` to E channels, at 1/4 resolution. A
per-pixel linear map and a bilinear upsampling commute (the upsampling mixes
pixels with weights that sum to 1, alike for every channel), so::

    W · concat(up(P_i c_i + b_i)) = Σ_i up((W_i P_i) c_i + W_i b_i)

The exported graph computes the right-hand side: one E×C_i product per stage
at the stage's own resolution, three upsamplings of E channels and a sum,
instead of a 4E-channel concatenation and a 4E→E convolution at 1/4 of the
input's size. At 512×512 that is 8.6 → 0.5 GFLOP in SegFormer-B0's decoder
and 77 → 2.8 GFLOP in B2–B5's (E = 768).

The folded matrices ``W_i P_i`` are products of the parameters inside the
graph, so parameters, names and state dicts are unchanged (a PaddleX export's
weights still map onto the network), and the ONNX engines fold the products
into constants when they load the model. Dygraph (training, and
``engine="dygraph"``, the reference) keeps paddleseg's arithmetic; the two
agree to float rounding (``tests/plugins/segformer``).
"""

from __future__ import annotations

from typing import Any

_CLASSES: dict = {}


def segformer_class(base: Any) -> Any:
    """``base`` (paddleseg's ``SegFormer``) whose static graph uses the folded decoder (built once per base)."""
    if base not in _CLASSES:
        import paddle
        import paddle.nn.functional as F

        class SegFormer(base):
            __doc__ = f"paddleseg's SegFormer; exported, its decoder is folded ({__name__})."

            def forward(self, x):
                if self.training or paddle.in_dynamic_mode():
                    return super().forward(x)
                return self.folded_forward(x)

            def folded_forward(self, x):
                """The network's logits with the decoder computed as in the module docstring."""
                c1, c2, c3, c4 = self.backbone(x)
                conv = self.linear_fuse._conv
                e = int(conv.weight.shape[0])
                fuse = conv.weight.reshape([e, -1])  # E × 4E, column blocks for c4, c3, c2, c1
                size = paddle.shape(c1)[2:]
                total = None
                stages = ((c4, self.linear_c4), (c3, self.linear_c3), (c2, self.linear_c2), (c1, self.linear_c1))
                for k, (feat, mlp) in enumerate(stages):
                    w_k = fuse[:, k * e:(k + 1) * e]
                    folded = paddle.matmul(w_k, mlp.proj.weight, transpose_y=True)  # E × C_i (proj.weight: C_i × E)
                    bias = paddle.matmul(w_k, mlp.proj.bias.unsqueeze(1)).squeeze(1)
                    z = F.conv2d(feat, folded.unsqueeze(-1).unsqueeze(-1), bias=bias)
                    if k < 3:
                        z = F.interpolate(z, size=size, mode="bilinear", align_corners=self.align_corners)
                    total = z if total is None else total + z
                if conv.bias is not None:
                    total = total + conv.bias.reshape([1, -1, 1, 1])
                fused = self.linear_fuse._relu(self.linear_fuse._batch_norm(total))
                logit = self.linear_pred(self.dropout(fused))
                return [F.interpolate(logit, size=paddle.shape(x)[2:], mode="bilinear",
                                      align_corners=self.align_corners)]

        SegFormer.__name__ = SegFormer.__qualname__ = base.__name__
        _CLASSES[base] = SegFormer
    return _CLASSES[base]
