//! Zero-shot classification: labels embedded through prompt templates,
//! probabilities as the model defines them (CLIP: a softmax over the labels
//! with the bundle's logit scale; SigLIP: an independent sigmoid per label
//! with its logit scale and bias), top-k, abstain, multi-label thresholds,
//! and bulk tagging of a collection.
//!
//! A label's embedding is the normalised mean of the text encoder's
//! embeddings of every template with the label filled in (CLIP's prompt
//! ensembling). Label embeddings are cached per bundle hash + label +
//! templates, so a repeated call encodes only its input.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::bundle::{Modality, ZeroShot, ZeroShotScoring};
use crate::cache::Lru;
use crate::encoder::{BundleEncoders, Input};
use crate::error::{Error, Result};
use crate::score::{self, MaxSimScratch};
use crate::search::Query;
use crate::store::Collection;

/// How labels are scored against the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelScoring {
    /// Cosine of global embeddings.
    #[default]
    Global,
    /// FILIP: mean over the input's tokens of the best token of the label's
    /// first prompt (the template ensemble has no token matrix).
    Filip,
}

/// Options of a classification.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClassifyOptions {
    /// Templates with `{}`; `None` = the bundle's `[zero_shot] templates`.
    pub templates: Option<Vec<String>>,
    /// Temperature; `None` = 1 / the bundle's logit scale. (SigLIP bundles
    /// keep their logit bias.)
    pub temperature: Option<f32>,
    /// Labels returned, best first. Default 5.
    pub top_k: usize,
    /// Return "none of these" when the best probability is below this.
    pub abstain_below: Option<f32>,
    /// Multi-label mode: a label is on when its cosine score reaches its
    /// threshold (per label; `default_threshold` for the others).
    pub multi_label: Option<MultiLabel>,
    /// Scoring.
    pub scoring: LabelScoring,
}

impl Default for ClassifyOptions {
    fn default() -> Self {
        ClassifyOptions {
            templates: None,
            temperature: None,
            top_k: 5,
            abstain_below: None,
            multi_label: None,
            scoring: LabelScoring::Global,
        }
    }
}

impl ClassifyOptions {
    /// Sets the templates.
    pub fn with_templates(mut self, t: Vec<String>) -> Self {
        self.templates = Some(t);
        self
    }
    /// Sets top-k.
    pub fn with_top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self
    }
    /// Sets the abstain threshold (a probability).
    pub fn with_abstain_below(mut self, p: Option<f32>) -> Self {
        self.abstain_below = p;
        self
    }
    /// Sets the temperature.
    pub fn with_temperature(mut self, t: Option<f32>) -> Self {
        self.temperature = t;
        self
    }
    /// Sets multi-label mode.
    pub fn with_multi_label(mut self, m: Option<MultiLabel>) -> Self {
        self.multi_label = m;
        self
    }
    /// Sets the scoring.
    pub fn with_scoring(mut self, s: LabelScoring) -> Self {
        self.scoring = s;
        self
    }
}

/// Multi-label thresholds (on cosine scores).
#[derive(Debug, Clone, Default)]
pub struct MultiLabel {
    /// Threshold of labels without their own.
    pub default_threshold: f32,
    /// Per-label thresholds.
    pub thresholds: HashMap<String, f32>,
}

/// One label's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelScore {
    /// The label.
    pub label: String,
    /// Cosine (or FILIP) score.
    pub score: f32,
    /// Probability: softmax over the labels (CLIP), or this label's own
    /// sigmoid (SigLIP: probabilities do not sum to 1).
    pub probability: f32,
}

/// A classification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// Top labels, best first.
    pub labels: Vec<LabelScore>,
    /// The best label, or `None` when abstaining ("none of these").
    pub best: Option<String>,
    /// Multi-label mode: every label over its threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on: Option<Vec<String>>,
}

#[derive(Debug)]
struct LabelVec {
    embedding: Vec<f32>,
    tokens: Vec<f32>,
}

/// Counters of the label cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Labels served from the cache.
    pub hits: u64,
    /// Labels encoded.
    pub misses: u64,
    /// Prompts sent to the text encoder.
    pub prompts_encoded: u64,
    /// Labels held now.
    pub entries: u64,
    /// Bytes they hold (embeddings, tokens and keys).
    pub bytes: u64,
    /// Labels dropped to stay within the capacity, least recently used first.
    pub evictions: u64,
}

type LabelKey = (String, String, u64);

/// Label embeddings keyed by bundle hash + label + templates, bounded in
/// bytes: the least recently used labels are dropped first.
#[derive(Debug)]
pub struct LabelCache {
    inner: Mutex<Labels>,
}

#[derive(Debug)]
struct Labels {
    lru: Lru<LabelKey, Arc<LabelVec>>,
    hits: u64,
    misses: u64,
    prompts_encoded: u64,
}

/// Default capacity of a [`LabelCache`]: 64 MiB.
pub const DEFAULT_LABEL_CACHE_BYTES: u64 = 64 << 20;

impl Default for LabelCache {
    fn default() -> Self {
        Self::with_capacity_bytes(DEFAULT_LABEL_CACHE_BYTES)
    }
}

fn entry_bytes(key: &LabelKey, v: &LabelVec) -> u64 {
    ((v.embedding.len() + v.tokens.len()) * 4 + key.0.len() + key.1.len() + 64) as u64
}

impl LabelCache {
    /// An empty cache of [`DEFAULT_LABEL_CACHE_BYTES`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache that holds at most `bytes` (0 caches nothing).
    pub fn with_capacity_bytes(bytes: u64) -> Self {
        LabelCache {
            inner: Mutex::new(Labels {
                lru: Lru::new(bytes),
                hits: 0,
                misses: 0,
                prompts_encoded: 0,
            }),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> CacheStats {
        let l = self.lock();
        CacheStats {
            hits: l.hits,
            misses: l.misses,
            prompts_encoded: l.prompts_encoded,
            entries: l.lru.len() as u64,
            bytes: l.lru.bytes(),
            evictions: l.lru.evictions(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Labels> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        item: "labels".into(),
        reason: reason.into(),
    }
}

/// Checks the labels and templates of a call.
pub fn validate(labels: &[String], templates: &[String]) -> Result<()> {
    if labels.is_empty() {
        return Err(invalid("the label list is empty"));
    }
    let mut seen = HashSet::new();
    for l in labels {
        let key = l.trim().to_lowercase();
        if key.is_empty() {
            return Err(invalid("a label is empty"));
        }
        if !seen.insert(key) {
            return Err(invalid(format!("duplicate label `{l}`")));
        }
    }
    if templates.is_empty() {
        return Err(invalid("no prompt templates"));
    }
    if let Some(t) = templates.iter().find(|t| !t.contains("{}")) {
        return Err(Error::InvalidInput {
            item: "templates".into(),
            reason: format!("template `{t}` has no `{{}}` placeholder for the label"),
        });
    }
    Ok(())
}

fn templates_key(templates: &[String]) -> u64 {
    templates.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, t| {
        t.bytes()
            .chain([0u8])
            .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    })
}

/// A zero-shot classifier over a bundle's encoders.
#[derive(Debug)]
pub struct Classifier {
    encoders: BundleEncoders,
    cache: Arc<LabelCache>,
    scratch: MaxSimScratch,
}

impl Classifier {
    /// A classifier with its own cache.
    pub fn new(encoders: BundleEncoders) -> Self {
        Self::with_cache(encoders, Arc::new(LabelCache::new()))
    }

    /// A classifier sharing a cache.
    pub fn with_cache(encoders: BundleEncoders, cache: Arc<LabelCache>) -> Self {
        Classifier {
            encoders,
            cache,
            scratch: MaxSimScratch::new(),
        }
    }

    /// The encoders.
    pub fn encoders(&mut self) -> &mut BundleEncoders {
        &mut self.encoders
    }

    /// The cache.
    pub fn cache(&self) -> &LabelCache {
        &self.cache
    }

    fn templates(&self, options: &ClassifyOptions) -> Vec<String> {
        options.templates.clone().unwrap_or_else(|| {
            self.encoders
                .bundle()
                .manifest()
                .zero_shot
                .templates
                .clone()
        })
    }

    /// Embeddings of `labels` (cached).
    fn label_vecs(
        &mut self,
        labels: &[String],
        templates: &[String],
    ) -> Result<Vec<Arc<LabelVec>>> {
        validate(labels, templates)?;
        let hash = self.encoders.bundle().hash().to_string();
        let tkey = templates_key(templates);
        let key = |l: &str| (hash.clone(), l.trim().to_string(), tkey);
        let mut out: Vec<Option<Arc<LabelVec>>> = {
            let mut c = self.cache.lock();
            labels.iter().map(|l| c.lru.get(&key(l))).collect()
        };
        let missing: Vec<usize> = (0..labels.len()).filter(|i| out[*i].is_none()).collect();
        {
            let mut c = self.cache.lock();
            c.hits += (labels.len() - missing.len()) as u64;
            c.misses += missing.len() as u64;
            c.prompts_encoded += (missing.len() * templates.len()) as u64;
        }
        if !missing.is_empty() {
            let prompts: Vec<String> = missing
                .iter()
                .flat_map(|i| {
                    templates
                        .iter()
                        .map(move |t| t.replace("{}", labels[*i].trim()))
                })
                .collect();
            let inputs: Vec<Input<'_>> = prompts.iter().map(|p| Input::Text(p)).collect();
            let encoded = self.encoders.encoder(Modality::Text)?.encode(&inputs);
            let mut encoded = encoded.into_iter();
            let mut c = self.cache.lock();
            for i in missing {
                let mut sum: Vec<f32> = Vec::new();
                let mut first_tokens = None;
                for _ in templates {
                    let e = encoded.next().expect("one result per prompt")?;
                    if sum.is_empty() {
                        sum = vec![0.0; e.embedding.len()];
                    }
                    sum.iter_mut().zip(&e.embedding).for_each(|(a, b)| *a += b);
                    first_tokens.get_or_insert(e.tokens);
                }
                let n = sum.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                let v = Arc::new(LabelVec {
                    embedding: sum.iter().map(|x| x / n).collect(),
                    tokens: first_tokens.unwrap_or_default(),
                });
                let k = key(&labels[i]);
                let bytes = entry_bytes(&k, &v);
                c.lru.insert(k, Arc::clone(&v), bytes);
                out[i] = Some(v);
            }
        }
        Ok(out.into_iter().map(|v| v.expect("filled")).collect())
    }

    /// Classifies one input (image, text or SMILES) among `labels`.
    pub fn classify(
        &mut self,
        input: Input<'_>,
        labels: &[String],
        options: &ClassifyOptions,
    ) -> Result<Classification> {
        let templates = self.templates(options);
        validate(labels, &templates)?;
        let encoded = self.encoders.encode(&[input]).remove(0)?;
        self.classify_query(&Query::from_encoded(encoded), labels, options)
    }

    /// Classifies an already-encoded query (a stored item, say) among `labels`.
    pub fn classify_query(
        &mut self,
        query: &Query,
        labels: &[String],
        options: &ClassifyOptions,
    ) -> Result<Classification> {
        let templates = self.templates(options);
        let vecs = self.label_vecs(labels, &templates)?;
        let dim = query.embedding.len();
        let scores: Vec<f32> = match options.scoring {
            LabelScoring::Global => vecs
                .iter()
                .map(|v| crate::index::dot(&query.embedding, &v.embedding))
                .collect(),
            LabelScoring::Filip => {
                if query.tokens.is_empty() || vecs.iter().any(|v| v.tokens.is_empty()) {
                    return Err(invalid("late interaction unavailable: the input or the labels have no token matrix"));
                }
                let nq = query.tokens.len() / dim;
                let mut prepared = self.scratch.prepare(&query.tokens, nq, dim);
                vecs.iter()
                    .map(|v| {
                        prepared
                            .interact(score::TokensRef::F32(&v.tokens))
                            .filip_q2d()
                    })
                    .collect()
            }
        };
        if let Some(t) = options.temperature {
            if t.is_nan() || t <= 0.0 {
                return Err(invalid(format!("temperature {t} must be > 0")));
            }
        }
        let scoring = Scoring::of(
            &self.encoders.bundle().manifest().zero_shot,
            options.temperature,
        );
        Ok(decide(labels, &scores, scoring, options))
    }

    /// Label embeddings for bulk use (tagging), in label order.
    pub fn label_embeddings(
        &mut self,
        labels: &[String],
        options: &ClassifyOptions,
    ) -> Result<Vec<Vec<f32>>> {
        let templates = self.templates(options);
        Ok(self
            .label_vecs(labels, &templates)?
            .iter()
            .map(|v| v.embedding.clone())
            .collect())
    }
}

/// How raw scores become probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scoring {
    /// Softmax over the labels, or a sigmoid per label.
    pub kind: ZeroShotScoring,
    /// Multiplier of the scores.
    pub scale: f32,
    /// Added after scaling (sigmoid only).
    pub bias: f32,
}

impl Scoring {
    /// The bundle's zero-shot scoring; `temperature` replaces its scale by `1 / temperature`.
    pub fn of(zero_shot: &ZeroShot, temperature: Option<f32>) -> Scoring {
        Scoring {
            kind: zero_shot.scoring,
            scale: temperature
                .filter(|t| *t > 0.0)
                .map_or(zero_shot.logit_scale, |t| 1.0 / t),
            bias: zero_shot.logit_bias.unwrap_or(0.0),
        }
    }

    /// CLIP's softmax with `scale`.
    pub fn softmax(scale: f32) -> Scoring {
        Scoring {
            kind: ZeroShotScoring::Softmax,
            scale,
            bias: 0.0,
        }
    }

    /// The probabilities of `scores`.
    pub fn probabilities(&self, scores: &[f32]) -> Vec<f32> {
        match self.kind {
            ZeroShotScoring::Softmax => {
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exps: Vec<f32> = scores
                    .iter()
                    .map(|s| ((s - max) * self.scale).exp())
                    .collect();
                let total: f32 = exps.iter().sum();
                exps.iter().map(|e| e / total).collect()
            }
            ZeroShotScoring::Sigmoid => scores
                .iter()
                .map(|s| 1.0 / (1.0 + (-(s * self.scale + self.bias)).exp()))
                .collect(),
        }
    }
}

/// Probabilities, top-k, abstain and multi-label from raw scores.
pub fn decide(
    labels: &[String],
    scores: &[f32],
    scoring: Scoring,
    options: &ClassifyOptions,
) -> Classification {
    let probabilities = scoring.probabilities(scores);
    let mut ranked: Vec<LabelScore> = labels
        .iter()
        .zip(scores)
        .zip(&probabilities)
        .map(|((l, s), p)| LabelScore {
            label: l.clone(),
            score: *s,
            probability: *p,
        })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    let best = ranked
        .first()
        .filter(|b| options.abstain_below.is_none_or(|t| b.probability >= t))
        .map(|b| b.label.clone());
    let on = options.multi_label.as_ref().map(|m| {
        ranked
            .iter()
            .filter(|l| l.score >= *m.thresholds.get(&l.label).unwrap_or(&m.default_threshold))
            .map(|l| l.label.clone())
            .collect()
    });
    ranked.truncate(options.top_k.max(1));
    Classification {
        labels: ranked,
        best,
        on,
    }
}

/// Progress of [`tag_collection`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TagReport {
    /// Items classified in this run.
    pub tagged: usize,
    /// Items skipped because an earlier run with the same labels tagged them (resume).
    pub skipped: usize,
    /// Live items in the collection.
    pub total: usize,
}

/// Payload key holding the labels written by tagging.
pub const TAGS_KEY: &str = "weft_labels";
/// Payload key recording which tagging run wrote them (for resuming).
pub const TAG_RUN_KEY: &str = "weft_labels_run";

/// Settings of [`tag_collection`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TagOptions {
    /// How each item is classified.
    pub classify: ClassifyOptions,
    /// Write the labels into the payloads (else only report them).
    pub write: bool,
    /// Commit after this many updated items. Default 256.
    pub commit_every: usize,
}

impl Default for TagOptions {
    fn default() -> Self {
        TagOptions {
            classify: ClassifyOptions::default(),
            write: false,
            commit_every: 256,
        }
    }
}

impl TagOptions {
    /// Sets the classification options.
    pub fn with_classify(mut self, c: ClassifyOptions) -> Self {
        self.classify = c;
        self
    }
    /// Writes labels into payloads.
    pub fn with_write(mut self, w: bool) -> Self {
        self.write = w;
        self
    }
    /// Sets the commit interval.
    pub fn with_commit_every(mut self, n: usize) -> Self {
        self.commit_every = n;
        self
    }
}

/// Classifies every item of `collection` from its stored embedding (no
/// re-encoding). With `write`, the top labels (`top_k`, or the multi-label
/// set) go into each item's payload under [`TAGS_KEY`], committed every
/// `commit_every` items; a rerun with the same labels and options skips
/// items already tagged (resumable). `on_item(id, classification, done,
/// total)` is called after each item classified or skipped (`None`).
pub fn tag_collection(
    classifier: &mut Classifier,
    collection: &Collection,
    labels: &[String],
    tag: &TagOptions,
    mut on_item: impl FnMut(&str, Option<&Classification>, usize, usize),
) -> Result<TagReport> {
    let options = &tag.classify;
    let (write, commit_every) = (tag.write, tag.commit_every);
    let label_vecs = classifier.label_embeddings(labels, options)?;
    let run = format!(
        "{:016x}",
        templates_key(&[
            labels.join("\u{1f}"),
            format!(
                "{}|{:?}",
                options.top_k,
                options.multi_label.as_ref().map(|m| m.default_threshold)
            )
        ])
    );
    let scoring = Scoring::of(
        &classifier.encoders.bundle().manifest().zero_shot,
        options.temperature,
    );
    let snap = collection.snapshot();
    let docs: Vec<_> = snap.live_docs().collect();
    let mut report = TagReport {
        total: docs.len(),
        ..Default::default()
    };
    let mut pending = 0;
    for (n, doc) in docs.iter().enumerate() {
        let meta = snap.meta(*doc)?;
        let mut payload: serde_json::Value =
            serde_json::from_str(&meta.payload).unwrap_or(serde_json::Value::Null);
        if write && payload.get(TAG_RUN_KEY).and_then(|v| v.as_str()) == Some(run.as_str()) {
            report.skipped += 1;
            on_item(&meta.id, None, n + 1, docs.len());
            continue;
        }
        let emb = snap.embedding(*doc)?;
        let scores: Vec<f32> = label_vecs
            .iter()
            .map(|v| crate::index::dot(emb, v))
            .collect();
        let c = decide(labels, &scores, scoring, options);
        if write {
            let tags: Vec<String> = match &c.on {
                Some(on) => on.clone(),
                None => c.labels.iter().map(|l| l.label.clone()).collect(),
            };
            if !payload.is_object() {
                payload = serde_json::json!({ "value": payload });
            }
            payload[TAGS_KEY] = serde_json::json!(tags);
            payload[TAG_RUN_KEY] = serde_json::json!(run);
            collection.update_payload(&meta.id, payload)?;
            pending += 1;
            if pending >= commit_every.max(1) {
                collection.commit()?;
                pending = 0;
            }
        }
        report.tagged += 1;
        on_item(&meta.id, Some(&c), n + 1, docs.len());
    }
    if write && pending > 0 {
        collection.commit()?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("label {i}")).collect()
    }

    #[test]
    fn softmax_probabilities_sum_to_one() {
        let c = decide(
            &labels(3),
            &[0.3, 0.25, 0.1],
            Scoring::softmax(100.0),
            &ClassifyOptions::default(),
        );
        let total: f32 = c.labels.iter().map(|l| l.probability).sum();
        assert!((total - 1.0).abs() < 1e-5, "{total}");
        assert_eq!(c.best.as_deref(), Some("label 0"));
        assert!(c.labels[0].probability > 0.99);
    }

    #[test]
    fn sigmoid_probabilities_are_independent_per_label() {
        let scoring = Scoring {
            kind: ZeroShotScoring::Sigmoid,
            scale: 10.0,
            bias: -3.0,
        };
        let two = decide(
            &labels(2),
            &[0.3, 0.1],
            scoring,
            &ClassifyOptions::default(),
        );
        let three = decide(
            &labels(3),
            &[0.3, 0.1, 0.31],
            scoring,
            &ClassifyOptions::default(),
        );
        let p0 = |c: &Classification| {
            c.labels
                .iter()
                .find(|l| l.label == "label 0")
                .unwrap()
                .probability
        };
        assert_eq!(
            p0(&two),
            p0(&three),
            "adding a label leaves the others alone"
        );
        assert!((p0(&two) - 1.0 / (1.0 + (-(0.3f32 * 10.0 - 3.0)).exp())).abs() < 1e-6);
        let total: f32 = three.labels.iter().map(|l| l.probability).sum();
        assert!(
            (total - 1.0).abs() > 0.1,
            "sigmoid probabilities need not sum to 1: {total}"
        );
    }

    #[test]
    fn a_temperature_replaces_the_scale_and_keeps_the_bias() {
        let z = ZeroShot {
            scoring: ZeroShotScoring::Sigmoid,
            logit_scale: 10.0,
            logit_bias: Some(-2.0),
            templates: vec!["{}".into()],
        };
        let s = Scoring::of(&z, Some(0.5));
        assert_eq!((s.scale, s.bias), (2.0, -2.0));
        assert_eq!(Scoring::of(&z, None).scale, 10.0);
    }
}
