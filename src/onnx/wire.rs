//! The protobuf wire format: reading fields out of a message, and writing them.
//!
//! Only what ONNX and SentencePiece files use: varints (wire type 0), 64-bit
//! (1), length-delimited (2) and 32-bit (5) fields. Groups (3, 4) are
//! deprecated and refused. A reader never allocates for a field: byte fields
//! are slices of the input, so a 2 GB model can be walked from a memory map.

/// The value of one field, still in wire form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: bytes, a string, a sub-message or a packed array.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

/// One field of a message.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    /// The field number from the schema.
    pub number: u32,
    /// Its value.
    pub value: Value<'a>,
    /// The whole field as written (key included), to copy it unchanged.
    pub raw: &'a [u8],
}

impl<'a> Field<'a> {
    /// The bytes of a length-delimited field.
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match self.value {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// A varint field as `i64` (two's complement, as protobuf writes `int64`).
    pub fn int(&self) -> Option<i64> {
        match self.value {
            Value::Varint(v) => Some(v as i64),
            _ => None,
        }
    }

    /// A 32-bit field as `f32`.
    pub fn float(&self) -> Option<f32> {
        match self.value {
            Value::Fixed32(v) => Some(f32::from_bits(v)),
            _ => None,
        }
    }

    /// A length-delimited field as UTF-8 text (lossy: names are ASCII in practice).
    pub fn string(&self) -> Option<String> {
        self.bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// A malformed message: what was wrong and at which byte of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// Byte offset inside the message being read.
    pub offset: usize,
    /// What was wrong.
    pub reason: &'static str,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

/// Iterates over the fields of one message.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// The fields of `message`, in the order they were written.
pub fn fields(message: &[u8]) -> Fields<'_> {
    Fields {
        buf: message,
        pos: 0,
    }
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        let fail = |reason| {
            Some(Err(WireError {
                offset: start,
                reason,
            }))
        };
        let Some(key) = read_varint(self.buf, &mut self.pos) else {
            self.pos = self.buf.len();
            return fail("truncated field key");
        };
        let number = key >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            self.pos = self.buf.len();
            return fail("field number out of range");
        }
        let number = number as u32;
        let value = match key & 7 {
            0 => match read_varint(self.buf, &mut self.pos) {
                Some(v) => Value::Varint(v),
                None => {
                    self.pos = self.buf.len();
                    return fail("truncated varint");
                }
            },
            1 => match self.buf.get(self.pos..self.pos + 8) {
                Some(b) => {
                    self.pos += 8;
                    Value::Fixed64(u64::from_le_bytes(b.try_into().expect("8 bytes")))
                }
                None => {
                    self.pos = self.buf.len();
                    return fail("truncated 64-bit field");
                }
            },
            2 => {
                let len = read_varint(self.buf, &mut self.pos);
                let end = len.and_then(|l| usize::try_from(l).ok()?.checked_add(self.pos));
                match end.filter(|e| *e <= self.buf.len()) {
                    Some(end) => {
                        let b = &self.buf[self.pos..end];
                        self.pos = end;
                        Value::Bytes(b)
                    }
                    None => {
                        self.pos = self.buf.len();
                        return fail("length-delimited field runs past the end of its message");
                    }
                }
            }
            5 => match self.buf.get(self.pos..self.pos + 4) {
                Some(b) => {
                    self.pos += 4;
                    Value::Fixed32(u32::from_le_bytes(b.try_into().expect("4 bytes")))
                }
                None => {
                    self.pos = self.buf.len();
                    return fail("truncated 32-bit field");
                }
            },
            _ => {
                self.pos = self.buf.len();
                return fail("unsupported wire type (groups are not used by ONNX)");
            }
        };
        Some(Ok(Field {
            number,
            value,
            raw: &self.buf[start..self.pos],
        }))
    }
}

/// Reads a packed (or a single unpacked) repeated varint field into `out`.
pub fn extend_varints(field: &Field<'_>, out: &mut Vec<i64>) -> Result<(), WireError> {
    match field.value {
        Value::Varint(v) => out.push(v as i64),
        Value::Bytes(b) => {
            let mut pos = 0;
            while pos < b.len() {
                let v = read_varint(b, &mut pos).ok_or(WireError {
                    offset: pos,
                    reason: "truncated packed varint",
                })?;
                out.push(v as i64);
            }
        }
        _ => {
            return Err(WireError {
                offset: 0,
                reason: "expected a varint array",
            })
        }
    }
    Ok(())
}

/// Reads a packed (or a single unpacked) repeated `float` field into `out`.
pub fn extend_floats(field: &Field<'_>, out: &mut Vec<f32>) -> Result<(), WireError> {
    match field.value {
        Value::Fixed32(v) => out.push(f32::from_bits(v)),
        Value::Bytes(b) if b.len() % 4 == 0 => out.extend(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
        ),
        _ => {
            return Err(WireError {
                offset: 0,
                reason: "expected a float array",
            })
        }
    }
    Ok(())
}

/// Reads a packed (or a single unpacked) repeated `double` field into `out`.
pub fn extend_doubles(field: &Field<'_>, out: &mut Vec<f64>) -> Result<(), WireError> {
    match field.value {
        Value::Fixed64(v) => out.push(f64::from_bits(v)),
        Value::Bytes(b) if b.len() % 8 == 0 => out.extend(
            b.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))),
        ),
        _ => {
            return Err(WireError {
                offset: 0,
                reason: "expected a double array",
            })
        }
    }
    Ok(())
}

/// Appends a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(out, (u64::from(number) << 3) | u64::from(wire_type));
}

/// Appends a varint field (`int32`, `int64`, `enum`, `bool`).
pub fn put_int(out: &mut Vec<u8>, number: u32, v: i64) {
    put_key(out, number, 0);
    put_varint(out, v as u64);
}

/// Appends a `float` field.
pub fn put_float(out: &mut Vec<u8>, number: u32, v: f32) {
    put_key(out, number, 5);
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a length-delimited field: bytes, a string or an encoded sub-message.
pub fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_key(out, number, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a packed repeated varint field.
pub fn put_packed_ints(out: &mut Vec<u8>, number: u32, values: &[i64]) {
    let mut packed = Vec::with_capacity(values.len() * 2);
    for v in values {
        put_varint(&mut packed, *v as u64);
    }
    put_bytes(out, number, &packed);
}

/// Appends the key and length of a length-delimited field whose `len` bytes
/// the caller writes next (to stream a large sub-message without building it).
pub fn put_len_prefix(out: &mut Vec<u8>, number: u32, len: usize) {
    put_key(out, number, 2);
    put_varint(out, len as u64);
}

/// Bytes [`put_len_prefix`] writes for a field of `number` and `len`.
pub fn len_prefix_size(number: u32, len: usize) -> usize {
    let mut v = Vec::with_capacity(16);
    put_len_prefix(&mut v, number, len);
    v.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut m = Vec::new();
        put_int(&mut m, 1, 300);
        put_int(&mut m, 2, -5);
        put_bytes(&mut m, 3, b"hello");
        put_float(&mut m, 4, 1.5);
        put_packed_ints(&mut m, 5, &[1, 2, 70000, -1]);
        let f: Vec<Field<'_>> = fields(&m).collect::<Result<_, _>>().unwrap();
        assert_eq!(f.len(), 5);
        assert_eq!(f[0].int(), Some(300));
        assert_eq!(f[1].int(), Some(-5));
        assert_eq!(f[2].string().as_deref(), Some("hello"));
        assert_eq!(f[3].float(), Some(1.5));
        let mut v = Vec::new();
        extend_varints(&f[4], &mut v).unwrap();
        assert_eq!(v, [1, 2, 70000, -1]);
        let raw: Vec<u8> = f.iter().flat_map(|f| f.raw.iter().copied()).collect();
        assert_eq!(raw, m, "raw slices cover the message exactly");
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut m = Vec::new();
        put_bytes(&mut m, 7, &[1u8; 100]);
        for cut in 0..m.len() {
            let r: Result<Vec<_>, _> = fields(&m[..cut]).collect();
            if cut > 0 {
                assert!(r.is_err(), "cut at {cut} must fail");
            }
        }
        assert!(fields(&[0x0b]).next().unwrap().is_err(), "group refused");
        assert!(
            fields(&[0xff; 12]).next().unwrap().is_err(),
            "endless varint"
        );
    }
}
