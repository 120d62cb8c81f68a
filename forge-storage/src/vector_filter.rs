//! Metadata filters of `QueryVectors`, in the S3 Vectors syntax: `{"genre": "drama"}`,
//! `{"year": {"$gte": 2000, "$lt": 2010}}`, `{"$or": [{..}, {..}]}`, with `$eq`, `$ne`, `$gt`,
//! `$gte`, `$lt`, `$lte`, `$in`, `$nin`, `$exists`, `$and` and `$or`.
//!
//! A filter is checked and compiled once, then evaluated on each candidate's metadata. An
//! array-valued field matches `$eq` / `$in` when any element does, and `$ne` / `$nin` when none
//! does; a missing field matches only `$ne`, `$nin` and `$exists: false`.

use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};

/// A compiled filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Field { key: String, op: Op },
}

/// A comparison of one field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Eq(Value),
    Ne(Value),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
}

fn bad(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidParameter, format!("Invalid filter: {}", message.into()))
}

/// The most clauses and listed values a filter may hold: each is checked on every candidate.
const MAX_OPERANDS: usize = 1024;

impl Filter {
    /// Compiles `value`, refusing keys the index declared non-filterable.
    pub(crate) fn compile(value: &Value, non_filterable: &[String]) -> Result<Self> {
        let mut budget = MAX_OPERANDS;
        Self::compile_within(value, non_filterable, &mut budget)
    }

    fn compile_within(value: &Value, non_filterable: &[String], budget: &mut usize) -> Result<Self> {
        let Value::Object(map) = value else { return Err(bad("a filter must be an object")) };
        if map.is_empty() {
            return Err(bad("a filter must have at least one clause"));
        }
        if map.contains_key("$and") || map.contains_key("$or") {
            if map.len() != 1 {
                return Err(bad("$and and $or must be the only key of their object"));
            }
            let (op, sub) = map.iter().next().expect("one key");
            let Value::Array(sub) = sub else { return Err(bad(format!("{op} takes an array of filters"))) };
            if sub.is_empty() {
                return Err(bad(format!("{op} takes a non-empty array")));
            }
            let sub =
                sub.iter().map(|f| Filter::compile_within(f, non_filterable, budget)).collect::<Result<Vec<_>>>()?;
            return Ok(if op == "$and" { Filter::And(sub) } else { Filter::Or(sub) });
        }
        let mut clauses = Vec::new();
        for (key, condition) in map {
            if key.starts_with('$') {
                return Err(bad(format!("unknown operator {key:?} where a metadata key belongs")));
            }
            if non_filterable.iter().any(|k| k == key) {
                return Err(bad(format!("metadata key {key:?} is not filterable in this index")));
            }
            clauses.extend(field_clauses(key, condition)?);
        }
        let operands = clauses
            .iter()
            .map(|c| match c {
                Filter::Field { op: Op::In(set) | Op::Nin(set), .. } => set.len(),
                _ => 1,
            })
            .sum();
        *budget = budget
            .checked_sub(operands)
            .ok_or_else(|| bad(format!("a filter may hold at most {MAX_OPERANDS} clauses and listed values")))?;
        Ok(if clauses.len() == 1 { clauses.pop().expect("one") } else { Filter::And(clauses) })
    }

    /// Whether a vector with this metadata matches.
    pub(crate) fn matches(&self, metadata: Option<&Map<String, Value>>) -> bool {
        match self {
            Filter::And(all) => all.iter().all(|f| f.matches(metadata)),
            Filter::Or(any) => any.iter().any(|f| f.matches(metadata)),
            Filter::Field { key, op } => op.matches(metadata.and_then(|m| m.get(key))),
        }
    }
}

fn field_clauses(key: &str, condition: &Value) -> Result<Vec<Filter>> {
    let field = |op| Filter::Field { key: key.to_owned(), op };
    let Value::Object(ops) = condition else {
        return Ok(vec![field(Op::Eq(primitive(key, "$eq", condition)?))]);
    };
    if ops.is_empty() {
        return Err(bad(format!("empty operator object for {key:?}")));
    }
    ops.iter()
        .map(|(op, operand)| {
            let number = || operand.as_f64().ok_or_else(|| bad(format!("{op} on {key:?} takes a number")));
            let list = || -> Result<Vec<Value>> {
                match operand {
                    Value::Array(items) if !items.is_empty() => items.iter().map(|v| primitive(key, op, v)).collect(),
                    _ => Err(bad(format!("{op} on {key:?} takes a non-empty array"))),
                }
            };
            Ok(field(match op.as_str() {
                "$eq" => Op::Eq(primitive(key, op, operand)?),
                "$ne" => Op::Ne(primitive(key, op, operand)?),
                "$gt" => Op::Gt(number()?),
                "$gte" => Op::Gte(number()?),
                "$lt" => Op::Lt(number()?),
                "$lte" => Op::Lte(number()?),
                "$in" => Op::In(list()?),
                "$nin" => Op::Nin(list()?),
                "$exists" => {
                    Op::Exists(operand.as_bool().ok_or_else(|| bad(format!("$exists on {key:?} takes true or false")))?)
                }
                other => return Err(bad(format!("unknown operator {other:?}"))),
            }))
        })
        .collect()
}

/// A string, number or boolean operand.
fn primitive(key: &str, op: &str, value: &Value) -> Result<Value> {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(value.clone()),
        _ => Err(bad(format!("{op} on {key:?} takes a string, number or boolean"))),
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl Op {
    fn matches(&self, field: Option<&Value>) -> bool {
        // The values a field holds: itself, or an array's elements.
        let values = || -> &[Value] {
            match field {
                None => &[],
                Some(Value::Array(items)) => items,
                Some(v) => std::slice::from_ref(v),
            }
        };
        let numbers = || values().iter().filter_map(Value::as_f64).collect::<Vec<_>>();
        match self {
            Op::Eq(want) => values().iter().any(|v| same(v, want)),
            Op::Ne(want) => !values().iter().any(|v| same(v, want)),
            Op::Gt(n) => numbers().iter().any(|v| v > n),
            Op::Gte(n) => numbers().iter().any(|v| v >= n),
            Op::Lt(n) => numbers().iter().any(|v| v < n),
            Op::Lte(n) => numbers().iter().any(|v| v <= n),
            Op::In(set) => values().iter().any(|v| set.iter().any(|w| same(v, w))),
            Op::Nin(set) => !values().iter().any(|v| set.iter().any(|w| same(v, w))),
            Op::Exists(want) => field.is_some() == *want,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(filter: Value, metadata: Value) -> bool {
        let f = Filter::compile(&filter, &[]).expect("valid filter");
        f.matches(metadata.as_object())
    }

    #[test]
    fn implicit_eq_ranges_sets_and_logic() {
        let doc = json!({ "genre": "drama", "year": 2004, "tags": ["a", "b"], "new": false });
        assert!(check(json!({ "genre": "drama" }), doc.clone()));
        assert!(!check(json!({ "genre": "comedy" }), doc.clone()));
        assert!(check(json!({ "year": { "$gte": 2000, "$lt": 2010 } }), doc.clone()));
        assert!(!check(json!({ "year": { "$gt": 2004 } }), doc.clone()));
        assert!(check(json!({ "year": 2004.0 }), doc.clone()));
        assert!(check(json!({ "tags": "b" }), doc.clone()));
        assert!(check(json!({ "tags": { "$in": ["x", "a"] } }), doc.clone()));
        assert!(!check(json!({ "tags": { "$nin": ["a"] } }), doc.clone()));
        assert!(check(json!({ "new": false, "genre": { "$ne": "comedy" } }), doc.clone()));
        assert!(check(json!({ "$or": [{ "genre": "comedy" }, { "year": 2004 }] }), doc.clone()));
        assert!(!check(json!({ "$and": [{ "genre": "drama" }, { "year": 1999 }] }), doc.clone()));
        // A missing field: only $ne, $nin and $exists false match.
        assert!(check(json!({ "rating": { "$ne": 5 } }), doc.clone()));
        assert!(check(json!({ "rating": { "$nin": [5] } }), doc.clone()));
        assert!(check(json!({ "rating": { "$exists": false } }), doc.clone()));
        assert!(!check(json!({ "rating": { "$exists": true } }), doc.clone()));
        assert!(!check(json!({ "rating": { "$lt": 100 } }), doc.clone()));
        assert!(!check(json!({ "genre": "drama" }), Value::Null));
        // A string never compares as a number.
        assert!(!check(json!({ "genre": { "$gt": 0 } }), doc));
    }

    #[test]
    fn bad_filters_are_refused_with_their_reason() {
        let refused = |filter: Value, needle: &str| {
            let err = Filter::compile(&filter, &["secret".to_owned()]).expect_err("refused").to_string();
            assert!(err.contains(needle), "{err} lacks {needle}");
        };
        refused(json!([]), "must be an object");
        refused(json!({}), "at least one clause");
        refused(json!({ "$and": [], }), "non-empty");
        refused(json!({ "$or": [{ "a": 1 }], "b": 2 }), "only key");
        refused(json!({ "$not": { "a": 1 } }), "unknown operator");
        refused(json!({ "a": { "$regex": "x" } }), "unknown operator");
        refused(json!({ "a": { "$gt": "x" } }), "takes a number");
        refused(json!({ "a": { "$in": [] } }), "non-empty array");
        refused(json!({ "a": { "$in": [{}] } }), "string, number or boolean");
        refused(json!({ "a": [1, 2] }), "string, number or boolean");
        refused(json!({ "a": {} }), "empty operator object");
        refused(json!({ "a": { "$exists": 1 } }), "true or false");
        refused(json!({ "secret": 1 }), "not filterable");
        let many: Vec<i32> = (0..1025).collect();
        refused(json!({ "a": { "$in": many } }), "at most 1024");
        let clauses: Vec<Value> = (0..600).map(|i| json!({ "a": i })).collect();
        refused(json!({ "$or": [{ "$or": clauses.clone() }, { "$and": clauses }] }), "at most 1024");
    }
}
