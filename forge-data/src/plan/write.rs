//! Writes: INSERT (and upsert), UPDATE and DELETE statements.
//!
//! The request body is bound once as `jsonb`; Postgres turns it into typed rows with
//! `jsonb_populate_record` on the relation's own row type, so every column gets exactly the
//! type conversion Postgres would apply. Column names come from the body (or `columns=`) and
//! are checked against the schema cache.

use sea_query::{
    Alias, CommonTableExpression, DeleteStatement, Expr, Func, InsertStatement, OnConflict, Query, UpdateStatement,
    WithClause,
};

use super::filter::{Scope, condition, logic_tree, negate};
use super::read::{ReadPlan, ReadRequest, Source, WRITTEN, plan_read};
use super::{Statement, ident};
use crate::error::{Error, Result};
use crate::query::ApiQuery;
use crate::schema::Relation;

/// How conflicting rows are resolved on insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// Update the conflicting row with the new values.
    Merge(Vec<String>),
    /// Keep the existing row.
    Ignore(Vec<String>),
}

/// A write to plan.
#[derive(Debug)]
pub(crate) enum Write {
    /// Insert rows: `rows` is a JSON array of objects.
    Insert { rows: String, columns: Vec<String>, missing_default: bool, conflict: Option<Conflict> },
    /// Update the rows the filters select with the values of `row`, a JSON object.
    Update { row: String, columns: Vec<String> },
    /// Delete the rows the filters select.
    Delete,
}

/// The statement without RETURNING (for `return=minimal`: no SELECT policy is involved).
pub(crate) fn plan_write(
    relation: &Relation,
    query: &ApiQuery,
    write: &Write,
    search_path: &[String],
) -> Result<Statement> {
    Ok(match build(relation, query, write, search_path)? {
        Built::Insert(s) => Statement::from_insert(&s),
        Built::Update(s) => Statement::from_update(&s),
        Built::Delete(s) => Statement::from_delete(&s),
    })
}

/// The statement in a CTE whose returned rows are rendered like a read (`select=`, embeds).
pub(crate) fn plan_write_returning(read: &ReadRequest<'_>, write: &Write) -> Result<ReadPlan> {
    let merge = merges(write);
    let cte = match build(read.relation, read.query, write, read.search_path)? {
        Built::Insert(mut s) if merge => CommonTableExpression::new()
            .query(s.returning(Query::returning().exprs([Expr::cust("*"), inserted_flag()])).to_owned())
            .to_owned(),
        Built::Insert(mut s) => CommonTableExpression::new().query(s.returning_all().to_owned()).to_owned(),
        Built::Update(mut s) => CommonTableExpression::new().query(s.returning_all().to_owned()).to_owned(),
        Built::Delete(mut s) => CommonTableExpression::new().query(s.returning_all().to_owned()).to_owned(),
    };
    let cte = cte.clone().table_name(Alias::new(WRITTEN)).to_owned();
    // The returned rows are shaped by `select` and the embedded filters only: top-level
    // filters already chose the rows written.
    let mut shape = read.query.clone();
    shape.filters.retain(|f| !f.path.is_empty());
    shape.logic.retain(|l| !l.path.is_empty());
    shape.ranges.retain(|r| !r.path.is_empty());
    let request =
        ReadRequest { source: Source::Written, query: &shape, offset: 0, limit: None, exact_count: false, ..*read };
    let mut plan = plan_read(&request)?;
    let mut select =
        plan.select.take().ok_or_else(|| Error::Core(forge_core::ForgeError::internal("no select built")))?;
    if merge {
        select.expr_as(Expr::cust(INSERTED_COUNT), Alias::new("inserted"));
    }
    let with = WithClause::new().cte(cte).to_owned().query(select);
    plan.statement = Statement::from_with(&with);
    Ok(plan)
}

/// `RETURNING (xmax = 0)`: true for rows an upsert inserted, false for rows it updated.
fn inserted_flag() -> Expr {
    Expr::cust(format!("(xmax = 0) AS {}", ident(INSERTED)))
}

const INSERTED: &str = "_pgrst_inserted";
const INSERTED_COUNT: &str = "(SELECT pg_catalog.count(*) FROM \"pgrst_source\" WHERE \"_pgrst_inserted\")";

/// Whether `write` is an upsert that merges into existing rows.
pub(crate) fn merges(write: &Write) -> bool {
    matches!(write, Write::Insert { conflict: Some(Conflict::Merge(_)), .. })
}

/// A merging upsert whose rows are not wanted: `(affected, inserted)` counts, so the caller can
/// answer 201 when anything was inserted and 200 when rows were only updated.
pub(crate) fn plan_upsert_counts(
    relation: &Relation,
    query: &ApiQuery,
    write: &Write,
    search_path: &[String],
) -> Result<Statement> {
    let Built::Insert(mut insert) = build(relation, query, write, search_path)? else {
        return Err(Error::Core(forge_core::ForgeError::internal("an upsert plan needs an insert")));
    };
    let cte = CommonTableExpression::new()
        .query(insert.returning(Query::returning().expr(inserted_flag())).to_owned())
        .table_name(Alias::new(WRITTEN))
        .to_owned();
    let mut select = Query::select();
    select
        .expr(Expr::cust("pg_catalog.count(*)"))
        .expr(Expr::cust(format!("pg_catalog.count(*) FILTER (WHERE {})", ident(INSERTED))))
        .from(Alias::new(WRITTEN));
    Ok(Statement::from_with(&WithClause::new().cte(cte).to_owned().query(select)))
}

enum Built {
    Insert(InsertStatement),
    Update(UpdateStatement),
    Delete(DeleteStatement),
}

fn table(relation: &Relation) -> (Alias, Alias) {
    (Alias::new(&relation.name.schema), Alias::new(&relation.name.name))
}

fn check_columns(relation: &Relation, columns: &[String]) -> Result<()> {
    match columns.iter().find(|c| relation.column(c).is_none()) {
        Some(c) => Err(Error::column_not_found(&relation.name.name, c)),
        None => Ok(()),
    }
}

/// The top-level filters and logic trees as conditions on the written relation (referenced by
/// its own name, since UPDATE and DELETE take no alias here).
fn conditions(relation: &Relation, query: &ApiQuery, search_path: &[String]) -> Result<Vec<Expr>> {
    let scope = Scope { relation, alias: &relation.name.name, search_path, records: false };
    let mut out = Vec::new();
    for f in query.filters.iter().filter(|f| f.path.is_empty()) {
        out.push(condition(scope, &f.field, &f.expr)?);
    }
    for l in query.logic.iter().filter(|l| l.path.is_empty()) {
        let tree = logic_tree(l.op, &l.children, &mut |field, expr| condition(scope, field, expr))?;
        out.push(negate(tree, l.negated));
    }
    Ok(out)
}

fn build(relation: &Relation, query: &ApiQuery, write: &Write, search_path: &[String]) -> Result<Built> {
    let row_type = format!("{}.{}", ident(&relation.name.schema), ident(&relation.name.name));
    match write {
        Write::Insert { rows, columns, missing_default, conflict } => {
            check_columns(relation, columns)?;
            // Each element of the body becomes a typed row of the relation.
            let mut source = Query::select();
            source
                .expr_as(Expr::cust(format!("jsonb_populate_record(NULL::{row_type}, \"_j\")")), Alias::new("_r"))
                .expr_as(Expr::cust("\"_j\""), Alias::new("_v"))
                .from_function(
                    Func::cust("jsonb_array_elements").arg(Expr::cust_with_values("$1::text::jsonb", [rows.clone()])),
                    Alias::new("_j"),
                );
            let mut select = Query::select();
            for name in columns {
                let value = format!("(\"_x\".\"_r\").{}", ident(name));
                let default = relation.column(name).and_then(|c| c.default.clone());
                let e = match (missing_default, default) {
                    // `missing=default`: a key absent from a row takes the column's default.
                    (true, Some(default)) => Expr::cust_with_values(
                        format!("CASE WHEN \"_x\".\"_v\" ? $1::text THEN {value} ELSE {default} END"),
                        [name.clone()],
                    ),
                    _ => Expr::cust(value),
                };
                select.expr(e);
            }
            select.from_subquery(source, Alias::new("_x"));
            let mut insert = Query::insert();
            insert.into_table(table(relation)).columns(columns.iter().map(Alias::new));
            insert.select_from(select).map_err(|e| Error::Core(forge_core::ForgeError::internal(e.to_string())))?;
            match conflict {
                Some(Conflict::Merge(on)) => {
                    check_columns(relation, on)?;
                    let mut c = OnConflict::columns(on.iter().map(Alias::new));
                    // Every written column is set, the conflict columns too, as PostgREST does:
                    // a body of only the conflict columns still updates (and returns) the row.
                    let updates: Vec<Alias> = columns.iter().map(Alias::new).collect();
                    if updates.is_empty() {
                        c.do_nothing();
                    } else {
                        c.update_columns(updates);
                    }
                    insert.on_conflict(c);
                }
                Some(Conflict::Ignore(on)) => {
                    check_columns(relation, on)?;
                    insert.on_conflict(OnConflict::columns(on.iter().map(Alias::new)).do_nothing().to_owned());
                }
                None => {}
            }
            Ok(Built::Insert(insert))
        }
        Write::Update { row, columns } => {
            check_columns(relation, columns)?;
            let mut update = Query::update();
            update.table(table(relation));
            for name in columns {
                update.value(
                    Alias::new(name),
                    Expr::cust_with_values(
                        format!("(jsonb_populate_record(NULL::{row_type}, $1::text::jsonb)).{}", ident(name)),
                        [row.clone()],
                    ),
                );
            }
            for c in conditions(relation, query, search_path)? {
                update.and_where(c);
            }
            Ok(Built::Update(update))
        }
        Write::Delete => {
            let mut delete = Query::delete();
            delete.from_table(table(relation));
            for c in conditions(relation, query, search_path)? {
                delete.and_where(c);
            }
            Ok(Built::Delete(delete))
        }
    }
}
