//! Following tensors through a graph, and cutting a graph down to what some
//! outputs need (plus nodes weft adds).

use std::collections::{HashMap, HashSet};
use std::io::Write;

use super::model::{AttrValue, Graph, Model, Node, ParseError, Tensor};
use super::wire;

/// Lookups over one graph: who produces a tensor, which tensors are constants,
/// which depend on the values fed in.
#[derive(Debug)]
pub struct GraphIndex<'g, 'a> {
    /// The graph.
    pub graph: &'g Graph<'a>,
    producer: HashMap<&'g str, usize>,
    initializer: HashMap<&'g str, usize>,
    feeds: HashSet<&'g str>,
    value_dependent: HashSet<String>,
    implicit: Vec<Vec<String>>,
}

impl<'g, 'a> GraphIndex<'g, 'a> {
    /// Indexes `graph`.
    pub fn new(graph: &'g Graph<'a>) -> Result<Self, ParseError> {
        let mut producer = HashMap::new();
        for (i, n) in graph.nodes.iter().enumerate() {
            for o in &n.outputs {
                if !o.is_empty() {
                    producer.insert(o.as_str(), i);
                }
            }
        }
        let initializer: HashMap<&str, usize> = graph
            .initializers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let feeds: HashSet<&str> = graph
            .inputs
            .iter()
            .map(|v| v.name.as_str())
            .filter(|n| !initializer.contains_key(n))
            .collect();
        let implicit = graph
            .nodes
            .iter()
            .map(subgraph_outer_names)
            .collect::<Result<Vec<_>, _>>()?;
        // Nodes are in topological order: one forward pass finds every tensor
        // whose value (not only its shape) depends on a fed input.
        let mut value_dependent: HashSet<String> = feeds.iter().map(|s| s.to_string()).collect();
        for (i, n) in graph.nodes.iter().enumerate() {
            if matches!(n.op_type.as_str(), "Shape" | "Size") && n.domain.is_empty() {
                continue;
            }
            let depends = n
                .inputs
                .iter()
                .chain(&implicit[i])
                .any(|x| value_dependent.contains(x));
            if depends {
                value_dependent.extend(n.outputs.iter().filter(|o| !o.is_empty()).cloned());
            }
        }
        Ok(GraphIndex {
            graph,
            producer,
            initializer,
            feeds,
            value_dependent,
            implicit,
        })
    }

    /// The node producing `tensor`, with its index.
    pub fn producer(&self, tensor: &str) -> Option<(usize, &'g Node<'a>)> {
        self.producer
            .get(tensor)
            .map(|i| (*i, &self.graph.nodes[*i]))
    }

    /// Whether `tensor` is a fed graph input.
    pub fn is_feed(&self, tensor: &str) -> bool {
        self.feeds.contains(tensor)
    }

    /// Whether `tensor`'s values depend on what is fed in (not only through shapes).
    pub fn is_value_dependent(&self, tensor: &str) -> bool {
        self.value_dependent.contains(tensor)
    }

    /// The constant behind `tensor`: an initializer, or a `Constant` node's
    /// value, seen through `Identity` nodes.
    pub fn constant(&self, tensor: &str) -> Option<&'g Tensor<'a>> {
        let mut name = tensor;
        for _ in 0..16 {
            if let Some(i) = self.initializer.get(name) {
                return Some(&self.graph.initializers[*i]);
            }
            let (_, node) = self.producer(name)?;
            match node.op_type.as_str() {
                "Identity" => name = node.inputs.first()?,
                "Constant" => {
                    return match node.attribute("value") {
                        Some(AttrValue::Tensor(t)) => Some(t),
                        _ => None,
                    }
                }
                _ => return None,
            }
        }
        None
    }

    /// Every node and tensor needed to compute `outputs`.
    pub fn required(&self, outputs: &[&str]) -> Required {
        let mut nodes = vec![false; self.graph.nodes.len()];
        let mut tensors: HashSet<String> = HashSet::new();
        let mut stack: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
        while let Some(t) = stack.pop() {
            if t.is_empty() || !tensors.insert(t.clone()) {
                continue;
            }
            if let Some(&i) = self.producer.get(t.as_str()) {
                if !nodes[i] {
                    nodes[i] = true;
                    let n = &self.graph.nodes[i];
                    stack.extend(n.inputs.iter().cloned());
                    stack.extend(self.implicit[i].iter().cloned());
                }
            }
        }
        Required { nodes, tensors }
    }
}

/// What a cut of a graph keeps.
#[derive(Debug, Clone)]
pub struct Required {
    /// One flag per node of the graph.
    pub nodes: Vec<bool>,
    /// Every tensor name read or produced by a kept node, and the outputs.
    pub tensors: HashSet<String>,
}

/// Names a node's sub-graphs (If / Loop / Scan bodies) read from the outer scope.
fn subgraph_outer_names(node: &Node<'_>) -> Result<Vec<String>, ParseError> {
    let mut out = Vec::new();
    for a in &node.attributes {
        if let AttrValue::Graphs(graphs) = &a.value {
            for bytes in graphs {
                let g = Graph::parse(bytes)?;
                let mut defined: HashSet<String> = g
                    .inputs
                    .iter()
                    .map(|v| v.name.clone())
                    .chain(g.initializers.iter().map(|t| t.name.clone()))
                    .collect();
                for n in &g.nodes {
                    for i in n.inputs.iter().chain(&subgraph_outer_names(n)?) {
                        if !i.is_empty() && !defined.contains(i) {
                            out.push(i.clone());
                        }
                    }
                    defined.extend(n.outputs.iter().cloned());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A graph to write: the kept parts of an existing graph plus new messages.
#[derive(Debug)]
pub struct GraphCut<'g, 'a> {
    graph: &'g Graph<'a>,
    keep: Required,
    /// Encoded `NodeProto`s appended after the kept nodes.
    pub extra_nodes: Vec<Vec<u8>>,
    /// Encoded `TensorProto` initializers appended.
    pub extra_initializers: Vec<Vec<u8>>,
    /// Encoded `ValueInfoProto` graph outputs, in order.
    pub outputs: Vec<Vec<u8>>,
    /// External data files renamed: old `location` -> new.
    pub relocate: HashMap<String, String>,
}

impl<'g, 'a> GraphCut<'g, 'a> {
    /// Keeps what `keep` names; the outputs and extra messages are set by the caller.
    pub fn new(graph: &'g Graph<'a>, keep: Required) -> Self {
        GraphCut {
            graph,
            keep,
            extra_nodes: Vec::new(),
            extra_initializers: Vec::new(),
            outputs: Vec::new(),
            relocate: HashMap::new(),
        }
    }

    /// The graph being cut.
    pub fn graph(&self) -> &'g Graph<'a> {
        self.graph
    }

    /// What the cut keeps.
    pub fn keep(&self) -> &Required {
        &self.keep
    }

    /// The kept initializers whose data files are renamed, re-encoded.
    fn relocated(&self) -> Vec<Option<Vec<u8>>> {
        self.graph
            .initializers
            .iter()
            .map(|t| {
                let loc = t.external_location()?;
                let new = self.relocate.get(loc)?;
                self.keep
                    .tensors
                    .contains(&t.name)
                    .then(|| t.relocated(new))
            })
            .collect()
    }

    /// External data files the kept initializers read (after renaming).
    pub fn data_files(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .graph
            .initializers
            .iter()
            .filter(|t| self.keep.tensors.contains(&t.name))
            .filter_map(|t| t.external_location())
            .map(|l| {
                self.relocate
                    .get(l)
                    .cloned()
                    .unwrap_or_else(|| l.to_string())
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The fields of the new `GraphProto`, each as (field number, bytes).
    fn parts<'s>(&'s self, relocated: &'s [Option<Vec<u8>>]) -> Vec<(u32, &'s [u8])> {
        let g = self.graph;
        let mut parts: Vec<(u32, &[u8])> = Vec::new();
        for (i, n) in g.nodes.iter().enumerate() {
            if self.keep.nodes[i] {
                parts.push((1, n.raw));
            }
        }
        parts.extend(self.extra_nodes.iter().map(|n| (1, n.as_slice())));
        let name = g.name.as_bytes();
        parts.push((2, name));
        for (t, r) in g.initializers.iter().zip(relocated) {
            if self.keep.tensors.contains(&t.name) {
                parts.push((5, r.as_deref().unwrap_or(t.raw)));
            }
        }
        parts.extend(self.extra_initializers.iter().map(|t| (5, t.as_slice())));
        for v in &g.inputs {
            if self.keep.tensors.contains(&v.name) {
                parts.push((11, v.raw));
            }
        }
        parts.extend(self.outputs.iter().map(|o| (12, o.as_slice())));
        for v in &g.value_info {
            if self.keep.tensors.contains(&v.name) {
                parts.push((13, v.raw));
            }
        }
        for f in g.other_fields() {
            // A field kept whole (doc string, sparse initializers, annotations):
            // its raw bytes already hold its key and length.
            parts.push((0, f.raw));
        }
        parts
    }

    /// Encoded size of the `GraphProto`.
    fn encoded_len(parts: &[(u32, &[u8])]) -> usize {
        parts
            .iter()
            .map(|(n, b)| {
                if *n == 0 {
                    b.len()
                } else {
                    wire::len_prefix_size(*n, b.len()) + b.len()
                }
            })
            .sum()
    }

    /// Writes `model` with this graph in place of its own, streaming (a
    /// large model is not copied into one buffer first).
    pub fn write_model(&self, model: &Model<'_>, out: &mut impl Write) -> std::io::Result<()> {
        let relocated = self.relocated();
        let parts = self.parts(&relocated);
        let graph_len = Self::encoded_len(&parts);
        let mut head = Vec::new();
        for f in model_fields(model) {
            if f.number != 7 {
                out.write_all(f.raw)?;
                continue;
            }
            head.clear();
            wire::put_len_prefix(&mut head, 7, graph_len);
            out.write_all(&head)?;
            for (n, bytes) in &parts {
                if *n != 0 {
                    head.clear();
                    wire::put_len_prefix(&mut head, *n, bytes.len());
                    out.write_all(&head)?;
                }
                out.write_all(bytes)?;
            }
        }
        Ok(())
    }
}

fn model_fields<'m>(model: &'m Model<'_>) -> impl Iterator<Item = &'m wire::Field<'m>> {
    model.fields_raw().iter()
}

#[cfg(test)]
mod tests {
    use super::super::model::build::{self, Attr};
    use super::*;

    fn graph_bytes() -> Vec<u8> {
        let mut g = Vec::new();
        // x -> Shape -> s ; x, w -> MatMul -> y ; y -> Relu -> z ; c (Constant) -> Identity -> c2
        wire::put_bytes(
            &mut g,
            1,
            &build::node("shape", "Shape", &["x"], &["s"], &[]),
        );
        wire::put_bytes(
            &mut g,
            1,
            &build::node("mm", "MatMul", &["x", "w"], &["y"], &[]),
        );
        wire::put_bytes(&mut g, 1, &build::node("relu", "Relu", &["y"], &["z"], &[]));
        wire::put_bytes(
            &mut g,
            1,
            &build::node("other", "Neg", &["x"], &["unused"], &[("a", Attr::Int(1))]),
        );
        wire::put_bytes(
            &mut g,
            1,
            &build::node("id", "Identity", &["w"], &["w2"], &[]),
        );
        wire::put_bytes(&mut g, 5, &build::tensor_i64("w", &[1], &[2]));
        wire::put_bytes(&mut g, 5, &build::tensor_i64("v", &[1], &[5]));
        wire::put_bytes(&mut g, 11, &build::value_info("x", Some(1), None));
        wire::put_bytes(&mut g, 12, &build::value_info("z", None, None));
        g
    }

    #[test]
    fn value_dependence_stops_at_shape() {
        let bytes = graph_bytes();
        let g = Graph::parse(&bytes).unwrap();
        let ix = GraphIndex::new(&g).unwrap();
        assert!(ix.is_value_dependent("y"));
        assert!(!ix.is_value_dependent("s"));
        assert!(!ix.is_value_dependent("w"));
        assert_eq!(ix.constant("w2").unwrap().name, "w");
        assert!(ix.constant("y").is_none());
    }

    #[test]
    fn a_cut_keeps_only_what_the_outputs_need() {
        let bytes = graph_bytes();
        let g = Graph::parse(&bytes).unwrap();
        let ix = GraphIndex::new(&g).unwrap();
        let keep = ix.required(&["z"]);
        assert_eq!(keep.nodes, [false, true, true, false, false]);
        let mut cut = GraphCut::new(&g, keep);
        cut.outputs.push(build::value_info("z", None, None));
        let mut model = Vec::new();
        wire::put_int(&mut model, 1, 8);
        wire::put_bytes(&mut model, 7, &bytes);
        let m = Model::parse(&model).unwrap();
        let mut out = Vec::new();
        cut.write_model(&m, &mut out).unwrap();
        let back = Model::parse(&out).unwrap();
        let names: Vec<&str> = back.graph.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["mm", "relu"]);
        assert_eq!(back.graph.initializers.len(), 1, "only w is used");
        assert_eq!(back.graph.inputs.len(), 1);
        assert_eq!(back.ir_version, 8);
    }
}
