//! Entropic optimal transport (log-domain Sinkhorn) between text tokens and
//! molecule motifs, ORMA-style.
//!
//! All arithmetic is done in `f64` internally and converted to `f32` at the end,
//! so small `epsilon` (e.g. 0.01 with costs in `[0, 2]`) neither underflows nor
//! produces NaN.

/// Result of [`sinkhorn`].
#[derive(Debug, Clone, PartialEq)]
pub struct Transport {
    /// Transport plan, row-major `n x m`; rows sum to `a`, columns to `b`.
    pub plan: Vec<f32>,
    /// Transport cost `<P, C>` (without the entropy term).
    pub cost: f32,
    /// Number of Sinkhorn iterations performed (one = a row and a column update).
    pub iterations: usize,
    /// Whether the L1 row-marginal error fell below `tol` within `max_iter`.
    pub converged: bool,
}

/// `log(sum(exp(x)))` over an iterator, robust to `-inf` entries.
fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// Log-domain Sinkhorn for entropic optimal transport.
///
/// `cost` is row-major `n x m`; `a` (length `n`) and `b` (length `m`) are the
/// marginals, each summing to 1 (zero entries are allowed: their row/column of
/// the plan is zero). `epsilon > 0` is the entropic regularisation (smaller is
/// closer to exact OT but needs more iterations). Iterates until the L1 error of
/// the row marginals is below `tol` (column marginals are exact after every
/// iteration) or `max_iter` iterations have run.
///
/// Returns an empty plan with cost 0 when `n == 0` or `m == 0`.
///
/// # Panics
/// If `cost.len() != n * m`, `a.len() != n`, `b.len() != m` or `epsilon <= 0`.
#[allow(clippy::too_many_arguments)]
pub fn sinkhorn(
    cost: &[f32],
    n: usize,
    m: usize,
    a: &[f32],
    b: &[f32],
    epsilon: f32,
    max_iter: usize,
    tol: f32,
) -> Transport {
    assert_eq!(cost.len(), n * m, "cost must be n x m");
    assert_eq!(a.len(), n, "a must have n entries");
    assert_eq!(b.len(), m, "b must have m entries");
    assert!(epsilon > 0.0, "epsilon must be positive");
    if n == 0 || m == 0 {
        return Transport {
            plan: Vec::new(),
            cost: 0.0,
            iterations: 0,
            converged: true,
        };
    }
    let eps = f64::from(epsilon);
    let c: Vec<f64> = cost.iter().map(|&x| f64::from(x)).collect();
    let log_a: Vec<f64> = a.iter().map(|&x| f64::from(x).ln()).collect();
    let log_b: Vec<f64> = b.iter().map(|&x| f64::from(x).ln()).collect();
    // Dual potentials f (rows) and g (columns).
    let mut f = vec![0.0f64; n];
    let mut g = vec![0.0f64; m];
    let mut lse_row = vec![0.0f64; n];
    let mut iterations = 0;
    let mut converged = false;
    let tol = f64::from(tol);
    loop {
        // lse_row[i] = log sum_j exp((g_j - C_ij) / eps)
        for (i, slot) in lse_row.iter_mut().enumerate() {
            let row = &c[i * m..(i + 1) * m];
            *slot = log_sum_exp(row.iter().zip(&g).map(|(&cij, &gj)| (gj - cij) / eps));
        }
        if iterations > 0 {
            // Current row sums are exp(f_i / eps + lse_row[i]).
            let err: f64 = (0..n)
                .map(|i| {
                    let r = (f[i] / eps + lse_row[i]).exp();
                    let r = if r.is_finite() { r } else { 0.0 };
                    (r - f64::from(a[i])).abs()
                })
                .sum();
            if err < tol {
                converged = true;
                break;
            }
        }
        if iterations >= max_iter {
            break;
        }
        for i in 0..n {
            f[i] = if log_a[i] == f64::NEG_INFINITY {
                f64::NEG_INFINITY
            } else {
                eps * (log_a[i] - lse_row[i])
            };
        }
        for (j, gj) in g.iter_mut().enumerate() {
            let lse = log_sum_exp((0..n).map(|i| (f[i] - c[i * m + j]) / eps));
            *gj = if log_b[j] == f64::NEG_INFINITY || lse == f64::NEG_INFINITY {
                f64::NEG_INFINITY
            } else {
                eps * (log_b[j] - lse)
            };
        }
        iterations += 1;
    }
    let mut plan = vec![0.0f32; n * m];
    let mut total = 0.0f64;
    for i in 0..n {
        for j in 0..m {
            let p = ((f[i] + g[j] - c[i * m + j]) / eps).exp();
            let p = if p.is_finite() { p } else { 0.0 };
            plan[i * m + j] = p as f32;
            total += p * c[i * m + j];
        }
    }
    Transport {
        plan,
        cost: total as f32,
        iterations,
        converged,
    }
}

/// Row-wise L2 normalisation of a flat `rows x dim` matrix (zero rows stay zero).
fn normalise_rows(x: &[f32], dim: usize) -> Vec<f64> {
    let mut out: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    if dim == 0 {
        return out;
    }
    for row in out.chunks_mut(dim) {
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
    out
}

/// Cosine cost matrix `1 - cos(x_i, y_j)` (row-major `n x m`, values in `[0, 2]`)
/// between `x` (`n x dim`) and `y` (`m x dim`). Zero vectors have cosine 0.
///
/// # Panics
/// If `x.len() != n * dim` or `y.len() != m * dim`.
pub fn cosine_cost(x: &[f32], n: usize, y: &[f32], m: usize, dim: usize) -> Vec<f32> {
    assert_eq!(x.len(), n * dim, "x must be n x dim");
    assert_eq!(y.len(), m * dim, "y must be m x dim");
    let xn = normalise_rows(x, dim);
    let yn = normalise_rows(y, dim);
    let mut cost = Vec::with_capacity(n * m);
    for i in 0..n {
        let xi = &xn[i * dim..(i + 1) * dim];
        for j in 0..m {
            let yj = &yn[j * dim..(j + 1) * dim];
            let cos: f64 = xi.iter().zip(yj).map(|(p, q)| p * q).sum();
            cost.push((1.0 - cos.clamp(-1.0, 1.0)) as f32);
        }
    }
    cost
}

/// OT similarity between `n` text token vectors and `m` motif vectors (both flat,
/// `dim` wide): cost `1 - cosine`, uniform marginals, log-domain Sinkhorn with
/// regularisation `epsilon` (up to 1000 iterations, tolerance 1e-6). Returns
/// `1 - <P, C>`, in `[-1, 1]`; higher is more similar. Returns 0 when `n == 0` or
/// `m == 0`.
///
/// # Panics
/// If the slice lengths do not match `n * dim` / `m * dim`, or `epsilon <= 0`.
pub fn ot_similarity(
    text_tokens: &[f32],
    n: usize,
    motif_vecs: &[f32],
    m: usize,
    dim: usize,
    epsilon: f32,
) -> f32 {
    let cost = cosine_cost(text_tokens, n, motif_vecs, m, dim);
    if n == 0 || m == 0 {
        return 0.0;
    }
    let a = vec![1.0 / n as f32; n];
    let b = vec![1.0 / m as f32; m];
    let t = sinkhorn(&cost, n, m, &a, &b, epsilon, 1000, 1e-6);
    1.0 - t.cost
}

/// Motif embeddings from per-token embeddings: for each motif, the L2-normalised
/// mean of rows `offset + t` of `tokens` (flat, `dim` wide) for each token index
/// `t` of the motif. Use `offset = 1` when row 0 is `[CLS]`. Indices past the
/// last row (e.g. truncated sequences) are skipped; a motif with no valid rows
/// gets a zero vector. Returns a flat `motifs.len() x dim` matrix.
pub fn motif_embeddings(
    tokens: &[f32],
    dim: usize,
    motifs: &[Vec<usize>],
    offset: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; motifs.len() * dim];
    if dim == 0 {
        return out;
    }
    let rows = tokens.len() / dim;
    for (k, members) in motifs.iter().enumerate() {
        let mut acc = vec![0.0f64; dim];
        let mut count = 0usize;
        for &t in members {
            let r = t + offset;
            if r >= rows {
                continue;
            }
            for (s, &v) in acc.iter_mut().zip(&tokens[r * dim..(r + 1) * dim]) {
                *s += f64::from(v);
            }
            count += 1;
        }
        if count == 0 {
            continue;
        }
        let norm = acc.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            for (o, v) in out[k * dim..(k + 1) * dim].iter_mut().zip(&acc) {
                *o = (v / norm) as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random numbers in [0, 1).
    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32) / (1u64 << 24) as f32
    }

    fn marginal_errors(t: &Transport, n: usize, m: usize, a: &[f32], b: &[f32]) -> (f32, f32) {
        let row_err: f32 = t
            .plan
            .chunks(m)
            .zip(a)
            .map(|(row, &ai)| (row.iter().sum::<f32>() - ai).abs())
            .sum();
        let col_err: f32 = b
            .iter()
            .enumerate()
            .map(|(j, &bj)| ((0..n).map(|i| t.plan[i * m + j]).sum::<f32>() - bj).abs())
            .sum();
        (row_err, col_err)
    }

    #[test]
    fn marginals_match() {
        let mut seed = 7;
        let (n, m) = (5, 7);
        let cost: Vec<f32> = (0..n * m).map(|_| 2.0 * lcg(&mut seed)).collect();
        let mut a: Vec<f32> = (0..n).map(|_| 0.1 + lcg(&mut seed)).collect();
        let mut b: Vec<f32> = (0..m).map(|_| 0.1 + lcg(&mut seed)).collect();
        let sa: f32 = a.iter().sum();
        let sb: f32 = b.iter().sum();
        a.iter_mut().for_each(|x| *x /= sa);
        b.iter_mut().for_each(|x| *x /= sb);
        let tol = 1e-5;
        let t = sinkhorn(&cost, n, m, &a, &b, 0.1, 10_000, tol);
        assert!(t.converged);
        let (re, ce) = marginal_errors(&t, n, m, &a, &b);
        assert!(re < tol * 2.0, "row err {re}");
        assert!(ce < tol * 2.0, "col err {ce}");
        assert!(t.plan.iter().all(|&p| p >= 0.0));
    }

    #[test]
    fn identical_clouds_cost_zero() {
        let mut seed = 3;
        let (n, dim) = (6, 8);
        let x: Vec<f32> = (0..n * dim).map(|_| lcg(&mut seed) - 0.5).collect();
        let cost = cosine_cost(&x, n, &x, n, dim);
        let u = vec![1.0 / n as f32; n];
        let t = sinkhorn(&cost, n, n, &u, &u, 0.005, 10_000, 1e-6);
        assert!(t.cost < 1e-3, "cost {}", t.cost);
        let sim = ot_similarity(&x, n, &x, n, dim, 0.005);
        assert!(sim > 0.999, "sim {sim}");
    }

    #[test]
    fn permutation_plan() {
        // Points on distinct axes, target is a permutation of the source.
        let n = 4;
        let dim = 4;
        let perm = [2usize, 0, 3, 1];
        let mut x = vec![0.0f32; n * dim];
        let mut y = vec![0.0f32; n * dim];
        for i in 0..n {
            x[i * dim + i] = 1.0;
            y[perm[i] * dim + i] = 1.0; // y[perm[i]] == x[i]
        }
        let cost = cosine_cost(&x, n, &y, n, dim);
        let u = vec![0.25f32; n];
        let t = sinkhorn(&cost, n, n, &u, &u, 0.01, 10_000, 1e-6);
        assert!(t.converged);
        for (i, &pi) in perm.iter().enumerate() {
            for j in 0..n {
                let want = if j == pi { 0.25 } else { 0.0 };
                assert!((t.plan[i * n + j] - want).abs() < 1e-4, "P[{i}][{j}]");
            }
        }
        assert!(t.cost < 1e-4);
    }

    fn brute_force_3(cost: &[f32]) -> f32 {
        let perms = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        perms
            .iter()
            .map(|p| (0..3).map(|i| cost[i * 3 + p[i]]).sum::<f32>() / 3.0)
            .fold(f32::INFINITY, f32::min)
    }

    #[test]
    fn approaches_exact_assignment() {
        let mut seed = 11;
        let mut worst = 0.0f32;
        for _ in 0..20 {
            let cost: Vec<f32> = (0..9).map(|_| 2.0 * lcg(&mut seed)).collect();
            let exact = brute_force_3(&cost);
            let u = [1.0 / 3.0f32; 3];
            let mut prev_gap = f32::INFINITY;
            for eps in [1.0f32, 0.3, 0.1, 0.03, 0.01] {
                let t = sinkhorn(&cost, 3, 3, &u, &u, eps, 5_000, 1e-6);
                // Near-degenerate costs converge sublinearly for small eps
                // (a known Sinkhorn property); the cost is accurate long before
                // the marginals reach 1e-6.
                if eps >= 0.3 {
                    assert!(t.converged, "eps {eps} did not converge");
                }
                let gap = t.cost - exact;
                // Exact OT <= entropic plan cost <= exact OT + eps * ln(n m).
                assert!(gap > -1e-3, "eps {eps}: {} < exact {exact}", t.cost);
                assert!(gap <= eps * 9f32.ln() + 1e-3, "eps {eps}: gap {gap}");
                assert!(gap <= prev_gap + 1e-3, "gap grew at eps {eps}");
                prev_gap = gap;
            }
            worst = worst.max(prev_gap);
        }
        // In practice the gap at eps = 0.01 is far below the bound.
        assert!(worst < 5e-3, "worst final gap {worst}");
    }

    #[test]
    fn stable_small_epsilon() {
        let mut seed = 5;
        let (n, m) = (16, 9);
        let cost: Vec<f32> = (0..n * m).map(|_| 2.0 * lcg(&mut seed)).collect();
        let a = vec![1.0 / n as f32; n];
        let b = vec![1.0 / m as f32; m];
        for eps in [0.01f32, 0.001] {
            let t = sinkhorn(&cost, n, m, &a, &b, eps, 20_000, 1e-5);
            assert!(t.plan.iter().all(|p| p.is_finite() && *p >= 0.0));
            assert!(t.cost.is_finite() && (0.0..=2.0).contains(&t.cost));
            let (re, ce) = marginal_errors(&t, n, m, &a, &b);
            assert!(t.converged, "eps {eps} did not converge");
            assert!(re < 2e-5 && ce < 2e-5, "eps {eps}: {re} {ce}");
        }
        // Extreme costs: exp(-2/0.01) underflows in the naive kernel.
        let cost = vec![0.0, 2.0, 2.0, 0.0];
        let t = sinkhorn(&cost, 2, 2, &[0.5, 0.5], &[0.5, 0.5], 0.01, 1000, 1e-6);
        assert!(t.converged);
        assert!(t.cost.abs() < 1e-6);
    }

    #[test]
    fn zero_marginal_entries() {
        let cost = vec![0.0, 1.0, 1.0, 0.0, 0.5, 0.5];
        let t = sinkhorn(&cost, 3, 2, &[0.5, 0.5, 0.0], &[0.5, 0.5], 0.05, 1000, 1e-6);
        assert!(t.converged);
        assert_eq!(t.plan[4], 0.0);
        assert_eq!(t.plan[5], 0.0);
        assert!(t.cost < 1e-3);
    }

    #[test]
    fn empty_inputs() {
        let t = sinkhorn(&[], 0, 3, &[], &[0.3, 0.3, 0.4], 0.1, 10, 1e-6);
        assert!(t.plan.is_empty());
        assert_eq!(ot_similarity(&[], 0, &[1.0, 0.0], 1, 2, 0.1), 0.0);
    }

    #[test]
    fn similarity_orders_pairs() {
        let mut seed = 9;
        let dim = 16;
        let x: Vec<f32> = (0..5 * dim).map(|_| lcg(&mut seed) - 0.5).collect();
        let near: Vec<f32> = x[..3 * dim]
            .iter()
            .map(|&v| v + 0.05 * (lcg(&mut seed) - 0.5))
            .collect();
        let far: Vec<f32> = (0..3 * dim).map(|_| lcg(&mut seed) - 0.5).collect();
        let s_near = ot_similarity(&x, 5, &near, 3, dim, 0.05);
        let s_far = ot_similarity(&x, 5, &far, 3, dim, 0.05);
        assert!(s_near > s_far, "{s_near} <= {s_far}");
    }

    #[test]
    fn motif_embedding_means() {
        // rows: [CLS], t0, t1, t2
        let tokens = vec![9.0, 9.0, 1.0, 0.0, 0.0, 1.0, 3.0, 4.0];
        let e = motif_embeddings(&tokens, 2, &[vec![0, 1], vec![2], vec![7], vec![]], 1);
        let s = 0.5f32.sqrt();
        assert!((e[0] - s).abs() < 1e-6 && (e[1] - s).abs() < 1e-6);
        assert!((e[2] - 0.6).abs() < 1e-6 && (e[3] - 0.8).abs() < 1e-6);
        assert_eq!(&e[4..8], &[0.0, 0.0, 0.0, 0.0]);
    }
}
