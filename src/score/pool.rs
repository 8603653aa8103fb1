//! Token pooling (Clavié et al., arXiv 2409.14683): reduce a token matrix
//! by hierarchical agglomerative clustering on cosine similarity and replace
//! each cluster by the L2-normalised mean of its members.
//!
//! Linkage: **average linkage** on cosine similarity (UPGMA), computed with
//! the nearest-neighbour-chain algorithm in `O(n²)` time and `O(n²)` memory
//! (`n` ≤ a few hundred). Average linkage is reducible, so the merges found
//! by the chain are exactly those of the greedy "always merge the most
//! similar pair" procedure; the first `n - k` merges in order of decreasing
//! similarity give `k` clusters. Ties are broken by lowest index, so results
//! are deterministic.

/// Number of clusters `ceil(n / factor)`, or `n` when `factor <= 1` (or NaN).
fn target_count(n: usize, factor: f32) -> usize {
    if n == 0 || factor.is_nan() || factor <= 1.0 {
        return n;
    }
    let k = (n as f64 / f64::from(factor)).ceil() as usize;
    k.clamp(1, n)
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Groups of token indices after pooling `n` tokens (`dim` each) by
/// `factor`: `ceil(n / factor)` groups, each sorted ascending, groups ordered
/// by their smallest member. `factor <= 1` gives one singleton per token.
pub fn pool_groups(tokens: &[f32], n: usize, dim: usize, factor: f32) -> Vec<Vec<usize>> {
    assert_eq!(tokens.len(), n * dim, "tokens length != n * dim");
    let k = target_count(n, factor);
    if k >= n {
        return (0..n).map(|i| vec![i]).collect();
    }
    // Normalised rows in f64 and the cosine similarity matrix.
    let mut x = vec![0.0f64; n * dim];
    for (o, r) in x.chunks_exact_mut(dim).zip(tokens.chunks_exact(dim)) {
        let norm = r
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            for (a, &b) in o.iter_mut().zip(r) {
                *a = f64::from(b) / norm;
            }
        }
    }
    let mut sim = vec![0.0f64; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let s: f64 = x[i * dim..(i + 1) * dim]
                .iter()
                .zip(&x[j * dim..(j + 1) * dim])
                .map(|(a, b)| a * b)
                .sum();
            sim[i * n + j] = s;
            sim[j * n + i] = s;
        }
    }
    let mut size = vec![1usize; n];
    let mut active = vec![true; n];
    // Merge height of each cluster (forced non-increasing so that sorting by
    // height keeps every child merge before its parent).
    let mut height = vec![f64::INFINITY; n];
    let mut merges: Vec<(f64, usize, usize)> = Vec::with_capacity(n - 1);
    let mut chain: Vec<usize> = Vec::with_capacity(n);
    let mut remaining = n;
    while remaining > 1 {
        if chain.is_empty() {
            chain.push(active.iter().position(|&a| a).expect("an active cluster"));
        }
        loop {
            let a = chain[chain.len() - 1];
            let prev = (chain.len() >= 2).then(|| chain[chain.len() - 2]);
            // Nearest neighbour of `a`; ties prefer `prev`, then lowest index.
            let (mut best, mut best_s) = match prev {
                Some(p) => (p, sim[a * n + p]),
                None => (usize::MAX, f64::NEG_INFINITY),
            };
            for c in 0..n {
                if c == a || !active[c] {
                    continue;
                }
                let s = sim[a * n + c];
                if best == usize::MAX || s > best_s {
                    best = c;
                    best_s = s;
                }
            }
            if Some(best) == prev {
                chain.truncate(chain.len() - 2);
                let (lo, hi) = (a.min(best), a.max(best));
                let h = best_s.min(height[a]).min(height[best]);
                merges.push((h, lo, hi));
                let (sa, sb) = (size[lo] as f64, size[hi] as f64);
                for c in 0..n {
                    if c == lo || c == hi || !active[c] {
                        continue;
                    }
                    let s = (sa * sim[lo * n + c] + sb * sim[hi * n + c]) / (sa + sb);
                    sim[lo * n + c] = s;
                    sim[c * n + lo] = s;
                }
                size[lo] += size[hi];
                active[hi] = false;
                height[lo] = h;
                remaining -= 1;
                break;
            }
            chain.push(best);
        }
    }
    // Stable sort: equal heights keep chain order (children before parents).
    merges.sort_by(|p, q| q.0.total_cmp(&p.0));
    let mut parent: Vec<usize> = (0..n).collect();
    for &(_, a, b) in merges.iter().take(n - k) {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        let (lo, hi) = (ra.min(rb), ra.max(rb));
        parent[hi] = lo;
    }
    let mut group_of = vec![usize::MAX; n];
    let mut groups: Vec<Vec<usize>> = Vec::with_capacity(k);
    for i in 0..n {
        let r = find(&mut parent, i);
        if group_of[r] == usize::MAX {
            group_of[r] = groups.len();
            groups.push(Vec::new());
        }
        groups[group_of[r]].push(i);
    }
    groups
}

/// Pools `n` tokens of `dim` values down to `ceil(n / factor)` tokens (see
/// [`pool_groups`]); each output row is the L2-normalised mean of its group
/// (a zero mean stays zero). Returns the rows and their count. `factor <= 1`
/// returns the input unchanged.
pub fn pool_tokens(tokens: &[f32], n: usize, dim: usize, factor: f32) -> (Vec<f32>, usize) {
    assert_eq!(tokens.len(), n * dim, "tokens length != n * dim");
    if target_count(n, factor) >= n {
        return (tokens.to_vec(), n);
    }
    let groups = pool_groups(tokens, n, dim, factor);
    let mut out = Vec::with_capacity(groups.len() * dim);
    let mut mean = vec![0.0f64; dim];
    for g in &groups {
        mean.fill(0.0);
        for &i in g {
            for (m, &v) in mean.iter_mut().zip(&tokens[i * dim..(i + 1) * dim]) {
                *m += f64::from(v);
            }
        }
        let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt();
        let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        out.extend(mean.iter().map(|&v| (v * inv) as f32));
    }
    (out, groups.len())
}
