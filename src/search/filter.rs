//! Payload filters: equality, ranges and membership on JSON fields.
//!
//! A filter is a JSON object; every key is a field path (`a.b` for nested
//! objects) and all keys must match (AND):
//!
//! ```json
//! {"kind": "photo", "year": {"gte": 2020, "lt": 2024}, "tag": {"in": ["cat", "dog"]}}
//! ```
//!
//! A scalar value means equality; an object holds operators `eq`, `ne`,
//! `gt`, `gte`, `lt`, `lte` (numbers or strings), `in` (a list), `exists`
//! (bool). An array-valued field matches when any element matches.

use serde_json::Value;

use crate::error::{Error, Result};

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    clauses: Vec<Clause>,
}

#[derive(Debug, Clone, PartialEq)]
struct Clause {
    path: Vec<String>,
    op: Op,
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(Value),
    Ne(Value),
    Cmp(std::cmp::Ordering, bool, Value), // (ordering wanted, or-equal, bound)
    In(Vec<Value>),
    Exists(bool),
}

fn bad(reason: String) -> Error {
    Error::InvalidInput {
        item: "filter".into(),
        reason,
    }
}

impl Filter {
    /// Parses a filter from JSON text.
    pub fn parse(text: &str) -> Result<Filter> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        Filter::from_json(&value)
    }

    /// Builds a filter from a JSON value (an object).
    pub fn from_json(value: &Value) -> Result<Filter> {
        let Value::Object(map) = value else {
            return Err(bad(format!(
                "must be a JSON object of field conditions, got {value}"
            )));
        };
        let mut clauses = Vec::new();
        for (field, cond) in map {
            if field.is_empty() {
                return Err(bad("empty field name".into()));
            }
            let path: Vec<String> = field.split('.').map(String::from).collect();
            match cond {
                Value::Object(ops) => {
                    if ops.is_empty() {
                        return Err(bad(format!("field `{field}`: empty condition")));
                    }
                    for (op, arg) in ops {
                        let op = parse_op(field, op, arg)?;
                        clauses.push(Clause {
                            path: path.clone(),
                            op,
                        });
                    }
                }
                other => clauses.push(Clause {
                    path,
                    op: Op::Eq(other.clone()),
                }),
            }
        }
        Ok(Filter { clauses })
    }

    /// Whether a payload (JSON text) passes. Unparseable payloads never pass.
    pub fn matches_text(&self, payload: &str) -> bool {
        serde_json::from_str::<Value>(payload).is_ok_and(|v| self.matches(&v))
    }

    /// Whether a payload passes.
    pub fn matches(&self, payload: &Value) -> bool {
        self.clauses.iter().all(|c| {
            let field = c.path.iter().try_fold(payload, |v, key| v.get(key));
            match (&c.op, field) {
                (Op::Exists(want), f) => f.is_some_and(|v| !v.is_null()) == *want,
                (_, None) => matches!(c.op, Op::Ne(_)),
                (op, Some(Value::Array(items))) if !matches!(op, Op::Eq(Value::Array(_))) => {
                    items.iter().any(|v| test(op, v))
                }
                (op, Some(v)) => test(op, v),
            }
        })
    }
}

fn parse_op(field: &str, op: &str, arg: &Value) -> Result<Op> {
    let cmp = |ord, eq| -> Result<Op> {
        if !(arg.is_number() || arg.is_string()) {
            return Err(bad(format!(
                "field `{field}`: `{op}` needs a number or a string, got {arg}"
            )));
        }
        Ok(Op::Cmp(ord, eq, arg.clone()))
    };
    use std::cmp::Ordering::*;
    match op {
        "eq" => Ok(Op::Eq(arg.clone())),
        "ne" => Ok(Op::Ne(arg.clone())),
        "gt" => cmp(Greater, false),
        "gte" => cmp(Greater, true),
        "lt" => cmp(Less, false),
        "lte" => cmp(Less, true),
        "in" => match arg {
            Value::Array(v) => Ok(Op::In(v.clone())),
            other => Err(bad(format!(
                "field `{field}`: `in` needs a list, got {other}"
            ))),
        },
        "exists" => match arg {
            Value::Bool(b) => Ok(Op::Exists(*b)),
            other => Err(bad(format!(
                "field `{field}`: `exists` needs true or false, got {other}"
            ))),
        },
        other => Err(bad(format!(
            "field `{field}`: unknown operator `{other}` (eq, ne, gt, gte, lt, lte, in, exists)"
        ))),
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn test(op: &Op, v: &Value) -> bool {
    match op {
        Op::Eq(want) => equal(v, want),
        Op::Ne(want) => !equal(v, want),
        Op::Cmp(ord, or_eq, bound) => {
            order(v, bound).is_some_and(|o| o == *ord || (*or_eq && o == std::cmp::Ordering::Equal))
        }
        Op::In(list) => list.iter().any(|w| equal(v, w)),
        Op::Exists(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_ranges_membership_nesting() {
        let p = json!({"kind": "photo", "year": 2021, "tags": ["cat", "sofa"], "meta": {"w": 640}});
        let yes = [
            r#"{"kind": "photo"}"#,
            r#"{"year": {"gte": 2020, "lt": 2022}}"#,
            r#"{"year": 2021.0}"#,
            r#"{"tags": "cat"}"#,
            r#"{"tags": {"in": ["dog", "sofa"]}}"#,
            r#"{"meta.w": {"gt": 600}}"#,
            r#"{"missing": {"exists": false}, "kind": {"ne": "text"}}"#,
        ];
        for f in yes {
            assert!(Filter::parse(f).unwrap().matches(&p), "{f}");
        }
        let no = [
            r#"{"kind": "text"}"#,
            r#"{"year": {"gt": 2021}}"#,
            r#"{"tags": {"in": ["dog"]}}"#,
            r#"{"meta.w": {"lt": "a"}}"#,
            r#"{"missing": 1}"#,
        ];
        for f in no {
            assert!(!Filter::parse(f).unwrap().matches(&p), "{f}");
        }
    }

    #[test]
    fn bad_filters_name_the_field() {
        for (f, needle) in [
            ("[1]", "object"),
            ("{", "JSON"),
            (r#"{"a": {"near": 1}}"#, "`a`"),
            (r#"{"a": {"in": 1}}"#, "list"),
            (r#"{"a": {"gt": [1]}}"#, "number"),
        ] {
            let e = Filter::parse(f).unwrap_err().to_string();
            assert!(e.contains(needle), "{f}: {e}");
        }
    }
}
