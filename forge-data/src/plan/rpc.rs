//! Function calls for `/rpc/{function}`: overload resolution and typed arguments.

use std::collections::BTreeSet;

use sea_query::{Alias, Expr, Func, FunctionCall};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::schema::{Column, Function, QualifiedName, Relation, RelationKind, ReturnType, Schema};

/// The arguments of a call, as the request gave them.
#[derive(Debug)]
pub(crate) enum Args {
    /// Named arguments: a JSON object (POST) or query parameters as strings (GET).
    Named(Map<String, Value>),
    /// The whole body as text, for a function taking a single unnamed argument.
    Body(String),
    /// The whole body as bytes, for a function taking a single unnamed `bytea` argument.
    Bytes(Vec<u8>),
}

/// The media type of a POST body, as overload resolution sees it (PostgREST's `findProc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payload {
    /// `application/json` (or no Content-Type): keys name the arguments.
    Json,
    /// `application/x-www-form-urlencoded`: keys name the arguments.
    Form,
    /// `text/plain`: the body is one `text` argument.
    Text,
    /// `text/xml`: the body is one `xml` argument.
    Xml,
    /// `application/octet-stream`: the body is one `bytea` argument.
    Binary,
}

impl Payload {
    /// The types of a single unnamed argument that takes a body of this kind.
    fn raw_types(self) -> &'static [&'static str] {
        match self {
            Payload::Json => &["json", "jsonb"],
            Payload::Form => &[],
            Payload::Text => &["text"],
            Payload::Xml => &["xml"],
            Payload::Binary => &["bytea"],
        }
    }

    /// The type named in "with a single unnamed ... parameter" for bodies that are only ever
    /// one argument.
    pub(crate) fn raw_only(self) -> Option<&'static str> {
        match self {
            Payload::Text => Some("text"),
            Payload::Xml => Some("xml"),
            Payload::Binary => Some("bytea"),
            Payload::Json | Payload::Form => None,
        }
    }
}

/// Picks the overload the arguments call, as PostgREST's `findProc` does
/// (SERVER-BEHAVIOUR.md §1f): the given names, less those of arguments with defaults, must be
/// exactly the arguments without defaults (a function without arguments takes no names, and
/// no text, xml or binary body). Failing that, a POST body goes to the function taking a
/// single unnamed argument of its type (`json`/`jsonb` for JSON). Two candidates either way
/// are PGRST203.
pub(crate) fn resolve<'s>(
    schema: &str,
    name: &str,
    overloads: &'s [Function],
    names: &[String],
    post: Option<Payload>,
) -> Result<&'s Function> {
    let keys: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let matches_params = |f: &Function| {
        if f.args.is_empty() {
            return keys.is_empty() && post.is_none_or(|p| p.raw_only().is_none());
        }
        let optional: BTreeSet<&str> = f.args.iter().filter(|a| a.has_default).map(|a| a.name.as_str()).collect();
        let required: BTreeSet<&str> = f.args.iter().filter(|a| !a.has_default).map(|a| a.name.as_str()).collect();
        keys.difference(&optional).copied().collect::<BTreeSet<&str>>() == required
    };
    let takes_body = |f: &Function| {
        post.is_some_and(|p| f.single_unnamed().is_some_and(|a| p.raw_types().contains(&a.type_name.as_str())))
    };
    let mut matched = Vec::new();
    let mut fallbacks = Vec::new();
    for f in overloads {
        if matches_params(f) {
            matched.push(f);
        } else if takes_body(f) {
            fallbacks.push(f);
        }
    }
    match (matched.as_slice(), fallbacks.as_slice()) {
        ([], []) => Err(Error::function_not_found_for(
            schema,
            name,
            names,
            post.and_then(Payload::raw_only),
            post == Some(Payload::Json),
        )),
        ([one], _) | ([], [one]) => Ok(one),
        ([], many) | (many, _) => {
            let signatures: Vec<String> = many
                .iter()
                .map(|f| f.args.iter().map(|a| format!("{} => {}", a.name, a.type_name)).collect::<Vec<_>>().join(", "))
                .collect();
            Err(Error::ambiguous_function(schema, name, &signatures))
        }
    }
}

/// `"name"(arg := value, ...)`. The function is called unqualified: the request's schema
/// leads the search path. Values are bound as text and cast to the argument's type.
pub(crate) fn call(function: &Function, args: &Args) -> Result<FunctionCall> {
    let mut call = Func::cust(Alias::new(&function.name.name));
    match args {
        Args::Body(body) => {
            let ty = &function.args[0].type_name;
            call = call.arg(Expr::cust_with_values(format!("CAST($1::text AS {ty})"), [body.clone()]));
        }
        Args::Bytes(body) => {
            call = call.arg(Expr::cust_with_values("$1::bytea", [sea_query::Value::Bytes(Some(body.clone()))]));
        }
        Args::Named(values) => {
            for arg in &function.args {
                let Some(value) = values.get(&arg.name) else { continue };
                let value = typed(value, &arg.type_name);
                let variadic = if arg.variadic { "VARIADIC " } else { "" };
                call = call.arg(Expr::cust_with_exprs(format!("{variadic}{} := $1", super::ident(&arg.name)), [value]));
            }
        }
    }
    Ok(call)
}

fn typed(value: &Value, ty: &str) -> Expr {
    match value {
        Value::Null => Expr::cust(format!("CAST(NULL AS {ty})")),
        Value::String(s) => Expr::cust_with_values(format!("CAST($1::text AS {ty})"), [s.clone()]),
        Value::Number(_) | Value::Bool(_) => {
            Expr::cust_with_values(format!("CAST($1::text AS {ty})"), [value.to_string()])
        }
        Value::Array(_) | Value::Object(_) => {
            let json = value.to_string();
            if ty == "json" || ty == "jsonb" {
                Expr::cust_with_values(format!("CAST($1::text AS {ty})"), [json])
            } else if ty.ends_with("[]") && value.is_array() {
                Expr::cust_with_values(
                    format!("CAST(ARRAY(SELECT jsonb_array_elements_text($1::text::jsonb)) AS {ty})"),
                    [json],
                )
            } else {
                Expr::cust_with_values(format!("jsonb_populate_record(NULL::{ty}, $1::text::jsonb)"), [json])
            }
        }
    }
}

/// The relation a table-like result is read as: the composite's relation, or the columns of
/// `RETURNS TABLE`/`OUT` parameters.
pub(crate) fn result_relation(schema: &Schema, function: &Function) -> Option<Relation> {
    match &function.returns {
        ReturnType::Composite(name) => schema.relations.get(name).cloned(),
        ReturnType::Columns(columns) => Some(Relation {
            name: QualifiedName::new(function.name.schema.clone(), function.name.name.clone()),
            kind: RelationKind::View,
            columns: columns
                .iter()
                .enumerate()
                .map(|(i, (name, ty))| Column {
                    name: name.clone(),
                    position: i16::try_from(i + 1).unwrap_or(i16::MAX),
                    data_type: ty.clone(),
                    type_name: ty.clone(),
                    nullable: true,
                    default: None,
                    generated: false,
                    element_type: ty.strip_suffix("[]").map(str::to_owned),
                    enum_values: Vec::new(),
                    comment: None,
                })
                .collect(),
            primary_key: Vec::new(),
            unique_keys: Vec::new(),
            insertable: false,
            updatable: false,
            deletable: false,
            comment: None,
            computed_fields: Vec::new(),
            computed_relationships: Vec::new(),
        }),
        _ => None,
    }
}
