"""Head training for starter-mol (issue 20, ORMA's three levels; numpy, float32): ragged token
sets, FILIP scores and their gradients, batched Sinkhorn OT over motif vectors, projection heads
(affine or residual MLP), the global trainer (InfoNCE on pooled features), the token trainer
(FILIP InfoNCE + motif-OT InfoNCE), and the engine's three scorers on a split with the choice of
multi-grained weights.

A ragged set is (rows [N_rows, D], offsets [N + 1]): item i owns rows[offsets[i]:offsets[i + 1]].
FILIP (the engine's `score::interact`): s(q, c) = mean over q's rows of the max cosine to any row of
c; the rows are L2-normalised, and [CLS]/[SEP] are rows like any other, as the engine keeps them.
"""

from __future__ import annotations

import time

import numpy as np
from smiles_bert import apply_head


def log(msg: str) -> None:
    print(f"  {msg}", flush=True)


def rank_metrics(scores: np.ndarray) -> dict:
    """scores[q, c], correct candidate c = q. Ties count against the query (strict >)."""
    ranks = (scores > np.diag(scores)[:, None]).sum(1)
    return {"hits1": float((ranks < 1).mean()), "hits10": float((ranks < 10).mean()),
            "mrr": float((1.0 / (ranks + 1)).mean())}


def random_metrics(n: int) -> dict:
    """Expected values for a uniformly random ranking of n candidates."""
    return {"hits1": 1.0 / n, "hits10": min(10, n) / n, "mrr": float(np.mean(1.0 / np.arange(1, n + 1)))}


def gather(rows, offsets: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows of `items` concatenated as float32, their offsets). `rows` may be a memory map."""
    items = np.asarray(items)
    lens = np.diff(offsets)[items]
    off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    idx = np.repeat(offsets[items] - off[:-1], lens) + np.arange(off[-1])
    return np.asarray(rows[idx], np.float32), off


def l2_rows(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.maximum(n, 1e-12), n


def filip(U: np.ndarray, uoff: np.ndarray, V: np.ndarray, voff: np.ndarray, chunk_rows: int = 4096) -> np.ndarray:
    """[Nu, Nv]: s[i, j] = mean over u_i's rows of the max over v_j's rows of the dot product."""
    lu = np.diff(uoff)
    out = np.zeros((len(lu), len(voff) - 1), np.float32)
    i = 0
    while i < len(lu):  # whole items per chunk, about chunk_rows rows
        j = int(np.searchsorted(uoff, uoff[i] + chunk_rows, side="right")) - 1
        j = max(j, i + 1)
        S = U[uoff[i] : uoff[j]] @ V.T
        mx = np.maximum.reduceat(S, voff[:-1], axis=1)
        out[i:j] = np.add.reduceat(mx, uoff[i:j] - uoff[i], axis=0) / lu[i:j, None]
        i = j
    return out


def filip_pair_grad(U: np.ndarray, uoff: np.ndarray, V: np.ndarray, voff: np.ndarray):
    """In-batch FILIP both ways from one similarity matrix.
    Returns (s_uv [Bu, Bv], s_vu [Bv, Bu], backward(g_uv, g_vu) -> (dU, dV))."""
    lu, lv = np.diff(uoff), np.diff(voff)
    S = U @ V.T
    mx_v = np.maximum.reduceat(S, voff[:-1], axis=1)  # [ru, Bv]: best row of each v item per u row
    s_uv = np.add.reduceat(mx_v, uoff[:-1], axis=0) / lu[:, None]
    mx_u = np.maximum.reduceat(S, uoff[:-1], axis=0)  # [Bu, rv]
    s_vu = (np.add.reduceat(mx_u, voff[:-1], axis=1) / lv[None, :]).T

    def backward(g_uv: np.ndarray, g_vu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gu = np.repeat(g_uv / lu[:, None], lu, axis=0)  # [ru, Bv]
        dS = (S == np.repeat(mx_v, lv, axis=1)) * np.repeat(gu, lv, axis=1)
        gv = np.repeat((g_vu / lv[:, None]).T, lv, axis=1)  # [Bu, rv]
        dS += (S == np.repeat(mx_u, lu, axis=0)) * np.repeat(gv, lu, axis=0)
        return dS @ V, dS.T @ U

    return s_uv, s_vu, backward


def info_nce(logits: np.ndarray) -> tuple[float, np.ndarray]:
    """Cross-entropy of each row against its diagonal entry; (mean loss, d loss / d logits)."""
    B = len(logits)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -float(np.log(p[np.arange(B), np.arange(B)] + 1e-30).mean())
    p[np.arange(B), np.arange(B)] -= 1.0
    return loss, p / B


class Adam:
    """Adam with L2 weight decay (added to the gradient of every matrix); updates the arrays of
    `params` in place, so heads holding the same arrays see every step."""

    def __init__(self, params: dict, lr: float, wd: float = 0.0):
        self.p, self.lr, self.wd, self.t = params, lr, wd, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, grads: dict, lr_scale: float = 1.0) -> None:
        self.t += 1
        for k, g in grads.items():
            if self.wd and self.p[k].ndim == 2:
                g = g + self.wd * self.p[k]
            m, v = self.m[k], self.v[k]
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            upd = self.lr * lr_scale * (m / (1 - 0.9**self.t)) / (np.sqrt(v / (1 - 0.999**self.t)) + 1e-8)
            self.p[k][...] = self.p[k] - upd.astype(np.float32)


class Head:
    """A projection head on standardised inputs xs = (x - mu) / sd:
        z = xs @ W + b                                  (affine), or
        z = xs @ W + b + relu(xs @ W1 + b1) @ W2        (residual MLP, hidden > 0).
    `folded()` moves the standardisation into the weights: the exported head takes raw features."""

    def __init__(self, mu: np.ndarray, sd: np.ndarray, p: dict):
        self.mu, self.sd, self.p = mu, sd, p

    @staticmethod
    def init(sample: np.ndarray, P: int, rng: np.random.Generator, hidden: int = 0) -> "Head":
        mu, sd = sample.mean(0).astype(np.float32), (sample.std(0) + 1e-6).astype(np.float32)
        D = sample.shape[1]
        p = {"W": (rng.normal(0, 1, (D, P)) / np.sqrt(D)).astype(np.float32), "b": np.zeros(P, np.float32)}
        if hidden:
            p["W1"] = (rng.normal(0, 1, (D, hidden)) / np.sqrt(D)).astype(np.float32)
            p["b1"] = np.zeros(hidden, np.float32)
            p["W2"] = np.zeros((hidden, P), np.float32)  # starts as the affine head
        return Head(mu, sd, p)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, tuple]:
        xs = (x - self.mu) / self.sd
        z = xs @ self.p["W"] + self.p["b"]
        a = None
        if "W1" in self.p:
            a = np.maximum(xs @ self.p["W1"] + self.p["b1"], 0.0)
            z += a @ self.p["W2"]
        return z, (xs, a)

    def backward(self, cache: tuple, dz: np.ndarray) -> dict:
        xs, a = cache
        g = {"W": xs.T @ dz, "b": dz.sum(0)}
        if a is not None:
            g["W2"] = a.T @ dz
            da = (dz @ self.p["W2"].T) * (a > 0)
            g["W1"] = xs.T @ da
            g["b1"] = da.sum(0)
        return g

    def folded(self) -> dict:
        out = {}
        for w, b in (("W", "b"), ("W1", "b1")):
            if w in self.p:
                W = (self.p[w] / self.sd[:, None]).astype(np.float32)
                out[w], out[b] = W, (self.p[b] - self.mu @ W).astype(np.float32)
        if "W2" in self.p:
            out["W2"] = self.p["W2"].copy()
        return out


def apply_folded(x: np.ndarray, h: dict) -> np.ndarray:
    """A folded head on raw features (what the ONNX graph computes before the L2 norm), float32."""
    return apply_head(x, h, np.float32)


def _params_of(heads: dict) -> dict:
    return {f"{name}.{k}": v for name, h in heads.items() for k, v in h.p.items()}


def _sample_rows(R, n: int, rng: np.random.Generator) -> np.ndarray:
    idx = np.sort(rng.choice(len(R), min(n, len(R)), replace=False))
    return np.asarray(R[idx], np.float32)


def _l2_back(dY: np.ndarray, Y: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Gradient through Y = Z / |Z| (rows)."""
    return (dY - Y * (Y * dY).sum(1, keepdims=True)) / np.maximum(n, 1e-12)


def _lr_scale(step: int, n_steps: int, warmup: int = 50) -> float:
    return min(1.0, (step + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * min(1.0, step / max(1, n_steps))))


def _texts_of(t2m: np.ndarray) -> tuple[dict, np.ndarray]:
    texts_of: dict[int, list[int]] = {}
    for i, m in enumerate(t2m):
        texts_of.setdefault(int(m), []).append(i)
    return texts_of, np.array(sorted(texts_of))


def train_global(Xt: np.ndarray, t2m: np.ndarray, Xm: np.ndarray, val_t: np.ndarray, val_m: np.ndarray, P: int,
                 rng: np.random.Generator, epochs: int = 60, batch: int = 1024, lr: float = 2e-3,
                 tau: float = 0.05, hidden: int = 0, wd: float = 1e-4) -> dict:
    """Global heads on pooled features: symmetric InfoNCE over (one text, its molecule) per molecule
    and batch, learned temperature, best epoch by val text->molecule MRR. Xt [Nt, Dt], t2m[i] =
    molecule of text i, Xm [Nm, Dm]; val_t / val_m: validation features, row k of each a pair."""
    heads = {"t": Head.init(Xt, P, rng, hidden), "m": Head.init(Xm, P, rng, hidden)}
    params = _params_of(heads)
    params["log_s"] = np.array(np.log(1 / tau), np.float32)
    opt = Adam(params, lr, wd)
    texts_of, mols = _texts_of(t2m)
    n_steps = epochs * (len(mols) // batch)
    best, hist, t0 = None, [], time.time()
    for ep in range(epochs):
        perm = rng.permutation(mols)
        losses = []
        for s in range(0, len(perm) - batch // 4, batch):
            mb = perm[s : s + batch]
            tb = np.array([texts_of[int(m)][int(rng.integers(len(texts_of[int(m)])))] for m in mb])
            zt, ct = heads["t"].forward(Xt[tb])
            zm, cm = heads["m"].forward(Xm[mb])
            U, nu = l2_rows(zt)
            V, nv = l2_rows(zm)
            scale = float(np.exp(params["log_s"]))
            sim = U @ V.T
            l1, g1 = info_nce(scale * sim)
            l2, g2 = info_nce(scale * sim.T)
            dsim = 0.5 * scale * (g1 + g2.T)
            grads = {f"t.{k}": v for k, v in heads["t"].backward(ct, _l2_back(dsim @ V, U, nu)).items()}
            grads.update({f"m.{k}": v for k, v in heads["m"].backward(cm, _l2_back(dsim.T @ U, V, nv)).items()})
            grads["log_s"] = np.array(0.5 * scale * float((g1 * sim).sum() + (g2 * sim.T).sum()), np.float32)
            opt.step(grads, _lr_scale(opt.t, n_steps))
            params["log_s"][...] = np.clip(params["log_s"], 0.0, np.log(100.0))
            losses.append(0.5 * (l1 + l2))
        met = rank_metrics(l2_rows(heads["t"].forward(val_t)[0])[0] @ l2_rows(heads["m"].forward(val_m)[0])[0].T)
        hist.append({"epoch": ep, "loss": float(np.mean(losses)), "val_t2m": met, "scale": float(np.exp(params["log_s"]))})
        if ep % 5 == 0 or ep == epochs - 1:
            log(f"global epoch {ep:3d}  loss {np.mean(losses):.3f}  scale {np.exp(params['log_s']):.1f}  val t2m "
                f"Hits@1 {met['hits1']:.3f} Hits@10 {met['hits10']:.3f} MRR {met['mrr']:.3f}  ({time.time() - t0:.0f} s)")
        if best is None or met["mrr"] > best[0]["mrr"]:
            best = (met, ep, {k: v.copy() for k, v in params.items()})
    met, ep, bp = best
    for k, v in bp.items():
        params[k][...] = v
    log(f"global heads: best epoch {ep} (val MRR {met['mrr']:.3f}) in {time.time() - t0:.0f} s")
    return {"text": heads["t"], "mol": heads["m"], "best_epoch": ep, "val": met, "history": hist,
            "scale": float(np.exp(bp["log_s"]))}


def train_token_heads(Rt, offt, t2m: np.ndarray, Rm, offm, val_t: np.ndarray, val_m: np.ndarray, P: int,
                      rng: np.random.Generator, epochs: int = 8, batch: int = 128, lr: float = 1e-3,
                      tau: float = 0.05, hidden: int = 0, mol_groups=None, lam_ot: float = 0.0, ot_neg: int = 15,
                      ot_iters: int = 50, ot_eval_texts: int = 200) -> dict:
    """Token heads (text, molecule) on ragged token features, trained with symmetric FILIP InfoNCE
    (text i's tokens against molecule t2m[i]'s; text->molecule is the mean over text tokens,
    molecule->text the mean over molecule tokens) plus, when lam_ot > 0, lam_ot x an InfoNCE over
    motif OT scores of each text against its molecule and the ot_neg in-batch molecules that FILIP
    ranks highest. mol_groups[j]: molecule j's motif token groups (`chem_motifs`), or None.
    val_t[k] / val_m[k] index a validation pair. Best epoch by val FILIP t2m MRR (+ OT t2m MRR)."""
    texts_of, mols = _texts_of(t2m)
    # standardisation statistics from training rows only (the rows of validation and test items
    # follow the training items in Rt / Rm)
    n_text_rows, n_mol_rows = int(offt[len(t2m)]), int(offm[int(mols.max()) + 1])
    heads = {"t": Head.init(_sample_rows(Rt[:n_text_rows], 200_000, rng), P, rng, hidden),
             "m": Head.init(_sample_rows(Rm[:n_mol_rows], 200_000, rng), P, rng, hidden)}
    params = _params_of(heads)
    params["log_s"] = np.array(np.log(1 / tau), np.float32)
    params["log_o"] = np.array(np.log(1 / tau), np.float32)
    use_ot = lam_ot > 0 and mol_groups is not None
    lm_all = np.diff(offm)
    groups_of = (lambda j: motif_rows(mol_groups[j], int(lm_all[j]))) if use_ot else None
    opt = Adam(params, lr, wd=1e-4)
    Vt_rows, Vt_off = gather(Rt, offt, val_t)
    Vm_rows, Vm_off = gather(Rm, offm, val_m)
    n_steps = epochs * (len(mols) // batch)
    best, hist, t0 = None, [], time.time()

    def evaluate():
        U = l2_rows(heads["t"].forward(Vt_rows)[0])[0]
        V = l2_rows(heads["m"].forward(Vm_rows)[0])[0]
        met = [rank_metrics(filip(U, Vt_off, V, Vm_off)), rank_metrics(filip(V, Vm_off, U, Vt_off))]
        if use_ot:  # motif OT, text -> molecule, for the first ot_eval_texts val texts against all val molecules
            A, moff = membership([groups_of(j) for j in val_m], Vm_off)
            M = l2_rows(A @ V)[0]
            nq = min(ot_eval_texts, len(val_t))
            pi, pj = np.repeat(np.arange(nq), len(val_m)), np.tile(np.arange(len(val_m)), nq)
            sc = ot_scores(U, Vt_off, M, moff, pi, pj, iters=ot_iters).reshape(nq, len(val_m))
            ranks = (sc > sc[np.arange(nq), np.arange(nq)][:, None]).sum(1)
            met.append({"hits1": float((ranks < 1).mean()), "mrr": float((1.0 / (ranks + 1)).mean())})
        return met

    for ep in range(epochs):
        perm = rng.permutation(mols)
        losses = []
        for s in range(0, len(perm) - batch + 1, batch):
            mb = perm[s : s + batch]
            tb = np.array([texts_of[int(m)][int(rng.integers(len(texts_of[int(m)])))] for m in mb])
            xt, uo = gather(Rt, offt, tb)
            xm, vo = gather(Rm, offm, mb)
            zt, ct = heads["t"].forward(xt)
            zm, cm = heads["m"].forward(xm)
            U, nu = l2_rows(zt)
            V, nv = l2_rows(zm)
            s_uv, s_vu, backward = filip_pair_grad(U, uo, V, vo)
            scale = float(np.exp(params["log_s"]))
            l1, g1 = info_nce(scale * s_uv)
            l2, g2 = info_nce(scale * s_vu)
            dU, dV = backward(0.5 * scale * g1, 0.5 * scale * g2)
            g_log_s = 0.5 * scale * float((g1 * s_uv).sum() + (g2 * s_vu).sum())
            g_log_o, l3 = 0.0, 0.0
            if use_ot:  # each text against its molecule and the ot_neg in-batch molecules FILIP ranks highest
                A, moff = membership([groups_of(int(j)) for j in mb], vo)
                M, nz = l2_rows(A @ V)
                s_neg = s_uv.copy()
                np.fill_diagonal(s_neg, -np.inf)
                neg = np.argsort(-s_neg, axis=1)[:, :ot_neg]
                cand = np.concatenate([np.arange(len(mb))[:, None], neg], axis=1)  # [B, 1 + ot_neg]
                pi = np.repeat(np.arange(len(mb)), cand.shape[1])
                sc, ot_back = ot_pairs(U, uo, M, moff, pi, cand.ravel(), iters=ot_iters)
                sc = sc.reshape(cand.shape)
                so = float(np.exp(params["log_o"]))
                lg = so * sc
                p = np.exp(lg - lg.max(1, keepdims=True))
                p /= p.sum(1, keepdims=True)
                l3 = -float(np.log(p[:, 0] + 1e-30).mean())
                p[:, 0] -= 1.0
                g3 = p / len(mb)
                g_log_o = lam_ot * so * float((g3 * sc).sum())
                dU3, dM = ot_back(lam_ot * so * g3.ravel())
                dU += dU3
                dV += A.T @ _l2_back(dM, M, nz)
            grads = {f"t.{k}": v for k, v in heads["t"].backward(ct, _l2_back(dU, U, nu)).items()}
            grads.update({f"m.{k}": v for k, v in heads["m"].backward(cm, _l2_back(dV, V, nv)).items()})
            grads["log_s"] = np.array(g_log_s, np.float32)
            grads["log_o"] = np.array(g_log_o, np.float32)
            opt.step(grads, _lr_scale(opt.t, n_steps))
            for k in ("log_s", "log_o"):
                params[k][...] = np.clip(params[k], 0.0, np.log(200.0))
            losses.append(0.5 * (l1 + l2) + lam_ot * l3)
        t2m_met, m2t_met, *ot_met = evaluate()
        hist.append({"epoch": ep, "loss": float(np.mean(losses)), "val_t2m": t2m_met, "val_m2t": m2t_met,
                     "val_ot_t2m": ot_met[0] if ot_met else None, "scale": float(np.exp(params["log_s"])),
                     "ot_scale": float(np.exp(params["log_o"]))})
        ot_txt = (f" | OT t2m Hits@1 {ot_met[0]['hits1']:.3f} (first {ot_eval_texts} texts, scale "
                  f"{np.exp(params['log_o']):.1f})") if ot_met else ""
        log(f"token epoch {ep}  loss {np.mean(losses):.3f}  scale {np.exp(params['log_s']):.1f}  val FILIP "
            f"t2m Hits@1 {t2m_met['hits1']:.3f} MRR {t2m_met['mrr']:.3f} | m2t Hits@1 {m2t_met['hits1']:.3f}"
            f"{ot_txt}  ({time.time() - t0:.0f} s)")
        sel = t2m_met["mrr"] + (ot_met[0]["mrr"] if ot_met else 0.0)
        if best is None or sel > best[0]:
            best = (sel, ep, {k: v.copy() for k, v in params.items()})
    _, ep, bp = best
    for k, v in bp.items():
        params[k][...] = v
    return {"text": heads["t"], "mol": heads["m"], "best_epoch": ep, "history": hist,
            "scale": float(np.exp(bp["log_s"])), "ot_scale": float(np.exp(bp["log_o"]))}


# ---------------------------------------------------------------------------
# motif-level optimal transport (the engine's `chem::ot_similarity` over `chem::motif_embeddings`)

OT_EPS = 0.05  # the engine's default epsilon


def motif_rows(groups: list[list[int]] | None, n_rows: int) -> list[np.ndarray]:
    """Row indices (within the molecule's token rows) of each motif: SMILES token t is row t + 1
    ([CLS] is row 0), rows past the end are dropped, as `chem::motif_embeddings(.., offset = 1)`."""
    if not groups:
        return []
    return [np.array([t + 1 for t in g if t + 1 < n_rows], np.int64) for g in groups]


def membership(groups_batch: list[list[np.ndarray]], voff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A [n_motifs, rv] 0/1, motif offsets [B + 1]) for a batch of molecules whose token rows are
    concatenated with offsets voff. Motif vector k = L2(A[k] @ V) = L2(mean of its member rows)."""
    moff = np.concatenate([[0], np.cumsum([len(g) for g in groups_batch])]).astype(np.int64)
    A = np.zeros((int(moff[-1]), int(voff[-1])), np.float32)
    k = 0
    for j, groups in enumerate(groups_batch):
        for rows in groups:
            A[k, voff[j] + rows] = 1.0
            k += 1
    return A, moff


def sinkhorn_plans(C: np.ndarray, amask: np.ndarray, bmask: np.ndarray, eps: float = OT_EPS,
                   iters: int = 100) -> np.ndarray:
    """Entropic OT plans for a batch of padded cost matrices C [Np, n, m] with uniform marginals over
    the real rows (amask [Np, n]) and columns (bmask [Np, m]); plain (not log-domain) Sinkhorn in
    float64 with a fixed iteration count (deterministic). Costs lie in [0, 2], so exp(-2 / eps) stays
    far from float64 underflow."""
    K = np.exp(-C.astype(np.float64) / eps) * amask[:, :, None] * bmask[:, None, :]
    a = amask / amask.sum(1, keepdims=True)
    b = bmask / np.maximum(bmask.sum(1, keepdims=True), 1)  # no motifs: b = 0, plan 0
    v = bmask.astype(np.float64)
    for _ in range(iters):
        u = a / np.maximum((K @ v[:, :, None])[:, :, 0], 1e-300)
        v = b / np.maximum((u[:, None, :] @ K)[:, 0, :], 1e-300)
    return u[:, :, None] * K * v[:, None, :]


def ot_pairs(U: np.ndarray, uoff: np.ndarray, M: np.ndarray, moff: np.ndarray, pi: np.ndarray, pj: np.ndarray,
             eps: float = OT_EPS, iters: int = 100):
    """OT scores 1 - <P, 1 - cos> for pairs (text pi[p], molecule pj[p]); U text token rows (L2),
    M motif vectors (L2). Returns (scores [Np], backward(g [Np]) -> (dU, dM)) with the plans held
    constant in the backward pass (envelope gradient: d score / d cos = P)."""
    lu, lm = np.diff(uoff), np.diff(moff)
    n, m = int(lu[pi].max()), int(lm[pj].max())
    G = np.zeros((len(U) + 1, len(M) + 1), np.float32)  # last row / column: padding (cos 0)
    G[:-1, :-1] = U @ M.T
    ri = np.minimum(uoff[pi][:, None] + np.arange(n)[None, :], len(U))
    amask = np.arange(n)[None, :] < lu[pi][:, None]
    ri = np.where(amask, ri, len(U))
    ci = np.minimum(moff[pj][:, None] + np.arange(m)[None, :], len(M))
    bmask = np.arange(m)[None, :] < lm[pj][:, None]
    ci = np.where(bmask, ci, len(M))
    S = G[ri[:, :, None], ci[:, None, :]]  # [Np, n, m]
    P = sinkhorn_plans(1.0 - S, amask, bmask, eps, iters)
    # a molecule without motifs scores 0 (the engine's `ot_similarity` with m = 0), no gradient
    scores = np.where(lm[pj] > 0, 1.0 - (P * (1.0 - S)).sum((1, 2)), 0.0).astype(np.float32)

    def backward(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dG = np.zeros_like(G)
        np.add.at(dG, (ri[:, :, None], ci[:, None, :]), (P * g[:, None, None]).astype(np.float32))
        dG = dG[:-1, :-1]
        return dG @ M, dG.T @ U

    return scores, backward


def ot_scores(U: np.ndarray, uoff: np.ndarray, M: np.ndarray, moff: np.ndarray, pi: np.ndarray, pj: np.ndarray,
              eps: float = OT_EPS, iters: int = 100, chunk: int = 4096) -> np.ndarray:
    """ot_pairs scores only, in chunks of pairs (evaluation)."""
    out = np.zeros(len(pi), np.float32)
    for s in range(0, len(pi), chunk):
        out[s : s + chunk] = ot_pairs(U, uoff, M, moff, pi[s : s + chunk], pj[s : s + chunk], eps, iters)[0]
    return out


# ---------------------------------------------------------------------------
# the engine's scorers on a split, and the multi-grained weights


def scorer_scores(Ft: np.ndarray, Fm: np.ndarray, Rt, offt: np.ndarray, items_t: np.ndarray, Rm, offm: np.ndarray,
                  items_m: np.ndarray, groups: list, heads: dict, ot_iters: int = 50, ot_depth: int | None = None
                  ) -> dict:
    """Text->molecule score matrices [n, n] (row q's right answer is column q) of the engine's three
    scorers: global (cosine of `embeds`), FILIP (mean over text tokens of the max over molecule
    tokens) and motif OT, for pooled features Ft / Fm and the ragged token features of items_t /
    items_m. heads = {"text": (global, token), "mol": (global, token)}, folded (`Head.folded`).
    ot_depth: compute OT only for each text's top ot_depth molecules by global + FILIP (the rest get
    -inf, so a blend with OT re-ranks that depth); None: every pair."""
    emb = lambda F, h: l2_rows(apply_folded(F, h))[0]  # noqa: E731
    out = {"global": emb(Ft, heads["text"][0]) @ emb(Fm, heads["mol"][0]).T}
    xt, uo = gather(Rt, offt, items_t)
    xm, vo = gather(Rm, offm, items_m)
    U, V = emb(xt, heads["text"][1]), emb(xm, heads["mol"][1])
    out["filip"] = filip(U, uo, V, vo)
    lv = np.diff(vo)
    A, moff = membership([motif_rows(groups[j], int(lv[i])) for i, j in enumerate(items_m)], vo)
    M = l2_rows(A @ V)[0]
    n, nm = len(items_t), len(items_m)
    # pairs ordered by text length, so each chunk pads to similar lengths
    order = np.argsort(np.diff(uo), kind="stable")
    if ot_depth is None or ot_depth >= nm:
        pi, pj = np.repeat(order, nm), np.tile(np.arange(nm), n)
    else:
        top = np.argsort(-(out["global"] + out["filip"]), axis=1, kind="stable")[:, :ot_depth]
        pi, pj = np.repeat(order, ot_depth), top[order].ravel()
    ot = np.full(len(pi), -np.inf, np.float32)
    ok = np.diff(moff)[pj] > 0  # a molecule without motifs scores 0 in the engine (`ot_similarity` with m = 0)
    ot[~ok] = 0.0
    ot[ok] = ot_scores(U, uo, M, moff, pi[ok], pj[ok], iters=ot_iters)
    S = np.full((n, nm), -np.inf, np.float32)
    S[pi, pj] = ot
    out["ot"] = S
    return out


def pick_weights(scores: dict, step: float = 0.05) -> tuple[list[float], dict]:
    """Multi-grained weights (global, token, motif) on the simplex grid that maximise text->molecule
    Hits@1 (then MRR) of wg * global + wt * filip + wm * ot; returns (weights, metrics)."""
    best = None
    n = int(round(1 / step))
    for i in range(n + 1):
        for j in range(n + 1 - i):
            w = (i / n, j / n, (n - i - j) / n)
            blend = w[0] * scores["global"] + w[1] * scores["filip"]
            if w[2] > 0:  # 0 x -inf (OT not computed) would be NaN
                blend = blend + w[2] * scores["ot"]
            met = rank_metrics(blend)
            key = (met["hits1"], met["mrr"])
            if best is None or key > best[0]:
                best = (key, [round(x, 2) for x in w], met)
    return best[1], best[2]
