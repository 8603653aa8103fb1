//! Search: candidates from HNSW (or an exact scan), re-ranked by a scorer
//! over the candidates' stored token matrices.
//!
//! * [`Scorer::Global`]: cosine of the global embeddings.
//! * [`Scorer::Filip`]: FILIP late interaction (Yao et al. 2021): mean over
//!   the query's tokens of the max cosine to any item token
//!   ([`Direction::QueryToItem`]), the reverse, or their average.
//! * [`Scorer::MaxSim`]: ColBERT's sum of per-query-token maxima.
//! * [`Scorer::Hybrid`]: `w * global + (1 - w) * FILIP(query -> item)`.
//!
//! A scorer that needs tokens fails with a clear error when the query or the
//! collection has none: there is no silent fallback to global scoring.
//! Payload filters run inside candidate generation; when the filtered HNSW
//! search finds fewer than `k` items, an exact filtered scan runs, so `k`
//! results come back whenever `k` items match.

pub mod filter;

use serde::Serialize;

pub use filter::Filter;

use crate::error::{Error, Result};
use crate::index::{top_k, DocFilter, DocId};
use crate::score::{self, Interaction, MaxSimScratch};
use crate::store::Snapshot;

/// Direction of FILIP late interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Mean over query tokens of the best item token.
    #[default]
    QueryToItem,
    /// Mean over item tokens of the best query token.
    ItemToQuery,
    /// Average of both.
    Symmetric,
}

/// How candidates are scored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scorer {
    /// Cosine of global embeddings.
    #[default]
    Global,
    /// FILIP late interaction.
    Filip(Direction),
    /// ColBERT MaxSim (sum over query tokens).
    MaxSim,
    /// `weight * global + (1 - weight) * FILIP(query -> item)`.
    Hybrid {
        /// Weight of the global score, in [0, 1].
        weight: f32,
    },
    /// ORMA-style motif alignment: entropic optimal transport (Sinkhorn)
    /// between the text side's tokens and the molecule side's motif
    /// embeddings (mean of member tokens); score = 1 - transport cost.
    MotifOt {
        /// Entropic regularisation (smaller = closer to exact OT, slower).
        epsilon: f32,
    },
    /// Multi-grained: weighted sum of global, token FILIP and motif OT scores
    /// (weights are normalised to sum to 1).
    MultiGrained {
        /// Weight of the molecule-level (global) score.
        global: f32,
        /// Weight of the token-level FILIP score.
        token: f32,
        /// Weight of the motif-level OT score.
        motif: f32,
    },
}

impl Scorer {
    /// Whether the scorer reads token matrices.
    pub fn needs_tokens(&self) -> bool {
        !matches!(self, Scorer::Global)
    }

    /// Checks the scorer's parameters: a hybrid weight in [0, 1], a finite motif OT
    /// epsilon > 0, multi-grained weights >= 0, not all 0, with a finite sum.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Scorer::Hybrid { weight } if !(0.0..=1.0).contains(&weight) => {
                Err(Error::InvalidConfig {
                    name: "scorer".into(),
                    reason: format!("hybrid weight {weight} is outside [0, 1]"),
                })
            }
            Scorer::MotifOt { epsilon } if !(epsilon > 0.0 && epsilon.is_finite()) => {
                Err(Error::InvalidConfig {
                    name: "scorer".into(),
                    reason: format!("motif OT epsilon {epsilon} must be > 0"),
                })
            }
            Scorer::MultiGrained {
                global,
                token,
                motif,
            } if [global, token, motif]
                .iter()
                .any(|w| w.is_nan() || *w < 0.0)
                || global + token + motif <= 0.0
                || !(global + token + motif).is_finite() =>
            {
                Err(Error::InvalidConfig {
                    name: "scorer".into(),
                    reason: "multi-grained weights must be >= 0, not all 0, with a finite sum"
                        .into(),
                })
            }
            _ => Ok(()),
        }
    }
}

impl std::str::FromStr for Scorer {
    type Err = Error;

    /// `global`, `filip`, `filip-reverse`, `filip-symmetric`, `maxsim`, `hybrid` or `hybrid:W`,
    /// `motif`, `multi` (0.6/0.2/0.2) or `multi:G,T,M` (global, token and motif weights, each
    /// >= 0 and not all 0).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidConfig {
            name: "scorer".into(),
            reason: format!(
                "`{s}` is not one of global, filip, filip-reverse, filip-symmetric, maxsim, hybrid[:weight], motif, multi[:global,token,motif]"
            ),
        }
        };
        let scorer = match s {
            "global" => Scorer::Global,
            "filip" => Scorer::Filip(Direction::QueryToItem),
            "filip-reverse" => Scorer::Filip(Direction::ItemToQuery),
            "filip-symmetric" => Scorer::Filip(Direction::Symmetric),
            "maxsim" => Scorer::MaxSim,
            "hybrid" => Scorer::Hybrid { weight: 0.5 },
            "motif" | "motif-ot" => Scorer::MotifOt {
                epsilon: DEFAULT_EPSILON,
            },
            "multi" | "multi-grained" => Scorer::MultiGrained {
                global: 0.6,
                token: 0.2,
                motif: 0.2,
            },
            other if other.starts_with("multi:") => {
                let w: Vec<f32> = other["multi:".len()..]
                    .split(',')
                    .map(|v| v.trim().parse::<f32>())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| bad())?;
                let [global, token, motif] = w[..] else {
                    return Err(bad());
                };
                Scorer::MultiGrained {
                    global,
                    token,
                    motif,
                }
            }
            other => {
                let w: f32 = other
                    .strip_prefix("hybrid:")
                    .and_then(|w| w.parse().ok())
                    .ok_or_else(bad)?;
                Scorer::Hybrid { weight: w }
            }
        };
        scorer.validate().map_err(|_| bad())?;
        Ok(scorer)
    }
}

/// Default entropic regularisation of the motif OT scorer.
pub const DEFAULT_EPSILON: f32 = 0.05;

/// Where candidates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Candidates {
    /// HNSW returns `k * factor` candidates for re-ranking.
    Oversample(usize),
    /// HNSW returns this many candidates.
    Depth(usize),
    /// Score every live item (exhaustive).
    Exact,
}

/// Search settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SearchOptions {
    /// Results wanted.
    pub k: usize,
    /// Scorer.
    pub scorer: Scorer,
    /// Candidate generation for collections above `exact_below` items.
    pub candidates: Candidates,
    /// Collections with at most this many live items are scored exhaustively. Default 2000.
    pub exact_below: usize,
    /// Payload filter.
    pub filter: Option<Filter>,
    /// Attach per-token explanations to the hits.
    pub explain: bool,
    /// A doc to leave out (the query item itself, for search by id).
    pub exclude: Option<DocId>,
    /// HNSW beam width for this query; `None` = the collection's `ef_search`.
    pub ef: Option<usize>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: 10,
            scorer: Scorer::Global,
            candidates: Candidates::Oversample(10),
            exact_below: 2000,
            filter: None,
            explain: false,
            exclude: None,
            ef: None,
        }
    }
}

impl SearchOptions {
    /// Sets k.
    pub fn with_k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }
    /// Sets the scorer.
    pub fn with_scorer(mut self, scorer: Scorer) -> Self {
        self.scorer = scorer;
        self
    }
    /// Sets candidate generation.
    pub fn with_candidates(mut self, c: Candidates) -> Self {
        self.candidates = c;
        self
    }
    /// Sets the exhaustive threshold.
    pub fn with_exact_below(mut self, n: usize) -> Self {
        self.exact_below = n;
        self
    }
    /// Sets the filter.
    pub fn with_filter(mut self, f: Option<Filter>) -> Self {
        self.filter = f;
        self
    }
    /// Asks for explanations.
    pub fn with_explain(mut self, on: bool) -> Self {
        self.explain = on;
        self
    }
    /// Sets the HNSW beam width of this query.
    pub fn with_ef(mut self, ef: Option<usize>) -> Self {
        self.ef = ef;
        self
    }
    /// Leaves one doc out.
    pub fn with_exclude(mut self, doc: Option<DocId>) -> Self {
        self.exclude = doc;
        self
    }
}

/// A query: a global embedding and (for late interaction) its token matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Global embedding (normalised on use).
    pub embedding: Vec<f32>,
    /// Row-major `n_tokens x dim` tokens; may be empty.
    pub tokens: Vec<f32>,
    /// Patch grid when the query is an image.
    pub grid: Option<[usize; 2]>,
    /// The SMILES when the query is a molecule (for motif scoring).
    pub smiles: Option<String>,
}

impl Query {
    /// A query of raw vectors.
    pub fn new(embedding: Vec<f32>, tokens: Vec<f32>) -> Self {
        Query {
            embedding,
            tokens,
            grid: None,
            smiles: None,
        }
    }

    /// From an encoder's output.
    pub fn from_encoded(e: crate::encoder::Encoded) -> Self {
        Query {
            embedding: e.embedding,
            tokens: e.tokens,
            grid: e.grid,
            smiles: None,
        }
    }

    /// Sets the SMILES of a molecule query.
    pub fn with_smiles(mut self, smiles: impl Into<String>) -> Self {
        self.smiles = Some(smiles.into());
        self
    }

    /// The stored item `id` as a query (its tokens dequantized); returns its doc too.
    pub fn from_item(snapshot: &Snapshot, id: &str) -> Result<(Query, DocId)> {
        let doc = snapshot.doc_of(id)?.ok_or_else(|| Error::NotFound {
            what: "item",
            name: id.to_string(),
        })?;
        let meta = snapshot.meta(doc)?;
        Ok((
            Query {
                embedding: snapshot.embedding(doc)?.to_vec(),
                tokens: snapshot.tokens(doc)?.to_f32(),
                grid: meta.grid,
                smiles: item_smiles(&meta.payload),
            },
            doc,
        ))
    }
}

/// One query token's best match in an item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenMatch {
    /// Query token index.
    pub query_token: usize,
    /// Best item token index.
    pub item_token: usize,
    /// Their cosine similarity.
    pub similarity: f32,
    /// `[row, col]` of the item token in its patch grid (images).
    pub patch: Option<[usize; 2]>,
}

/// A search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Internal doc id (valid for the snapshot searched).
    pub doc: DocId,
    /// External id.
    pub id: String,
    /// Final score of the chosen scorer.
    pub score: f32,
    /// Cosine of the global embeddings.
    pub global: f32,
    /// Source path or URI.
    pub source: String,
    /// Payload.
    pub payload: serde_json::Value,
    /// Modality of the item.
    pub modality: crate::bundle::Modality,
    /// Per query token, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Vec<TokenMatch>>,
}

/// Buffers reused across searches (no per-query allocation in the kernel).
#[derive(Debug, Default)]
pub struct SearchScratch {
    maxsim: MaxSimScratch,
}

impl SearchScratch {
    /// Empty buffers.
    pub fn new() -> Self {
        Self::default()
    }
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / n).collect()
}

/// Runs a search on a snapshot.
pub fn search(
    snapshot: &Snapshot,
    query: &Query,
    options: &SearchOptions,
    scratch: &mut SearchScratch,
) -> Result<Vec<Hit>> {
    let hits = search_unchecked(snapshot, query, options, scratch);
    // A file cut short under its mapping reads as zeros (see
    // `crate::handle_sigbus`): nothing computed from them is returned.
    snapshot.check_mapped()?;
    hits
}

fn search_unchecked(
    snapshot: &Snapshot,
    query: &Query,
    options: &SearchOptions,
    scratch: &mut SearchScratch,
) -> Result<Vec<Hit>> {
    let dim = snapshot.config().dim;
    if query.embedding.len() != dim {
        return Err(Error::WrongDimension {
            what: "query embedding".into(),
            expected: dim,
            received: query.embedding.len(),
        });
    }
    if options.k == 0 {
        return Ok(Vec::new());
    }
    let pool = snapshot.config().pool_factor;
    if matches!(
        options.scorer,
        Scorer::MotifOt { .. } | Scorer::MultiGrained { .. }
    ) && pool > 1.0
    {
        // Motifs are groups of SMILES tokens; pooled rows are not tokens.
        return Err(Error::InvalidConfig {
            name: "scorer".into(),
            reason: format!(
                "motif scoring needs one stored row per SMILES token, and this collection pools tokens (pool_factor {pool}); use `global` or `filip`, or index without pooling"
            ),
        });
    }
    options.scorer.validate()?;
    let q_tokens = if options.scorer.needs_tokens() || options.explain {
        if query.tokens.is_empty() || !query.tokens.len().is_multiple_of(dim) {
            return Err(Error::InvalidInput {
                item: "query".into(),
                reason: format!(
                    "late interaction unavailable: the query has {} token values (need a multiple of {dim}); its encoder emits no tokens",
                    query.tokens.len()
                ),
            });
        }
        query
            .tokens
            .chunks_exact(dim)
            .flat_map(normalised)
            .collect::<Vec<f32>>()
    } else {
        Vec::new()
    };
    let nq = q_tokens.len() / dim.max(1);
    let q = normalised(&query.embedding);
    let accept = |d: DocId| -> bool {
        if options.exclude == Some(d) {
            return false;
        }
        match &options.filter {
            Some(f) => snapshot.meta(d).is_ok_and(|m| f.matches_text(&m.payload)),
            None => true,
        }
    };
    let live = snapshot.len();
    let exhaustive = matches!(options.candidates, Candidates::Exact) || live <= options.exact_below;
    let depth = match options.candidates {
        Candidates::Oversample(f) => options.k.saturating_mul(f.max(1)),
        Candidates::Depth(n) => n.max(options.k),
        Candidates::Exact => usize::MAX,
    };
    // (doc, global score)
    let mut candidates: Vec<(DocId, f32)> = if exhaustive {
        exact_scan(snapshot, &q, &accept)?
    } else {
        let needs_filter = options.exclude.is_some() || options.filter.is_some();
        let ef = options.ef.unwrap_or(snapshot.index().params().ef_search);
        let found = snapshot.ann_ef(
            &q,
            depth,
            ef,
            needs_filter.then_some(&accept as DocFilter<'_>),
        )?;
        let excluded = options.exclude.is_some_and(|d| snapshot.is_live(d)) as usize;
        if found.len() < options.k.min(live - excluded) {
            // HNSW could not reach k accepted items (a filter, tombstones
            // or `exclude` cut the walk short): scan exactly (correct, slower).
            top_k(exact_scan(snapshot, &q, &accept)?, depth)
        } else {
            found
        }
    };
    if !options.scorer.needs_tokens() {
        candidates = top_k(candidates, options.k);
    }
    let mut scored: Vec<(DocId, f32, f32)> = Vec::with_capacity(candidates.len());
    // Only token scorers prepare the query: a global search leaves the
    // scratch's cached forms of the last token query in place.
    let mut prepared = options
        .scorer
        .needs_tokens()
        .then(|| scratch.maxsim.prepare(&q_tokens, nq, dim.max(1)));
    for (at, &(doc, global)) in candidates.iter().enumerate() {
        let score = match options.scorer {
            Scorer::Global => global,
            scorer => {
                let tokens = snapshot.tokens(doc)?;
                // the next candidate's tokens, fetched into cache while
                // this one is scored (a hint: none when it cannot be read);
                // looked up only by the scorers that run the kernel
                let next = || {
                    candidates
                        .get(at + 1)
                        .and_then(|&(d, _)| snapshot.tokens(d).ok())
                        .unwrap_or(score::TokensRef::F32(&[]))
                };
                if tokens.len_tokens(dim) == 0 {
                    return Err(Error::InvalidInput {
                        item: snapshot.meta(doc)?.id,
                        reason: "late interaction unavailable: the item has no token matrix".into(),
                    });
                }
                match scorer {
                    Scorer::MotifOt { epsilon } => {
                        motif_score(snapshot, doc, query, &q_tokens, dim, epsilon)?
                    }
                    Scorer::MultiGrained {
                        global: wg,
                        token: wt,
                        motif: wm,
                    } => {
                        let total = wg + wt + wm;
                        let i = prepared
                            .as_mut()
                            .expect("token scorers prepare the query")
                            .interact_then(tokens, next());
                        let motif = if wm > 0.0 {
                            motif_score(snapshot, doc, query, &q_tokens, dim, DEFAULT_EPSILON)?
                        } else {
                            0.0
                        };
                        (wg * global + wt * i.filip_q2d() + wm * motif) / total
                    }
                    _ => {
                        let i = prepared
                            .as_mut()
                            .expect("token scorers prepare the query")
                            .interact_then(tokens, next());
                        late_score(scorer, &i, global)
                    }
                }
            }
        };
        scored.push((doc, score, global));
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(options.k);
    scored
        .into_iter()
        .map(|(doc, score, global)| {
            let meta = snapshot.meta(doc)?;
            let explanation = if options.explain {
                let tokens = snapshot.tokens(doc)?;
                Some(
                    score::explain(&q_tokens, nq, tokens, dim)
                        .into_iter()
                        .enumerate()
                        .map(|(qi, (ti, sim))| TokenMatch {
                            query_token: qi,
                            item_token: ti,
                            similarity: sim,
                            patch: meta.grid.map(|[_, cols]| [ti / cols, ti % cols]),
                        })
                        .collect(),
                )
            } else {
                None
            };
            Ok(Hit {
                doc,
                score,
                global,
                payload: serde_json::from_str(&meta.payload).unwrap_or(serde_json::Value::Null),
                id: meta.id,
                source: meta.source,
                modality: meta.modality,
                explanation,
            })
        })
        .collect()
}

/// The SMILES recorded in an item's payload (`smiles`), if any.
pub fn item_smiles(payload: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()?
        .get("smiles")?
        .as_str()
        .map(String::from)
}

/// Motif embeddings of a molecule: the mean of its stored token rows per
/// motif (row 0 is [CLS], so SMILES token t is row t + 1).
fn molecule_motifs(
    smiles: &str,
    tokens: &[f32],
    dim: usize,
    what: &str,
) -> Result<(Vec<f32>, usize)> {
    let motifs = crate::chem::motifs(smiles).map_err(|e| Error::InvalidInput {
        item: what.to_string(),
        reason: e.to_string(),
    })?;
    let groups: Vec<Vec<usize>> = motifs
        .into_iter()
        .map(|m| m.tokens)
        .filter(|t| !t.is_empty())
        .collect();
    let vecs = crate::chem::motif_embeddings(tokens, dim, &groups, 1);
    let m = vecs.len() / dim.max(1);
    Ok((vecs, m))
}

/// Motif OT between a text side and a molecule side, whichever is the query.
fn motif_score(
    snapshot: &Snapshot,
    doc: DocId,
    query: &Query,
    q_tokens: &[f32],
    dim: usize,
    epsilon: f32,
) -> Result<f32> {
    let meta = snapshot.meta(doc)?;
    let item_tokens = snapshot.tokens(doc)?.to_f32();
    let (text, n, motifs, m) = if let Some(smiles) = item_smiles(&meta.payload) {
        let (mv, m) = molecule_motifs(&smiles, &item_tokens, dim, &meta.id)?;
        (q_tokens.to_vec(), q_tokens.len() / dim, mv, m)
    } else if let Some(smiles) = &query.smiles {
        let (mv, m) = molecule_motifs(smiles, q_tokens, dim, "query")?;
        let n = item_tokens.len() / dim;
        (item_tokens, n, mv, m)
    } else {
        return Err(Error::InvalidInput {
            item: meta.id,
            reason: "motif scoring needs a molecule: neither the item (payload `smiles`) nor the query is one".into(),
        });
    };
    if n == 0 || m == 0 {
        return Ok(0.0);
    }
    Ok(crate::chem::ot_similarity(
        &text, n, &motifs, m, dim, epsilon,
    ))
}

fn late_score(scorer: Scorer, i: &Interaction, global: f32) -> f32 {
    match scorer {
        Scorer::Global | Scorer::MotifOt { .. } | Scorer::MultiGrained { .. } => global,
        Scorer::Filip(Direction::QueryToItem) => i.filip_q2d(),
        Scorer::Filip(Direction::ItemToQuery) => i.filip_d2q(),
        Scorer::Filip(Direction::Symmetric) => i.filip_symmetric(),
        Scorer::MaxSim => i.maxsim(),
        Scorer::Hybrid { weight } => weight * global + (1.0 - weight) * i.filip_q2d(),
    }
}

/// Global cosine of every live, accepted doc.
fn exact_scan(
    snapshot: &Snapshot,
    q: &[f32],
    accept: &dyn Fn(DocId) -> bool,
) -> Result<Vec<(DocId, f32)>> {
    let mut out = Vec::new();
    for doc in snapshot.live_docs() {
        if accept(doc) {
            out.push((doc, crate::index::dot(q, snapshot.embedding(doc)?)));
        }
    }
    Ok(out)
}
