//! Function calls for `/rpc/{function}`: overload resolution and typed arguments.

use sea_query::{Alias, Expr, Func, FunctionCall};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::schema::{Column, Function, QualifiedName, Relation, RelationKind, ReturnType, Schema};

/// The arguments of a call, as the request gave them.
#[derive(Debug)]
pub(crate) enum Args {
    /// Named arguments: a JSON object (POST) or query parameters as strings (GET).
    Named(Map<String, Value>),
    /// The whole body, for a function taking a single unnamed `json`/`jsonb` argument.
    Body(String),
}

/// Picks the overload whose argument names fit `names` (SERVER-BEHAVIOUR.md §1f): every name
/// must be an argument, and every argument without a default must be named. A function with
/// one unnamed `json`/`jsonb` argument is the fallback for a POST body.
pub(crate) fn resolve<'s>(
    schema: &str,
    name: &str,
    overloads: &'s [Function],
    names: &[String],
    body_fallback: bool,
) -> Result<&'s Function> {
    let fits = |f: &&Function| {
        !f.takes_single_json()
            && names.iter().all(|n| f.args.iter().any(|a| &a.name == n))
            && f.args.iter().all(|a| a.has_default || names.contains(&a.name))
    };
    let named: Vec<&Function> = overloads.iter().filter(fits).collect();
    match named.as_slice() {
        [one] => Ok(one),
        [] => match overloads.iter().find(|f| f.takes_single_json()).filter(|_| body_fallback) {
            Some(f) => Ok(f),
            None => Err(Error::function_not_found(schema, name, names)),
        },
        many => {
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
        }),
        _ => None,
    }
}
