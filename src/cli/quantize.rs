//! `weft models import --quantize int8`: dynamic int8 weights through
//! ONNX Runtime's Python quantizer (`models/quantize.py`), then a measured
//! comparison with the fp32 bundle.

use weft::import::ImportReport;

use super::Env;

/// Quantizes the imported bundle; returns the report to print.
pub fn run(_env: &Env, _report: &ImportReport) -> anyhow::Result<String> {
    anyhow::bail!("--quantize is not built yet")
}
