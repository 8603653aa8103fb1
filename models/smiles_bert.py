"""The rxnfp `bert_pretrained` SMILES BERT (HF BertModel layout, post-LN, exact-erf GELU):
a plain numpy forward pass (the reference) and an ONNX graph builder (onnx.helper).

    sd = torch_pickle.load_legacy_checkpoint(".../bert_pretrained/pytorch_model.bin")
    cfg = json.load(open(".../bert_pretrained/config.json"))
    h = numpy_forward(sd, cfg, input_ids, attention_mask)      # [B, T, 256] last_hidden_state

The graph has inputs `input_ids`, `attention_mask` (int64, [batch, sequence]); rxnfp
always feeds token type 0, so the type-0 embedding row is baked in and there is no
`token_type_ids` input. Padding keys get the additive mask (1 - mask) * -10000 (the
transformers 2.x convention this checkpoint was trained with).

An optional linear head (W [256, P], b [P]) is applied to every token:
    z_t    = h_t @ W + b
    tokens = L2(z_t)                       (each token, padding positions included)
    embeds = L2(masked mean over t of z_t) (= L2(mean(h) @ W + b): the head is affine)
With split heads (issue 20: dicts g and k, each {W, b} or a residual MLP {W, b, W1, b1, W2}, see
`apply_head`) the two outputs are trained apart:
    embeds = L2(g(masked mean over t of h_t)),  tokens = L2(k(h_t)).
Without a head the graph outputs `last_hidden_state` [B, T, 256].
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MASK_NEG = -10000.0
P = "bert."


def check_config(cfg: dict) -> None:
    want = {"hidden_act": "gelu", "hidden_size": 256, "num_attention_heads": 4, "num_hidden_layers": 12}
    for k, v in want.items():
        if cfg.get(k) != v:
            raise ValueError(f"SMILES BERT config: {k} = {cfg.get(k)!r}, expected {v!r}")


# ---------------------------------------------------------------------------
# numpy reference (float64 internally for a tight parity target)


def _ln(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _erf(x):
    from math import erf

    return np.vectorize(erf, otypes=[np.float64])(x)


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def numpy_forward(sd: dict, cfg: dict, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """last_hidden_state [B, T, H] (float32) for int64 ids/mask [B, T]."""
    g = lambda k: sd[P + k].astype(np.float64)  # noqa: E731
    eps = cfg["layer_norm_eps"]
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    dh = H // nh
    B, T = input_ids.shape
    x = g("embeddings.word_embeddings.weight")[input_ids]
    x = x + g("embeddings.position_embeddings.weight")[:T][None]
    x = x + g("embeddings.token_type_embeddings.weight")[0][None, None]
    x = _ln(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)
    add_mask = (1.0 - attention_mask.astype(np.float64))[:, None, None, :] * MASK_NEG
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        lin = lambda y, n: y @ g(p + n + ".weight").T + g(p + n + ".bias")  # noqa: E731
        heads = lambda y: y.reshape(B, T, nh, dh).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = (heads(lin(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh) + add_mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(0, 2, 1, 3).reshape(B, T, H)
        x = _ln(lin(ctx, "attention.output.dense") + x,
                g(p + "attention.output.LayerNorm.weight"), g(p + "attention.output.LayerNorm.bias"), eps)
        f = lin(_gelu(lin(x, "intermediate.dense")), "output.dense")
        x = _ln(f + x, g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias"), eps)
    return x.astype(np.float32)


def numpy_head(h: np.ndarray, mask: np.ndarray, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(embeds [B, P], tokens [B, T, P]) of an affine head on hidden states h [B, T, H]."""
    z = h.astype(np.float64) @ W.astype(np.float64) + b.astype(np.float64)
    m = mask.astype(np.float64)[:, :, None]
    pooled = (z * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    nrm = lambda a: a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)  # noqa: E731
    return nrm(pooled).astype(np.float32), nrm(z).astype(np.float32)


def apply_head(x: np.ndarray, head: dict, dtype=np.float64) -> np.ndarray:
    """A split head on features x [..., H]: x @ W + b, plus relu(x @ W1 + b1) @ W2 for a residual MLP,
    computed in `dtype` (float64 for the parity checks, float32 in training and evaluation)."""
    f = lambda a: a.astype(dtype, copy=False)  # noqa: E731
    z = f(x) @ f(head["W"]) + f(head["b"])
    if "W1" in head:
        z = z + np.maximum(f(x) @ f(head["W1"]) + f(head["b1"]), 0.0) @ f(head["W2"])
    return z


def numpy_split_head(h: np.ndarray, mask: np.ndarray, g: dict, k: dict) -> tuple[np.ndarray, np.ndarray]:
    """(embeds [B, P], tokens [B, T, P]) of split heads on hidden states h [B, T, H] (module doc)."""
    m = mask.astype(np.float64)[:, :, None]
    pooled = (h.astype(np.float64) * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    nrm = lambda a: a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)  # noqa: E731
    return nrm(apply_head(pooled, g)).astype(np.float32), nrm(apply_head(h, k)).astype(np.float32)


# ---------------------------------------------------------------------------
# ONNX


class _G:
    """Minimal graph builder; every generated name starts with `prefix` (graph surgery safety)."""

    def __init__(self, prefix: str = ""):
        self.nodes, self.inits, self.n, self.prefix = [], [], 0, prefix

    def fresh(self, p):
        self.n += 1
        return f"{self.prefix}{p}_{self.n}"

    def const(self, arr, name=None):
        name = name or self.fresh("c")
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(self, op_type, ins, out=None, **attrs):
        out = out or self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, ins, [out], name=self.fresh("n_" + op_type), **attrs))
        return out


def head_nodes(gb, h: str, mask_i64: str, W: np.ndarray, b: np.ndarray, prefix: str) -> None:
    """Append nodes computing `embeds` and `tokens` from hidden states `h` (see module doc)."""
    Wc = gb.const(W.astype(np.float32), f"{prefix}_head_W")
    bc = gb.const(b.astype(np.float32), f"{prefix}_head_b")
    eps = gb.const(np.array(1e-12, np.float32), f"{prefix}_eps")
    ceps = gb.const(np.array(1e-9, np.float32), f"{prefix}_count_eps")
    z = gb.op("Add", [gb.op("MatMul", [h, Wc], f"{prefix}_zw"), bc], f"{prefix}_z")
    m = gb.op("Unsqueeze", [gb.op("Cast", [mask_i64], f"{prefix}_mf", to=TensorProto.FLOAT),
                            gb.const(np.array([-1], np.int64))], f"{prefix}_m3")
    s = gb.op("ReduceSum", [gb.op("Mul", [z, m]), gb.const(np.array([1], np.int64))], f"{prefix}_zsum", keepdims=0)
    c = gb.op("Max", [gb.op("ReduceSum", [m, gb.const(np.array([1], np.int64))], keepdims=0), ceps])
    pooled = gb.op("Div", [s, c], f"{prefix}_pooled")
    for x, out in ((pooled, "embeds"), (z, "tokens")):
        n = gb.op("Max", [gb.op("ReduceL2", [x], axes=[-1], keepdims=1), eps])
        gb.op("Div", [x, n], out)


def head_graph(gb, x: str, head: dict, prefix: str) -> str:
    """Nodes of `apply_head` on tensor x; returns the output name."""
    c = lambda k: gb.const(head[k].astype(np.float32), f"{prefix}_{k}")  # noqa: E731
    z = gb.op("Add", [gb.op("MatMul", [x, c("W")]), c("b")])
    if "W1" in head:
        a = gb.op("Relu", [gb.op("Add", [gb.op("MatMul", [x, c("W1")]), c("b1")])])
        z = gb.op("Add", [z, gb.op("MatMul", [a, c("W2")])])
    return z


def split_head_nodes(gb, h: str, mask_i64: str, g: dict, k: dict, prefix: str) -> None:
    """Append nodes computing `embeds` (global head g on the masked mean of h) and `tokens` (token
    head k on every position) from hidden states `h` (see module doc)."""
    eps = gb.const(np.array(1e-12, np.float32), f"{prefix}_eps")
    ceps = gb.const(np.array(1e-9, np.float32), f"{prefix}_count_eps")
    m = gb.op("Unsqueeze", [gb.op("Cast", [mask_i64], f"{prefix}_mf", to=TensorProto.FLOAT),
                            gb.const(np.array([-1], np.int64))], f"{prefix}_m3")
    s = gb.op("ReduceSum", [gb.op("Mul", [h, m]), gb.const(np.array([1], np.int64))], f"{prefix}_hsum", keepdims=0)
    c = gb.op("Max", [gb.op("ReduceSum", [m, gb.const(np.array([1], np.int64))], keepdims=0), ceps])
    pooled = gb.op("Div", [s, c], f"{prefix}_pooled")
    for x, head, out in ((pooled, g, "embeds"), (h, k, "tokens")):
        z = head_graph(gb, x, head, f"{prefix}_{out}_head")
        n = gb.op("Max", [gb.op("ReduceL2", [z], axes=[-1], keepdims=1), eps])
        gb.op("Div", [z, n], out)


def build_onnx(sd: dict, cfg: dict, head: tuple[np.ndarray, np.ndarray] | tuple[dict, dict] | None, opset: int,
               doc: str) -> onnx.ModelProto:
    check_config(cfg)
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    dh = H // nh
    eps = float(cfg["layer_norm_eps"])
    gb = _G()
    w = lambda k: sd[P + k].astype(np.float32)  # noqa: E731
    i64 = lambda v: gb.const(np.array(v, np.int64))  # noqa: E731

    # embeddings: word + position[0:T] + type[0], LayerNorm
    word = gb.const(w("embeddings.word_embeddings.weight"), "word_embeddings")
    pos = gb.const(w("embeddings.position_embeddings.weight"), "position_embeddings")
    typ0 = gb.const(w("embeddings.token_type_embeddings.weight")[0], "token_type_embedding_0")
    T = gb.op("Gather", [gb.op("Shape", ["input_ids"]), i64([1])], "seq_len", axis=0)  # [1]
    pos_t = gb.op("Slice", [pos, i64([0]), T, i64([0])], "pos_slice")
    x = gb.op("Add", [gb.op("Add", [gb.op("Gather", [word, "input_ids"], "tok_emb", axis=0), pos_t]), typ0])

    def ln(x, pfx):
        return gb.op("LayerNormalization", [x, gb.const(w(pfx + ".weight")), gb.const(w(pfx + ".bias"))],
                     axis=-1, epsilon=eps)

    x = ln(x, "embeddings.LayerNorm")
    # additive mask [B, 1, 1, T]
    mf = gb.op("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    inv = gb.op("Sub", [gb.const(np.array(1.0, np.float32)), mf])
    add_mask = gb.op("Unsqueeze", [gb.op("Mul", [inv, gb.const(np.array(MASK_NEG, np.float32))]), i64([1, 2])],
                     "add_mask")
    split_shape = i64([0, 0, nh, dh])
    merge_shape = i64([0, 0, H])
    scale = gb.const(np.array(1.0 / math.sqrt(dh), np.float32))
    sqrt2 = gb.const(np.array(math.sqrt(2.0), np.float32))
    one = gb.const(np.array(1.0, np.float32))
    half = gb.const(np.array(0.5, np.float32))

    def lin(x, pfx):
        wt = gb.const(np.ascontiguousarray(w(pfx + ".weight").T))
        return gb.op("Add", [gb.op("MatMul", [x, wt]), gb.const(w(pfx + ".bias"))])

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def heads(name, perm):
            return gb.op("Transpose", [gb.op("Reshape", [lin(x, p + "attention.self." + name), split_shape])],
                         perm=perm)

        q = heads("query", [0, 2, 1, 3])  # [B, nh, T, dh]
        kT = heads("key", [0, 2, 3, 1])  # [B, nh, dh, T]
        v = heads("value", [0, 2, 1, 3])
        s = gb.op("Add", [gb.op("Mul", [gb.op("MatMul", [q, kT]), scale]), add_mask])
        a = gb.op("Softmax", [s], axis=-1)
        ctx = gb.op("Reshape", [gb.op("Transpose", [gb.op("MatMul", [a, v])], perm=[0, 2, 1, 3]), merge_shape])
        x = ln(gb.op("Add", [lin(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
        f = lin(x, p + "intermediate.dense")
        f = gb.op("Mul", [gb.op("Mul", [f, half]), gb.op("Add", [gb.op("Erf", [gb.op("Div", [f, sqrt2])]), one])])
        x = ln(gb.op("Add", [lin(f, p + "output.dense"), x]), p + "output.LayerNorm")

    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
    ]
    if head is None:
        gb.op("Identity", [x], "last_hidden_state")
        outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", H])]
    else:
        if isinstance(head[0], dict):  # split heads (global, token)
            split_head_nodes(gb, x, "attention_mask", head[0], head[1], "mol")
            P_out = head[0]["W"].shape[1]
        else:
            W, b = head
            head_nodes(gb, x, "attention_mask", W, b, "mol")
            P_out = W.shape[1]
        outputs = [
            helper.make_tensor_value_info("embeds", TensorProto.FLOAT, ["batch", P_out]),
            helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", "sequence", P_out]),
        ]
    graph = helper.make_graph(gb.nodes, "smiles_bert", inputs, outputs, gb.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="weft-models")
    m.ir_version = 10  # the bundle contract (common.ONNX_IR_VERSION)
    m.doc_string = doc
    return m
