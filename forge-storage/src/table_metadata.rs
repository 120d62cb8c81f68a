//! Iceberg table metadata (format version 2) as the catalog keeps it: a new table's metadata,
//! a commit's requirements and its updates, following the Iceberg REST catalog spec and the
//! reference implementation (`org.apache.iceberg.TableMetadata`). HTTP-free.
//!
//! Metadata is handled as JSON objects, so fields this catalog does not interpret (a
//! snapshot's summary, a field's `doc` or defaults, ...) are kept as the client sent them.
//!
//! - A new table gets fresh ids as the reference implementation assigns them: the schema's
//!   fields are numbered from 1 (each struct's own fields first, then their nested types), the
//!   partition fields from 1000, and the sort order is 1 (0 when unsorted); identifier fields,
//!   partition and sort sources follow their fields' new ids.
//! - A commit checks every requirement against the current metadata, then applies its updates in
//!   order; `-1` in `set-current-schema`, `set-default-spec` and `set-default-sort-order` means
//!   the one added last in the same commit. An update that cannot apply is a 400, a requirement
//!   that does not hold a 409 (`CommitFailedException`).

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{Error, ErrorKind, Result};

/// A JSON object.
pub(crate) type Object = Map<String, Value>;

/// The format version of every table this catalog writes.
pub(crate) const FORMAT_VERSION: i64 = 2;

/// The first id of partition fields.
const PARTITION_DATA_ID_START: i64 = 1000;

/// How many earlier metadata files `metadata-log` keeps unless the table says otherwise.
const PREVIOUS_VERSIONS_MAX: usize = 100;

/// The body of `POST .../tables` (the fields this catalog reads). iceberg-js declares the
/// partition and sort fields with `source_id`, `field_id` and `null_order`; both spellings are
/// accepted and the spec's are written.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateTable {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) location: Option<String>,
    pub(crate) schema: Value,
    #[serde(default, rename = "partition-spec")]
    partition_spec: Option<Value>,
    #[serde(default, rename = "write-order")]
    write_order: Option<Value>,
    #[serde(default, rename = "stage-create")]
    pub(crate) stage_create: bool,
    #[serde(default)]
    properties: Option<Value>,
}

fn bad(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::IcebergBadRequest, message)
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Object> {
    value.as_object().ok_or_else(|| bad(format!("Invalid {what}: expected an object")))
}

/// A required integer field.
fn int(o: &Object, field: &str) -> Result<i64> {
    o.get(field).and_then(Value::as_i64).ok_or_else(|| bad(format!("Missing or invalid integer field: {field}")))
}

/// A required id field: Iceberg's field, column and partition ids are positive 32-bit ints.
fn id(o: &Object, field: &str) -> Result<i64> {
    checked_id(int(o, field)?, field)
}

fn checked_id(value: i64, field: &str) -> Result<i64> {
    if (0..=i64::from(i32::MAX)).contains(&value) {
        Ok(value)
    } else {
        Err(bad(format!("Invalid {field} {value}: ids are between 0 and {}", i32::MAX)))
    }
}

/// A required string field.
fn string<'a>(o: &'a Object, field: &str) -> Result<&'a str> {
    o.get(field).and_then(Value::as_str).ok_or_else(|| bad(format!("Missing or invalid string field: {field}")))
}

/// A required array field.
fn array<'a>(o: &'a Object, field: &str) -> Result<&'a Vec<Value>> {
    o.get(field).and_then(Value::as_array).ok_or_else(|| bad(format!("Missing or invalid array field: {field}")))
}

/// A field under either of two names (the spec's and iceberg-js's).
fn either<'a>(o: &'a Object, spec: &str, alias: &str) -> Option<&'a Value> {
    o.get(spec).or_else(|| o.get(alias))
}

/// A map of strings to strings (`properties`, `updates`), absent meaning empty.
pub(crate) fn string_map(value: Option<&Value>, what: &str) -> Result<Object> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(Object::new()) };
    let map = object(value, what)?;
    if let Some((key, _)) = map.iter().find(|(_, v)| !v.is_string()) {
        return Err(bad(format!("Invalid {what}: the value of {key:?} is not a string")));
    }
    Ok(map.clone())
}

/// The current time in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

// ------------------------------------------------------------------------------------ types

/// Whether `t` is a primitive type of format version 2.
fn primitive(t: &str) -> bool {
    const NAMES: [&str; 12] = [
        "boolean",
        "int",
        "long",
        "float",
        "double",
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "string",
        "uuid",
        "binary",
    ];
    let args = |prefix: &str, open: char, close: char| {
        t.strip_prefix(prefix)
            .and_then(|rest| rest.trim_start().strip_prefix(open))
            .and_then(|rest| rest.strip_suffix(close))
            .map(|inner| inner.split(',').map(|n| n.trim().parse::<u32>().ok()).collect::<Option<Vec<_>>>())
    };
    NAMES.contains(&t)
        || matches!(args("decimal", '(', ')'), Some(Some(n)) if n.len() == 2 && n[0] >= 1 && n[0] <= 38 && n[1] <= n[0])
        || matches!(args("fixed", '[', ']'), Some(Some(n)) if n.len() == 1)
}

/// Checks a type and collects its field ids (struct fields, list elements, map keys and
/// values), in the order they appear.
fn collect_ids(t: &Value, ids: &mut Vec<i64>) -> Result<()> {
    match t {
        Value::String(p) if primitive(p) => Ok(()),
        Value::String(p) => Err(bad(format!("Unsupported type: {p}"))),
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("struct") => {
                for f in array(o, "fields")? {
                    let f = object(f, "struct field")?;
                    ids.push(id(f, "id")?);
                    check_field(f)?;
                    collect_ids(f.get("type").unwrap_or(&Value::Null), ids)?;
                }
                Ok(())
            }
            Some("list") => {
                ids.push(id(o, "element-id")?);
                collect_ids(o.get("element").unwrap_or(&Value::Null), ids)
            }
            Some("map") => {
                ids.push(id(o, "key-id")?);
                ids.push(id(o, "value-id")?);
                collect_ids(o.get("key").unwrap_or(&Value::Null), ids)?;
                collect_ids(o.get("value").unwrap_or(&Value::Null), ids)
            }
            _ => Err(bad("Invalid type: expected a primitive, struct, list or map")),
        },
        _ => Err(bad("Invalid type: expected a primitive, struct, list or map")),
    }
}

fn check_field(f: &Object) -> Result<()> {
    let name = string(f, "name")?;
    if name.is_empty() {
        return Err(bad("A field name must not be empty"));
    }
    if !f.get("required").is_some_and(Value::is_boolean) {
        return Err(bad(format!("Missing or invalid boolean field: required (of field {name:?})")));
    }
    Ok(())
}

/// Checks a schema sent by a client: a struct whose ids are unique. Returns its highest id.
fn check_schema(schema: &Object) -> Result<i64> {
    if schema.get("type").and_then(Value::as_str) != Some("struct") {
        return Err(bad("A schema must be a struct"));
    }
    let mut ids = Vec::new();
    collect_ids(&Value::Object(schema.clone()), &mut ids)?;
    let mut seen = HashSet::new();
    if let Some(dup) = ids.iter().find(|id| !seen.insert(**id)) {
        return Err(bad(format!("Duplicate field id in the schema: {dup}")));
    }
    for id in identifier_ids(schema)? {
        if !seen.contains(&id) {
            return Err(bad(format!("Identifier field {id} is not a field of the schema")));
        }
    }
    Ok(ids.into_iter().max().unwrap_or(0))
}

fn identifier_ids(schema: &Object) -> Result<Vec<i64>> {
    match schema.get("identifier-field-ids") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(ids)) => {
            ids.iter().map(|id| id.as_i64().ok_or_else(|| bad("identifier-field-ids must be integers"))).collect()
        }
        Some(_) => Err(bad("identifier-field-ids must be an array")),
    }
}

/// Renumbers a new table's fields as the reference implementation does (`AssignFreshIds`):
/// a struct's own fields first, then the types nested in each, in order.
#[derive(Debug, Default)]
struct FreshIds {
    last: i64,
    /// Old id to new id.
    ids: HashMap<i64, i64>,
}

impl FreshIds {
    fn assign(&mut self, old: Option<&Value>, what: &str) -> Result<i64> {
        let old =
            old.and_then(Value::as_i64).ok_or_else(|| bad(format!("Missing or invalid integer field: {what}")))?;
        self.last += 1;
        if self.ids.insert(old, self.last).is_some() {
            return Err(bad(format!("Duplicate field id in the schema: {old}")));
        }
        Ok(self.last)
    }

    fn old_to_new(&self, old: Option<&Value>, what: &str) -> Result<i64> {
        let old =
            old.and_then(Value::as_i64).ok_or_else(|| bad(format!("Missing or invalid integer field: {what}")))?;
        self.ids.get(&old).copied().ok_or_else(|| bad(format!("Cannot find source column {old} in the schema")))
    }

    fn renumber(&mut self, t: &Value) -> Result<Value> {
        let o = match t {
            Value::String(p) if primitive(p) => return Ok(t.clone()),
            Value::String(p) => return Err(bad(format!("Unsupported type: {p}"))),
            Value::Object(o) => o,
            _ => return Err(bad("Invalid type: expected a primitive, struct, list or map")),
        };
        let mut out = o.clone();
        match o.get("type").and_then(Value::as_str) {
            Some("struct") => {
                let fields = array(o, "fields")?;
                let mut new_ids = Vec::with_capacity(fields.len());
                for f in fields {
                    let f = object(f, "struct field")?;
                    check_field(f)?;
                    new_ids.push(self.assign(f.get("id"), "id")?);
                }
                let mut renumbered = Vec::with_capacity(fields.len());
                for (f, id) in fields.iter().zip(new_ids) {
                    let mut f = object(f, "struct field")?.clone();
                    let t = self.renumber(f.get("type").unwrap_or(&Value::Null))?;
                    f.insert("id".into(), json!(id));
                    f.insert("type".into(), t);
                    renumbered.push(Value::Object(f));
                }
                out.insert("fields".into(), Value::Array(renumbered));
            }
            Some("list") => {
                let id = self.assign(o.get("element-id"), "element-id")?;
                out.insert("element-id".into(), json!(id));
                out.insert("element".into(), self.renumber(o.get("element").unwrap_or(&Value::Null))?);
            }
            Some("map") => {
                let key = self.assign(o.get("key-id"), "key-id")?;
                let value = self.assign(o.get("value-id"), "value-id")?;
                out.insert("key-id".into(), json!(key));
                out.insert("value-id".into(), json!(value));
                out.insert("key".into(), self.renumber(o.get("key").unwrap_or(&Value::Null))?);
                out.insert("value".into(), self.renumber(o.get("value").unwrap_or(&Value::Null))?);
            }
            _ => return Err(bad("Invalid type: expected a primitive, struct, list or map")),
        }
        Ok(Value::Object(out))
    }
}

// ------------------------------------------------------------------- partitions and orders

/// Whether `t` is a partition transform.
fn transform(t: &str) -> bool {
    let arg = |prefix: &str| {
        t.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|n| n.trim().parse::<u32>().ok())
            .is_some_and(|n| n > 0)
    };
    ["identity", "year", "month", "day", "hour", "void"].contains(&t) || arg("bucket") || arg("truncate")
}

/// A partition field as the spec writes it, with id `field_id`; `source` maps its source id
/// (to fresh ids for a new table, unchanged for a commit).
fn partition_field(f: &Value, source: &dyn Fn(Option<&Value>) -> Result<i64>, field_id: i64) -> Result<Value> {
    let f = object(f, "partition field")?;
    let name = string(f, "name")?;
    let t = string(f, "transform")?;
    if name.is_empty() || !transform(t) {
        return Err(bad(format!("Invalid partition field {name:?} (transform {t:?})")));
    }
    let source_id = source(either(f, "source-id", "source_id"))?;
    Ok(json!({ "name": name, "transform": t, "source-id": source_id, "field-id": field_id }))
}

fn sort_field(f: &Value, source: &dyn Fn(Option<&Value>) -> Result<i64>) -> Result<Value> {
    let f = object(f, "sort field")?;
    let t = string(f, "transform")?;
    let direction = string(f, "direction")?;
    let nulls = either(f, "null-order", "null_order")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("Missing or invalid string field: null-order"))?;
    if !transform(t) || !["asc", "desc"].contains(&direction) || !["nulls-first", "nulls-last"].contains(&nulls) {
        return Err(bad(format!(
            "Invalid sort field (transform {t:?}, direction {direction:?}, null-order {nulls:?})"
        )));
    }
    let source_id = source(either(f, "source-id", "source_id"))?;
    Ok(json!({ "transform": t, "source-id": source_id, "direction": direction, "null-order": nulls }))
}

fn unique_partition_names(fields: &[Value]) -> Result<()> {
    let mut names = HashSet::new();
    for f in fields {
        if let Some(name) = f.get("name").and_then(Value::as_str)
            && !names.insert(name)
        {
            return Err(bad(format!("Duplicate partition field name: {name}")));
        }
    }
    Ok(())
}

// ----------------------------------------------------------------------------- new tables

/// The metadata of a new table (`POST .../tables`), with fresh ids.
pub(crate) fn new_table(req: &CreateTable, location: &str, uuid: uuid::Uuid, now: i64) -> Result<Object> {
    let schema = object(&req.schema, "schema")?;
    if schema.get("type").and_then(Value::as_str) != Some("struct") {
        return Err(bad("A schema must be a struct"));
    }
    let mut fresh = FreshIds::default();
    let mut fresh_schema = match fresh.renumber(&req.schema)? {
        Value::Object(o) => o,
        _ => return Err(bad("A schema must be a struct")),
    };
    fresh_schema.insert("schema-id".into(), json!(0));
    let identifiers: Vec<i64> = identifier_ids(schema)?
        .into_iter()
        .map(|id| {
            fresh
                .ids
                .get(&id)
                .copied()
                .ok_or_else(|| bad(format!("Identifier field {id} is not a field of the schema")))
        })
        .collect::<Result<_>>()?;
    if identifiers.is_empty() {
        fresh_schema.remove("identifier-field-ids");
    } else {
        fresh_schema.insert("identifier-field-ids".into(), json!(identifiers));
    }

    let source = |old: Option<&Value>| fresh.old_to_new(old, "source-id");
    let spec_fields = match req.partition_spec.as_ref().filter(|v| !v.is_null()) {
        Some(spec) => array(object(spec, "partition-spec")?, "fields")?.clone(),
        None => Vec::new(),
    };
    let spec_fields: Vec<Value> = spec_fields
        .iter()
        .zip(PARTITION_DATA_ID_START..)
        .map(|(f, id)| partition_field(f, &source, id))
        .collect::<Result<_>>()?;
    unique_partition_names(&spec_fields)?;
    let last_partition_id = PARTITION_DATA_ID_START - 1 + spec_fields.len() as i64;

    let order_fields = match req.write_order.as_ref().filter(|v| !v.is_null()) {
        Some(order) => array(object(order, "write-order")?, "fields")?.clone(),
        None => Vec::new(),
    };
    let order_fields: Vec<Value> = order_fields.iter().map(|f| sort_field(f, &source)).collect::<Result<_>>()?;
    let order_id = if order_fields.is_empty() { 0 } else { 1 };

    let mut properties = string_map(req.properties.as_ref(), "properties")?;
    // The reference implementation reads the format version from this property and drops it.
    if let Some(v) = properties.remove("format-version")
        && v.as_str() != Some("2")
    {
        return Err(bad(format!("Unsupported format version: {v} (this catalog writes version 2)")));
    }

    Ok(object_of(json!({
        "format-version": FORMAT_VERSION,
        "table-uuid": uuid.to_string(),
        "location": location,
        "last-sequence-number": 0,
        "last-updated-ms": now,
        "last-column-id": fresh.last,
        "current-schema-id": 0,
        "schemas": [fresh_schema],
        "default-spec-id": 0,
        "partition-specs": [{ "spec-id": 0, "fields": spec_fields }],
        "last-partition-id": last_partition_id,
        "default-sort-order-id": order_id,
        "sort-orders": [{ "order-id": order_id, "fields": order_fields }],
        "properties": properties,
        "current-snapshot-id": -1,
        "refs": {},
        "snapshots": [],
        "statistics": [],
        "partition-statistics": [],
        "snapshot-log": [],
        "metadata-log": [],
    })))
}

/// The metadata a create transaction (a commit with `assert-create`) starts from: no schema,
/// spec or sort order yet; its updates must add them.
pub(crate) fn empty_table(location: &str, uuid: uuid::Uuid, now: i64) -> Object {
    object_of(json!({
        "format-version": FORMAT_VERSION,
        "table-uuid": uuid.to_string(),
        "location": location,
        "last-sequence-number": 0,
        "last-updated-ms": now,
        "last-column-id": 0,
        "current-schema-id": -1,
        "schemas": [],
        "default-spec-id": -1,
        "partition-specs": [],
        "last-partition-id": PARTITION_DATA_ID_START - 1,
        "default-sort-order-id": -1,
        "sort-orders": [],
        "properties": {},
        "current-snapshot-id": -1,
        "refs": {},
        "snapshots": [],
        "statistics": [],
        "partition-statistics": [],
        "snapshot-log": [],
        "metadata-log": [],
    }))
}

/// Checks that a table's current schema, spec and sort order exist (after a create
/// transaction).
pub(crate) fn check_complete(meta: &Object) -> Result<()> {
    let has = |list: &str, key: &str, id: &str| {
        let id = meta.get(id).and_then(Value::as_i64);
        meta.get(list)
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|x| x.get(key).and_then(Value::as_i64) == id))
    };
    if !has("schemas", "schema-id", "current-schema-id") {
        return Err(bad("The table has no current schema: add one and set it (set-current-schema)"));
    }
    if !has("partition-specs", "spec-id", "default-spec-id") {
        return Err(bad("The table has no default partition spec: add one and set it (set-default-spec)"));
    }
    if !has("sort-orders", "order-id", "default-sort-order-id") {
        return Err(bad("The table has no default sort order: add one and set it (set-default-sort-order)"));
    }
    Ok(())
}

fn object_of(value: Value) -> Object {
    match value {
        Value::Object(o) => o,
        _ => Object::new(),
    }
}

/// Where a file-based catalog would write version `version` of a table's metadata.
pub(crate) fn metadata_location(location: &str, version: i64) -> String {
    format!("{}/metadata/{version:05}-{}.metadata.json", location.trim_end_matches('/'), uuid::Uuid::new_v4())
}

// ---------------------------------------------------------------------------- requirements

/// Checks a commit's requirements against the table's current metadata (`None`: the table
/// does not exist, which only `assert-create` expects).
pub(crate) fn check_requirements(meta: Option<&Object>, requirements: &[Value]) -> Result<()> {
    for r in requirements {
        let r = object(r, "requirement")?;
        let kind = string(r, "type")?;
        let Some(meta) = meta else {
            if kind == "assert-create" {
                continue;
            }
            return Err(bad(format!("Requirement {kind} cannot accompany the creation of a table")));
        };
        let failed = |what: String| Err(Error::new(ErrorKind::CommitFailed, format!("Requirement failed: {what}")));
        let current = |field: &str| meta.get(field).and_then(Value::as_i64);
        let expect_same = |field: &str, wanted: &str, label: &str| -> Result<()> {
            let want = int(r, wanted)?;
            match current(field) {
                Some(have) if have == want => Ok(()),
                have => failed(format!("{label} changed: expected id {want} != {}", show(have))),
            }
        };
        match kind {
            "assert-create" => return failed("table already exists".into()),
            "assert-table-uuid" => {
                let want = string(r, "uuid")?;
                let have = meta.get("table-uuid").and_then(Value::as_str).unwrap_or_default();
                if !want.eq_ignore_ascii_case(have) {
                    return failed(format!("UUID does not match: expected {have} != {want}"));
                }
            }
            "assert-ref-snapshot-id" => {
                let name = string(r, "ref")?;
                let want = match r.get("snapshot-id") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_i64().ok_or_else(|| bad("Invalid snapshot-id in assert-ref-snapshot-id"))?),
                };
                let have = meta.get("refs").and_then(|refs| refs.get(name)).and_then(|r| r.get("snapshot-id"));
                match (have.and_then(Value::as_i64), want) {
                    (None, None) => {}
                    (Some(_), None) => return failed(format!("branch or tag {name} was created concurrently")),
                    (None, Some(want)) => return failed(format!("branch or tag {name} is missing, expected {want}")),
                    (Some(have), Some(want)) if have != want => {
                        return failed(format!("branch or tag {name} has changed: expected id {want} != {have}"));
                    }
                    (Some(_), Some(_)) => {}
                }
            }
            "assert-last-assigned-field-id" => {
                expect_same("last-column-id", "last-assigned-field-id", "last assigned field id")?
            }
            "assert-current-schema-id" => expect_same("current-schema-id", "current-schema-id", "current schema")?,
            "assert-last-assigned-partition-id" => {
                expect_same("last-partition-id", "last-assigned-partition-id", "last assigned partition id")?
            }
            "assert-default-spec-id" => expect_same("default-spec-id", "default-spec-id", "default partition spec")?,
            "assert-default-sort-order-id" => {
                expect_same("default-sort-order-id", "default-sort-order-id", "default sort order")?
            }
            other => return Err(bad(format!("Unknown requirement type: {other}"))),
        }
    }
    Ok(())
}

fn show(v: Option<i64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

// --------------------------------------------------------------------------------- updates

/// The updates iceberg-js's `updateTable` shorthand (`{schema?, "partition-spec"?,
/// properties?}`) stands for; `None` when the body has none of them.
pub(crate) fn shorthand_updates(body: &Object) -> Option<Vec<Value>> {
    let mut updates = Vec::new();
    if let Some(schema) = body.get("schema") {
        updates.push(json!({ "action": "add-schema", "schema": schema }));
        updates.push(json!({ "action": "set-current-schema", "schema-id": -1 }));
    }
    if let Some(spec) = body.get("partition-spec") {
        updates.push(json!({ "action": "add-spec", "spec": spec }));
        updates.push(json!({ "action": "set-default-spec", "spec-id": -1 }));
    }
    if let Some(properties) = body.get("properties") {
        updates.push(json!({ "action": "set-properties", "updates": properties }));
    }
    (!updates.is_empty()).then_some(updates)
}

/// A commit in progress: the metadata being changed and what the commit added.
#[derive(Debug)]
struct Commit {
    meta: Object,
    now: i64,
    last_added_schema: Option<i64>,
    last_added_spec: Option<i64>,
    last_added_order: Option<i64>,
    /// The timestamp of the last snapshot the commit added: the time `snapshot-log` records
    /// when `main` moves to it, as in the reference implementation.
    snapshot_time: Option<i64>,
}

/// Applies a commit's updates to `base`. Returns `None` when they change nothing (no new
/// metadata version is written then), else the new metadata with `last-updated-ms` set.
pub(crate) fn apply_updates(base: &Object, updates: &[Value], now: i64) -> Result<Option<Object>> {
    let mut commit = Commit {
        meta: base.clone(),
        now,
        last_added_schema: None,
        last_added_spec: None,
        last_added_order: None,
        snapshot_time: None,
    };
    for u in updates {
        commit.apply(object(u, "update")?)?;
    }
    if commit.meta == *base {
        return Ok(None);
    }
    // Never before the metadata it replaces: readers check that the logs are in order.
    let previous = base.get("last-updated-ms").and_then(Value::as_i64).unwrap_or(0);
    commit.meta.insert("last-updated-ms".into(), json!(now.max(previous)));
    Ok(Some(commit.meta))
}

/// Records the metadata file a commit replaced in `metadata-log` (keeping at most
/// `write.metadata.previous-versions-max` entries, 100 by default).
pub(crate) fn log_previous(meta: &mut Object, previous_location: &str, previous_updated_ms: i64) {
    let max = meta
        .get("properties")
        .and_then(|p| p.get("write.metadata.previous-versions-max"))
        .and_then(Value::as_str)
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(PREVIOUS_VERSIONS_MAX)
        .max(1);
    let log = list_mut(meta, "metadata-log");
    log.push(json!({ "metadata-file": previous_location, "timestamp-ms": previous_updated_ms }));
    if log.len() > max {
        let excess = log.len() - max;
        log.drain(..excess);
    }
}

fn list_mut<'a>(meta: &'a mut Object, field: &str) -> &'a mut Vec<Value> {
    let entry = meta.entry(field.to_owned()).or_insert_with(|| Value::Array(Vec::new()));
    if !entry.is_array() {
        *entry = Value::Array(Vec::new());
    }
    match entry {
        Value::Array(list) => list,
        _ => unreachable!("just made an array"),
    }
}

fn map_mut<'a>(meta: &'a mut Object, field: &str) -> &'a mut Object {
    let entry = meta.entry(field.to_owned()).or_insert_with(|| Value::Object(Object::new()));
    if !entry.is_object() {
        *entry = Value::Object(Object::new());
    }
    match entry {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

/// The ids of a list's entries (`schema-id` of `schemas`, ...).
fn ids_of(meta: &Object, list: &str, key: &str) -> Vec<i64> {
    meta.get(list)
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(|x| x.get(key).and_then(Value::as_i64)).collect())
        .unwrap_or_default()
}

/// The entry of a list whose `key` equals what `same` is looking for, if any.
fn find_same(meta: &Object, list: &str, key: &str, same: impl Fn(&Object) -> bool) -> Option<i64> {
    meta.get(list)?.as_array()?.iter().filter_map(Value::as_object).find(|x| same(x)).and_then(|x| x.get(key)?.as_i64())
}

impl Commit {
    fn int(&self, field: &str) -> i64 {
        self.meta.get(field).and_then(Value::as_i64).unwrap_or(-1)
    }

    fn set(&mut self, field: &str, value: Value) {
        self.meta.insert(field.to_owned(), value);
    }

    fn apply(&mut self, u: &Object) -> Result<()> {
        match string(u, "action")? {
            "assign-uuid" => {
                let uuid = string(u, "uuid")?;
                let uuid = uuid::Uuid::parse_str(uuid).map_err(|_| bad(format!("Invalid table UUID: {uuid}")))?;
                self.set("table-uuid", json!(uuid.to_string()));
            }
            "upgrade-format-version" => {
                let version = int(u, "format-version")?;
                let current = self.int("format-version");
                if version < current {
                    return Err(bad(format!("Cannot downgrade v{current} table to v{version}")));
                }
                if version != current {
                    return Err(bad(format!("Unsupported format version: v{version} (this catalog writes v2)")));
                }
            }
            "add-schema" => self.add_schema(u)?,
            "set-current-schema" => {
                let id = self.resolve_last(int(u, "schema-id")?, self.last_added_schema, "schema")?;
                if !ids_of(&self.meta, "schemas", "schema-id").contains(&id) {
                    return Err(bad(format!("Cannot set current schema to unknown schema: {id}")));
                }
                self.set("current-schema-id", json!(id));
            }
            "add-spec" => self.add_spec(u)?,
            "set-default-spec" => {
                let id = self.resolve_last(int(u, "spec-id")?, self.last_added_spec, "partition spec")?;
                if !ids_of(&self.meta, "partition-specs", "spec-id").contains(&id) {
                    return Err(bad(format!("Cannot set default partition spec to unknown spec: {id}")));
                }
                self.set("default-spec-id", json!(id));
            }
            "add-sort-order" => self.add_sort_order(u)?,
            "set-default-sort-order" => {
                let id = self.resolve_last(int(u, "sort-order-id")?, self.last_added_order, "sort order")?;
                if !ids_of(&self.meta, "sort-orders", "order-id").contains(&id) {
                    return Err(bad(format!("Cannot set default sort order to unknown order: {id}")));
                }
                self.set("default-sort-order-id", json!(id));
            }
            "set-properties" => {
                let updates = string_map(Some(u.get("updates").unwrap_or(&Value::Null)), "updates")?;
                map_mut(&mut self.meta, "properties").extend(updates);
            }
            "remove-properties" => {
                let removals = array(u, "removals")?;
                let properties = map_mut(&mut self.meta, "properties");
                for key in removals {
                    let key = key.as_str().ok_or_else(|| bad("removals must be strings"))?;
                    properties.remove(key);
                }
            }
            "set-location" => {
                let location = string(u, "location")?;
                if location.trim().is_empty() {
                    return Err(bad("A table location must not be empty"));
                }
                self.set("location", json!(location.trim_end_matches('/')));
            }
            "add-snapshot" => self.add_snapshot(u)?,
            "set-snapshot-ref" => self.set_ref(u)?,
            "remove-snapshots" => self.remove_snapshots(u)?,
            "remove-snapshot-ref" => {
                let name = string(u, "ref-name")?;
                if map_mut(&mut self.meta, "refs").remove(name).is_some() && name == "main" {
                    self.set("current-snapshot-id", json!(-1));
                }
            }
            other => return Err(bad(format!("Unsupported table update: {other}"))),
        }
        Ok(())
    }

    /// `-1` stands for the one added last in this commit.
    fn resolve_last(&self, id: i64, last_added: Option<i64>, what: &str) -> Result<i64> {
        match (id, last_added) {
            (-1, Some(last)) => Ok(last),
            (-1, None) => Err(bad(format!("Cannot set the last added {what}: no {what} has been added"))),
            (id, _) => Ok(id),
        }
    }

    fn add_schema(&mut self, u: &Object) -> Result<()> {
        let schema = object(u.get("schema").unwrap_or(&Value::Null), "schema")?;
        let highest = check_schema(schema)?;
        let fields = schema.get("fields");
        let identifiers = identifier_ids(schema)?;
        let same = |s: &Object| s.get("fields") == fields && identifier_ids(s).ok().as_ref() == Some(&identifiers);
        let id = match find_same(&self.meta, "schemas", "schema-id", same) {
            Some(id) => id,
            None => {
                let id = ids_of(&self.meta, "schemas", "schema-id").into_iter().max().map_or(0, |m| m + 1);
                let mut schema = schema.clone();
                schema.insert("schema-id".into(), json!(id));
                list_mut(&mut self.meta, "schemas").push(Value::Object(schema));
                id
            }
        };
        // `last-column-id` in the update is deprecated: the highest id in use wins.
        let given = checked_id(u.get("last-column-id").and_then(Value::as_i64).unwrap_or(0), "last-column-id")?;
        let last = self.int("last-column-id").max(highest).max(given);
        self.set("last-column-id", json!(last));
        self.last_added_schema = Some(id);
        Ok(())
    }

    fn add_spec(&mut self, u: &Object) -> Result<()> {
        let spec = object(u.get("spec").unwrap_or(&Value::Null), "spec")?;
        let mut next = self.int("last-partition-id").max(PARTITION_DATA_ID_START - 1);
        let source = |old: Option<&Value>| {
            let source =
                old.and_then(Value::as_i64).ok_or_else(|| bad("Missing or invalid integer field: source-id"))?;
            checked_id(source, "source-id")
        };
        let mut fields = Vec::new();
        for f in array(spec, "fields")? {
            let given = f.as_object().and_then(|o| either(o, "field-id", "field_id")).and_then(Value::as_i64);
            let id = match given {
                Some(id) => checked_id(id, "field-id")?,
                None => {
                    next = checked_id(next.saturating_add(1), "field-id")?;
                    next
                }
            };
            fields.push(partition_field(f, &source, id)?);
        }
        unique_partition_names(&fields)?;
        let highest = fields.iter().filter_map(|f| f.get("field-id").and_then(Value::as_i64)).max();
        let fields = Value::Array(fields);
        let id = match find_same(&self.meta, "partition-specs", "spec-id", |s| s.get("fields") == Some(&fields)) {
            Some(id) => id,
            None => {
                let id = ids_of(&self.meta, "partition-specs", "spec-id").into_iter().max().map_or(0, |m| m + 1);
                list_mut(&mut self.meta, "partition-specs").push(json!({ "spec-id": id, "fields": fields }));
                id
            }
        };
        let last = self.int("last-partition-id").max(highest.unwrap_or(0)).max(PARTITION_DATA_ID_START - 1);
        self.set("last-partition-id", json!(last));
        self.last_added_spec = Some(id);
        Ok(())
    }

    fn add_sort_order(&mut self, u: &Object) -> Result<()> {
        let order = object(u.get("sort-order").unwrap_or(&Value::Null), "sort-order")?;
        let source = |old: Option<&Value>| {
            old.and_then(Value::as_i64).ok_or_else(|| bad("Missing or invalid integer field: source-id"))
        };
        let fields: Vec<Value> =
            array(order, "fields")?.iter().map(|f| sort_field(f, &source)).collect::<Result<_>>()?;
        let unsorted = fields.is_empty();
        let fields = Value::Array(fields);
        let id = match find_same(&self.meta, "sort-orders", "order-id", |o| o.get("fields") == Some(&fields)) {
            Some(id) => id,
            None => {
                // Order 0 is the unsorted order; sorted orders count from 1.
                let max = ids_of(&self.meta, "sort-orders", "order-id").into_iter().max().unwrap_or(0);
                let id = if unsorted { 0 } else { max + 1 };
                list_mut(&mut self.meta, "sort-orders").push(json!({ "order-id": id, "fields": fields }));
                id
            }
        };
        self.last_added_order = Some(id);
        Ok(())
    }

    fn add_snapshot(&mut self, u: &Object) -> Result<()> {
        let snapshot = object(u.get("snapshot").unwrap_or(&Value::Null), "snapshot")?;
        let id = int(snapshot, "snapshot-id")?;
        let timestamp = int(snapshot, "timestamp-ms")?;
        let sequence = int(snapshot, "sequence-number")?;
        string(snapshot, "manifest-list")?;
        let operation = snapshot.get("summary").and_then(|s| s.get("operation")).and_then(Value::as_str);
        if operation.is_none() {
            return Err(bad("A snapshot needs a summary with an operation"));
        }
        if ids_of(&self.meta, "snapshots", "snapshot-id").contains(&id) {
            return Err(bad(format!("Snapshot already exists: {id}")));
        }
        let has_parent = snapshot.get("parent-snapshot-id").is_some_and(|p| !p.is_null());
        let last_sequence = self.int("last-sequence-number").max(0);
        if sequence <= last_sequence && has_parent {
            return Err(bad(format!(
                "Cannot add snapshot with sequence number {sequence} older than last sequence number {last_sequence}"
            )));
        }
        list_mut(&mut self.meta, "snapshots").push(Value::Object(snapshot.clone()));
        self.set("last-sequence-number", json!(sequence.max(last_sequence)));
        self.snapshot_time = Some(timestamp);
        Ok(())
    }

    fn set_ref(&mut self, u: &Object) -> Result<()> {
        let name = string(u, "ref-name")?;
        let id = int(u, "snapshot-id")?;
        let kind = string(u, "type")?;
        if !["branch", "tag"].contains(&kind) || (name == "main" && kind != "branch") {
            return Err(bad(format!("Invalid reference type {kind:?} for {name:?}")));
        }
        if name.is_empty() {
            return Err(bad("A reference name must not be empty"));
        }
        if !ids_of(&self.meta, "snapshots", "snapshot-id").contains(&id) {
            return Err(bad(format!("Cannot set {name} to unknown snapshot: {id}")));
        }
        let mut reference = json!({ "snapshot-id": id, "type": kind });
        for field in ["max-ref-age-ms", "max-snapshot-age-ms", "min-snapshots-to-keep"] {
            match u.get(field) {
                None | Some(Value::Null) => {}
                Some(v) if v.is_i64() => reference[field] = v.clone(),
                Some(_) => return Err(bad(format!("Invalid {field}: expected an integer"))),
            }
        }
        if self.meta.get("refs").and_then(|r| r.get(name)) == Some(&reference) {
            return Ok(());
        }
        map_mut(&mut self.meta, "refs").insert(name.to_owned(), reference);
        if name == "main" {
            self.set("current-snapshot-id", json!(id));
            let at = self.snapshot_time.unwrap_or(self.now);
            list_mut(&mut self.meta, "snapshot-log").push(json!({ "snapshot-id": id, "timestamp-ms": at }));
        }
        Ok(())
    }

    fn remove_snapshots(&mut self, u: &Object) -> Result<()> {
        let ids: HashSet<i64> = array(u, "snapshot-ids")?
            .iter()
            .map(|id| id.as_i64().ok_or_else(|| bad("snapshot-ids must be integers")))
            .collect::<Result<_>>()?;
        let removed = |x: &Value| x.get("snapshot-id").and_then(Value::as_i64).is_some_and(|id| ids.contains(&id));
        for list in ["snapshots", "snapshot-log", "statistics", "partition-statistics"] {
            list_mut(&mut self.meta, list).retain(|x| !removed(x));
        }
        // References to removed snapshots go with them.
        let refs = map_mut(&mut self.meta, "refs");
        let main_removed = refs.get("main").is_some_and(removed);
        refs.retain(|_, r| !removed(r));
        if main_removed {
            self.set("current-snapshot-id", json!(-1));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(body: Value) -> Result<Object> {
        let req: CreateTable = serde_json::from_value(body).expect("a create request");
        new_table(&req, "s3://wh/ns/t", uuid::Uuid::nil(), 1000)
    }

    fn table() -> Object {
        create(json!({
            "name": "t",
            "schema": { "type": "struct", "fields": [
                { "id": 1, "name": "id", "type": "long", "required": true },
                { "id": 2, "name": "ts", "type": "timestamptz", "required": false },
            ], "identifier-field-ids": [1] },
        }))
        .expect("created")
    }

    fn commit(meta: &Object, updates: Value) -> Result<Option<Object>> {
        apply_updates(meta, updates.as_array().expect("updates"), 5000)
    }

    #[test]
    fn new_tables_get_fresh_ids_like_the_reference_implementation() {
        let meta = create(json!({
            "name": "t",
            "schema": { "type": "struct", "schema-id": 7, "identifier-field-ids": [10], "fields": [
                { "id": 10, "name": "id", "type": "long", "required": true },
                { "id": 20, "name": "point", "required": false, "type": { "type": "struct", "fields": [
                    { "id": 21, "name": "x", "type": "double", "required": true },
                ]}},
                { "id": 30, "name": "tags", "required": false, "type": {
                    "type": "map", "key-id": 31, "key": "string", "value-id": 32, "value": "string", "value-required": false,
                }},
                { "id": 40, "name": "ts", "type": "timestamp", "required": true, "doc": "kept" },
            ]},
            "partition-spec": { "spec-id": 3, "fields": [
                { "source_id": 40, "field_id": 5, "name": "ts_day", "transform": "day" },
                { "source-id": 10, "name": "id_bucket", "transform": "bucket[16]" },
            ]},
            "write-order": { "order-id": 9, "fields": [
                { "source-id": 40, "transform": "identity", "direction": "desc", "null_order": "nulls-last" },
            ]},
            "properties": { "owner": "me", "format-version": "2" },
        }))
        .expect("created");
        // Top-level fields 1..4 first, then the nested ones in order.
        let fields = &meta["schemas"][0]["fields"];
        let ids: Vec<_> = fields.as_array().unwrap().iter().map(|f| f["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
        assert_eq!(fields[1]["type"]["fields"][0]["id"], 5);
        assert_eq!((fields[2]["type"]["key-id"].clone(), fields[2]["type"]["value-id"].clone()), (json!(6), json!(7)));
        assert_eq!(fields[3]["doc"], "kept");
        assert_eq!(meta["schemas"][0]["schema-id"], 0);
        assert_eq!(meta["schemas"][0]["identifier-field-ids"], json!([1]));
        assert_eq!(meta["last-column-id"], 7);
        assert_eq!(
            meta["partition-specs"],
            json!([{ "spec-id": 0, "fields": [
                { "name": "ts_day", "transform": "day", "source-id": 4, "field-id": 1000 },
                { "name": "id_bucket", "transform": "bucket[16]", "source-id": 1, "field-id": 1001 },
            ]}])
        );
        assert_eq!(meta["last-partition-id"], 1001);
        assert_eq!(
            meta["sort-orders"],
            json!([{ "order-id": 1, "fields": [
                { "transform": "identity", "source-id": 4, "direction": "desc", "null-order": "nulls-last" },
            ]}])
        );
        assert_eq!(meta["default-sort-order-id"], 1);
        assert_eq!(meta["properties"], json!({ "owner": "me" }));
        assert_eq!((meta["format-version"].clone(), meta["current-snapshot-id"].clone()), (json!(2), json!(-1)));
    }

    #[test]
    fn unpartitioned_unsorted_tables() {
        let meta = table();
        assert_eq!(meta["partition-specs"], json!([{ "spec-id": 0, "fields": [] }]));
        assert_eq!(meta["last-partition-id"], 999);
        assert_eq!(meta["sort-orders"], json!([{ "order-id": 0, "fields": [] }]));
        assert_eq!(meta["default-sort-order-id"], 0);
    }

    #[test]
    fn invalid_create_requests_are_bad_requests() {
        let field = |t: Value| json!({ "id": 1, "name": "a", "type": t, "required": true });
        for schema in [
            json!({ "type": "struct", "fields": [field(json!("varchar"))] }),
            json!({ "type": "struct", "fields": [field(json!("decimal(40,2)"))] }),
            json!({ "type": "struct", "fields": [field(json!("long")), field(json!("int"))] }),
            json!({ "type": "struct", "fields": [{ "id": 1, "name": "a", "type": "int" }] }),
            json!({ "type": "list", "element-id": 1, "element": "int", "element-required": true }),
            json!({ "type": "struct", "fields": [field(json!("int"))], "identifier-field-ids": [2] }),
        ] {
            let e = create(json!({ "name": "t", "schema": schema })).expect_err("refused");
            assert_eq!((e.status(), e.kind()), (400, Some(ErrorKind::IcebergBadRequest)), "{schema}: {e}");
        }
        let spec = json!({ "fields": [{ "source-id": 9, "name": "p", "transform": "identity" }] });
        let e = create(json!({ "name": "t", "schema": { "type": "struct", "fields": [field(json!("int"))] },
            "partition-spec": spec }))
        .expect_err("unknown source");
        assert_eq!(e.to_string(), "Cannot find source column 9 in the schema");
        assert!(primitive("decimal(10, 2)") && primitive("fixed[16]") && !primitive("fixed[x]"));
    }

    #[test]
    fn requirements_hold_or_fail_the_commit() {
        let meta = table();
        let uuid = uuid::Uuid::nil().to_string();
        let ok = json!([
            { "type": "assert-table-uuid", "uuid": uuid },
            { "type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": null },
            { "type": "assert-last-assigned-field-id", "last-assigned-field-id": 2 },
            { "type": "assert-current-schema-id", "current-schema-id": 0 },
            { "type": "assert-last-assigned-partition-id", "last-assigned-partition-id": 999 },
            { "type": "assert-default-spec-id", "default-spec-id": 0 },
            { "type": "assert-default-sort-order-id", "default-sort-order-id": 0 },
        ]);
        check_requirements(Some(&meta), ok.as_array().unwrap()).expect("all hold");
        for (failing, message) in [
            (json!({ "type": "assert-create" }), "Requirement failed: table already exists"),
            (
                json!({ "type": "assert-table-uuid", "uuid": "6f0e5b0e-0000-4000-8000-000000000000" }),
                "Requirement failed: UUID does not match: expected 00000000-0000-0000-0000-000000000000 != 6f0e5b0e-0000-4000-8000-000000000000",
            ),
            (
                json!({ "type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": 5 }),
                "Requirement failed: branch or tag main is missing, expected 5",
            ),
            (
                json!({ "type": "assert-current-schema-id", "current-schema-id": 1 }),
                "Requirement failed: current schema changed: expected id 1 != 0",
            ),
            (
                json!({ "type": "assert-last-assigned-field-id", "last-assigned-field-id": 3 }),
                "Requirement failed: last assigned field id changed: expected id 3 != 2",
            ),
            (
                json!({ "type": "assert-last-assigned-partition-id", "last-assigned-partition-id": 1000 }),
                "Requirement failed: last assigned partition id changed: expected id 1000 != 999",
            ),
            (
                json!({ "type": "assert-default-spec-id", "default-spec-id": 1 }),
                "Requirement failed: default partition spec changed: expected id 1 != 0",
            ),
            (
                json!({ "type": "assert-default-sort-order-id", "default-sort-order-id": 1 }),
                "Requirement failed: default sort order changed: expected id 1 != 0",
            ),
        ] {
            let e = check_requirements(Some(&meta), std::slice::from_ref(&failing)).expect_err("fails");
            assert_eq!((e.status(), e.kind(), e.to_string().as_str()), (409, Some(ErrorKind::CommitFailed), message));
        }
        let e = check_requirements(Some(&meta), &[json!({ "type": "assert-nothing" })]).expect_err("unknown");
        assert_eq!(e.status(), 400);
        check_requirements(None, &[json!({ "type": "assert-create" })]).expect("creation");
        assert_eq!(check_requirements(None, ok.as_array().unwrap()).expect_err("not with a create").status(), 400);
    }

    #[test]
    fn schema_spec_and_order_updates() {
        let meta = table();
        let schema = json!({ "type": "struct", "schema-id": 42, "fields": [
            { "id": 1, "name": "id", "type": "long", "required": true },
            { "id": 2, "name": "ts", "type": "timestamptz", "required": false },
            { "id": 3, "name": "note", "type": "string", "required": false },
        ]});
        let out = commit(
            &meta,
            json!([
                { "action": "add-schema", "schema": schema },
                { "action": "set-current-schema", "schema-id": -1 },
                { "action": "add-spec", "spec": { "fields": [{ "source-id": 2, "name": "d", "transform": "day" }] } },
                { "action": "set-default-spec", "spec-id": -1 },
                { "action": "add-sort-order", "sort-order": { "order-id": 5, "fields": [
                    { "source-id": 3, "transform": "identity", "direction": "asc", "null-order": "nulls-first" },
                ]}},
                { "action": "set-default-sort-order", "sort-order-id": -1 },
                { "action": "set-properties", "updates": { "a": "1", "b": "2" } },
                { "action": "remove-properties", "removals": ["a", "missing"] },
                { "action": "set-location", "location": "s3://elsewhere/t/" },
            ]),
        )
        .expect("applied")
        .expect("changed");
        assert_eq!(out["current-schema-id"], 1);
        assert_eq!(out["schemas"][1]["schema-id"], 1);
        assert_eq!(out["last-column-id"], 3);
        assert_eq!(out["default-spec-id"], 1);
        assert_eq!(out["partition-specs"][1]["fields"][0]["field-id"], 1000);
        assert_eq!(out["last-partition-id"], 1000);
        assert_eq!(
            (out["default-sort-order-id"].clone(), out["sort-orders"][1]["order-id"].clone()),
            (json!(1), json!(1))
        );
        assert_eq!(out["properties"], json!({ "b": "2" }));
        assert_eq!(out["location"], "s3://elsewhere/t");
        assert_eq!(out["last-updated-ms"], 5000);

        // The same schema again is reused, not added.
        let again = commit(
            &out,
            json!([{ "action": "add-schema", "schema": schema }, { "action": "set-current-schema", "schema-id": -1 }]),
        )
        .expect("applied");
        assert_eq!(again, None, "nothing changed");
        let back = commit(&out, json!([{ "action": "set-current-schema", "schema-id": 0 }])).unwrap().unwrap();
        assert_eq!(back["current-schema-id"], 0);
    }

    #[test]
    fn updates_that_cannot_apply_are_bad_requests() {
        let meta = table();
        for updates in [
            json!([{ "action": "set-current-schema", "schema-id": -1 }]),
            json!([{ "action": "set-current-schema", "schema-id": 7 }]),
            json!([{ "action": "set-default-spec", "spec-id": 3 }]),
            json!([{ "action": "set-default-sort-order", "sort-order-id": 3 }]),
            json!([{ "action": "upgrade-format-version", "format-version": 1 }]),
            json!([{ "action": "upgrade-format-version", "format-version": 3 }]),
            json!([{ "action": "set-properties", "updates": { "a": 1 } }]),
            json!([{ "action": "set-snapshot-ref", "ref-name": "main", "snapshot-id": 1, "type": "branch" }]),
            json!([{ "action": "assign-uuid", "uuid": "not-a-uuid" }]),
            json!([{ "action": "add-schema", "schema": { "type": "struct", "fields": [
                { "id": 1, "name": "a", "type": "int", "required": true },
                { "id": 1, "name": "b", "type": "int", "required": true },
            ]}}]),
            json!([{ "action": "drop-everything" }]),
            json!([{ "no-action": true }]),
        ] {
            let e = commit(&meta, updates.clone()).expect_err("refused");
            assert_eq!((e.status(), e.kind()), (400, Some(ErrorKind::IcebergBadRequest)), "{updates}");
        }
        assert_eq!(commit(&meta, json!([{ "action": "upgrade-format-version", "format-version": 2 }])).unwrap(), None);
    }

    #[test]
    fn snapshots_and_refs() {
        let meta = table();
        let snapshot = |id: i64, parent: Option<i64>, seq: i64| {
            json!({ "snapshot-id": id, "parent-snapshot-id": parent, "sequence-number": seq, "timestamp-ms": 4000 + id,
                    "manifest-list": format!("s3://wh/ns/t/metadata/snap-{id}.avro"),
                    "summary": { "operation": "append" }, "schema-id": 0 })
        };
        let out = commit(
            &meta,
            json!([
                { "action": "add-snapshot", "snapshot": snapshot(1, None, 1) },
                { "action": "set-snapshot-ref", "ref-name": "main", "snapshot-id": 1, "type": "branch" },
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(out["current-snapshot-id"], 1);
        assert_eq!(out["last-sequence-number"], 1);
        assert_eq!(out["refs"], json!({ "main": { "snapshot-id": 1, "type": "branch" } }));
        assert_eq!(out["snapshot-log"], json!([{ "snapshot-id": 1, "timestamp-ms": 4001 }]));
        assert_eq!(out["last-updated-ms"], 5000, "the commit's time");

        let e = commit(&out, json!([{ "action": "add-snapshot", "snapshot": snapshot(2, Some(1), 1) }])).unwrap_err();
        assert_eq!(e.to_string(), "Cannot add snapshot with sequence number 1 older than last sequence number 1");
        let e = commit(&out, json!([{ "action": "add-snapshot", "snapshot": snapshot(1, None, 2) }])).unwrap_err();
        assert_eq!(e.to_string(), "Snapshot already exists: 1");

        let out = commit(
            &out,
            json!([
                { "action": "add-snapshot", "snapshot": snapshot(2, Some(1), 2) },
                { "action": "set-snapshot-ref", "ref-name": "main", "snapshot-id": 2, "type": "branch" },
                { "action": "set-snapshot-ref", "ref-name": "v1", "snapshot-id": 1, "type": "tag", "max-ref-age-ms": 10 },
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(out["current-snapshot-id"], 2);
        assert_eq!(out["refs"]["v1"], json!({ "snapshot-id": 1, "type": "tag", "max-ref-age-ms": 10 }));
        let ok = [json!({ "type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": 2 })];
        check_requirements(Some(&out), &ok).expect("main is at 2");
        let e = check_requirements(
            Some(&out),
            &[json!({ "type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": null })],
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "Requirement failed: branch or tag main was created concurrently");

        let out = commit(&out, json!([{ "action": "remove-snapshots", "snapshot-ids": [1] }])).unwrap().unwrap();
        assert_eq!(out["snapshots"].as_array().unwrap().len(), 1);
        assert_eq!(out["refs"], json!({ "main": { "snapshot-id": 2, "type": "branch" } }), "the tag went with it");
        assert_eq!(out["snapshot-log"], json!([{ "snapshot-id": 2, "timestamp-ms": 4002 }]));
        let out = commit(&out, json!([{ "action": "remove-snapshot-ref", "ref-name": "main" }])).unwrap().unwrap();
        assert_eq!((out["current-snapshot-id"].clone(), out["refs"].clone()), (json!(-1), json!({})));
    }

    #[test]
    fn create_transactions_start_empty() {
        let base = empty_table("s3://wh/ns/t", uuid::Uuid::nil(), 1);
        assert!(check_complete(&base).is_err());
        let out = commit(
            &base,
            json!([
                { "action": "assign-uuid", "uuid": "5b6d1f4e-1111-4222-8333-444455556666" },
                { "action": "upgrade-format-version", "format-version": 2 },
                { "action": "add-schema", "schema": { "type": "struct", "schema-id": 0, "fields": [
                    { "id": 1, "name": "a", "type": "int", "required": false },
                ]}},
                { "action": "set-current-schema", "schema-id": -1 },
                { "action": "add-spec", "spec": { "spec-id": 0, "fields": [] } },
                { "action": "set-default-spec", "spec-id": -1 },
                { "action": "add-sort-order", "sort-order": { "order-id": 0, "fields": [] } },
                { "action": "set-default-sort-order", "sort-order-id": -1 },
            ]),
        )
        .unwrap()
        .unwrap();
        check_complete(&out).expect("complete");
        assert_eq!(out["table-uuid"], "5b6d1f4e-1111-4222-8333-444455556666");
        assert_eq!((out["current-schema-id"].clone(), out["last-column-id"].clone()), (json!(0), json!(1)));
        assert_eq!((out["default-spec-id"].clone(), out["default-sort-order-id"].clone()), (json!(0), json!(0)));
    }

    #[test]
    fn the_metadata_log_keeps_the_latest_files() {
        let mut meta = table();
        meta["properties"] = json!({ "write.metadata.previous-versions-max": "2" });
        for i in 0..4 {
            log_previous(&mut meta, &format!("s3://f{i}"), i);
        }
        assert_eq!(
            meta["metadata-log"],
            json!([{ "metadata-file": "s3://f2", "timestamp-ms": 2 }, { "metadata-file": "s3://f3", "timestamp-ms": 3 }])
        );
        assert!(metadata_location("s3://wh/t/", 7).starts_with("s3://wh/t/metadata/00007-"));
    }

    #[test]
    fn the_iceberg_js_shorthand() {
        let body = object_of(json!({ "properties": { "k": "v" } }));
        assert_eq!(
            shorthand_updates(&body),
            Some(vec![json!({ "action": "set-properties", "updates": { "k": "v" } })])
        );
        assert_eq!(shorthand_updates(&Object::new()), None);
    }
}
