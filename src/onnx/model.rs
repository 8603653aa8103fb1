//! The subset of `onnx.proto` weft reads and writes: a model's graph, its
//! nodes, initializers and value infos. Every message keeps its raw bytes, so
//! what weft copies into a new file is byte-identical to the export.

use std::path::Path;

use super::wire::{self, Field, WireError};

/// ONNX `TensorProto.DataType` values weft names.
pub mod dtype {
    /// float32
    pub const FLOAT: i32 = 1;
    /// uint8
    pub const UINT8: i32 = 2;
    /// int8
    pub const INT8: i32 = 3;
    /// int32
    pub const INT32: i32 = 6;
    /// int64
    pub const INT64: i32 = 7;
    /// float16
    pub const FLOAT16: i32 = 10;
    /// float64
    pub const DOUBLE: i32 = 11;

    /// A readable name of an element type.
    pub fn name(t: i32) -> &'static str {
        match t {
            FLOAT => "float32",
            UINT8 => "uint8",
            INT8 => "int8",
            INT32 => "int32",
            INT64 => "int64",
            FLOAT16 => "float16",
            DOUBLE => "float64",
            9 => "bool",
            16 => "bfloat16",
            _ => "other",
        }
    }
}

/// A parse failure: which message and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn ctx(what: &str) -> impl Fn(WireError) -> ParseError + '_ {
    move |e| ParseError(format!("{what}: {e}"))
}

fn all_fields<'a>(msg: &'a [u8], what: &str) -> Result<Vec<Field<'a>>, ParseError> {
    wire::fields(msg)
        .collect::<Result<_, _>>()
        .map_err(ctx(what))
}

/// A whole model file.
#[derive(Debug, Clone)]
pub struct Model<'a> {
    /// `ir_version`.
    pub ir_version: i64,
    /// `opset_import`: (domain, version); the default domain is `""`.
    pub opsets: Vec<(String, i64)>,
    /// The main graph.
    pub graph: Graph<'a>,
    fields: Vec<Field<'a>>,
}

impl<'a> Model<'a> {
    /// Parses a serialized `ModelProto`.
    pub fn parse(bytes: &'a [u8]) -> Result<Model<'a>, ParseError> {
        let fields = all_fields(bytes, "ModelProto")?;
        let mut ir_version = 0;
        let mut opsets = Vec::new();
        let mut graph = None;
        for f in &fields {
            match f.number {
                1 => ir_version = f.int().unwrap_or(0),
                7 => {
                    let b = f
                        .bytes()
                        .ok_or_else(|| ParseError("graph is not a message".into()))?;
                    graph = Some(Graph::parse(b)?);
                }
                8 => {
                    let b = f.bytes().unwrap_or_default();
                    let mut domain = String::new();
                    let mut version = 0;
                    for g in all_fields(b, "OperatorSetIdProto")? {
                        match g.number {
                            1 => domain = g.string().unwrap_or_default(),
                            2 => version = g.int().unwrap_or(0),
                            _ => {}
                        }
                    }
                    opsets.push((domain, version));
                }
                _ => {}
            }
        }
        let graph = graph.ok_or_else(|| {
            ParseError("no graph: this is not an ONNX model (ModelProto.graph is missing)".into())
        })?;
        Ok(Model {
            ir_version,
            opsets,
            graph,
            fields,
        })
    }

    /// The version of the default (`ai.onnx`) operator set.
    pub fn opset(&self) -> i64 {
        self.opsets
            .iter()
            .find(|(d, _)| d.is_empty() || d == "ai.onnx")
            .map_or(0, |(_, v)| *v)
    }

    /// Every top-level field as written (to re-encode the model with another graph).
    pub(crate) fn fields_raw(&self) -> &[Field<'a>] {
        &self.fields
    }

    /// This model with its graph replaced by `graph` (an encoded `GraphProto`);
    /// every other field is copied unchanged, in order.
    pub fn encode_with_graph(&self, graph: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(graph.len() + 4096);
        for f in &self.fields {
            if f.number == 7 {
                wire::put_bytes(&mut out, 7, graph);
            } else {
                out.extend_from_slice(f.raw);
            }
        }
        out
    }
}

/// A `GraphProto`.
#[derive(Debug, Clone)]
pub struct Graph<'a> {
    /// Graph name.
    pub name: String,
    /// Nodes, in the (topological) order of the file.
    pub nodes: Vec<Node<'a>>,
    /// Initializers (weights and constants).
    pub initializers: Vec<Tensor<'a>>,
    /// Graph inputs (may include initializers in old IR versions).
    pub inputs: Vec<ValueInfo<'a>>,
    /// Graph outputs.
    pub outputs: Vec<ValueInfo<'a>>,
    /// Type and shape of intermediate tensors, when the exporter wrote them.
    pub value_info: Vec<ValueInfo<'a>>,
    /// Names defined by `sparse_initializer`s (kept whole when a graph is cut).
    pub sparse_names: Vec<String>,
    other: Vec<Field<'a>>,
}

impl<'a> Graph<'a> {
    /// Parses a serialized `GraphProto`.
    pub fn parse(bytes: &'a [u8]) -> Result<Graph<'a>, ParseError> {
        let mut g = Graph {
            name: String::new(),
            nodes: Vec::new(),
            initializers: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            value_info: Vec::new(),
            sparse_names: Vec::new(),
            other: Vec::new(),
        };
        for f in all_fields(bytes, "GraphProto")? {
            let body = || {
                f.bytes().ok_or_else(|| {
                    ParseError(format!("GraphProto field {} is not a message", f.number))
                })
            };
            match f.number {
                1 => g.nodes.push(Node::parse(body()?)?),
                2 => g.name = f.string().unwrap_or_default(),
                5 => g.initializers.push(Tensor::parse(body()?)?),
                11 => g.inputs.push(ValueInfo::parse(body()?)?),
                12 => g.outputs.push(ValueInfo::parse(body()?)?),
                13 => g.value_info.push(ValueInfo::parse(body()?)?),
                15 => {
                    // SparseTensorProto: 1 = values (a TensorProto with the name).
                    for s in all_fields(body()?, "SparseTensorProto")? {
                        if s.number == 1 {
                            if let Some(b) = s.bytes() {
                                g.sparse_names.push(Tensor::parse(b)?.name);
                            }
                        }
                    }
                    g.other.push(f);
                }
                _ => g.other.push(f),
            }
        }
        Ok(g)
    }

    /// The graph input, output or value info called `name`.
    pub fn value_info(&self, name: &str) -> Option<&ValueInfo<'a>> {
        self.inputs
            .iter()
            .chain(&self.outputs)
            .chain(&self.value_info)
            .find(|v| v.name == name)
    }

    /// The initializer called `name`.
    pub fn initializer(&self, name: &str) -> Option<&Tensor<'a>> {
        self.initializers.iter().find(|t| t.name == name)
    }

    /// Names of the graph inputs that are not initializers (what a caller feeds).
    pub fn feeds(&self) -> Vec<&ValueInfo<'a>> {
        self.inputs
            .iter()
            .filter(|i| {
                !self.initializers.iter().any(|t| t.name == i.name)
                    && !self.sparse_names.contains(&i.name)
            })
            .collect()
    }

    /// A tensor stored in an external data file that weft would not carry
    /// along: a `Constant` node's value, a sparse initializer, or a weight
    /// inside a sub-graph. `None` when every external tensor is a top-level
    /// initializer.
    pub fn external_elsewhere(&self) -> Result<Option<String>, ParseError> {
        for n in &self.nodes {
            for a in &n.attributes {
                match &a.value {
                    AttrValue::Tensor(t) if t.external_location().is_some() => {
                        return Ok(Some(format!("the value of {}", n.describe())))
                    }
                    AttrValue::Graphs(graphs) => {
                        for g in graphs {
                            let g = Graph::parse(g)?;
                            if let Some(t) = g
                                .initializers
                                .iter()
                                .find(|t| t.external_location().is_some())
                            {
                                return Ok(Some(format!(
                                    "`{}` inside a sub-graph of {}",
                                    t.name,
                                    n.describe()
                                )));
                            }
                            if let Some(inner) = g.external_elsewhere()? {
                                return Ok(Some(inner));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        for f in &self.other {
            if f.number == 15 {
                for s in all_fields(f.bytes().unwrap_or_default(), "SparseTensorProto")? {
                    if let Some(b) = s.bytes() {
                        let t = Tensor::parse(b)?;
                        if t.external_location().is_some() {
                            return Ok(Some(format!("sparse initializer part `{}`", t.name)));
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// Fields this reader does not interpret (doc string, annotations, sparse initializers).
    pub(crate) fn other_fields(&self) -> &[Field<'a>] {
        &self.other
    }
}

/// A `NodeProto`.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    /// The node as written.
    pub raw: &'a [u8],
    /// Node name (may be empty).
    pub name: String,
    /// Operator, e.g. `MatMul`.
    pub op_type: String,
    /// Operator domain; `""` is the default ONNX domain.
    pub domain: String,
    /// Input tensor names; `""` is an omitted optional input.
    pub inputs: Vec<String>,
    /// Output tensor names.
    pub outputs: Vec<String>,
    /// Attributes.
    pub attributes: Vec<Attribute<'a>>,
}

impl<'a> Node<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Node<'a>, ParseError> {
        let mut n = Node {
            raw: bytes,
            name: String::new(),
            op_type: String::new(),
            domain: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            attributes: Vec::new(),
        };
        for f in all_fields(bytes, "NodeProto")? {
            match f.number {
                1 => n.inputs.push(f.string().unwrap_or_default()),
                2 => n.outputs.push(f.string().unwrap_or_default()),
                3 => n.name = f.string().unwrap_or_default(),
                4 => n.op_type = f.string().unwrap_or_default(),
                7 => n.domain = f.string().unwrap_or_default(),
                5 => n
                    .attributes
                    .push(Attribute::parse(f.bytes().unwrap_or_default())?),
                _ => {}
            }
        }
        Ok(n)
    }

    /// The attribute called `name`.
    pub fn attribute(&self, name: &str) -> Option<&AttrValue<'a>> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| &a.value)
    }

    /// An integer attribute.
    pub fn int_attr(&self, name: &str) -> Option<i64> {
        match self.attribute(name) {
            Some(AttrValue::Int(v)) => Some(*v),
            _ => None,
        }
    }

    /// A float attribute.
    pub fn float_attr(&self, name: &str) -> Option<f32> {
        match self.attribute(name) {
            Some(AttrValue::Float(v)) => Some(*v),
            _ => None,
        }
    }

    /// An integer-list attribute.
    pub fn ints_attr(&self, name: &str) -> Option<&[i64]> {
        match self.attribute(name) {
            Some(AttrValue::Ints(v)) => Some(v),
            _ => None,
        }
    }

    /// A readable name for messages: the node name, else its op and first output.
    pub fn describe(&self) -> String {
        if self.name.is_empty() {
            format!(
                "{} node producing `{}`",
                self.op_type,
                self.outputs.first().map_or("", |s| s.as_str())
            )
        } else {
            format!("{} node `{}`", self.op_type, self.name)
        }
    }
}

/// An `AttributeProto`.
#[derive(Debug, Clone)]
pub struct Attribute<'a> {
    /// The attribute name.
    pub name: String,
    /// Its value.
    pub value: AttrValue<'a>,
}

/// The value of an attribute.
#[derive(Debug, Clone)]
pub enum AttrValue<'a> {
    /// `i`.
    Int(i64),
    /// `f`.
    Float(f32),
    /// `s`.
    String(Vec<u8>),
    /// `ints`.
    Ints(Vec<i64>),
    /// `floats`.
    Floats(Vec<f32>),
    /// `t`.
    Tensor(Box<Tensor<'a>>),
    /// `g` (a sub-graph, as bytes) or `graphs`.
    Graphs(Vec<&'a [u8]>),
    /// Anything else (strings, tensors, type protos): not interpreted.
    Other,
}

impl<'a> Attribute<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Attribute<'a>, ParseError> {
        let mut name = String::new();
        let mut kind = 0i64;
        let (mut i, mut f, mut s, mut t) = (None, None, None, None);
        let (mut ints, mut floats, mut graphs) = (Vec::new(), Vec::new(), Vec::new());
        for fl in all_fields(bytes, "AttributeProto")? {
            match fl.number {
                1 => name = fl.string().unwrap_or_default(),
                20 => kind = fl.int().unwrap_or(0),
                2 => f = fl.float(),
                3 => i = fl.int(),
                4 => s = fl.bytes().map(<[u8]>::to_vec),
                5 => t = Some(Tensor::parse(fl.bytes().unwrap_or_default())?),
                6 | 11 => graphs.extend(fl.bytes()),
                7 => wire::extend_floats(&fl, &mut floats).map_err(ctx("AttributeProto.floats"))?,
                8 => wire::extend_varints(&fl, &mut ints).map_err(ctx("AttributeProto.ints"))?,
                _ => {}
            }
        }
        // `type` (field 20) says which value is meant; old files may omit it.
        let value = match kind {
            1 => AttrValue::Float(f.unwrap_or(0.0)),
            2 => AttrValue::Int(i.unwrap_or(0)),
            3 => AttrValue::String(s.unwrap_or_default()),
            4 => t.map_or(AttrValue::Other, |t| AttrValue::Tensor(Box::new(t))),
            5 | 10 => AttrValue::Graphs(graphs),
            6 => AttrValue::Floats(floats),
            7 => AttrValue::Ints(ints),
            0 => {
                if let Some(v) = i {
                    AttrValue::Int(v)
                } else if let Some(v) = f {
                    AttrValue::Float(v)
                } else if let Some(t) = t {
                    AttrValue::Tensor(Box::new(t))
                } else if !graphs.is_empty() {
                    AttrValue::Graphs(graphs)
                } else if !ints.is_empty() {
                    AttrValue::Ints(ints)
                } else if !floats.is_empty() {
                    AttrValue::Floats(floats)
                } else if let Some(s) = s {
                    AttrValue::String(s)
                } else {
                    AttrValue::Other
                }
            }
            _ => AttrValue::Other,
        };
        Ok(Attribute { name, value })
    }
}

/// Where a tensor's values are.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData<'a> {
    /// `raw_data`, little-endian.
    Raw(&'a [u8]),
    /// `float_data`.
    Floats(Vec<f32>),
    /// `int32_data` (also holds 8/16-bit types and bool).
    Int32s(Vec<i64>),
    /// `int64_data`.
    Int64s(Vec<i64>),
    /// `double_data`.
    Doubles(Vec<f64>),
    /// In an external file, relative to the model's folder.
    External {
        /// The file (`location`).
        location: String,
        /// Byte offset in it.
        offset: u64,
        /// Byte length, when given.
        length: Option<u64>,
    },
    /// No values (strings, or an empty tensor).
    Empty,
}

/// A `TensorProto`.
#[derive(Debug, Clone)]
pub struct Tensor<'a> {
    /// The tensor as written.
    pub raw: &'a [u8],
    /// Its name.
    pub name: String,
    /// Its shape.
    pub dims: Vec<i64>,
    /// Element type (see [`dtype`]).
    pub data_type: i32,
    /// Its values.
    pub data: TensorData<'a>,
}

impl<'a> Tensor<'a> {
    /// Parses a serialized `TensorProto`.
    pub fn parse(bytes: &'a [u8]) -> Result<Tensor<'a>, ParseError> {
        let mut t = Tensor {
            raw: bytes,
            name: String::new(),
            dims: Vec::new(),
            data_type: 0,
            data: TensorData::Empty,
        };
        let (mut floats, mut i32s, mut i64s, mut doubles) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut raw = None;
        let mut external: Vec<(String, String)> = Vec::new();
        let mut location_external = false;
        for f in all_fields(bytes, "TensorProto")? {
            match f.number {
                1 => wire::extend_varints(&f, &mut t.dims).map_err(ctx("TensorProto.dims"))?,
                2 => t.data_type = f.int().unwrap_or(0) as i32,
                4 => wire::extend_floats(&f, &mut floats).map_err(ctx("TensorProto.float_data"))?,
                5 => wire::extend_varints(&f, &mut i32s).map_err(ctx("TensorProto.int32_data"))?,
                7 => wire::extend_varints(&f, &mut i64s).map_err(ctx("TensorProto.int64_data"))?,
                10 => wire::extend_doubles(&f, &mut doubles)
                    .map_err(ctx("TensorProto.double_data"))?,
                8 => t.name = f.string().unwrap_or_default(),
                9 => raw = f.bytes(),
                13 => {
                    let (mut k, mut v) = (String::new(), String::new());
                    for e in all_fields(f.bytes().unwrap_or_default(), "StringStringEntryProto")? {
                        match e.number {
                            1 => k = e.string().unwrap_or_default(),
                            2 => v = e.string().unwrap_or_default(),
                            _ => {}
                        }
                    }
                    external.push((k, v));
                }
                14 => location_external = f.int() == Some(1),
                _ => {}
            }
        }
        t.data = if location_external {
            let get = |key: &str| {
                external
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            };
            let location = get("location").ok_or_else(|| {
                ParseError(format!(
                    "tensor `{}` is external but names no location",
                    t.name
                ))
            })?;
            let num = |key: &str| -> Result<Option<u64>, ParseError> {
                get(key)
                    .map(|v| {
                        v.trim().parse::<u64>().map_err(|_| {
                            ParseError(format!(
                                "tensor `{}`: external {key} `{v}` is not a number",
                                t.name
                            ))
                        })
                    })
                    .transpose()
            };
            TensorData::External {
                location,
                offset: num("offset")?.unwrap_or(0),
                length: num("length")?,
            }
        } else if let Some(r) = raw {
            TensorData::Raw(r)
        } else if !floats.is_empty() {
            TensorData::Floats(floats)
        } else if !i64s.is_empty() {
            TensorData::Int64s(i64s)
        } else if !i32s.is_empty() {
            TensorData::Int32s(i32s)
        } else if !doubles.is_empty() {
            TensorData::Doubles(doubles)
        } else {
            TensorData::Empty
        };
        Ok(t)
    }

    /// Number of elements (saturating: a corrupt shape does not overflow).
    pub fn len(&self) -> usize {
        self.dims
            .iter()
            .fold(1usize, |n, d| n.saturating_mul((*d).max(0) as usize))
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This tensor's message with its external data `location` replaced.
    pub fn relocated(&self, location: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len() + location.len());
        for f in wire::fields(self.raw).flatten() {
            if f.number == 13 {
                let is_location = wire::fields(f.bytes().unwrap_or_default())
                    .flatten()
                    .any(|e| e.number == 1 && e.bytes() == Some(b"location".as_slice()));
                if is_location {
                    let mut entry = Vec::new();
                    wire::put_bytes(&mut entry, 1, b"location");
                    wire::put_bytes(&mut entry, 2, location.as_bytes());
                    wire::put_bytes(&mut out, 13, &entry);
                    continue;
                }
            }
            out.extend_from_slice(f.raw);
        }
        out
    }

    /// The external data file, if the values live in one.
    pub fn external_location(&self) -> Option<&str> {
        match &self.data {
            TensorData::External { location, .. } => Some(location),
            _ => None,
        }
    }

    /// The values as `f64` (float, double, integer types), reading external data
    /// relative to `dir`. Meant for small constants (a logit scale, axes):
    /// tensors of more than 4,096 elements are refused.
    pub fn to_f64(&self, dir: &Path) -> Result<Vec<f64>, ParseError> {
        if self.len() > 4096 {
            return Err(ParseError(format!(
                "tensor `{}` has {} elements; weft reads only small constants",
                self.name,
                self.len()
            )));
        }
        let raw_owned;
        let raw: &[u8] = match &self.data {
            TensorData::Floats(v) => return Ok(v.iter().map(|x| f64::from(*x)).collect()),
            TensorData::Doubles(v) => return Ok(v.clone()),
            TensorData::Int64s(v) | TensorData::Int32s(v) => {
                if self.data_type == dtype::FLOAT16 {
                    return Ok(v.iter().map(|x| f64::from(f16_to_f32(*x as u16))).collect());
                }
                return Ok(v.iter().map(|x| *x as f64).collect());
            }
            TensorData::Empty => return Ok(Vec::new()),
            TensorData::Raw(r) => r,
            TensorData::External {
                location,
                offset,
                length,
            } => {
                let size = self.len() * element_size(self.data_type).unwrap_or(0);
                let len = length.unwrap_or(size as u64);
                if len != size as u64 {
                    return Err(ParseError(format!(
                        "tensor `{}`: external data length {len} for {} elements",
                        self.name,
                        self.len()
                    )));
                }
                raw_owned = read_range(&dir.join(location), *offset, len).map_err(|e| {
                    ParseError(format!(
                        "tensor `{}`: external data {location}: {e}",
                        self.name
                    ))
                })?;
                &raw_owned
            }
        };
        let size = element_size(self.data_type).ok_or_else(|| {
            ParseError(format!(
                "tensor `{}` has element type {} which weft does not read",
                self.name,
                dtype::name(self.data_type)
            ))
        })?;
        if raw.len() != self.len() * size {
            return Err(ParseError(format!(
                "tensor `{}`: {} bytes of data for {} elements of {}",
                self.name,
                raw.len(),
                self.len(),
                dtype::name(self.data_type)
            )));
        }
        Ok(raw
            .chunks_exact(size)
            .map(|c| match self.data_type {
                dtype::FLOAT => f64::from(f32::from_le_bytes(c.try_into().expect("4"))),
                dtype::DOUBLE => f64::from_le_bytes(c.try_into().expect("8")),
                dtype::INT64 => i64::from_le_bytes(c.try_into().expect("8")) as f64,
                dtype::INT32 => f64::from(i32::from_le_bytes(c.try_into().expect("4"))),
                dtype::INT8 => f64::from(c[0] as i8),
                dtype::UINT8 => f64::from(c[0]),
                dtype::FLOAT16 => f64::from(f16_to_f32(u16::from_le_bytes([c[0], c[1]]))),
                _ => f64::NAN,
            })
            .collect())
    }
}

fn element_size(t: i32) -> Option<usize> {
    match t {
        dtype::FLOAT | dtype::INT32 => Some(4),
        dtype::DOUBLE | dtype::INT64 => Some(8),
        dtype::INT8 | dtype::UINT8 | 9 => Some(1),
        dtype::FLOAT16 | 16 => Some(2),
        _ => None,
    }
}

/// IEEE half to single precision.
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f32::from(h & 0x3ff);
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

fn read_range(path: &Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; usize::try_from(len).map_err(std::io::Error::other)?];
    f.read_exact(&mut buf)?;
    Ok(buf)
}

/// One dimension of a shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Value(i64),
    /// A named (dynamic) size.
    Param(String),
    /// Not given.
    Unknown,
}

/// A `ValueInfoProto` of a tensor.
#[derive(Debug, Clone)]
pub struct ValueInfo<'a> {
    /// The message as written.
    pub raw: &'a [u8],
    /// Tensor name.
    pub name: String,
    /// Element type, when given.
    pub elem_type: Option<i32>,
    /// Shape, when given.
    pub shape: Option<Vec<Dim>>,
}

impl<'a> ValueInfo<'a> {
    fn parse(bytes: &'a [u8]) -> Result<ValueInfo<'a>, ParseError> {
        let mut v = ValueInfo {
            raw: bytes,
            name: String::new(),
            elem_type: None,
            shape: None,
        };
        for f in all_fields(bytes, "ValueInfoProto")? {
            match f.number {
                1 => v.name = f.string().unwrap_or_default(),
                2 => {
                    for tp in all_fields(f.bytes().unwrap_or_default(), "TypeProto")? {
                        if tp.number != 1 {
                            continue; // not a tensor type
                        }
                        for tt in all_fields(tp.bytes().unwrap_or_default(), "TypeProto.Tensor")? {
                            match tt.number {
                                1 => v.elem_type = tt.int().map(|x| x as i32),
                                2 => {
                                    let mut dims = Vec::new();
                                    for d in all_fields(
                                        tt.bytes().unwrap_or_default(),
                                        "TensorShapeProto",
                                    )? {
                                        if d.number != 1 {
                                            continue;
                                        }
                                        let mut dim = Dim::Unknown;
                                        for x in
                                            all_fields(d.bytes().unwrap_or_default(), "Dimension")?
                                        {
                                            match x.number {
                                                1 => dim = Dim::Value(x.int().unwrap_or(0)),
                                                2 => {
                                                    dim = Dim::Param(x.string().unwrap_or_default())
                                                }
                                                _ => {}
                                            }
                                        }
                                        dims.push(dim);
                                    }
                                    v.shape = Some(dims);
                                }
                                _ => {}
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(v)
    }
}

/// Encoders of the messages weft adds to a graph.
pub mod build {
    use super::super::wire;
    use super::Dim;

    /// An attribute of a new node.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Attr {
        /// An integer.
        Int(i64),
        /// A list of integers.
        Ints(Vec<i64>),
        /// A float.
        Float(f32),
        /// A string (bytes).
        Str(Vec<u8>),
    }

    /// Encodes a `NodeProto`.
    pub fn node(
        name: &str,
        op_type: &str,
        inputs: &[&str],
        outputs: &[&str],
        attributes: &[(&str, Attr)],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        for i in inputs {
            wire::put_bytes(&mut out, 1, i.as_bytes());
        }
        for o in outputs {
            wire::put_bytes(&mut out, 2, o.as_bytes());
        }
        wire::put_bytes(&mut out, 3, name.as_bytes());
        wire::put_bytes(&mut out, 4, op_type.as_bytes());
        for (name, value) in attributes {
            let mut a = Vec::new();
            wire::put_bytes(&mut a, 1, name.as_bytes());
            match value {
                Attr::Int(v) => {
                    wire::put_int(&mut a, 20, 2);
                    wire::put_int(&mut a, 3, *v);
                }
                Attr::Float(v) => {
                    wire::put_int(&mut a, 20, 1);
                    wire::put_float(&mut a, 2, *v);
                }
                Attr::Ints(v) => {
                    wire::put_int(&mut a, 20, 7);
                    wire::put_packed_ints(&mut a, 8, v);
                }
                Attr::Str(v) => {
                    wire::put_int(&mut a, 20, 3);
                    wire::put_bytes(&mut a, 4, v);
                }
            }
            wire::put_bytes(&mut out, 5, &a);
        }
        out
    }

    /// Encodes an `int64` `TensorProto` (for initializers such as Slice bounds).
    pub fn tensor_i64(name: &str, dims: &[i64], values: &[i64]) -> Vec<u8> {
        let mut out = Vec::new();
        wire::put_packed_ints(&mut out, 1, dims);
        wire::put_int(&mut out, 2, i64::from(super::dtype::INT64));
        wire::put_bytes(&mut out, 8, name.as_bytes());
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        wire::put_bytes(&mut out, 9, &raw);
        out
    }

    /// Encodes a `ValueInfoProto` of a tensor; `shape: None` leaves the shape unknown.
    pub fn value_info(name: &str, elem_type: Option<i32>, shape: Option<&[Dim]>) -> Vec<u8> {
        let mut out = Vec::new();
        wire::put_bytes(&mut out, 1, name.as_bytes());
        if elem_type.is_none() && shape.is_none() {
            return out;
        }
        let mut tensor = Vec::new();
        if let Some(t) = elem_type {
            wire::put_int(&mut tensor, 1, i64::from(t));
        }
        if let Some(dims) = shape {
            let mut s = Vec::new();
            for d in dims {
                let mut dim = Vec::new();
                match d {
                    Dim::Value(v) => wire::put_int(&mut dim, 1, *v),
                    Dim::Param(p) => wire::put_bytes(&mut dim, 2, p.as_bytes()),
                    Dim::Unknown => {}
                }
                wire::put_bytes(&mut s, 1, &dim);
            }
            wire::put_bytes(&mut tensor, 2, &s);
        }
        let mut ty = Vec::new();
        wire::put_bytes(&mut ty, 1, &tensor);
        wire::put_bytes(&mut out, 2, &ty);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_graph() -> Vec<u8> {
        let mut g = Vec::new();
        wire::put_bytes(
            &mut g,
            1,
            &build::node("n1", "MatMul", &["x", "w"], &["y"], &[]),
        );
        wire::put_bytes(
            &mut g,
            1,
            &build::node(
                "n2",
                "ReduceMean",
                &["y"],
                &["z"],
                &[
                    ("axes", build::Attr::Ints(vec![-1])),
                    ("keepdims", build::Attr::Int(0)),
                ],
            ),
        );
        wire::put_bytes(&mut g, 2, b"g");
        wire::put_bytes(&mut g, 5, &build::tensor_i64("w", &[2], &[3, -4]));
        wire::put_bytes(
            &mut g,
            11,
            &build::value_info(
                "x",
                Some(dtype::FLOAT),
                Some(&[Dim::Param("batch".into()), Dim::Value(2)]),
            ),
        );
        wire::put_bytes(&mut g, 12, &build::value_info("z", None, None));
        g
    }

    #[test]
    fn a_graph_reads_back() {
        let bytes = tiny_graph();
        let g = Graph::parse(&bytes).unwrap();
        assert_eq!(g.name, "g");
        assert_eq!(g.nodes.len(), 2);
        assert_eq!(g.nodes[1].ints_attr("axes"), Some(&[-1i64][..]));
        assert_eq!(g.nodes[1].int_attr("keepdims"), Some(0));
        assert_eq!(g.nodes[0].inputs, ["x", "w"]);
        let w = g.initializer("w").unwrap();
        assert_eq!(w.dims, [2]);
        assert_eq!(w.to_f64(Path::new(".")).unwrap(), [3.0, -4.0]);
        let x = g.value_info("x").unwrap();
        assert_eq!(x.elem_type, Some(dtype::FLOAT));
        assert_eq!(
            x.shape.as_deref(),
            Some(&[Dim::Param("batch".into()), Dim::Value(2)][..])
        );
        assert_eq!(g.feeds().len(), 1);
    }

    #[test]
    fn a_model_keeps_its_other_fields() {
        let graph = tiny_graph();
        let mut m = Vec::new();
        wire::put_int(&mut m, 1, 8);
        wire::put_bytes(&mut m, 2, b"pytorch");
        let mut opset = Vec::new();
        wire::put_bytes(&mut opset, 1, b"");
        wire::put_int(&mut opset, 2, 18);
        wire::put_bytes(&mut m, 8, &opset);
        wire::put_bytes(&mut m, 7, &graph);
        let model = Model::parse(&m).unwrap();
        assert_eq!(model.ir_version, 8);
        assert_eq!(model.opset(), 18);
        assert_eq!(model.encode_with_graph(&graph), m, "same graph, same bytes");
        assert!(Model::parse(&m[..m.len() - 3]).is_err());
        assert!(Model::parse(b"")
            .unwrap_err()
            .0
            .contains("not an ONNX model"));
    }
}
