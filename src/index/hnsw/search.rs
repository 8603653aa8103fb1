//! Searching: greedy descent through the upper layers, then a beam
//! search of width `ef` on layer 0.

use super::*;

impl HnswIndex {
    // ------------------------------------------------------------ search

    /// Greedy walk on one layer from `ep` to a local minimum.
    pub(super) fn greedy(
        &self,
        g: &Graph,
        q: &Probe<'_>,
        mut ep: (f32, u32),
        layer: u8,
        nb: &mut Vec<u32>,
    ) -> (f32, u32) {
        loop {
            let mut moved = false;
            self.neighbours(g, ep.1, layer, nb);
            for &c in nb.iter() {
                if let Some(d) = self.walk_dist(g, q, c) {
                    if d < ep.0 {
                        ep = (d, c);
                        moved = true;
                    }
                }
            }
            if !moved {
                return ep;
            }
        }
    }

    /// Beam search on one layer; the `ef` best accepted nodes, nearest first.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn search_layer(
        &self,
        g: &Graph,
        q: &Probe<'_>,
        eps: &[(f32, u32)],
        ef: usize,
        layer: u8,
        accept: Option<&dyn Fn(u32) -> bool>,
        visited: &mut Visited,
        nb: &mut Vec<u32>,
    ) -> Vec<(f32, u32)> {
        visited.reset(g.len());
        let mut cand: BinaryHeap<Reverse<(D, u32)>> = BinaryHeap::with_capacity(ef * 2);
        let mut best: BinaryHeap<(D, u32)> = BinaryHeap::with_capacity(ef + 1);
        let ok = |n: u32| accept.is_none_or(|f| f(n));
        for &(d, n) in eps {
            if visited.insert(n) {
                cand.push(Reverse((D(d), n)));
                if ok(n) {
                    best.push((D(d), n));
                }
            }
        }
        while best.len() > ef {
            best.pop();
        }
        while let Some(Reverse((D(d), c))) = cand.pop() {
            if best.len() >= ef && best.peek().is_some_and(|w| d > w.0 .0) {
                break;
            }
            self.neighbours(g, c, layer, nb);
            nb.retain(|&n| visited.insert(n));
            self.will_need(g, q, nb.iter().copied());
            // The vectors are scattered over memory: each one is requested
            // a step before its distance is computed.
            if let Some(&n) = nb.first() {
                self.prefetch(g, q, n);
            }
            for (i, &n) in nb.iter().enumerate() {
                if let Some(&next) = nb.get(i + 1) {
                    self.prefetch(g, q, next);
                }
                let Some(dn) = self.walk_dist(g, q, n) else {
                    continue;
                };
                if best.len() < ef || best.peek().is_some_and(|w| dn < w.0 .0) {
                    cand.push(Reverse((D(dn), n)));
                    if ok(n) {
                        best.push((D(dn), n));
                        if best.len() > ef {
                            best.pop();
                        }
                    }
                }
            }
        }
        let mut out: Vec<(f32, u32)> = best.into_iter().map(|(D(d), n)| (d, n)).collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        out
    }

    /// [`VectorIndex::search`] with this query's beam width `ef` (raised to `k`).
    pub fn search_ef(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<DocFilter<'_>>,
    ) -> Result<Vec<(DocId, f32)>> {
        self.check_bad()?;
        let g = self.read();
        let entry = self.entry.load(Ordering::Acquire);
        if k == 0 || entry == NO_ENTRY {
            return Ok(Vec::new());
        }
        if query.len() != g.dim {
            return Err(Error::WrongDimension {
                what: "HNSW query".into(),
                expected: g.dim,
                received: query.len(),
            });
        }
        let (node, top) = unpack(entry);
        let probe = if self.walk_codes.load(Ordering::Relaxed) {
            Probe::quantized(query)
        } else {
            Probe::exact(query)
        };
        let mut found = SCRATCH.with(|s| {
            let (visited, nb) = &mut *s.borrow_mut();
            let d = self.walk_dist(&g, &probe, node).unwrap_or(f32::INFINITY);
            let mut ep = (d, node);
            for l in (1..=top).rev() {
                ep = self.greedy(&g, &probe, ep, l, nb);
            }
            let docs = &g.docs;
            let accept = filter.map(|f| move |n: u32| f(docs[n as usize]));
            self.search_layer(
                &g,
                &probe,
                &[ep],
                ef.max(k),
                0,
                accept.as_ref().map(|a| a as &dyn Fn(u32) -> bool),
                visited,
                nb,
            )
        });
        if probe.codes.is_some() {
            self.rescore(&g, query, &mut found);
        }
        self.check_bad()?;
        Ok(found
            .into_iter()
            .take(k)
            .map(|(d, n)| (g.docs[n as usize], 1.0 - d))
            .collect())
    }

    /// Re-scores a beam ranked by code distances with the f32 vectors, so
    /// its order and distances are exact (a node whose chunk fails its
    /// check is dropped; the failure is recorded).
    pub(super) fn rescore(&self, g: &Graph, query: &[f32], beam: &mut Vec<(f32, u32)>) {
        let exact = Probe::exact(query);
        let coded = std::mem::take(beam);
        self.will_need(g, &exact, coded.iter().map(|&(_, n)| n));
        for (i, &(_, n)) in coded.iter().enumerate() {
            if let Some(&(_, next)) = coded.get(i + 1) {
                self.prefetch(g, &exact, next);
            }
            if let Some(d) = self.dist(g, query, n) {
                beam.push((d, n));
            }
        }
        beam.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    }

    pub(super) fn check_bad(&self) -> Result<()> {
        match self.bad.get() {
            Some((path, reason)) => Err(corrupt(path, reason.clone())),
            None => Ok(()),
        }
    }
}
