"""EfficientNet-Lite0 (ImageNet-1k) from a lukemelas-style state dict: a plain numpy
forward pass (the reference) and an ONNX graph builder (BatchNorm folded into the
convolutions).

Architecture (EfficientNet-Lite: no squeeze-excite, ReLU6, fixed stem/head):
    stem   conv3x3 s2 32, BN, ReLU6
    16 MBConv blocks: [expand 1x1, BN, ReLU6] -> depthwise kxk, BN, ReLU6 -> project 1x1, BN
                      (+ identity skip when stride 1 and in == out channels)
    head   conv1x1 1280, BN, ReLU6 -> feature map [B, 1280, 7, 7]
    global average pool -> fc 1000

Kernel sizes and channel counts come from the weights; the strides are those of
EfficientNet-B0 (stages 1..7: 1,2,2,2,1,2,1). Padding mode is a parameter: "same"
is TensorFlow's SAME (asymmetric for stride 2, extra pixel bottom/right), which is
what these converted TF weights expect; "symmetric" is k//2 on each side.
"""

from __future__ import annotations

import numpy as np

BN_EPS = 1e-3  # TF EfficientNet batch_norm_epsilon
N_BLOCKS = 16
STRIDE2_BLOCKS = {1, 3, 5, 11}  # first block of stages 2, 3, 4 and 6
INPUT_SIZE = 224


def block_stride(i: int) -> int:
    return 2 if i in STRIDE2_BLOCKS else 1


def pads_for(size: int, k: int, stride: int, mode: str) -> tuple[int, int]:
    """(before, after) padding of one spatial axis."""
    if mode == "symmetric":
        return k // 2, k // 2
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


# ---------------------------------------------------------------------------
# numpy reference


def _bn(x, sd, p):
    g, b = sd[p + ".weight"], sd[p + ".bias"]
    m, v = sd[p + ".running_mean"], sd[p + ".running_var"]
    s = g / np.sqrt(v + BN_EPS)
    return x * s[None, :, None, None] + (b - m * s)[None, :, None, None]


def _relu6(x):
    return np.clip(x, 0.0, 6.0)


def _pad(x, k, stride, mode):
    H, W = x.shape[2:]
    ph, pw = pads_for(H, k, stride, mode), pads_for(W, k, stride, mode)
    return np.pad(x, ((0, 0), (0, 0), ph, pw))


def _conv_full(x, w, stride, mode):
    """Dense conv (groups=1) via im2col. x [B,C,H,W], w [O,C,k,k]."""
    k = w.shape[-1]
    if k == 1 and stride == 1:
        return np.einsum("bchw,oc->bohw", x, w[:, :, 0, 0], optimize=True)
    xp = _pad(x, k, stride, mode)
    B, C, Hp, Wp = xp.shape
    Ho, Wo = (Hp - k) // stride + 1, (Wp - k) // stride + 1
    cols = np.empty((B, C, k, k, Ho, Wo), np.float32)
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[:, :, i : i + stride * Ho : stride, j : j + stride * Wo : stride]
    return np.einsum("bcijhw,ocij->bohw", cols, w, optimize=True)


def _conv_dw(x, w, stride, mode):
    """Depthwise conv. x [B,C,H,W], w [C,1,k,k]."""
    k = w.shape[-1]
    xp = _pad(x, k, stride, mode)
    B, C, Hp, Wp = xp.shape
    Ho, Wo = (Hp - k) // stride + 1, (Wp - k) // stride + 1
    out = np.zeros((B, C, Ho, Wo), np.float64)
    for i in range(k):
        for j in range(k):
            out += xp[:, :, i : i + stride * Ho : stride, j : j + stride * Wo : stride] * w[None, :, 0, i, j, None, None]
    return out.astype(np.float32)


def numpy_features(sd: dict, x: np.ndarray, pad_mode: str = "same") -> np.ndarray:
    """x [B,3,224,224] float32 -> final feature map [B,1280,7,7]."""
    x = _relu6(_bn(_conv_full(x, sd["_conv_stem.weight"], 2, pad_mode), sd, "_bn0"))
    for i in range(N_BLOCKS):
        p = f"_blocks.{i}."
        inp = x
        if p + "_expand_conv.weight" in sd:
            x = _relu6(_bn(_conv_full(x, sd[p + "_expand_conv.weight"], 1, pad_mode), sd, p + "_bn0"))
        x = _relu6(_bn(_conv_dw(x, sd[p + "_depthwise_conv.weight"], block_stride(i), pad_mode), sd, p + "_bn1"))
        x = _bn(_conv_full(x, sd[p + "_project_conv.weight"], 1, pad_mode), sd, p + "_bn2")
        if block_stride(i) == 1 and inp.shape[1] == x.shape[1]:
            x = x + inp
        x = x.astype(np.float32)
    x = _relu6(_bn(_conv_full(x, sd["_conv_head.weight"], 1, pad_mode), sd, "_bn1"))
    return x.astype(np.float32)


def numpy_logits(sd: dict, feats: np.ndarray) -> np.ndarray:
    pooled = feats.mean(axis=(2, 3))
    return (pooled @ sd["_fc.weight"].T + sd["_fc.bias"]).astype(np.float32)


# ---------------------------------------------------------------------------
# ONNX graph


class GraphBuilder:
    """Accumulates ONNX nodes and initializers with unique names."""

    def __init__(self):
        self.nodes, self.inits, self._n = [], [], 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, arr: np.ndarray, hint: str = "c") -> str:
        from onnx import numpy_helper

        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, n_out: int = 1, **attrs):
        from onnx import helper

        outs = [self.fresh(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.fresh("n_" + op_type), **attrs))
        return outs[0] if n_out == 1 else outs


def _fold_bn(w: np.ndarray, sd: dict, p: str) -> tuple[np.ndarray, np.ndarray]:
    g, b = sd[p + ".weight"], sd[p + ".bias"]
    m, v = sd[p + ".running_mean"], sd[p + ".running_var"]
    s = (g / np.sqrt(v.astype(np.float64) + BN_EPS)).astype(np.float64)
    wf = (w.astype(np.float64) * s[:, None, None, None]).astype(np.float32)
    bf = (b - m * s).astype(np.float32)
    return wf, bf


def onnx_features(gb: GraphBuilder, sd: dict, x: str, pad_mode: str = "same") -> str:
    """Append the backbone to `gb`; input tensor name `x` [B,3,224,224]; returns the
    name of the [B,1280,7,7] feature map."""
    size = INPUT_SIZE
    six = gb.const(np.array(6.0, np.float32), "six")
    zero = gb.const(np.array(0.0, np.float32), "zero")

    def conv_bn(x, wkey, bnkey, stride, group, act, size):
        w, b = _fold_bn(sd[wkey], sd, bnkey)
        k = w.shape[-1]
        ph, pw = pads_for(size, k, stride, pad_mode), pads_for(size, k, stride, pad_mode)
        y = gb.op(
            "Conv", [x, gb.const(w, "w"), gb.const(b, "b")], "conv",
            kernel_shape=[k, k], strides=[stride, stride], pads=[ph[0], pw[0], ph[1], pw[1]], group=group,
        )
        if act:
            y = gb.op("Clip", [y, zero, six], "relu6")
        return y, -(-size // stride)

    x, size = conv_bn(x, "_conv_stem.weight", "_bn0", 2, 1, True, size)
    for i in range(N_BLOCKS):
        p = f"_blocks.{i}."
        inp, cin = x, None
        if p + "_expand_conv.weight" in sd:
            cin = sd[p + "_expand_conv.weight"].shape[1]
            x, size = conv_bn(x, p + "_expand_conv.weight", p + "_bn0", 1, 1, True, size)
        dw = sd[p + "_depthwise_conv.weight"]
        cin = cin if cin is not None else dw.shape[0]
        x, size = conv_bn(x, p + "_depthwise_conv.weight", p + "_bn1", block_stride(i), dw.shape[0], True, size)
        x, size = conv_bn(x, p + "_project_conv.weight", p + "_bn2", 1, 1, False, size)
        if block_stride(i) == 1 and cin == sd[p + "_project_conv.weight"].shape[0]:
            x = gb.op("Add", [x, inp], "skip")
    x, size = conv_bn(x, "_conv_head.weight", "_bn1", 1, 1, True, size)
    assert size == 7
    return x
