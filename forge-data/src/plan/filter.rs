//! Filters and logic trees as SQL conditions.

use sea_query::{Expr, Value};

use super::ident;
use crate::error::{Error, Result};
use crate::query::{
    Field, FtsOperator, IsValue, JsonArrow, JsonOperand, LogicOp, LogicTree, OpExpr, Operation, Operator, Quantifier,
};
use crate::schema::Relation;

/// A relation under an alias in the statement being built.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scope<'a> {
    pub(super) relation: &'a Relation,
    pub(super) alias: &'a str,
    /// The request's search path: the schemas whose computed fields `relation` has.
    pub(super) search_path: &'a [String],
    /// Whether the alias's rows are plain records (a write's returned rows, read from a CTE)
    /// rather than rows of the relation's type.
    pub(super) records: bool,
}

impl Scope<'_> {
    /// The alias's row as a value of the relation's row type, for a computed field's call:
    /// `"t0".*`, or the columns made into one for records.
    pub(super) fn row(&self) -> String {
        if !self.records {
            return format!("{}.*", ident(self.alias));
        }
        let columns: Vec<String> =
            self.relation.columns.iter().map(|c| format!("{}.{}", ident(self.alias), ident(&c.name))).collect();
        let rel = &self.relation.name;
        format!("ROW({})::{}.{}", columns.join(", "), ident(&rel.schema), ident(&rel.name))
    }
}

/// The SQL type a field's values are cast to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FieldType {
    /// A column of this type (as `format_type` spells it).
    Column(String),
    /// A `->` JSON path: `jsonb`.
    Json,
    /// A `->>` JSON path: `text`.
    JsonText,
}

impl FieldType {
    fn cast_target(&self) -> &str {
        match self {
            FieldType::Column(t) => t,
            FieldType::Json => "jsonb",
            FieldType::JsonText => "text",
        }
    }
}

/// A column reference (with its JSON path), checked against the relation.
///
/// A name that is no column may be a computed field: a function of the row, called
/// schema-qualified, as Postgres reads `row.name` under the request's search path.
pub(super) fn field_expr(scope: Scope<'_>, field: &Field) -> Result<(Expr, FieldType)> {
    let (mut sql, type_name) = match scope.relation.column(&field.name) {
        Some(column) => (format!("{}.{}", ident(scope.alias), ident(&column.name)), &column.type_name),
        None => {
            let computed = scope
                .relation
                .computed_field(&field.name, scope.search_path)
                .ok_or_else(|| Error::undefined_column(&scope.relation.name.name, &field.name))?;
            let f = &computed.function;
            (format!("{}.{}({})", ident(&f.schema), ident(&f.name), scope.row()), &computed.type_name)
        }
    };
    if field.json_path.is_empty() {
        return Ok((Expr::cust(sql), FieldType::Column(type_name.clone())));
    }
    let mut values = Vec::new();
    let mut last = FieldType::Json;
    for step in &field.json_path {
        let arrow = match step.arrow {
            JsonArrow::Json => "->",
            JsonArrow::Text => "->>",
        };
        match &step.operand {
            JsonOperand::Index(i) => sql.push_str(&format!("{arrow}{i}")),
            JsonOperand::Key(key) => {
                values.push(Value::String(Some(key.clone())));
                sql.push_str(&format!("{arrow}${}::text", values.len()));
            }
        }
        last = if step.arrow == JsonArrow::Text { FieldType::JsonText } else { FieldType::Json };
    }
    // `->` on json (not jsonb) columns yields json, which has no equality: compare as jsonb.
    if last == FieldType::Json {
        sql = format!("({sql})::jsonb");
    }
    Ok((Expr::cust_with_values(sql, values), last))
}

fn typed(value: &str, ty: &FieldType) -> Expr {
    Expr::cust_with_values(format!("CAST($1::text AS {})", ty.cast_target()), [value.to_owned()])
}

fn typed_array(literal: String, ty: &FieldType) -> Expr {
    Expr::cust_with_values(format!("CAST($1::text AS {}[])", ty.cast_target()), [literal])
}

fn text(value: String) -> Expr {
    Expr::cust_with_values("$1::text", [value])
}

fn binary(template: &str, left: Expr, right: Expr) -> Expr {
    Expr::cust_with_exprs(template.to_owned(), [left, right])
}

/// PostgREST accepts `*` for `%` in like patterns.
fn like_pattern(value: &str) -> String {
    value.replace('*', "%")
}

/// A Postgres array literal of `items`, each quoted.
fn array_literal<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> =
        items.into_iter().map(|i| format!("\"{}\"", i.replace('\\', "\\\\").replace('"', "\\\""))).collect();
    format!("{{{}}}", quoted.join(","))
}

/// `NOT (e)` when `negated`.
pub(super) fn negate(e: Expr, negated: bool) -> Expr {
    if negated { Expr::cust_with_exprs("NOT ($1)", [e]) } else { e }
}

/// A logic tree (`or=(...)`, `and=(...)`, nested) as one condition; `cond` makes the
/// condition for each leaf (reads also accept `rel.is.null` leaves on embeds there).
pub(super) fn logic_tree(
    op: LogicOp,
    children: &[LogicTree],
    cond: &mut dyn FnMut(&Field, &OpExpr) -> Result<Expr>,
) -> Result<Expr> {
    let mut parts = Vec::new();
    for child in children {
        parts.push(match child {
            LogicTree::Cond { field, expr } => cond(field, expr)?,
            LogicTree::Expr { negated, op, children } => negate(logic_tree(*op, children, cond)?, *negated),
        });
    }
    let joiner = match op {
        LogicOp::And => " AND ",
        LogicOp::Or => " OR ",
    };
    let template: Vec<String> = (1..=parts.len()).map(|i| format!("(${i})")).collect();
    Ok(Expr::cust_with_exprs(format!("({})", template.join(joiner)), parts))
}

/// A condition for `field` under `expr`.
pub(super) fn condition(scope: Scope<'_>, field: &Field, expr: &OpExpr) -> Result<Expr> {
    let (left, ty) = field_expr(scope, field)?;
    let cond = match &expr.operation {
        Operation::Is(value) => {
            let test = match value {
                IsValue::Null => "$1 IS NULL",
                IsValue::NotNull => "$1 IS NOT NULL",
                IsValue::True => "$1 IS TRUE",
                IsValue::False => "$1 IS FALSE",
                IsValue::Unknown => "$1 IS UNKNOWN",
            };
            Expr::cust_with_exprs(test, [left])
        }
        Operation::In(items) => {
            binary("$1 = ANY($2)", left, typed_array(array_literal(items.iter().map(String::as_str)), &ty))
        }
        Operation::Fts { op, config, value } => {
            let function = match op {
                FtsOperator::Fts => "to_tsquery",
                FtsOperator::Plfts => "plainto_tsquery",
                FtsOperator::Phfts => "phraseto_tsquery",
                FtsOperator::Wfts => "websearch_to_tsquery",
            };
            let is_vector = ty == FieldType::Column("tsvector".into());
            match config {
                Some(cfg) => {
                    let vector = if is_vector {
                        left
                    } else {
                        Expr::cust_with_exprs("to_tsvector($1::regconfig, $2::text)", [text(cfg.clone()), left])
                    };
                    Expr::cust_with_exprs(
                        format!("$1 @@ {function}($2::regconfig, $3)"),
                        [vector, text(cfg.clone()), text(value.clone())],
                    )
                }
                None => {
                    let vector = if is_vector { left } else { Expr::cust_with_exprs("to_tsvector($1::text)", [left]) };
                    binary(&format!("$1 @@ {function}($2)"), vector, text(value.clone()))
                }
            }
        }
        Operation::Op { op, quantifier, value } => op_condition(*op, *quantifier, value, left, &ty),
    };
    Ok(negate(cond, expr.negated))
}

fn op_condition(op: Operator, quantifier: Option<Quantifier>, value: &str, left: Expr, ty: &FieldType) -> Expr {
    let symbol = match op {
        Operator::Eq => "=",
        Operator::Neq => "<>",
        Operator::Gt => ">",
        Operator::Gte => ">=",
        Operator::Lt => "<",
        Operator::Lte => "<=",
        Operator::Like => "LIKE",
        Operator::Ilike => "ILIKE",
        Operator::Match => "~",
        Operator::Imatch => "~*",
        Operator::IsDistinct => "IS DISTINCT FROM",
        Operator::Cs => "@>",
        Operator::Cd => "<@",
        Operator::Ov => "&&",
        Operator::Sl => "<<",
        Operator::Sr => ">>",
        Operator::Nxl => "&>",
        Operator::Nxr => "&<",
        Operator::Adj => "-|-",
    };
    let textual = matches!(op, Operator::Like | Operator::Ilike | Operator::Match | Operator::Imatch);
    let pattern = |v: &str| if matches!(op, Operator::Like | Operator::Ilike) { like_pattern(v) } else { v.to_owned() };
    match quantifier {
        Some(q) => {
            let q = match q {
                Quantifier::Any => "ANY",
                Quantifier::All => "ALL",
            };
            if textual {
                let literal = pattern(value);
                binary(
                    &format!("$1::text {symbol} {q}($2)"),
                    left,
                    Expr::cust_with_values("CAST($1::text AS text[])", [literal]),
                )
            } else {
                binary(&format!("$1 {symbol} {q}($2)"), left, typed_array(value.to_owned(), ty))
            }
        }
        None if textual => binary(&format!("$1::text {symbol} $2"), left, text(pattern(value))),
        None => binary(&format!("$1 {symbol} $2"), left, typed(value, ty)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{Filter, parse_query};
    use sea_query::{PostgresQueryBuilder, Query};

    fn relation() -> Relation {
        crate::plan::snapshots::relation(
            "items",
            &[("id", "integer"), ("name", "text"), ("data", "jsonb"), ("tags", "text[]"), ("doc", "tsvector")],
            &["id"],
        )
    }

    /// The SQL and parameters a single filter compiles to.
    fn sql(query: &str) -> (String, Vec<String>) {
        let rel = relation();
        let q = parse_query(&crate::query::decode_query(query)).expect("parses");
        let f: &Filter = &q.filters[0];
        let cond =
            condition(Scope { relation: &rel, alias: "t0", search_path: &[], records: false }, &f.field, &f.expr)
                .expect("plans");
        let (sql, values) = Query::select().expr(cond).build(PostgresQueryBuilder);
        let values = values.0.into_iter().map(|v| format!("{v:?}")).collect();
        (sql.trim_start_matches("SELECT ").to_owned(), values)
    }

    #[test]
    fn comparisons_cast_a_text_parameter_to_the_column_type() {
        assert_eq!(sql("id=eq.5").0, r#""t0"."id" = CAST($1::text AS integer)"#);
        assert_eq!(sql("id=neq.5").0, r#""t0"."id" <> CAST($1::text AS integer)"#);
        assert_eq!(sql("id=gte.5").0, r#""t0"."id" >= CAST($1::text AS integer)"#);
        assert_eq!(sql("id=not.lt.5").0, r#"NOT ("t0"."id" < CAST($1::text AS integer))"#);
        assert_eq!(sql("id=isdistinct.5").0, r#""t0"."id" IS DISTINCT FROM CAST($1::text AS integer)"#);
        let (s, v) = sql("name=eq.x'; drop table items; --");
        assert_eq!(s, r#""t0"."name" = CAST($1::text AS text)"#);
        assert_eq!(v, [r#"String(Some("x'; drop table items; --"))"#], "values never reach the SQL text");
    }

    #[test]
    fn patterns_lists_and_quantifiers() {
        let (s, v) = sql("name=like.*abc*");
        assert_eq!(s, r#""t0"."name"::text LIKE $1::text"#);
        assert_eq!(v, [r#"String(Some("%abc%"))"#]);
        assert_eq!(sql("name=imatch.^a").0, r#""t0"."name"::text ~* $1::text"#);
        let (s, v) = sql("name=like(any).{a*,b%}");
        assert_eq!(s, r#""t0"."name"::text LIKE ANY(CAST($1::text AS text[]))"#);
        assert_eq!(v, [r#"String(Some("{a%,b%}"))"#]);
        assert_eq!(sql("id=gt(all).{1,2}").0, r#""t0"."id" > ALL(CAST($1::text AS integer[]))"#);
        let (s, v) = sql(r#"name=in.(a,"b,c",d)"#);
        assert_eq!(s, r#""t0"."name" = ANY(CAST($1::text AS text[]))"#);
        assert_eq!(v, [r#"String(Some("{\"a\",\"b,c\",\"d\"}"))"#]);
        assert_eq!(sql("id=not.in.(1,2)").0, r#"NOT ("t0"."id" = ANY(CAST($1::text AS integer[])))"#);
    }

    #[test]
    fn is_arrays_ranges_json_and_full_text() {
        assert_eq!(sql("name=is.null").0, r#""t0"."name" IS NULL"#);
        assert_eq!(sql("name=not.is.null").0, r#"NOT ("t0"."name" IS NULL)"#);
        assert_eq!(sql("tags=cs.{a,b}").0, r#""t0"."tags" @> CAST($1::text AS text[])"#);
        assert_eq!(sql("tags=ov.{a}").0, r#""t0"."tags" && CAST($1::text AS text[])"#);
        assert_eq!(sql("id=adj.[1,2)").0, r#""t0"."id" -|- CAST($1::text AS integer)"#);
        let (s, v) = sql("data->a->>b=eq.x");
        assert_eq!(s, r#""t0"."data"->$1::text->>$2::text = CAST($3::text AS text)"#);
        assert_eq!(v.len(), 3);
        assert_eq!(sql("data->a=cs.{\"k\":1}").0, r#"("t0"."data"->$1::text)::jsonb @> CAST($2::text AS jsonb)"#);
        assert_eq!(sql("doc=fts.cat").0, r#""t0"."doc" @@ to_tsquery($1::text)"#);
        assert_eq!(
            sql("name=wfts(english).cat dog").0,
            r#"to_tsvector($1::text::regconfig, "t0"."name"::text) @@ websearch_to_tsquery($2::text::regconfig, $3::text)"#
        );
    }

    #[test]
    fn unknown_columns_are_refused_before_any_sql() {
        let rel = relation();
        let q = parse_query(&crate::query::decode_query("nope=eq.1")).expect("parses");
        let err = condition(
            Scope { relation: &rel, alias: "t0", search_path: &[], records: false },
            &q.filters[0].field,
            &q.filters[0].expr,
        )
        .expect_err("unknown");
        assert!(matches!(err, Error::Api { kind: crate::error::ErrorKind::UndefinedColumn, .. }), "{err:?}");
    }
}
