//! A one-node ONNX model built in memory, so that the runtime can prove which
//! execution provider really runs a session without any model file on disk.
//!
//! The model is `y = Relu(x)` over a float tensor of shape `[N]`. It is encoded
//! by hand with the few protobuf rules ONNX's `ModelProto` needs.

/// Input name of the probe model.
pub(crate) const INPUT: &str = "x";
/// Output name of the probe model.
pub(crate) const OUTPUT: &str = "y";

/// The serialized `ModelProto` (IR version 8, opset 17).
pub(crate) fn relu_model() -> Vec<u8> {
    let tensor_type = |name: &str| {
        // ValueInfoProto { name = 1, type = 2 { tensor_type = 1 { elem_type = 1 (FLOAT), shape = 2 { dim = 1 { dim_param = 2 } } } } }
        let dim = field_bytes(2, b"N");
        let shape = field_bytes(1, &dim);
        let mut tensor = field_varint(1, 1);
        tensor.extend(field_bytes(2, &shape));
        let type_proto = field_bytes(1, &tensor);
        let mut value_info = field_bytes(1, name.as_bytes());
        value_info.extend(field_bytes(2, &type_proto));
        value_info
    };
    // NodeProto { input = 1, output = 2, name = 3, op_type = 4 }
    let mut node = field_bytes(1, INPUT.as_bytes());
    node.extend(field_bytes(2, OUTPUT.as_bytes()));
    node.extend(field_bytes(3, b"relu"));
    node.extend(field_bytes(4, b"Relu"));
    // GraphProto { node = 1, name = 2, input = 11, output = 12 }
    let mut graph = field_bytes(1, &node);
    graph.extend(field_bytes(2, b"weft-probe"));
    graph.extend(field_bytes(11, &tensor_type(INPUT)));
    graph.extend(field_bytes(12, &tensor_type(OUTPUT)));
    // OperatorSetIdProto { domain = 1, version = 2 }
    let mut opset = field_bytes(1, b"");
    opset.extend(field_varint(2, 17));
    // ModelProto { ir_version = 1, producer_name = 2, graph = 7, opset_import = 8 }
    let mut model = field_varint(1, 8);
    model.extend(field_bytes(2, b"weft"));
    model.extend(field_bytes(7, &graph));
    model.extend(field_bytes(8, &opset));
    model
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_varint(field: u32, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(u64::from(field) << 3, &mut out);
    varint(value, &mut out);
    out
}

fn field_bytes(field: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint((u64::from(field) << 3) | 2, &mut out);
    varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_encoding() {
        let mut out = Vec::new();
        varint(300, &mut out);
        assert_eq!(out, [0xAC, 0x02]);
        assert_eq!(field_varint(1, 8), [0x08, 0x08]);
        assert_eq!(field_bytes(2, b"ab"), [0x12, 2, b'a', b'b']);
    }
}
