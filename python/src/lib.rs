//! `weft._native`: the Python face of [`weft::Engine`]. Every call converts
//! its arguments, releases the GIL while weft encodes, indexes or searches,
//! and converts the answer back; no retrieval logic lives here.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple};
use serde_json::Value;
use weft::classify::ClassifyOptions;
use weft::encoder::Encoded;
use weft::runtime::Device;
use weft::search::{Filter, Scorer};
use weft::{Content, ErrorKind, Item, SearchOptions, SearchQuery};

create_exception!(
    weft,
    WeftError,
    PyException,
    "Base class of every weft error."
);
create_exception!(
    weft,
    InvalidConfig,
    WeftError,
    "An option or argument is out of range or malformed."
);
create_exception!(weft, InvalidInput, WeftError, "An input cannot be used: an image that does not decode, a bad SMILES, a duplicate id, a vector of the wrong dimension.");
create_exception!(
    weft,
    NotFound,
    WeftError,
    "No such collection, item or bundle."
);
create_exception!(
    weft,
    CorruptedData,
    WeftError,
    "Stored data is damaged or in a format this weft cannot read."
);
create_exception!(
    weft,
    BundleError,
    WeftError,
    "A model bundle is malformed, cannot be imported, or is not the collection's."
);
create_exception!(
    weft,
    StorageError,
    WeftError,
    "A file could not be read or written."
);
create_exception!(
    weft,
    Locked,
    WeftError,
    "Another writer holds the collection."
);
create_exception!(
    weft,
    Busy,
    WeftError,
    "The encoder queue is full; retry shortly."
);
create_exception!(
    weft,
    RuntimeUnavailable,
    WeftError,
    "ONNX Runtime is missing, cannot load, or failed."
);
create_exception!(
    weft,
    ProviderUnavailable,
    WeftError,
    "The requested execution provider (CUDA) cannot run."
);

/// The exception for a weft error, by its kind.
fn py_err(e: weft::Error) -> PyErr {
    let msg = e.to_string();
    match e.kind() {
        ErrorKind::InvalidConfig => InvalidConfig::new_err(msg),
        ErrorKind::InvalidInput => InvalidInput::new_err(msg),
        ErrorKind::NotFound => NotFound::new_err(msg),
        ErrorKind::CorruptedData => CorruptedData::new_err(msg),
        ErrorKind::Bundle => BundleError::new_err(msg),
        ErrorKind::Io => StorageError::new_err(msg),
        ErrorKind::Locked => Locked::new_err(msg),
        ErrorKind::Busy => Busy::new_err(msg),
        ErrorKind::Runtime => RuntimeUnavailable::new_err(msg),
        ErrorKind::ProviderUnavailable => ProviderUnavailable::new_err(msg),
        _ => WeftError::new_err(msg),
    }
}

trait OrRaise<T> {
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for weft::Result<T> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(py_err)
    }
}

/// A molecule given as SMILES (a plain `str` is text).
#[pyclass(module = "weft", frozen)]
struct Smiles {
    #[pyo3(get)]
    smiles: String,
}

#[pymethods]
impl Smiles {
    #[new]
    fn new(smiles: String) -> Self {
        Smiles { smiles }
    }

    fn __repr__(&self) -> String {
        format!("Smiles({:?})", self.smiles)
    }
}

/// An image: a path (`str` or `os.PathLike`) or the bytes of an image file.
/// A `pathlib.Path` or `bytes` is an image without this wrapper.
#[pyclass(module = "weft", frozen)]
struct Image {
    content: Content,
}

#[pymethods]
impl Image {
    #[new]
    fn new(source: &Bound<'_, PyAny>) -> PyResult<Self> {
        let content =
            if source.is_instance_of::<PyBytes>() || source.is_instance_of::<PyByteArray>() {
                Content::ImageBytes {
                    name: "image bytes".into(),
                    bytes: source.extract()?,
                }
            } else {
                Content::ImagePath(fspath(source, "source")?.into())
            };
        Ok(Image { content })
    }

    fn __repr__(&self) -> String {
        match &self.content {
            Content::ImagePath(p) => format!("Image({:?})", p.display().to_string()),
            Content::ImageBytes { bytes, .. } => format!("Image(<{} bytes>)", bytes.len()),
            _ => "Image()".into(),
        }
    }
}

fn fspath(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    if obj.is_instance_of::<PyString>() {
        return obj.extract();
    }
    if obj.hasattr("__fspath__")? {
        let os = obj.py().import("os")?;
        return os.call_method1("fspath", (obj,))?.extract();
    }
    Err(PyTypeError::new_err(format!(
        "{what}: expected a path (str or os.PathLike), got {}",
        obj.get_type().name()?
    )))
}

/// What `obj` is: `str` text, `bytes` image bytes, `os.PathLike` an image
/// file, `Smiles`, `Image`.
fn content(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Content> {
    if let Ok(s) = obj.cast::<Smiles>() {
        return Ok(Content::Smiles(s.get().smiles.clone()));
    }
    if let Ok(i) = obj.cast::<Image>() {
        return Ok(match &i.get().content {
            Content::ImageBytes { bytes, .. } => Content::ImageBytes {
                name: what.to_string(),
                bytes: bytes.clone(),
            },
            c => c.clone(),
        });
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(Content::Text(obj.extract()?));
    }
    if obj.is_instance_of::<PyBytes>() || obj.is_instance_of::<PyByteArray>() {
        return Ok(Content::ImageBytes {
            name: what.to_string(),
            bytes: obj.extract()?,
        });
    }
    if obj.hasattr("__fspath__")? {
        return Ok(Content::ImagePath(fspath(obj, what)?.into()));
    }
    Err(PyTypeError::new_err(format!(
        "{what}: expected str (text), bytes or a path (image), weft.Image or weft.Smiles, got {}",
        obj.get_type().name()?
    )))
}

/// One input, or each of a list or tuple of inputs.
fn contents(obj: &Bound<'_, PyAny>) -> PyResult<Vec<Content>> {
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        obj.try_iter()?
            .enumerate()
            .map(|(i, o)| content(&o?, &format!("inputs[{i}]")))
            .collect()
    } else {
        Ok(vec![content(obj, "input")?])
    }
}

/// A dict, list or JSON string as JSON.
fn to_json(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    let text: String = if obj.is_instance_of::<PyString>() {
        obj.extract()?
    } else {
        let json = obj.py().import("json")?;
        json.call_method1("dumps", (obj,))
            .map_err(|e| PyValueError::new_err(format!("{what}: not JSON-serialisable: {e}")))?
            .extract()?
    };
    serde_json::from_str(&text).map_err(|e| PyValueError::new_err(format!("{what}: not JSON: {e}")))
}

fn from_json<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (v.to_string(),))
}

/// `(rows, dim)` float32 numpy array of `values`.
fn array<'py>(
    py: Python<'py>,
    values: &[f32],
    rows: usize,
    dim: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let buf = PyByteArray::new(py, &bytes);
    py.import("numpy")?
        .call_method1("frombuffer", (buf, "float32"))?
        .call_method1("reshape", ((rows, dim),))
}

/// Global embeddings as `(n, d)`, and with `tokens` a list of `(t, d)`.
fn embeddings<'py>(
    py: Python<'py>,
    encoded: Vec<Encoded>,
    tokens: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let dim = encoded.first().map_or(0, |e| e.embedding.len());
    let flat: Vec<f32> = encoded
        .iter()
        .flat_map(|e| e.embedding.iter().copied())
        .collect();
    let globals = array(py, &flat, encoded.len(), dim)?;
    if !tokens {
        return Ok(globals);
    }
    let list = PyList::empty(py);
    for e in &encoded {
        let d = e.tokens.len().checked_div(e.n_tokens).unwrap_or(dim);
        list.append(array(py, &e.tokens, e.n_tokens, d)?)?;
    }
    Ok(PyTuple::new(py, [globals, list.into_any()])?.into_any())
}

fn first_error(results: Vec<weft::Result<Encoded>>) -> weft::Result<Vec<Encoded>> {
    results.into_iter().collect()
}

/// A zero-shot classification.
#[pyclass(module = "weft", frozen)]
struct Classification {
    /// The best label, or None when abstaining.
    #[pyo3(get)]
    best: Option<String>,
    /// label -> probability, best first.
    #[pyo3(get)]
    probabilities: Py<PyDict>,
    /// label -> cosine score, best first.
    #[pyo3(get)]
    scores: Py<PyDict>,
}

#[pymethods]
impl Classification {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Classification(best={:?}, probabilities={})",
            self.best,
            self.probabilities.bind(py).repr()?
        ))
    }
}

fn classification(py: Python<'_>, c: weft::classify::Classification) -> PyResult<Classification> {
    let probabilities = PyDict::new(py);
    let scores = PyDict::new(py);
    for l in &c.labels {
        probabilities.set_item(&l.label, l.probability)?;
        scores.set_item(&l.label, l.score)?;
    }
    Ok(Classification {
        best: c.best,
        probabilities: probabilities.unbind(),
        scores: scores.unbind(),
    })
}

fn labels_and_options(
    labels: Vec<String>,
    top_k: Option<usize>,
) -> PyResult<(Vec<String>, ClassifyOptions)> {
    if labels.is_empty() {
        return Err(PyValueError::new_err("labels: no labels given"));
    }
    let k = top_k.unwrap_or(labels.len());
    Ok((labels, ClassifyOptions::default().with_top_k(k)))
}

/// The engine: ONNX Runtime, model bundles, shared batching encoders.
///
/// `project_dir` holds `onnxruntime/` and `models/` (the `.weft/` folder
/// `scripts/setup-ort.sh` and `models/build.sh` make). Thread-safe: share
/// one engine between threads; the GIL is released while weft works.
#[pyclass(module = "weft", frozen)]
struct Engine {
    engine: weft::Engine,
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (project_dir=None, *, models_dir=None, ort_library=None, device="cpu", allow_cpu_fallback=false, threads=None))]
    fn new(
        project_dir: Option<&Bound<'_, PyAny>>,
        models_dir: Option<&Bound<'_, PyAny>>,
        ort_library: Option<&Bound<'_, PyAny>>,
        device: &str,
        allow_cpu_fallback: bool,
        threads: Option<usize>,
    ) -> PyResult<Self> {
        let mut b = weft::Engine::builder()
            .device(device.parse::<Device>().or_raise()?)
            .allow_cpu_fallback(allow_cpu_fallback);
        if let Some(d) = project_dir {
            b = b.project_dir(fspath(d, "project_dir")?);
        }
        if let Some(d) = models_dir {
            b = b.models_dir(fspath(d, "models_dir")?);
        }
        if let Some(l) = ort_library {
            b = b.ort_library(fspath(l, "ort_library")?);
        }
        if let Some(t) = threads {
            if t == 0 {
                return Err(PyValueError::new_err("threads: must be at least 1"));
            }
            b = b.threads(t);
        }
        Ok(Engine {
            engine: b.build().or_raise()?,
        })
    }

    /// The version of the ONNX Runtime library in use (loads it if needed).
    #[getter]
    fn ort_version(&self, py: Python<'_>) -> PyResult<String> {
        py.detach(|| self.engine.runtime().map(|r| r.version().to_string()))
            .or_raise()
    }

    /// The ONNX Runtime library file in use.
    #[getter]
    fn ort_library(&self, py: Python<'_>) -> PyResult<String> {
        py.detach(|| {
            self.engine
                .runtime()
                .map(|r| r.library().display().to_string())
        })
        .or_raise()
    }

    /// The execution providers that ran `bundle`'s encoders so far:
    /// `{"image": "CPUExecutionProvider", ...}`.
    fn providers(&self, bundle: &str) -> PyResult<std::collections::BTreeMap<String, String>> {
        let b = self.engine.bundle(bundle).or_raise()?;
        Ok(self
            .engine
            .providers(&b)
            .into_iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect())
    }

    /// Opens the collection in folder `path`. With `bundle` a missing one is
    /// created (an existing one must have been made with it); `read_only`
    /// opens it for searching beside another writer.
    #[pyo3(signature = (path, bundle=None, *, read_only=false))]
    fn open(
        &self,
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        bundle: Option<String>,
        read_only: bool,
    ) -> PyResult<Collection> {
        let path = fspath(path, "path")?;
        let collection = py
            .detach(|| match (bundle, read_only) {
                (_, true) => self.engine.open_read_only(&path),
                (Some(b), false) => self.engine.open_or_create(&path, &b),
                (None, false) => self.engine.open(&path),
            })
            .or_raise()?;
        Ok(Collection { collection })
    }

    /// Zero-shot classification of `input` over `labels` with `bundle`.
    #[pyo3(signature = (input, labels, *, bundle, top_k=None))]
    fn classify(
        &self,
        py: Python<'_>,
        input: &Bound<'_, PyAny>,
        labels: Vec<String>,
        bundle: &str,
        top_k: Option<usize>,
    ) -> PyResult<Classification> {
        let input = content(input, "input")?;
        let (labels, options) = labels_and_options(labels, top_k)?;
        let c = py
            .detach(|| {
                let b = self.engine.bundle(bundle)?;
                self.engine.classify(&b, input, &labels, &options)
            })
            .or_raise()?;
        classification(py, c)
    }

    /// Encodes `inputs` (one, or a list) with `bundle`: a float32 array
    /// `(n, d)` of L2-normalised embeddings; with `tokens=True` also a list
    /// of `(t, d)` token matrices (real tokens only).
    #[pyo3(signature = (inputs, *, bundle, tokens=false))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        bundle: &str,
        tokens: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let inputs = contents(inputs)?;
        let encoded = py
            .detach(|| {
                let b = self.engine.bundle(bundle)?;
                first_error(self.engine.embed(&b, inputs)?)
            })
            .or_raise()?;
        embeddings(py, encoded, tokens)
    }

    fn __repr__(&self) -> String {
        format!("Engine(models_dirs={:?})", self.engine.models_dirs())
    }
}

/// One search hit.
#[pyclass(module = "weft", frozen)]
struct Hit {
    /// The item's id.
    #[pyo3(get)]
    id: String,
    /// The score of the scorer used.
    #[pyo3(get)]
    score: f32,
    /// The cosine of the global embeddings.
    #[pyo3(get)]
    global_score: f32,
    /// The item's source file ("" when none).
    #[pyo3(get)]
    source: String,
    /// The item's payload (None when none).
    #[pyo3(get)]
    payload: Py<PyAny>,
    /// "text", "image" or "molecule".
    #[pyo3(get)]
    modality: String,
    /// With `explain=True`: per query token, the best item token.
    #[pyo3(get)]
    explanation: Option<Py<PyAny>>,
}

#[pymethods]
impl Hit {
    fn __repr__(&self) -> String {
        format!("Hit(id={:?}, score={:.4})", self.id, self.score)
    }
}

/// An open collection. Thread-safe; the GIL is released while it works.
#[pyclass(module = "weft", frozen)]
struct Collection {
    collection: weft::Collection,
}

#[pymethods]
impl Collection {
    /// The collection's folder.
    #[getter]
    fn path(&self) -> String {
        self.collection.dir().display().to_string()
    }

    /// The name of the bundle it was made with.
    #[getter]
    fn bundle(&self) -> String {
        self.collection.config().bundle_name.clone()
    }

    fn __len__(&self) -> usize {
        self.collection.info().items
    }

    /// Indexes files and folders incrementally (images, text files, JSON
    /// lines, molecule files); item ids are the file paths. `progress`, if
    /// given, is called with `(files_done, files_total, items)`. Returns
    /// the counts and the per-file errors.
    #[pyo3(signature = (paths, *, progress=None))]
    fn index<'py>(
        &self,
        py: Python<'py>,
        paths: &Bound<'py, PyAny>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let paths: Vec<String> =
            if paths.is_instance_of::<PyList>() || paths.is_instance_of::<PyTuple>() {
                paths
                    .try_iter()?
                    .enumerate()
                    .map(|(i, p)| fspath(&p?, &format!("paths[{i}]")))
                    .collect::<PyResult<_>>()?
            } else {
                vec![fspath(paths, "paths")?]
            };
        let report = py
            .detach(|| {
                self.collection.index(&paths, |p| {
                    if let Some(cb) = &progress {
                        Python::attach(|py| {
                            if let Err(e) = cb.call1(py, (p.files_done, p.files_total, p.items)) {
                                e.write_unraisable(py, Some(cb.bind(py)));
                            }
                        });
                    }
                })
            })
            .or_raise()?;
        let d = PyDict::new(py);
        d.set_item("files_seen", report.files_seen)?;
        d.set_item("files_indexed", report.files_indexed)?;
        d.set_item("files_unchanged", report.files_unchanged)?;
        d.set_item("items_added", report.items_added)?;
        d.set_item("items_removed", report.items_removed)?;
        d.set_item("errors", report.errors)?;
        d.set_item("skipped", report.skipped)?;
        Ok(d)
    }

    /// Encodes and adds items in one durable commit (all or nothing). Each
    /// item is `(id, input)` or `(id, input, payload)`, the payload a dict.
    fn add<'py>(&self, py: Python<'py>, items: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let mut batch = Vec::new();
        for (i, item) in items.try_iter()?.enumerate() {
            let item = item?;
            let what = format!("items[{i}]");
            let t = item.cast::<PyTuple>().map_err(|_| {
                PyTypeError::new_err(format!("{what}: expected a tuple (id, input[, payload])"))
            })?;
            if !(2..=3).contains(&t.len()) {
                return Err(PyTypeError::new_err(format!(
                    "{what}: expected a tuple (id, input[, payload]), got {} elements",
                    t.len()
                )));
            }
            let id: String = t
                .get_item(0)?
                .extract()
                .map_err(|_| PyTypeError::new_err(format!("{what}: the id is not a str")))?;
            let c = content(&t.get_item(1)?, &format!("item `{id}`"))?;
            let payload = match t.len() {
                3 if !t.get_item(2)?.is_none() => {
                    let p = to_json(&t.get_item(2)?, &format!("payload of item `{id}`"))?;
                    if !p.is_object() {
                        return Err(PyValueError::new_err(format!(
                            "payload of item `{id}`: not a dict"
                        )));
                    }
                    p
                }
                _ => Value::Null,
            };
            batch.push(Item::new(id, c).with_payload(payload));
        }
        let stats = py.detach(|| self.collection.add(batch)).or_raise()?;
        let d = PyDict::new(py);
        d.set_item("added", stats.added)?;
        d.set_item("deleted", stats.deleted)?;
        Ok(d)
    }

    /// Deletes items by id in one durable commit; returns how many existed.
    fn delete(&self, py: Python<'_>, ids: Vec<String>) -> PyResult<usize> {
        py.detach(|| self.collection.delete(&ids)).or_raise()
    }

    /// The top `k` hits for `query` (str text, bytes or a path for an image,
    /// `Smiles`), or for the stored item `id` ("more like this"; the item is
    /// left out). `scorer`: global, filip, filip-reverse, filip-symmetric,
    /// maxsim, hybrid[:W], motif, multi[:G,T,M]. `filter`: a dict or JSON string
    /// such as `{"year": {"gte": 2020}}`.
    #[pyo3(signature = (query=None, *, k=10, scorer=None, filter=None, id=None, explain=false))]
    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        py: Python<'_>,
        query: Option<&Bound<'_, PyAny>>,
        k: usize,
        scorer: Option<&str>,
        filter: Option<&Bound<'_, PyAny>>,
        id: Option<String>,
        explain: bool,
    ) -> PyResult<Vec<Hit>> {
        let query = match (query, id) {
            (Some(q), None) => SearchQuery::Content(content(q, "query")?),
            (None, Some(id)) => SearchQuery::Id(id),
            _ => {
                return Err(PyValueError::new_err(
                    "give a query or an id, not both or neither",
                ))
            }
        };
        if k == 0 {
            return Err(PyValueError::new_err("k: must be at least 1"));
        }
        let mut options = SearchOptions::default().with_k(k).with_explain(explain);
        if let Some(s) = scorer {
            options = options.with_scorer(s.parse::<Scorer>().or_raise()?);
        }
        if let Some(f) = filter {
            let v = to_json(f, "filter")?;
            options = options.with_filter(Some(Filter::from_json(&v).or_raise()?));
        }
        let hits = py
            .detach(|| self.collection.search(query, &options))
            .or_raise()?;
        hits.into_iter()
            .map(|h| {
                let explanation = match &h.explanation {
                    Some(e) => Some(
                        from_json(py, &serde_json::to_value(e).unwrap_or(Value::Null))?.unbind(),
                    ),
                    None => None,
                };
                Ok(Hit {
                    payload: from_json(py, &h.payload)?.unbind(),
                    modality: h.modality.to_string(),
                    id: h.id,
                    score: h.score,
                    global_score: h.global,
                    source: h.source,
                    explanation,
                })
            })
            .collect()
    }

    /// Zero-shot classification with the collection's bundle.
    #[pyo3(signature = (input, labels, *, top_k=None))]
    fn classify(
        &self,
        py: Python<'_>,
        input: &Bound<'_, PyAny>,
        labels: Vec<String>,
        top_k: Option<usize>,
    ) -> PyResult<Classification> {
        let input = content(input, "input")?;
        let (labels, options) = labels_and_options(labels, top_k)?;
        let c = py
            .detach(|| self.collection.classify(input, &labels, &options))
            .or_raise()?;
        classification(py, c)
    }

    /// Encodes with the collection's bundle (see `Engine.embed`).
    #[pyo3(signature = (inputs, *, tokens=false))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        tokens: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let inputs = contents(inputs)?;
        let encoded = py
            .detach(|| first_error(self.collection.submit(inputs)?.wait()))
            .or_raise()?;
        embeddings(py, encoded, tokens)
    }

    /// Writes what the log holds as a segment (before a clean shutdown).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.collection.flush()).or_raise()
    }

    /// Verifies every checksum of every file (raises CorruptedData).
    fn verify(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.collection.verify()).or_raise()
    }

    fn __repr__(&self) -> String {
        format!("Collection({:?})", self.path())
    }
}

/// weft: an embedded cross-modal retrieval engine (native module).
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Engine>()?;
    m.add_class::<Collection>()?;
    m.add_class::<Hit>()?;
    m.add_class::<Classification>()?;
    m.add_class::<Smiles>()?;
    m.add_class::<Image>()?;
    m.add("WeftError", py.get_type::<WeftError>())?;
    m.add("InvalidConfig", py.get_type::<InvalidConfig>())?;
    m.add("InvalidInput", py.get_type::<InvalidInput>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("CorruptedData", py.get_type::<CorruptedData>())?;
    m.add("BundleError", py.get_type::<BundleError>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("Locked", py.get_type::<Locked>())?;
    m.add("Busy", py.get_type::<Busy>())?;
    m.add("RuntimeUnavailable", py.get_type::<RuntimeUnavailable>())?;
    m.add("ProviderUnavailable", py.get_type::<ProviderUnavailable>())?;
    Ok(())
}
