"""SeaFormer for semantic segmentation, written in Paddle.

Paper: Qiang Wan et al., "SeaFormer: Squeeze-enhanced Axial Transformer for
Mobile Semantic Segmentation", ICLR 2023 (https://arxiv.org/abs/2301.13156).

The network has two branches:

* the *spatial branch*: MobileNetV2 inverted-residual stages (``smb1`` ..
  ``smb5``) that take the image down to 1/64; the 1/8 output of ``smb2`` is
  the detailed feature the head works on;
* the *context branch*: the last stages' outputs go through stacks of
  squeeze-enhanced axial transformer blocks (``trans1`` ..), each made of a
  squeeze-enhanced axial attention (with its detail-enhancement kernel) and a
  convolutional MLP.

The light segmentation head fuses them with *fusion blocks*: the context
feature is turned into a sigmoid gate, upsampled and multiplied into the
spatial feature, one context stage after the other; then a (depthwise) 1x1
ConvBNReLU and a 1x1 classifier give logits at 1/8, resized to the input.

Layer and parameter names follow PaddleSeg's ``SeaFormer`` backbone and
``SeaFormerSeg`` model exactly (e.g. ``backbone.smb1.stem_block.0._conv.weight``),
so their checkpoints load by name.  The numerics follow it as well: BatchNorm
with epsilon 1e-5, ReLU in the MobileNetV2 stages, ReLU6 in the transformer
blocks, ``nn.Hardsigmoid`` (slope 1/6) for the gates, row/column positional
embeddings of length 16 resized linearly (align_corners=False) to the current
axis length.  Any input size works: strided convolutions pad by ``k // 2`` and
the head resizes every gate to the spatial feature and the logits to the input.
"""

import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

# Variant arguments, as PaddleSeg's ``SeaFormer_<variant>`` factories and the
# ``seaformer_<variant>_ade20k_512x512_160k.yml`` configs define them.
# ``cfgs[i]`` lists the inverted-residual blocks of stage ``smb{i+1}`` as
# ``[kernel_size, expand_ratio, out_channels, stride]``; ``channels[i]`` is the
# input width of that stage (``channels[0]``: the stem's output width).
SEAFORMER_VARIANTS = {
    "tiny": {
        "backbone": {
            "cfgs": [
                [[3, 1, 16, 1], [3, 4, 16, 2], [3, 3, 16, 1]],
                [[5, 3, 32, 2], [5, 3, 32, 1]],
                [[3, 3, 64, 2], [3, 3, 64, 1]],
                [[5, 3, 128, 2]],
                [[3, 6, 160, 2]],
            ],
            "channels": [16, 16, 32, 64, 128, 160],
            "emb_dims": [128, 160],
            "key_dims": [16, 24],
            "depths": [2, 2],
            "num_heads": 4,
            "attn_ratios": 2,
            "mlp_ratios": [2, 4],
            "drop_path_rate": 0.1,
        },
        "feat_channels": [32, 128, 160],
        "head": {
            "in_index": [0, 1, 2],
            "head_channels": 96,
            "embed_dims": [64, 96],
            "is_dw": True,
            "dropout_ratio": 0.1,
        },
    },
    "small": {
        "backbone": {
            "cfgs": [
                [[3, 1, 16, 1], [3, 4, 24, 2], [3, 3, 24, 1]],
                [[5, 3, 48, 2], [5, 3, 48, 1]],
                [[3, 3, 96, 2], [3, 3, 96, 1]],
                [[5, 4, 160, 2]],
                [[3, 6, 192, 2]],
            ],
            "channels": [16, 24, 48, 96, 160, 192],
            "emb_dims": [160, 192],
            "key_dims": [16, 24],
            "depths": [3, 3],
            "num_heads": 6,
            "attn_ratios": 2,
            "mlp_ratios": [2, 4],
            "drop_path_rate": 0.1,
        },
        "feat_channels": [48, 160, 192],
        "head": {
            "in_index": [0, 1, 2],
            "head_channels": 128,
            "embed_dims": [96, 128],
            "is_dw": True,
            "dropout_ratio": 0.1,
        },
    },
    "base": {
        "backbone": {
            "cfgs": [
                [[3, 1, 16, 1], [3, 4, 32, 2], [3, 3, 32, 1]],
                [[5, 3, 64, 2], [5, 3, 64, 1]],
                [[3, 3, 128, 2], [3, 3, 128, 1]],
                [[5, 4, 192, 2]],
                [[3, 6, 256, 2]],
            ],
            "channels": [16, 32, 64, 128, 192, 256],
            "emb_dims": [192, 256],
            "key_dims": [16, 24],
            "depths": [4, 4],
            "num_heads": 8,
            "attn_ratios": 2,
            "mlp_ratios": [2, 4],
            "drop_path_rate": 0.1,
        },
        "feat_channels": [64, 192, 256],
        "head": {
            "in_index": [0, 1, 2],
            "head_channels": 160,
            "embed_dims": [128, 160],
            "is_dw": True,
            "dropout_ratio": 0.1,
        },
    },
    "large": {
        "backbone": {
            "cfgs": [
                [[3, 3, 32, 1], [3, 4, 64, 2], [3, 4, 64, 1]],
                [[5, 4, 128, 2], [5, 4, 128, 1]],
                [[3, 4, 192, 2], [3, 4, 192, 1]],
                [[5, 4, 256, 2]],
                [[3, 6, 320, 2]],
            ],
            "channels": [32, 64, 128, 192, 256, 320],
            "emb_dims": [192, 256, 320],
            "key_dims": [16, 20, 24],
            "depths": [3, 3, 3],
            "num_heads": 8,
            "attn_ratios": 2,
            "mlp_ratios": [2, 4, 6],
            "drop_path_rate": 0.1,
        },
        "feat_channels": [128, 192, 256, 320],
        "head": {
            "in_index": [0, 1, 2, 3],
            "head_channels": 192,
            "embed_dims": [128, 160, 192],
            "is_dw": True,
            "dropout_ratio": 0.1,
        },
    },
}


def _make_divisible(value, divisor=8):
    """Round a channel count to a multiple of ``divisor`` (MobileNet rule:
    never more than 10% below the requested value)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


# --------------------------------------------------------------------------
# Basic layers
# --------------------------------------------------------------------------


class ConvBN(nn.Layer):
    """Convolution without bias followed by BatchNorm (the paper's
    ``Conv-BN``).  Sub-layer names ``_conv``/``_batch_norm`` match PaddleSeg's
    ``layers.ConvBN``."""

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1,
                 padding=None, groups=1):
        super().__init__()
        if padding is None:
            padding = kernel_size // 2
        self._conv = nn.Conv2D(in_channels, out_channels, kernel_size,
                               stride=stride, padding=padding, groups=groups,
                               bias_attr=False)
        self._batch_norm = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        return self._batch_norm(self._conv(x))


class ConvBNReLU(ConvBN):
    """``ConvBN`` followed by ReLU (the head's ``linear_fuse``)."""

    def forward(self, x):
        return F.relu(super().forward(x))


class DropPath(nn.Layer):
    """Stochastic depth: in training, drop a whole residual branch per sample
    with probability ``drop_prob`` and rescale the kept ones."""

    def __init__(self, drop_prob=0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1.0 - self.drop_prob
        mask_shape = [x.shape[0]] + [1] * (x.ndim - 1)
        mask = paddle.floor(keep_prob + paddle.rand(mask_shape, dtype=x.dtype))
        return x / keep_prob * mask


# --------------------------------------------------------------------------
# Spatial branch: MobileNetV2 stages
# --------------------------------------------------------------------------


class InvertedResidual(nn.Layer):
    """MobileNetV2 inverted residual: 1x1 expansion (skipped when the ratio is
    1), depthwise kxk (carries the stride), linear 1x1 projection; identity
    shortcut when stride is 1 and the width is unchanged."""

    def __init__(self, in_channels, out_channels, kernel_size, stride,
                 expand_ratio, activation=nn.ReLU):
        super().__init__()
        assert stride in (1, 2), "stride must be 1 or 2"
        hidden = int(round(in_channels * expand_ratio))
        self.use_shortcut = stride == 1 and in_channels == out_channels
        modules = []
        if expand_ratio != 1:
            modules += [ConvBN(in_channels, hidden, 1), activation()]
        modules += [
            ConvBN(hidden, hidden, kernel_size, stride=stride,
                   padding=kernel_size // 2, groups=hidden),
            activation(),
            ConvBN(hidden, out_channels, 1),
        ]
        self.conv = nn.Sequential(*modules)
        self.out_channels = out_channels

    def forward(self, x):
        out = self.conv(x)
        return x + out if self.use_shortcut else out


class StackedMV2Block(nn.Layer):
    """One stage of the spatial branch (``smb{i}``): an optional stride-2 3x3
    stem (first stage only) then the inverted residuals ``layer1``, ``layer2``,
    ... listed in ``cfgs`` as ``[kernel, expand_ratio, out_channels, stride]``.
    PaddleSeg builds these stages with plain ReLU."""

    def __init__(self, cfgs, in_channels, stem, image_channels=3,
                 activation=nn.ReLU):
        super().__init__()
        self.stem = stem
        if stem:
            self.stem_block = nn.Sequential(
                ConvBN(image_channels, in_channels, 3, stride=2, padding=1),
                activation())
        self.layer_names = []
        for i, (kernel, expand_ratio, out_channels, stride) in enumerate(cfgs):
            out_channels = _make_divisible(out_channels)
            name = f"layer{i + 1}"
            self.add_sublayer(name, InvertedResidual(
                in_channels, out_channels, kernel, stride, expand_ratio,
                activation))
            self.layer_names.append(name)
            in_channels = out_channels
        self.out_channels = in_channels

    def forward(self, x):
        if self.stem:
            x = self.stem_block(x)
        for name in self.layer_names:
            x = getattr(self, name)(x)
        return x


# --------------------------------------------------------------------------
# Context branch: squeeze-enhanced axial transformer
# --------------------------------------------------------------------------


class SqueezeAxialPositionalEmbedding(nn.Layer):
    """Learned positional embedding along one squeezed axis (a row or a
    column).  Stored at length 16 and resized by linear interpolation
    (align_corners=False) to the current axis length, then added to the
    squeezed ``B x C x L`` tokens."""

    def __init__(self, dim, length=16):
        super().__init__()
        self.pos_embed = self.create_parameter(
            shape=[1, dim, length], dtype="float32",
            default_initializer=nn.initializer.Normal(0.0, 1.0))

    def forward(self, x):
        length = x.shape[-1]
        pos = F.interpolate(self.pos_embed, size=[length], mode="linear",
                            align_corners=False, data_format="NCW")
        return x + pos


class AxialAttention1D(nn.Layer):
    """Multi-head attention over one squeezed axis (a helper of
    ``SeaAttention``, holds no parameters): q, k, v of shape ``B x C x L``
    (heads stacked along C) attend along L; the result is ``B x Cv x L``."""

    def __init__(self, num_heads, scale):
        super().__init__()
        self.num_heads = num_heads
        self.scale = scale

    def forward(self, q, k, v):
        b, _, length = q.shape
        q = q.reshape([b, self.num_heads, -1, length]).transpose([0, 1, 3, 2])
        k = k.reshape([b, self.num_heads, -1, length])
        v = v.reshape([b, self.num_heads, -1, length]).transpose([0, 1, 3, 2])
        attn = F.softmax(paddle.matmul(q, k) * self.scale, axis=-1)
        out = paddle.matmul(attn, v)  # B x heads x L x d
        return out.transpose([0, 1, 3, 2]).reshape([b, -1, length])


class SeaAttention(nn.Layer):
    """Squeeze-enhanced axial attention (paper Sec. 3.2, Fig. 3).

    * q, k, v: 1x1 ConvBN projections (``to_q``, ``to_k``, ``to_v``);
    * detail enhancement kernel: concat(q, k, v) -> depthwise 3x3 ConvBN
      (``dwconv``) -> activation -> 1x1 ConvBN (``pwconv``) back to ``dim``;
    * squeeze axial attention: q/k/v averaged over columns give row tokens
      and averaged over rows give column tokens; q and k get their axial
      positional embeddings (``pos_emb_row{q,k}``, ``pos_emb_column{q,k}``);
      attention along each axis, each followed by act + 1x1 ConvBN
      (``proj_encode_row`` / ``proj_encode_column``); the row and column
      results broadcast-add back onto v;
    * act + 1x1 ConvBN (``proj``) back to ``dim``, squashed by a hard sigmoid,
      gates the detail-enhanced feature.
    """

    def __init__(self, dim, key_dim, num_heads, attn_ratio=2,
                 activation=nn.ReLU6):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.nh_kd = key_dim * num_heads
        self.dh = int(attn_ratio * key_dim) * num_heads

        self.to_q = ConvBN(dim, self.nh_kd, 1)
        self.to_k = ConvBN(dim, self.nh_kd, 1)
        self.to_v = ConvBN(dim, self.dh, 1)

        self.proj = nn.Sequential(activation(), ConvBN(self.dh, dim, 1))
        self.proj_encode_row = nn.Sequential(activation(),
                                             ConvBN(self.dh, self.dh, 1))
        self.pos_emb_rowq = SqueezeAxialPositionalEmbedding(self.nh_kd)
        self.pos_emb_rowk = SqueezeAxialPositionalEmbedding(self.nh_kd)
        self.proj_encode_column = nn.Sequential(activation(),
                                                ConvBN(self.dh, self.dh, 1))
        self.pos_emb_columnq = SqueezeAxialPositionalEmbedding(self.nh_kd)
        self.pos_emb_columnk = SqueezeAxialPositionalEmbedding(self.nh_kd)

        qkv_channels = 2 * self.nh_kd + self.dh
        self.dwconv = ConvBN(qkv_channels, qkv_channels, 3, padding=1,
                             groups=qkv_channels)
        self.act = activation()
        self.pwconv = ConvBN(qkv_channels, dim, 1)
        self.sigmoid = nn.Hardsigmoid()
        self.axial_attention = AxialAttention1D(num_heads, key_dim ** -0.5)

    def forward(self, x):
        b, _, h, w = x.shape
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)

        # Detail enhancement kernel.
        detail = self.pwconv(self.act(self.dwconv(
            paddle.concat([q, k, v], axis=1))))

        # Squeeze axial attention: rows (average over W), columns (over H).
        row = self.axial_attention(self.pos_emb_rowq(q.mean(-1)),
                                   self.pos_emb_rowk(k.mean(-1)), v.mean(-1))
        row = self.proj_encode_row(row.reshape([b, self.dh, h, 1]))
        column = self.axial_attention(self.pos_emb_columnq(q.mean(-2)),
                                      self.pos_emb_columnk(k.mean(-2)),
                                      v.mean(-2))
        column = self.proj_encode_column(column.reshape([b, self.dh, 1, w]))

        context = v + (row + column)
        return self.sigmoid(self.proj(context)) * detail


class Mlp(nn.Layer):
    """Feed-forward network of a SeaFormer block: 1x1 ConvBN expansion,
    depthwise 3x3 convolution with bias, activation, 1x1 ConvBN projection."""

    def __init__(self, in_features, hidden_features, activation=nn.ReLU6,
                 drop=0.0):
        super().__init__()
        self.fc1 = ConvBN(in_features, hidden_features, 1)
        self.dwconv = nn.Conv2D(hidden_features, hidden_features, 3,
                                padding=1, groups=hidden_features)
        self.act = activation()
        self.fc2 = ConvBN(hidden_features, in_features, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class SeaFormerBlock(nn.Layer):
    """One squeeze-enhanced axial transformer block: ``x + attn(x)`` then
    ``x + mlp(x)``, both residual branches under stochastic depth."""

    def __init__(self, dim, key_dim, num_heads, mlp_ratio, attn_ratio,
                 drop_path=0.0, activation=nn.ReLU6):
        super().__init__()
        self.attn = SeaAttention(dim, key_dim, num_heads, attn_ratio,
                                 activation)
        self.drop_path = DropPath(drop_path)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), activation)

    def forward(self, x):
        x = x + self.drop_path(self.attn(x))
        return x + self.drop_path(self.mlp(x))


class SeaFormerStage(nn.Layer):
    """A stack of SeaFormer blocks at one resolution (``trans{i}``), with
    stochastic-depth rates rising linearly from 0 to ``drop_path_rate``."""

    def __init__(self, depth, dim, key_dim, num_heads, mlp_ratio, attn_ratio,
                 drop_path_rate=0.0, activation=nn.ReLU6):
        super().__init__()
        rates = ([drop_path_rate * i / (depth - 1) for i in range(depth)]
                 if depth > 1 else [0.0])
        self.transformer_blocks = nn.LayerList([
            SeaFormerBlock(dim, key_dim, num_heads, mlp_ratio, attn_ratio,
                           rate, activation) for rate in rates
        ])

    def forward(self, x):
        for block in self.transformer_blocks:
            x = block(x)
        return x


# --------------------------------------------------------------------------
# Backbone, fusion blocks, full model
# --------------------------------------------------------------------------


class SeaFormerBackbone(nn.Layer):
    """SeaFormer backbone: MobileNetV2 stages ``smb1``..``smb5`` (1/4 .. 1/64);
    the last ``len(depths)`` stages are each followed by a transformer stage
    ``trans{i}``.  Returns the 1/8 feature of ``smb2`` and every transformer
    stage's output (tiny/small/base: 1/8, 1/32, 1/64; large: 1/8, 1/16,
    1/32, 1/64)."""

    def __init__(self, cfgs, channels, emb_dims, key_dims, depths, num_heads,
                 attn_ratios=2, mlp_ratios=(2, 4), drop_path_rate=0.1,
                 in_channels=3, activation=nn.ReLU6):
        super().__init__()
        assert len(emb_dims) == len(key_dims) == len(depths) == len(mlp_ratios)
        self.num_smb = len(cfgs)
        self.num_trans = len(depths)
        for i, stage_cfgs in enumerate(cfgs):
            self.add_sublayer(f"smb{i + 1}", StackedMV2Block(
                stage_cfgs, channels[i], stem=(i == 0),
                image_channels=in_channels))
        for i in range(self.num_trans):
            self.add_sublayer(f"trans{i + 1}", SeaFormerStage(
                depths[i], emb_dims[i], key_dims[i], num_heads, mlp_ratios[i],
                attn_ratios, drop_path_rate, activation))
        self.feat_channels = [channels[2]] + list(channels[-self.num_trans:])
        self._init_weights()

    def _init_weights(self):
        """Official SeaFormer init: convolutions ~ N(0, sqrt(2 / fan_out)),
        BatchNorm scale 1 / shift 0 (Paddle's default)."""
        for layer in self.sublayers():
            if isinstance(layer, nn.Conv2D):
                k_h, k_w = layer._kernel_size
                fan_out = k_h * k_w * layer._out_channels // layer._groups
                layer.weight.set_value(paddle.normal(
                    0.0, math.sqrt(2.0 / fan_out), layer.weight.shape))
                if layer.bias is not None:
                    layer.bias.set_value(paddle.zeros_like(layer.bias))

    def forward(self, x):
        outputs = []
        first_trans_stage = self.num_smb - self.num_trans
        for i in range(self.num_smb):
            x = getattr(self, f"smb{i + 1}")(x)
            if i == 1:
                outputs.append(x)  # 1/8 spatial feature
            if i >= first_trans_stage:
                x = getattr(self, f"trans{i - first_trans_stage + 1}")(x)
                outputs.append(x)
        return outputs


class FusionBlock(nn.Layer):
    """Fusion block of the light segmentation head: the spatial feature
    (1x1 ConvBN ``local_embedding``) times the upsampled hard-sigmoid gate of
    the context feature (1x1 ConvBN ``global_act``)."""

    def __init__(self, local_channels, global_channels, embed_dim):
        super().__init__()
        self.local_embedding = ConvBN(local_channels, embed_dim, 1)
        self.global_act = ConvBN(global_channels, embed_dim, 1)
        self.act = nn.Hardsigmoid()

    def forward(self, x_local, x_global):
        h, w = x_local.shape[2:]
        gate = F.interpolate(self.act(self.global_act(x_global)), size=[h, w],
                             mode="bilinear", align_corners=False)
        return self.local_embedding(x_local) * gate


class SeaFormerSeg(nn.Layer):
    """SeaFormer segmentation model: backbone + light head.  The head fuses
    the 1/8 spatial feature with each context output in turn (``fuse1``,
    ``fuse2``, ...), then a 1x1 ConvBNReLU (``linear_fuse``, depthwise when
    ``is_dw``), dropout and the 1x1 classifier ``cls_seg``; the 1/8 logits
    are resized bilinearly to the input.  Returns ``[logits]``."""

    def __init__(self, backbone, num_classes=150, in_index=(0, 1, 2),
                 head_channels=160, embed_dims=(128, 160), is_dw=True,
                 dropout_ratio=0.1, align_corners=False):
        super().__init__()
        self.backbone = backbone
        self.in_index = list(in_index)
        self.embed_dims = list(embed_dims)
        self.align_corners = align_corners
        in_channels = backbone.feat_channels

        # Created before the fusion blocks, as in PaddleSeg (state-dict order).
        self.linear_fuse = ConvBNReLU(head_channels, head_channels, 1,
                                      groups=head_channels if is_dw else 1)
        self.dropout = nn.Dropout2D(dropout_ratio) if dropout_ratio > 0 else None
        self.cls_seg = nn.Conv2D(head_channels, num_classes, 1)
        for i, embed_dim in enumerate(self.embed_dims):
            local_channels = in_channels[0] if i == 0 else self.embed_dims[i - 1]
            self.add_sublayer(f"fuse{i + 1}", FusionBlock(
                local_channels, in_channels[i + 1], embed_dim))

    def forward(self, x):
        h, w = x.shape[2:]
        features = self.backbone(x)
        features = [features[i] for i in self.in_index]
        detail = features[0]
        for i in range(len(self.embed_dims)):
            detail = getattr(self, f"fuse{i + 1}")(detail, features[i + 1])
        feat = self.linear_fuse(detail)
        if self.dropout is not None:
            feat = self.dropout(feat)
        logits = self.cls_seg(feat)
        return [F.interpolate(logits, size=[h, w], mode="bilinear",
                              align_corners=self.align_corners)]


def build_seaformer(variant: str, num_classes: int = 150,
                    align_corners: bool = False) -> nn.Layer:
    """Build the full SeaFormerSeg model of ``variant`` (tiny, small, base or
    large) with randomly initialised weights."""
    if variant not in SEAFORMER_VARIANTS:
        raise ValueError(f"unknown SeaFormer variant {variant!r}; "
                         f"choose one of {sorted(SEAFORMER_VARIANTS)}")
    spec = SEAFORMER_VARIANTS[variant]
    backbone = SeaFormerBackbone(**spec["backbone"])
    assert backbone.feat_channels == spec["feat_channels"]
    return SeaFormerSeg(backbone, num_classes=num_classes,
                        align_corners=align_corners, **spec["head"])
