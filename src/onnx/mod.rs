//! ONNX files, read and rewritten without ONNX's own libraries.
//!
//! A small hand-written subset of the `onnx.proto` messages ([`model`]) over
//! the protobuf wire format ([`wire`]): enough to read a model's graph, follow
//! a tensor back to where it was made ([`graph::GraphIndex`]), cut a graph
//! down to what some outputs need and add nodes and outputs
//! ([`graph::GraphCut`]). Everything weft does not interpret is copied byte
//! for byte, and tensors stored in external data files stay there, so models
//! over 2 GB keep working. `weft models import` is built on this.

pub mod graph;
pub mod model;
pub mod wire;

pub use graph::{GraphCut, GraphIndex, Required};
pub use model::{dtype, AttrValue, Dim, Graph, Model, Node};
