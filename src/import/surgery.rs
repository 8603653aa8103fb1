//! Graph surgery: finding a tower's pooled output and inputs, and adding the
//! per-token output FILIP needs.
//!
//! In CLIP-family models the pooled embedding is one token's last hidden
//! state (the class token of a ViT, the end token of a text transformer)
//! passed through the tower's final norm and projection. The token output is
//! the same norm and projection applied to every token:
//!
//! 1. From the pooled output, step over an L2 normalisation if the graph
//!    has one, then walk back through the nodes that carry the value (never
//!    guessing by names: exporters name the projection `onnx::MatMul_755`).
//! 2. Run the graph once (ONNX Runtime, sample inputs) with the tensors on
//!    that walk as outputs: their real shapes show where `[B, T, D]` (the
//!    sequence, `S`) became `[B, D]` (the pooled row, `P`).
//! 3. Copy the nodes between `P` and the pooled output (the projection, a
//!    layer norm, possibly decomposed into primitive ops) onto `S`, after
//!    checking each works row by row; reshapes that do nothing are skipped.
//! 4. Run the copy and prove it: the pooled embedding must equal the copy's
//!    row at the pooled position (row 0 for an image: the class token, which
//!    the token output then leaves out; the end token for text).
//!
//! Anything else (an attention-pooling head, a convolutional tower pooled
//! over a feature map) is reported with the reason and the side stays
//! global-only.

use std::collections::{HashMap, HashSet};

use crate::bundle::InputRole;
use crate::onnx::model::build::{self, Attr};
use crate::onnx::{dtype, AttrValue, Dim, Graph, GraphCut, GraphIndex, Model, Node, Required};

/// A graph input the tower needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    /// Input name.
    pub name: String,
    /// ONNX element type.
    pub elem_type: i32,
    /// Shape as declared.
    pub dims: Vec<Dim>,
    /// What weft feeds into it.
    pub role: InputRole,
}

impl Feed {
    /// The manifest dtype name.
    pub fn dtype_name(&self) -> &'static str {
        match self.elem_type {
            dtype::INT32 => "int32",
            dtype::FLOAT => "float32",
            _ => "int64",
        }
    }

    /// A fixed size of dimension `i`, if the graph declares one.
    pub fn fixed(&self, i: usize) -> Option<usize> {
        match self.dims.get(i) {
            Some(Dim::Value(v)) if *v > 0 => Some(*v as usize),
            _ => None,
        }
    }
}

/// What the analysis of a tower found, before any token surgery.
#[derive(Debug, Clone)]
pub struct TowerIo {
    /// The pooled output.
    pub pooled: String,
    /// The inputs it needs.
    pub feeds: Vec<Feed>,
}

/// Finds the pooled output of a tower and the inputs it reads.
///
/// `preferred`: output names to use, in order; `None` takes the graph's only
/// 2-D float output.
pub fn tower_io(
    graph: &Graph<'_>,
    image: bool,
    preferred: Option<&[&str]>,
) -> Result<TowerIo, String> {
    let names: Vec<&str> = graph.outputs.iter().map(|o| o.name.as_str()).collect();
    let pooled = match preferred {
        Some(p) => p
            .iter()
            .find(|n| names.contains(n))
            .map(|s| s.to_string())
            .ok_or_else(|| {
                format!(
                    "the graph has no output named {} (its outputs: {})",
                    p.join(" or "),
                    names.join(", ")
                )
            })?,
        None => {
            let candidates: Vec<&str> = graph
                .outputs
                .iter()
                .filter(|o| o.shape.as_ref().is_none_or(|s| s.len() == 2))
                .map(|o| o.name.as_str())
                .collect();
            match candidates.as_slice() {
                [one] => one.to_string(),
                _ => {
                    return Err(format!(
                        "cannot tell which output is the pooled embedding: expected one [batch, dim] output, the graph has {}",
                        names.join(", ")
                    ))
                }
            }
        }
    };
    let ix = GraphIndex::new(graph).map_err(|e| e.0)?;
    let keep = ix.required(&[pooled.as_str()]);
    let mut feeds = Vec::new();
    for v in graph.feeds() {
        if !keep.tensors.contains(&v.name) {
            continue;
        }
        let elem_type = v.elem_type.unwrap_or(0);
        let dims = v.shape.clone().unwrap_or_default();
        let role = if image {
            if elem_type != dtype::FLOAT || dims.len() != 4 {
                return Err(format!(
                    "image input `{}` is {} with {} dimensions; weft feeds float32 [batch, 3, height, width]",
                    v.name,
                    dtype::name(elem_type),
                    dims.len()
                ));
            }
            InputRole::Pixels
        } else {
            if !matches!(elem_type, dtype::INT64 | dtype::INT32) || dims.len() != 2 {
                return Err(format!(
                    "text input `{}` is {} with {} dimensions; weft feeds int64 or int32 [batch, tokens]",
                    v.name,
                    dtype::name(elem_type),
                    dims.len()
                ));
            }
            let n = v.name.to_ascii_lowercase();
            if n.contains("mask") {
                InputRole::Mask
            } else if n.contains("type") {
                InputRole::TypeIds
            } else if n.contains("position") {
                return Err(format!(
                    "input `{}` (positions) is not one weft feeds",
                    v.name
                ));
            } else {
                InputRole::Ids
            }
        };
        if feeds.iter().any(|f: &Feed| f.role == role) {
            return Err(format!(
                "two inputs look like {role:?} (`{}` and `{}`)",
                feeds
                    .iter()
                    .find(|f| f.role == role)
                    .map_or("", |f| f.name.as_str()),
                v.name
            ));
        }
        feeds.push(Feed {
            name: v.name.clone(),
            elem_type,
            dims,
            role,
        });
    }
    let needed = if image {
        InputRole::Pixels
    } else {
        InputRole::Ids
    };
    if !feeds.iter().any(|f| f.role == needed) {
        return Err(format!(
            "the pooled output `{pooled}` reads no {needed:?} input"
        ));
    }
    Ok(TowerIo { pooled, feeds })
}

/// Observed output of a probe run: shape, and values when float.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values (float tensors only).
    pub values: Option<Vec<f32>>,
}

/// Runs a cut of the tower's graph (as a model) and returns the named outputs.
pub trait Probe {
    /// Writes `cut` as a model, runs it on the sample inputs and returns `outputs`.
    fn run(
        &mut self,
        model: &Model<'_>,
        cut: &GraphCut<'_, '_>,
        outputs: &[String],
    ) -> crate::Result<HashMap<String, Observed>>;
}

/// The token branch: nodes to add, and what was proven.
#[derive(Debug, Clone)]
pub struct Branch {
    /// Encoded nodes to append.
    pub nodes: Vec<Vec<u8>>,
    /// Encoded initializers to append.
    pub initializers: Vec<Vec<u8>>,
    /// The token output.
    pub output: String,
    /// Original tensors the new nodes read (to keep in a cut).
    pub reads: Vec<String>,
    /// Tokens per item in the output (patches, or sequence positions).
    pub rows: usize,
    /// Leading sequence rows left out (1: the class token).
    pub prefix: usize,
    /// The row each pooled embedding matched, per sample.
    pub pooled_rows: Vec<usize>,
    /// Whether the graph L2-normalises the pooled output.
    pub normalized: bool,
    /// What the copied chain is, for the report.
    pub ops: Vec<String>,
}

/// Whether a pooled output is L2-normalised by the graph: `x / norm(x)`.
pub fn strip_normalisation(ix: &GraphIndex<'_, '_>, out: &str) -> (String, bool) {
    let Some((_, n)) = ix.producer(out) else {
        return (out.to_string(), false);
    };
    match n.op_type.as_str() {
        "Div" if n.inputs.len() == 2 && is_norm_of(ix, &n.inputs[1], &n.inputs[0]) => {
            (n.inputs[0].clone(), true)
        }
        "LpNormalization" if n.int_attr("p").unwrap_or(2) == 2 => (n.inputs[0].clone(), true),
        _ => (out.to_string(), false),
    }
}

fn is_norm_of(ix: &GraphIndex<'_, '_>, divisor: &str, x: &str) -> bool {
    const NORM_OPS: &[&str] = &[
        "ReduceL2",
        "ReduceSum",
        "ReduceSumSquare",
        "Pow",
        "Mul",
        "Sqrt",
        "Clip",
        "Max",
        "Add",
        "Expand",
        "Cast",
        "Identity",
        "Unsqueeze",
        "Reshape",
        "Abs",
    ];
    let mut frontier = vec![divisor.to_string()];
    for _ in 0..8 {
        let mut next = Vec::new();
        for t in frontier {
            if t == x {
                return true;
            }
            if let Some((_, n)) = ix.producer(&t) {
                if NORM_OPS.contains(&n.op_type.as_str()) {
                    next.extend(
                        n.inputs
                            .iter()
                            .filter(|i| !i.is_empty() && ix.is_value_dependent(i))
                            .cloned(),
                    );
                }
            }
        }
        frontier = next;
    }
    false
}

/// Ops whose output is their first input's data, re-arranged or picked from.
const SELECTION: &[&str] = &[
    "Gather",
    "GatherND",
    "GatherElements",
    "Slice",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Transpose",
];

/// Tensors from `pre` back along the value's path (first = `pre`).
fn walk_back(ix: &GraphIndex<'_, '_>, pre: &str) -> Vec<String> {
    let mut path = vec![pre.to_string()];
    let mut cur = pre.to_string();
    for _ in 0..256 {
        let Some((_, n)) = ix.producer(&cur) else {
            break;
        };
        let vd: Vec<&String> = n
            .inputs
            .iter()
            .filter(|i| !i.is_empty() && ix.is_value_dependent(i))
            .collect();
        let next = if vd.len() == 1 {
            vd[0].clone()
        } else if SELECTION.contains(&n.op_type.as_str())
            && n.inputs.first().is_some_and(|i| ix.is_value_dependent(i))
        {
            n.inputs[0].clone()
        } else if let Some(common) = common_source(ix, &vd) {
            // A decomposed layer norm: x - mean(x), divided by sqrt(var(x) + eps).
            common
        } else {
            break;
        };
        path.push(next.clone());
        cur = next;
    }
    path
}

/// Element-wise and last-axis ops a decomposed layer norm is made of.
const ROW_OPS: &[&str] = &[
    "Sub",
    "Add",
    "Mul",
    "Div",
    "Pow",
    "Sqrt",
    "ReduceMean",
    "ReduceSum",
    "ReduceSumSquare",
    "ReduceL2",
    "Cast",
    "Identity",
    "Reciprocal",
    "Neg",
    "Abs",
    "Max",
    "Min",
    "Clip",
];

/// The nearest tensor all of `inputs` are computed from through [`ROW_OPS`]
/// only (a few steps back), if there is one.
fn common_source(ix: &GraphIndex<'_, '_>, inputs: &[&String]) -> Option<String> {
    let reach = |start: &str| {
        let mut seen: HashSet<String> = HashSet::from([start.to_string()]);
        let mut frontier = vec![start.to_string()];
        for _ in 0..8 {
            let mut next = Vec::new();
            for t in frontier {
                if let Some((_, n)) = ix.producer(&t) {
                    if ROW_OPS.contains(&n.op_type.as_str()) {
                        for i in n
                            .inputs
                            .iter()
                            .filter(|i| !i.is_empty() && ix.is_value_dependent(i))
                        {
                            if seen.insert(i.clone()) {
                                next.push(i.clone());
                            }
                        }
                    }
                }
            }
            frontier = next;
        }
        seen
    };
    let mut sets = inputs.iter().map(|i| reach(i));
    let first = sets.next()?;
    let common: HashSet<String> =
        sets.fold(first, |acc, s| acc.intersection(&s).cloned().collect());
    // The latest-made common tensor (graph inputs come first).
    common
        .into_iter()
        .max_by_key(|t| (ix.producer(t).map_or(0, |(i, _)| i + 1), t.clone()))
}

/// What the probe inputs are, for finding the sequence.
#[derive(Debug, Clone)]
pub struct Expect {
    /// Batch size of the sample inputs.
    pub batch: usize,
    /// Text: the padded sequence length. Image: `None` (found from the graph).
    pub seq: Option<usize>,
    /// Image: patches the config implies (`(size / patch)^2`), when known.
    pub patches: Option<usize>,
    /// Whether this is the image tower.
    pub image: bool,
}

/// Plans and proves the token branch of a tower. `Err(reason)`: the pattern
/// is not there (or a sample run of the copy failed) and the side stays
/// global-only.
pub fn token_branch(
    model: &Model<'_>,
    pooled: &str,
    expect: &Expect,
    output_name: &str,
    probe: &mut dyn Probe,
) -> Result<Branch, String> {
    match plan(model, pooled, expect, output_name, probe) {
        Ok(r) => r,
        Err(e) => Err(format!(
            "running parts of the graph on sample inputs failed: {e}"
        )),
    }
}

fn plan(
    model: &Model<'_>,
    pooled: &str,
    expect: &Expect,
    output_name: &str,
    probe: &mut dyn Probe,
) -> crate::Result<Result<Branch, String>> {
    let graph = &model.graph;
    let ix = match GraphIndex::new(graph) {
        Ok(ix) => ix,
        Err(e) => return Ok(Err(e.0)),
    };
    let (pre, normalized) = strip_normalisation(&ix, pooled);
    let path = walk_back(&ix, &pre);
    let keep_path: Vec<&str> = path.iter().map(String::as_str).collect();
    let mut cut = GraphCut::new(graph, ix.required(&keep_path));
    cut.outputs = path
        .iter()
        .map(|t| build::value_info(t, None, None))
        .collect();
    let seen = probe.run(model, &cut, &path)?;
    let shape = |t: &str| seen.get(t).map(|o| o.shape.clone()).unwrap_or_default();
    let b = expect.batch;
    let describe = |t: &str| {
        ix.producer(t)
            .map_or_else(|| format!("input `{t}`"), |(_, n)| n.describe())
    };

    // S: the tensor nearest the output that is [B, T, D].
    let mut s_at = None;
    for (k, t) in path.iter().enumerate() {
        let sh = shape(t);
        if sh.len() == 4 && sh[0] == b {
            return Ok(Err(format!(
                "the pooled embedding is made from a {sh:?} feature map ({}): a convolutional tower, whose pooled \
                 embedding is not one token's projection; no patch tokens",
                describe(t)
            )));
        }
        if sh.len() == 3 && sh[0] == b {
            let fits = match expect.seq {
                Some(tl) => sh[1] == tl,
                None => sh[1] > 1,
            };
            if fits {
                s_at = Some(k);
                break;
            }
            if sh[1] == 1 && expect.image {
                return Ok(Err(format!(
                    "the pooled embedding comes from a one-row {sh:?} tensor made by {}: an attention-pooling head, \
                     not a class token; patch tokens have no path into the embedding space",
                    describe(t)
                )));
            }
        }
    }
    let Some(s_at) = s_at else {
        return Ok(Err(format!(
            "no [batch, tokens, dim] sequence leads to the pooled output (walked back {} tensors from `{pre}`: shapes {})",
            path.len(),
            path.iter().map(|t| format!("{:?}", shape(t))).collect::<Vec<_>>().join(" <- ")
        )));
    };
    let s = path[s_at].clone();
    let s_shape = shape(&s);
    let p_at = (0..s_at).rev().find(|k| {
        let sh = shape(&path[*k]);
        sh.len() == 2 && sh[0] == b
    });
    let Some(p_at) = p_at else {
        return Ok(Err(format!(
            "the sequence {s_shape:?} (`{s}`) does not become a [batch, dim] row on the way to the pooled output"
        )));
    };
    let p = path[p_at].clone();

    // The chain: nodes after P (on the value's flow) that the pooled output needs.
    let anc = ix.required(&[pre.as_str()]).nodes;
    let mut desc_tensors: HashSet<String> = HashSet::from([p.clone()]);
    let mut chain: Vec<usize> = Vec::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        if n.inputs.iter().any(|x| desc_tensors.contains(x)) {
            desc_tensors.extend(n.outputs.iter().cloned());
            if anc[i] {
                chain.push(i);
            }
        }
    }
    // Shapes of every chain tensor (and P), for the no-op views.
    let mut chain_tensors: Vec<String> = vec![p.clone()];
    for &i in &chain {
        chain_tensors.extend(
            graph.nodes[i]
                .outputs
                .iter()
                .filter(|o| !o.is_empty())
                .cloned(),
        );
    }
    let keep_chain: Vec<&str> = chain_tensors.iter().map(String::as_str).collect();
    let mut cut = GraphCut::new(graph, ix.required(&keep_chain));
    cut.outputs = chain_tensors
        .iter()
        .map(|t| build::value_info(t, None, None))
        .collect();
    let chain_seen = probe.run(model, &cut, &chain_tensors)?;
    let cshape = |t: &str| {
        chain_seen
            .get(t)
            .map(|o| o.shape.clone())
            .unwrap_or_default()
    };

    // Verify on every row first (no prefix dropped), then build the real branch.
    let verify_name = format!("{output_name}/all_rows");
    let verify = match copy_chain(&ix, &chain, &p, &s, 0, &verify_name, &cshape) {
        Ok(v) => v,
        Err(reason) => return Ok(Err(reason)),
    };
    let mut reads: Vec<&str> = verify.reads.iter().map(String::as_str).collect();
    reads.push(pre.as_str());
    let mut cut = GraphCut::new(graph, ix.required(&reads));
    cut.extra_nodes = verify.nodes.clone();
    cut.extra_initializers = verify.initializers.clone();
    cut.outputs = vec![
        build::value_info(&pre, None, None),
        build::value_info(&verify_name, None, None),
    ];
    let proof = probe.run(model, &cut, &[pre.clone(), verify_name.clone()])?;
    let (Some(pooled_v), Some(all)) = (
        proof.get(&pre).and_then(|o| o.values.clone()),
        proof.get(&verify_name),
    ) else {
        return Ok(Err("the token branch produced no float values".into()));
    };
    let (rows_all, dim) = match all.shape.as_slice() {
        [bb, t, d] if *bb == b => (*t, *d),
        other => {
            return Ok(Err(format!(
                "the copied chain gives shape {other:?}, expected [{b}, {}, dim]",
                s_shape.get(1).copied().unwrap_or(0)
            )))
        }
    };
    let all_v = all.values.clone().unwrap_or_default();
    if pooled_v.len() != b * dim || all_v.len() != b * rows_all * dim {
        return Ok(Err(format!(
            "the pooled output has {} values and the token rows {dim} per row: they are not the same projection",
            pooled_v.len() / b.max(1)
        )));
    }
    let mut pooled_rows = Vec::with_capacity(b);
    for bi in 0..b {
        let target = &pooled_v[bi * dim..(bi + 1) * dim];
        if target.iter().any(|x| !x.is_finite()) {
            return Ok(Err(
                "the pooled output is not finite on the sample inputs".into()
            ));
        }
        let scale = target.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
        let (best, err) = (0..rows_all)
            .map(|t| {
                let row = &all_v[(bi * rows_all + t) * dim..(bi * rows_all + t + 1) * dim];
                // NaN counts as infinitely far (f32::max would drop it).
                let e = row.iter().zip(target).fold(0f32, |m, (a, c)| {
                    let d = (a - c).abs();
                    if d.is_nan() || d > m {
                        if d.is_nan() {
                            f32::INFINITY
                        } else {
                            d
                        }
                    } else {
                        m
                    }
                });
                (t, e / scale)
            })
            .min_by(|x, y| x.1.total_cmp(&y.1))
            .unwrap_or((0, f32::INFINITY));
        // NaN counts as a mismatch.
        if err.is_nan() || err > 1e-3 {
            return Ok(Err(format!(
                "the pooled embedding is not the projection of any single token (closest row {best}: relative \
                 difference {err:.2e}); it is pooled some other way ({})",
                describe(&p)
            )));
        }
        pooled_rows.push(best);
    }
    let prefix = if expect.image {
        if pooled_rows.iter().any(|r| *r != 0) {
            return Ok(Err(format!(
                "the pooled image embedding is token {pooled_rows:?}, not the class token (row 0)"
            )));
        }
        1
    } else {
        0
    };
    let rows = rows_all - prefix;
    if expect.image {
        if let Some(want) = expect.patches {
            if rows != want {
                return Ok(Err(format!(
                    "the image sequence has {rows_all} tokens: one class token and {rows} others, but the config's \
                     patch grid has {want} (register tokens or a resampled grid); patch tokens are not mapped"
                )));
            }
        }
    }
    let branch = match copy_chain(&ix, &chain, &p, &s, prefix, output_name, &cshape) {
        Ok(v) => v,
        Err(reason) => return Ok(Err(reason)),
    };
    // Prove the branch that ships: its rows are the verified rows from `prefix` on.
    let mut reads: Vec<&str> = branch.reads.iter().map(String::as_str).collect();
    reads.push(s.as_str());
    let mut cut = GraphCut::new(graph, ix.required(&reads));
    cut.extra_nodes = branch.nodes.clone();
    cut.extra_initializers = branch.initializers.clone();
    cut.outputs = vec![build::value_info(output_name, None, None)];
    let shipped = probe.run(model, &cut, &[output_name.to_string()])?;
    let Some(got) = shipped.get(output_name).and_then(|o| o.values.as_ref()) else {
        return Ok(Err("the token output produced no float values".into()));
    };
    let want: Vec<f32> = (0..b)
        .flat_map(|bi| {
            all_v[(bi * rows_all + prefix) * dim..(bi + 1) * rows_all * dim]
                .iter()
                .copied()
        })
        .collect();
    let same = got.len() == want.len()
        && got
            .iter()
            .zip(&want)
            .all(|(a, c)| (a - c).abs() <= 1e-4 * (1.0 + c.abs()));
    if !same {
        return Ok(Err(format!(
            "the token output ({} values) does not equal the verified token rows ({} values)",
            got.len(),
            want.len()
        )));
    }
    Ok(Ok(Branch {
        nodes: branch.nodes,
        initializers: branch.initializers,
        output: output_name.to_string(),
        reads: branch.reads,
        rows,
        prefix,
        pooled_rows,
        normalized,
        ops: branch.ops,
    }))
}

struct Copied {
    nodes: Vec<Vec<u8>>,
    initializers: Vec<Vec<u8>>,
    reads: Vec<String>,
    ops: Vec<String>,
}

const UNARY: &[&str] = &[
    "Sqrt",
    "Reciprocal",
    "Relu",
    "Gelu",
    "Erf",
    "Tanh",
    "Sigmoid",
    "Exp",
    "Log",
    "Neg",
    "Abs",
    "Cast",
    "Identity",
    "HardSigmoid",
    "Softplus",
    "Clip",
    "FastGelu",
];
const BINARY: &[&str] = &["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"];
const REDUCE: &[&str] = &[
    "ReduceMean",
    "ReduceSum",
    "ReduceL2",
    "ReduceMax",
    "ReduceMin",
    "ReduceSumSquare",
    "ReduceLogSumExp",
    "ReduceProd",
];
const VIEWS: &[&str] = &[
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Identity",
    "Expand",
];

/// Copies the chain nodes onto the sequence `s` (rows from `prefix` on),
/// checking each works row by row.
fn copy_chain(
    ix: &GraphIndex<'_, '_>,
    chain: &[usize],
    p: &str,
    s: &str,
    prefix: usize,
    output: &str,
    shape: &dyn Fn(&str) -> Vec<usize>,
) -> Result<Copied, String> {
    let graph = ix.graph;
    let tag = output.replace('/', "_");
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    let mut reads: Vec<String> = vec![s.to_string()];
    let mut ops = Vec::new();
    let mut renamed: HashMap<String, String> = HashMap::new();
    let seq_in = if prefix > 0 {
        let (st, en, ax) = (
            format!("{tag}/slice_starts"),
            format!("{tag}/slice_ends"),
            format!("{tag}/slice_axes"),
        );
        inits.push(build::tensor_i64(&st, &[1], &[prefix as i64]));
        inits.push(build::tensor_i64(&en, &[1], &[i64::MAX]));
        inits.push(build::tensor_i64(&ax, &[1], &[1]));
        let out = format!("{tag}/patches");
        nodes.push(build::node(
            &format!("{tag}/drop_class_token"),
            "Slice",
            &[s, &st, &en, &ax],
            &[&out],
            &[],
        ));
        ops.push(format!("Slice (rows {prefix}..)"));
        out
    } else {
        s.to_string()
    };
    renamed.insert(p.to_string(), seq_in);
    let p_rank = shape(p).len();
    let mut axes_init: Option<String> = None;
    for (k, &i) in chain.iter().enumerate() {
        let n: &Node<'_> = &graph.nodes[i];
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(format!(
                "{} (domain {}) is not a standard ONNX op weft can copy",
                n.describe(),
                n.domain
            ));
        }
        let op = n.op_type.as_str();
        let out0 = n.outputs.first().cloned().unwrap_or_default();
        let data_in = n.inputs.first().cloned().unwrap_or_default();
        // A view that leaves the pooled row's shape as it is: skip it.
        if VIEWS.contains(&op) && renamed.contains_key(&data_in) {
            let (si, so) = (shape(&data_in), shape(&out0));
            if !si.is_empty() && si == so {
                let mapped = renamed[&data_in].clone();
                renamed.insert(out0, mapped);
                continue;
            }
            if op != "Identity" {
                return Err(format!(
                    "{} changes the pooled row's shape {si:?} -> {so:?}; it cannot be applied per token",
                    n.describe()
                ));
            }
        }
        // Map the inputs.
        let mut ins: Vec<String> = Vec::new();
        let mut chain_inputs = 0;
        for (j, x) in n.inputs.iter().enumerate() {
            if x.is_empty() {
                ins.push(String::new());
            } else if let Some(r) = renamed.get(x) {
                chain_inputs += 1;
                ins.push(r.clone());
            } else if let Some(c) = ix.constant(x) {
                let ok_broadcast = match op {
                    "MatMul" | "Gemm" | "LayerNormalization" => true,
                    _ if REDUCE.contains(&op) => true,
                    _ => c.dims.len() <= 1 || (c.dims.len() == 2 && c.dims[0] == 1),
                };
                if !ok_broadcast {
                    return Err(format!(
                        "{} reads constant `{x}` of shape {:?}, which does not broadcast over tokens",
                        n.describe(),
                        c.dims
                    ));
                }
                if op == "MatMul" && j == 0 {
                    return Err(format!(
                        "{} multiplies a constant by the pooled row from the left",
                        n.describe()
                    ));
                }
                reads.push(x.clone());
                ins.push(x.clone());
            } else {
                return Err(format!(
                    "{} reads `{x}`, a value computed at run time apart from the pooled row",
                    n.describe()
                ));
            }
        }
        if chain_inputs == 0 {
            continue;
        }
        let name = |suffix: &str| {
            let base = if n.name.is_empty() {
                format!("{op}_{k}")
            } else {
                n.name.clone()
            };
            format!("{tag}/{base}{suffix}")
        };
        let rename_out = |o: &str| format!("{tag}/{o}");
        let outs: Vec<String> = n
            .outputs
            .iter()
            .map(|o| {
                if o.is_empty() {
                    String::new()
                } else {
                    rename_out(o)
                }
            })
            .collect();
        let out_refs: Vec<&str> = outs.iter().map(String::as_str).collect();
        let in_refs: Vec<&str> = ins.iter().map(String::as_str).collect();
        let last_axis = |a: i64| a == -1 || (p_rank > 0 && a == p_rank as i64 - 1);
        match op {
            "MatMul" => {
                let w = n
                    .inputs
                    .get(1)
                    .and_then(|x| ix.constant(x))
                    .ok_or_else(|| format!("{} has no constant weight", n.describe()))?;
                if w.dims.len() != 2 {
                    return Err(format!("{} weight has shape {:?}, expected 2-D", n.describe(), w.dims));
                }
                nodes.push(build::node(&name(""), "MatMul", &in_refs, &out_refs, &[]));
                ops.push("MatMul".into());
            }
            "Gemm" => {
                if n.int_attr("transA").unwrap_or(0) != 0
                    || n.float_attr("alpha").unwrap_or(1.0) != 1.0
                    || n.float_attr("beta").unwrap_or(1.0) != 1.0
                {
                    return Err(format!("{} has transA, alpha or beta set; weft copies plain Gemm", n.describe()));
                }
                let w = n
                    .inputs
                    .get(1)
                    .and_then(|x| ix.constant(x))
                    .ok_or_else(|| format!("{} has no constant weight", n.describe()))?;
                if w.dims.len() != 2 || ins.len() < 2 {
                    return Err(format!("{} weight has shape {:?}", n.describe(), w.dims));
                }
                let mut weight = ins[1].clone();
                if n.int_attr("transB").unwrap_or(0) == 1 {
                    let t = format!("{tag}/{}_T", ins[1]);
                    nodes.push(build::node(&name("/transpose_weight"), "Transpose", &[&ins[1]], &[&t], &[("perm", Attr::Ints(vec![1, 0]))]));
                    weight = t;
                }
                let has_bias = ins.get(2).is_some_and(|c| !c.is_empty());
                let mm_out = if has_bias { format!("{}/matmul", outs[0]) } else { outs[0].clone() };
                nodes.push(build::node(&name("/matmul"), "MatMul", &[&ins[0], &weight], &[&mm_out], &[]));
                if has_bias {
                    nodes.push(build::node(&name("/bias"), "Add", &[&mm_out, &ins[2]], &[&outs[0]], &[]));
                }
                ops.push("Gemm as MatMul + Add".into());
            }
            "LayerNormalization" => {
                let axis = n.int_attr("axis").unwrap_or(-1);
                if !last_axis(axis) {
                    return Err(format!("{} normalises axis {axis}, not the last one", n.describe()));
                }
                let mut attrs: Vec<(&str, Attr)> = vec![("axis", Attr::Int(-1))];
                if let Some(e) = n.float_attr("epsilon") {
                    attrs.push(("epsilon", Attr::Float(e)));
                }
                if let Some(st) = n.int_attr("stash_type") {
                    attrs.push(("stash_type", Attr::Int(st)));
                }
                nodes.push(build::node(&name(""), "LayerNormalization", &in_refs, &out_refs, &attrs));
                ops.push("LayerNormalization".into());
            }
            "Softmax" | "LogSoftmax" => {
                let axis = n.int_attr("axis").unwrap_or(-1);
                if !last_axis(axis) {
                    return Err(format!("{} works on axis {axis}, not the last one", n.describe()));
                }
                nodes.push(build::node(&name(""), op, &in_refs, &out_refs, &[("axis", Attr::Int(-1))]));
                ops.push(op.into());
            }
            _ if REDUCE.contains(&op) => {
                let mut attrs: Vec<(&str, Attr)> = Vec::new();
                if let Some(k) = n.int_attr("keepdims") {
                    attrs.push(("keepdims", Attr::Int(k)));
                }
                let mut ins2 = ins.clone();
                if let Some(axes) = n.ints_attr("axes") {
                    if axes.len() != 1 || !last_axis(axes[0]) {
                        return Err(format!("{} reduces axes {axes:?}, not the last one", n.describe()));
                    }
                    attrs.push(("axes", Attr::Ints(vec![-1])));
                } else if let Some(a) = n.inputs.get(1).filter(|a| !a.is_empty()) {
                    let c = ix.constant(a).ok_or_else(|| format!("{} takes its axes from a run-time value", n.describe()))?;
                    let v = c.to_f64(std::path::Path::new(".")).map_err(|e| e.0)?;
                    if v.len() != 1 || !last_axis(v[0] as i64) {
                        return Err(format!("{} reduces axes {v:?}, not the last one", n.describe()));
                    }
                    let name = axes_init.get_or_insert_with(|| {
                        let nm = format!("{tag}/axes_last");
                        inits.push(build::tensor_i64(&nm, &[1], &[-1]));
                        nm
                    });
                    ins2[1] = name.clone();
                } else {
                    return Err(format!("{} reduces every axis", n.describe()));
                }
                let refs: Vec<&str> = ins2.iter().map(String::as_str).collect();
                nodes.push(build::node(&name(""), op, &refs, &out_refs, &attrs));
                ops.push(op.into());
            }
            _ if UNARY.contains(&op) || BINARY.contains(&op) => {
                let attrs = copy_scalar_attrs(n);
                let a: Vec<(&str, Attr)> = attrs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                nodes.push(build::node(&name(""), op, &in_refs, &out_refs, &a));
                ops.push(op.into());
            }
            _ => {
                return Err(format!(
                    "{} sits between the pooled token and the embedding; weft copies projections, layer norms and \
                     element-wise ops only",
                    n.describe()
                ))
            }
        }
        for (o, r) in n.outputs.iter().zip(outs) {
            if !o.is_empty() {
                renamed.insert(o.clone(), r);
            }
        }
    }
    // The chain's last value is the pooled output's copy.
    let last = chain
        .iter()
        .rev()
        .flat_map(|&i| graph.nodes[i].outputs.first())
        .find_map(|o| renamed.get(o).cloned())
        .unwrap_or_else(|| renamed[p].clone());
    nodes.push(build::node(
        &format!("{tag}/output"),
        "Identity",
        &[&last],
        &[output],
        &[],
    ));
    reads.sort();
    reads.dedup();
    Ok(Copied {
        nodes,
        initializers: inits,
        reads,
        ops,
    })
}

/// Integer, float and string attributes of an element-wise node, copied.
fn copy_scalar_attrs(n: &Node<'_>) -> Vec<(String, Attr)> {
    n.attributes
        .iter()
        .filter_map(|a| match &a.value {
            AttrValue::Int(v) => Some((a.name.clone(), Attr::Int(*v))),
            AttrValue::Float(v) => Some((a.name.clone(), Attr::Float(*v))),
            AttrValue::Ints(v) => Some((a.name.clone(), Attr::Ints(v.clone()))),
            AttrValue::String(v) => Some((a.name.clone(), Attr::Str(v.clone()))),
            _ => None,
        })
        .collect()
}

/// The tensors a final cut must keep for `outputs` plus the branch's reads.
pub fn final_keep(ix: &GraphIndex<'_, '_>, pooled: &str, branch: Option<&Branch>) -> Required {
    let mut wanted: Vec<&str> = vec![pooled];
    if let Some(b) = branch {
        wanted.extend(b.reads.iter().map(String::as_str));
    }
    ix.required(&wanted)
}
