//! Reads: `GET`/`HEAD` on a table or view, with embeds, filters, order, ranges and counts.
//!
//! The statement returns one row: the total (when a count was asked for), the number of rows
//! in the page, and the body, already rendered by Postgres:
//!
//! ```sql
//! SELECT <total>, count(_postgrest_t), coalesce(json_agg(_postgrest_t), '[]')::text
//! FROM (SELECT ... FROM "public"."cities" AS "t0" WHERE ... ORDER BY ... LIMIT $n OFFSET $m) AS _postgrest_t
//! ```
//!
//! Embeds are correlated subqueries in the select list: `row_to_json` of at most one row for
//! to-one relationships, `json_agg` for to-many. `!inner` embeds and `rel=not.is.null`
//! filters become `EXISTS` conditions on the parent.

use std::collections::HashSet;

use sea_query::{Alias, Expr, NullOrdering, Order, Query, SelectStatement};

use super::filter::{Scope, condition, field_expr, logic_tree, negate};
use super::{Statement, ident, is_safe_type_name};
use crate::error::{Error, ErrorKind, Result};
use crate::query::{
    AggregateFunction, ApiQuery, Embed, Field, IsValue, JoinType, JsonOperand, LogicOp, LogicTree, NullsOrder,
    Operation, OrderDirection, SelectItem,
};
use crate::schema::{Cardinality, QualifiedName, Relation, RelationKind, Relationship, Schema};

/// How the body is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// A JSON array.
    Json,
    /// A JSON array of objects without their null-valued keys (`nulls=stripped`).
    JsonStripped,
    /// One JSON object (the caller checks there was exactly one row).
    Singular,
    /// One JSON object without its null-valued keys.
    SingularStripped,
    /// CSV rows (the caller adds the header line).
    Csv,
    /// A GeoJSON FeatureCollection of the rows (needs PostGIS).
    GeoJson,
    /// The query's plan instead of its rows (`.explain()`).
    Plan(PlanOptions),
}

/// What `.explain()` asked for: `application/vnd.pgrst.plan+json|+text; options=a|b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PlanOptions {
    pub(crate) text: bool,
    pub(crate) analyze: bool,
    pub(crate) verbose: bool,
    pub(crate) settings: bool,
    pub(crate) buffers: bool,
    pub(crate) wal: bool,
}

impl PlanOptions {
    /// `EXPLAIN (...)` with these options.
    pub(crate) fn explain(self) -> String {
        let mut options = vec![if self.text { "FORMAT TEXT" } else { "FORMAT JSON" }];
        for (on, name) in [
            (self.analyze, "ANALYZE"),
            (self.verbose, "VERBOSE"),
            (self.settings, "SETTINGS"),
            (self.buffers, "BUFFERS"),
            (self.wal, "WAL"),
        ] {
            if on {
                options.push(name);
            }
        }
        format!("EXPLAIN ({})", options.join(", "))
    }
}

impl Output {
    /// Whether exactly one row must come back.
    pub(crate) fn singular(self) -> bool {
        matches!(self, Output::Singular | Output::SingularStripped)
    }

    /// The response's Content-Type.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Output::Json => "application/json; charset=utf-8",
            Output::JsonStripped => "application/vnd.pgrst.array+json;nulls=stripped; charset=utf-8",
            Output::Singular => "application/vnd.pgrst.object+json; charset=utf-8",
            Output::SingularStripped => "application/vnd.pgrst.object+json;nulls=stripped; charset=utf-8",
            Output::Csv => "text/csv; charset=utf-8",
            Output::GeoJson => "application/geo+json; charset=utf-8",
            Output::Plan(PlanOptions { text: true, .. }) => "application/vnd.pgrst.plan+text; charset=utf-8",
            Output::Plan(_) => "application/vnd.pgrst.plan+json; charset=utf-8",
        }
    }
}

/// A planned read.
#[derive(Debug)]
pub(crate) struct ReadPlan {
    /// The statement: `(total int8, page int8, body text)`.
    pub(crate) statement: Statement,
    /// The count statement to `EXPLAIN` for `count=planned|estimated`.
    pub(crate) count_statement: Statement,
    /// The output column names, for a CSV header.
    pub(crate) columns: Vec<String>,
    /// The outer SELECT, for callers that wrap it (writes put it under a WITH clause).
    pub(crate) select: Option<SelectStatement>,
}

/// Where the root rows come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// The relation itself.
    Relation,
    /// The rows a write returned, in the CTE `pgrst_source`.
    Written,
    /// The rows a set-returning function call yields.
    Call(sea_query::FunctionCall),
    /// The one row a call of a function returning a single composite yields: the body is
    /// that row as an object, or `null` when the filters leave nothing, and the page is one
    /// row whatever they leave (PostgREST's `funcReturnsSingle`).
    CallOne(sea_query::FunctionCall),
}

impl Source {
    /// Points `stmt`'s FROM at this source, aliased `t0`.
    fn apply(&self, stmt: &mut SelectStatement) {
        match self {
            Source::Relation => {}
            Source::Written => {
                stmt.from_clear().from_as(Alias::new(WRITTEN), Alias::new("t0"));
            }
            Source::Call(call) | Source::CallOne(call) => {
                stmt.from_clear().from_function(call.clone(), Alias::new("t0"));
            }
        }
    }
}

/// The CTE a write's returned rows are read from.
pub(crate) const WRITTEN: &str = "pgrst_source";

/// What to read.
#[derive(Debug)]
pub(crate) struct ReadRequest<'a> {
    pub(crate) source: Source,
    pub(crate) schema: &'a Schema,
    pub(crate) relation: &'a Relation,
    pub(crate) query: &'a ApiQuery,
    pub(crate) offset: u64,
    pub(crate) limit: Option<u64>,
    pub(crate) exact_count: bool,
    pub(crate) output: Output,
    /// The request's search path (its schema, then the extra ones): where computed fields
    /// are found.
    pub(crate) search_path: &'a [String],
}

/// Plans a read.
pub(crate) fn plan_read(req: &ReadRequest<'_>) -> Result<ReadPlan> {
    let mut planner = Planner {
        schema: req.schema,
        query: req.query,
        next_alias: 1,
        embed_paths: HashSet::new(),
        duplicate: None,
        search_path: req.search_path,
        records: matches!(req.source, Source::Written),
    };
    let root = planner.node(req.relation, "t0".into(), &req.query.select, &[], false)?;
    planner.check_paths()?;
    // Postgres refuses PostgREST's statement only once it is planned: other errors come first.
    if let Some(duplicate) = planner.duplicate.take() {
        return Err(duplicate);
    }

    let columns: Vec<String> = root.select.iter().map(|(_, name)| name.clone()).collect();
    let mut page = root.statement(req.relation, "t0");
    req.source.apply(&mut page);
    if let Some(limit) = req.limit {
        page.limit(limit);
    }
    if req.offset > 0 {
        page.offset(req.offset);
    }
    let count_query = if root.group_by.is_empty() {
        let mut c = Query::select();
        c.expr(Expr::cust("1"));
        c.from_as((Alias::new(&req.relation.name.schema), Alias::new(&req.relation.name.name)), Alias::new("t0"));
        for w in &root.wheres {
            c.and_where(w.clone());
        }
        c
    } else {
        root.statement(req.relation, "t0")
    };
    let mut count_query = count_query;
    req.source.apply(&mut count_query);
    let total = if req.exact_count {
        let mut count = Query::select();
        count.expr(Expr::cust("pg_catalog.count(*)")).from_subquery(count_query.clone(), Alias::new("_postgrest_c"));
        Expr::SubQuery(None, Box::new(count.into()))
    } else {
        Expr::cust("NULL::int8")
    };
    let one = matches!(req.source, Source::CallOne(_));
    let body = match req.output {
        Output::Json | Output::Singular if one => "coalesce((json_agg(_postgrest_t) -> 0)::text, 'null')",
        Output::JsonStripped | Output::SingularStripped if one => {
            "coalesce((json_agg(json_strip_nulls(row_to_json(_postgrest_t))) -> 0)::text, 'null')"
        }
        Output::Json | Output::Plan(_) => "coalesce(json_agg(_postgrest_t), '[]')::text",
        Output::GeoJson => {
            "json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(ST_AsGeoJSON(_postgrest_t)::json), '[]'))::text"
        }
        Output::JsonStripped => "coalesce(json_agg(json_strip_nulls(row_to_json(_postgrest_t))), '[]')::text",
        Output::Singular => "coalesce((json_agg(_postgrest_t) -> 0)::text, '')",
        Output::SingularStripped => "coalesce((json_agg(json_strip_nulls(row_to_json(_postgrest_t))) -> 0)::text, '')",
        Output::Csv => {
            "coalesce(string_agg(substring(_postgrest_t::text, 2, length(_postgrest_t::text) - 2), chr(10)), '')"
        }
    };
    let mut outer = Query::select();
    outer
        .expr_as(total, Alias::new("total"))
        .expr_as(Expr::cust(if one { "1::int8" } else { "pg_catalog.count(_postgrest_t)" }), Alias::new("page"))
        .expr_as(Expr::cust(body), Alias::new("body"))
        .from_subquery(page, Alias::new("_postgrest_t"));
    Ok(ReadPlan {
        statement: Statement::from_select(&outer),
        count_statement: Statement::from_select(&count_query),
        columns,
        select: Some(outer),
    })
}

/// One relation's part of the statement.
#[derive(Debug, Default)]
struct Node {
    select: Vec<(Expr, String)>,
    /// Aggregates of a to-one spread, which the parent applies over its groups (PostgREST
    /// aggregates a spread's columns in the parent): (column, function, cast).
    lifted: Vec<(String, &'static str, Option<String>)>,
    /// Where the embeds' values are in this node's select list: when the node aggregates it
    /// groups by them (PostgREST's `groupF`), as `jsonb`, which has equality (a spread's
    /// column may itself be a nested embed's JSON).
    embed_values: Vec<usize>,
    /// `LEFT JOIN LATERAL (SELECT value AS v) AS alias ON true`: the embeds' values as
    /// columns, which (unlike correlated subqueries) a GROUP BY may name.
    laterals: Vec<(SelectStatement, String)>,
    wheres: Vec<Expr>,
    group_by: Vec<Expr>,
    order: Vec<(Expr, Order, Option<NullOrdering>)>,
}

impl Node {
    /// Joins the node's laterals to `s`, whose FROM is the node's relation.
    fn join_laterals(&self, s: &mut SelectStatement) {
        for (q, alias) in &self.laterals {
            s.join_lateral(sea_query::JoinType::LeftJoin, q.clone(), Alias::new(alias), Expr::cust("true"));
        }
    }

    fn statement(&self, relation: &Relation, alias: &str) -> SelectStatement {
        let mut s = Query::select();
        for (e, name) in &self.select {
            s.expr_as(e.clone(), Alias::new(name));
        }
        s.from_as((Alias::new(&relation.name.schema), Alias::new(&relation.name.name)), Alias::new(alias));
        self.join_laterals(&mut s);
        for w in &self.wheres {
            s.and_where(w.clone());
        }
        for g in &self.group_by {
            s.add_group_by([g.clone()]);
        }
        for (e, o, nulls) in &self.order {
            match nulls {
                Some(n) => s.order_by_expr_with_nulls(e.clone(), o.clone(), *n),
                None => s.order_by_expr(e.clone(), o.clone()),
            };
        }
        s
    }
}

/// A resolved embed: its target, whether it yields at most one row, and the SQL pieces that
/// join it.
struct Joined<'a> {
    to_one: bool,
    target: &'a Relation,
    alias: String,
    /// The FROM of the embed, with the junction joined for many-to-many, or the function
    /// called on the parent's row for a computed relationship.
    from: SelectStatement,
}

struct Planner<'a> {
    schema: &'a Schema,
    query: &'a ApiQuery,
    next_alias: usize,
    embed_paths: HashSet<Vec<String>>,
    /// The first embed named like an earlier one of the same select list (42712).
    duplicate: Option<Error>,
    search_path: &'a [String],
    /// Whether the root rows are records (a write's, from a CTE), not of the relation's type.
    records: bool,
}

impl<'a> Planner<'a> {
    fn alias(&mut self, prefix: &str) -> String {
        let a = format!("{prefix}{}", self.next_alias);
        self.next_alias += 1;
        a
    }

    fn node(
        &mut self,
        relation: &'a Relation,
        alias: String,
        items: &'a [SelectItem],
        path: &[String],
        lift: bool,
    ) -> Result<Node> {
        let scope_alias = alias.clone();
        let scope = Scope {
            relation,
            alias: &scope_alias,
            search_path: self.search_path,
            records: self.records && path.is_empty(),
        };
        let mut node = Node::default();
        let mut has_aggregate = false;
        let mut embed_keys: HashSet<&str> = HashSet::new();
        let mut plain = Vec::new();
        let embeds: Vec<&'a Embed> = items
            .iter()
            .filter_map(|i| match i {
                SelectItem::Embed(e) => Some(e),
                _ => None,
            })
            .collect();

        for item in items {
            match item {
                SelectItem::Star => {
                    for c in &relation.columns {
                        let e = Expr::cust(format!("{}.{}", ident(&alias), ident(&c.name)));
                        plain.push(e.clone());
                        node.select.push((e, c.name.clone()));
                    }
                }
                // `rel(count)`: supabase-js's idiom for counting related rows, when the
                // relation has no column of that name.
                SelectItem::Field(f)
                    if f.field.name == "count"
                        && f.field.json_path.is_empty()
                        && f.aggregate.is_none()
                        && relation.column("count").is_none() =>
                {
                    has_aggregate = true;
                    let mut e = Expr::cust("pg_catalog.count(*)");
                    if let Some(cast) = &f.cast {
                        e = cast_expr(e, cast)?;
                    }
                    node.select.push((e, f.alias.clone().unwrap_or_else(|| "count".into())));
                }
                SelectItem::Field(f) => {
                    let (mut e, _) = field_expr(scope, &f.field)?;
                    if let Some(cast) = &f.cast {
                        e = cast_expr(e, cast)?;
                    }
                    let name = f
                        .alias
                        .clone()
                        .unwrap_or_else(|| default_name(&f.field, f.aggregate.as_ref().map(|a| a.function)));
                    match &f.aggregate {
                        Some(agg) if lift => {
                            // The column itself; the parent aggregates it.
                            node.lifted.push((name.clone(), aggregate_function(agg.function), agg.cast.clone()));
                            plain.push(e.clone());
                            node.select.push((e, name));
                        }
                        Some(agg) => {
                            has_aggregate = true;
                            let function = aggregate_function(agg.function);
                            let mut agg_expr = Expr::cust_with_exprs(format!("{function}($1)"), [e]);
                            if let Some(cast) = &agg.cast {
                                agg_expr = cast_expr(agg_expr, cast)?;
                            }
                            node.select.push((agg_expr, name));
                        }
                        None => {
                            plain.push(e.clone());
                            node.select.push((e, name));
                        }
                    }
                }
                SelectItem::Count { alias: count_alias, cast } => {
                    has_aggregate = true;
                    let mut e = Expr::cust("pg_catalog.count(*)");
                    if let Some(cast) = cast {
                        e = cast_expr(e, cast)?;
                    }
                    node.select.push((e, count_alias.clone().unwrap_or_else(|| "count".into())));
                }
                SelectItem::Embed(embed) => {
                    let embed_path = child_path(path, embed);
                    self.embed_paths.insert(embed_path.clone());
                    let joined = self.join(scope, embed)?;
                    // PostgREST joins each embed as `<parent>_<name>_<depth>`: two embeds of
                    // one select list under the same name make Postgres refuse the statement,
                    // which is better than a JSON object with a duplicated key.
                    let key = embed.alias.as_deref().unwrap_or(&embed.relation);
                    if !embed_keys.insert(key) && self.duplicate.is_none() {
                        let alias = format!("{}_{key}_{}", relation.name.name, path.len() + 1);
                        self.duplicate = Some(Error::duplicate_alias(&alias));
                    }
                    let lift = embed.spread && joined.to_one;
                    if embed.spread && !joined.to_one && has_aggregates(&embed.items) {
                        return Err(Error::aggregates_in_to_many_spread());
                    }
                    let child = self.node(joined.target, joined.alias.clone(), &embed.items, &embed_path, lift)?;
                    if embed.join == Some(JoinType::Inner) {
                        node.wheres.push(Expr::exists(exists_statement(&joined, &child)));
                    }
                    if !embed.items.is_empty() && self.embed_select(&mut node, &joined, child, embed, &embed_path)? {
                        has_aggregate = true;
                    }
                }
            }
        }
        if has_aggregate {
            if items.iter().any(|i| matches!(i, SelectItem::Star)) {
                return Err(Error::refused(
                    ErrorKind::AggregatesNotAllowed,
                    "Use of aggregate functions is not allowed together with '*'",
                ));
            }
            node.group_by = plain;
            // Beside aggregates, embeds are grouped by, as PostgREST's `groupF` does: by
            // their values, as `jsonb`, computed in lateral joins.
            for i in std::mem::take(&mut node.embed_values) {
                let value = Expr::cust_with_exprs("to_jsonb($1)", [node.select[i].0.clone()]);
                let lateral = self.alias("l");
                let mut q = Query::select();
                q.expr_as(value, Alias::new("v"));
                let column = Expr::cust(format!("{}.\"v\"", ident(&lateral)));
                node.laterals.push((q, lateral));
                node.select[i].0 = column.clone();
                node.group_by.push(column);
            }
        }

        // Filters, logic trees and order that address this relation.
        for filter in self.query.filters.iter().filter(|f| f.path == path) {
            if let Some(embed) = embed_named(&embeds, &filter.field) {
                node.wheres.push(self.embed_null_test(scope, embed, path, &filter.expr)?);
            } else {
                node.wheres.push(condition(scope, &filter.field, &filter.expr)?);
            }
        }
        for tree in self.query.logic.iter().filter(|l| l.path == path) {
            let e = self.logic(scope, &embeds, path, tree.op, &tree.children)?;
            node.wheres.push(negate(e, tree.negated));
        }
        for spec in self.query.order.iter().filter(|o| o.path == path) {
            for term in &spec.terms {
                let e = match &term.relation {
                    None => field_expr(scope, &term.field)?.0,
                    Some(rel_name) => self.related_order(scope, &embeds, rel_name, &term.field)?,
                };
                let order = match term.direction {
                    Some(OrderDirection::Desc) => Order::Desc,
                    _ => Order::Asc,
                };
                let nulls = term.nulls.map(|n| match n {
                    NullsOrder::First => NullOrdering::First,
                    NullsOrder::Last => NullOrdering::Last,
                });
                node.order.push((e, order, nulls));
            }
        }
        Ok(node)
    }

    /// Adds an embed's value (or, for spreads, its columns) to the parent's select list;
    /// whether it added aggregates (a spread's lifted ones).
    fn embed_select(
        &mut self,
        node: &mut Node,
        joined: &Joined<'_>,
        child: Node,
        embed: &Embed,
        path: &[String],
    ) -> Result<bool> {
        let to_one = joined.to_one;
        let mut inner = joined.from.clone();
        child.join_laterals(&mut inner);
        for (e, name) in &child.select {
            inner.expr_as(e.clone(), Alias::new(name));
        }
        for w in &child.wheres {
            inner.and_where(w.clone());
        }
        for g in &child.group_by {
            inner.add_group_by([g.clone()]);
        }
        for (e, o, nulls) in &child.order {
            match nulls {
                Some(n) => inner.order_by_expr_with_nulls(e.clone(), o.clone(), *n),
                None => inner.order_by_expr(e.clone(), o.clone()),
            };
        }
        if to_one {
            inner.limit(1);
        } else if let Some(range) = self.query.ranges.iter().find(|r| r.path == path) {
            if let Some(limit) = range.limit {
                inner.limit(limit);
            }
            if let Some(offset) = range.offset.filter(|o| *o > 0) {
                inner.offset(offset);
            }
        }
        let row = self.alias("_e");
        let wrap = |value: String| {
            let mut s = Query::select();
            s.expr(Expr::cust(value)).from_subquery(inner.clone(), Alias::new(&row));
            Expr::SubQuery(None, Box::new(s.into()))
        };
        let mut lifted = false;
        if embed.spread {
            for (_, name) in &child.select {
                let column = format!("{}.{}", ident(&row), ident(name));
                let value = if to_one { column } else { format!("coalesce(json_agg({column}), '[]'::json)") };
                let mut value = wrap(value);
                if let Some((_, function, cast)) = child.lifted.iter().find(|(n, ..)| n == name) {
                    lifted = true;
                    value = Expr::cust_with_exprs(format!("{function}($1)"), [value]);
                    if let Some(cast) = cast {
                        value = cast_expr(value, cast)?;
                    }
                } else {
                    node.embed_values.push(node.select.len());
                }
                node.select.push((value, name.clone()));
            }
        } else {
            let value = if to_one {
                format!("row_to_json({})", ident(&row))
            } else {
                format!("coalesce(json_agg({}), '[]'::json)", ident(&row))
            };
            let name = embed.alias.clone().unwrap_or_else(|| embed.relation.clone());
            node.embed_values.push(node.select.len());
            node.select.push((wrap(value), name));
        }
        Ok(lifted)
    }

    /// Resolves an embed against the relationships of `scope`'s relation and builds its FROM.
    fn join(&mut self, scope: Scope<'_>, embed: &Embed) -> Result<Joined<'a>> {
        let source = &scope.relation.name;
        let schema = self.schema;
        // A computed relationship of that name comes first (PostgREST's override of the
        // detected relationships); hints do not apply to it.
        if let Some(computed) = scope.relation.computed_relationship(&embed.relation, self.search_path) {
            let target = schema
                .relations
                .get(&computed.target)
                .ok_or_else(|| Error::relationship_not_found(&source.schema, &source.name, &embed.relation))?;
            let f = &computed.function;
            let function = Alias::new(format!("{}.{}", ident(&f.schema), ident(&f.name)));
            let call = sea_query::Func::cust(function).arg(Expr::cust(scope.row()));
            let alias = self.alias("t");
            let mut from = Query::select();
            from.from_function(call, Alias::new(&alias));
            return Ok(Joined { to_one: computed.to_one, target, alias, from });
        }
        let is_view = |name: &QualifiedName| {
            schema
                .relations
                .get(name)
                .is_some_and(|t| matches!(t.kind, RelationKind::View | RelationKind::MaterializedView))
        };
        let candidates: Vec<&'a Relationship> =
            schema.relationships_of(source).iter().filter(|r| matches_embed(r, embed)).collect();
        // A constraint or column name names the relationship to the table rather than the
        // ones to views carrying the same foreign key: PostgREST's `findRel` leaves views out
        // of these matches. From a view (whose keys PostgREST takes only from tables), they
        // remain when nothing else matches.
        let by_key_to_view = |r: &Relationship| {
            embed.hint.is_none() && r.target.name != embed.relation && r.source != r.target && is_view(&r.target)
        };
        let from_table = !is_view(source);
        let candidates: Vec<&'a Relationship> =
            if from_table || (candidates.len() > 1 && candidates.iter().any(|r| !by_key_to_view(r))) {
                candidates.into_iter().filter(|r| !by_key_to_view(r)).collect()
            } else {
                candidates
            };
        let relationship = match candidates.as_slice() {
            [] => return Err(Error::relationship_not_found(&source.schema, &source.name, &embed.relation)),
            [one] => *one,
            many => {
                let details = many.iter().map(|r| describe(r)).collect();
                let hints: Vec<String> = many.iter().map(|r| format!("{}!{}", embed.relation, hint_for(r))).collect();
                return Err(Error::ambiguous_relationship(&source.name, &embed.relation, details, &hints));
            }
        };
        let target = schema
            .relations
            .get(&relationship.target)
            .ok_or_else(|| Error::relationship_not_found(&source.schema, &source.name, &embed.relation))?;
        let alias = self.alias("t");
        let mut from = Query::select();
        from.from_as((Alias::new(&target.name.schema), Alias::new(&target.name.name)), Alias::new(&alias));
        match &relationship.cardinality {
            Cardinality::ManyToMany { junction, source_fk, target_fk } => {
                let j = self.alias("j");
                let on: Vec<String> = target_fk
                    .columns
                    .iter()
                    .zip(&target_fk.foreign_columns)
                    .map(|(jc, tc)| format!("{}.{} = {}.{}", ident(&j), ident(jc), ident(&alias), ident(tc)))
                    .collect();
                let table: sea_query::TableRef = (Alias::new(&junction.schema), Alias::new(&junction.name)).into();
                from.inner_join(table.alias(Alias::new(&j)), Expr::cust(on.join(" AND ")));
                for (jc, sc) in source_fk.columns.iter().zip(&source_fk.foreign_columns) {
                    from.and_where(Expr::cust(format!(
                        "{}.{} = {}.{}",
                        ident(&j),
                        ident(jc),
                        ident(scope.alias),
                        ident(sc)
                    )));
                }
            }
            _ => {
                for (source_col, target_col) in relationship.join_columns() {
                    from.and_where(Expr::cust(format!(
                        "{}.{} = {}.{}",
                        ident(&alias),
                        ident(&target_col),
                        ident(scope.alias),
                        ident(&source_col)
                    )));
                }
            }
        }
        Ok(Joined { to_one: relationship.is_to_one(), target, alias, from })
    }

    /// `rel=is.null` / `rel=not.is.null` on an embed: whether the parent has a related row.
    fn embed_null_test(
        &mut self,
        scope: Scope<'_>,
        embed: &'a Embed,
        path: &[String],
        expr: &crate::query::OpExpr,
    ) -> Result<Expr> {
        let wants_null = match (&expr.operation, expr.negated) {
            (Operation::Is(IsValue::Null), false) | (Operation::Is(IsValue::NotNull), true) => true,
            (Operation::Is(IsValue::Null), true) | (Operation::Is(IsValue::NotNull), false) => false,
            _ => {
                return Err(Error::refused(
                    ErrorKind::BadEmbeddedOperator,
                    format!(
                        "Bad operator on the '{}' embedded resource",
                        embed.alias.as_deref().unwrap_or(&embed.relation)
                    ),
                ));
            }
        };
        let joined = self.join(scope, embed)?;
        let child = self.node(joined.target, joined.alias.clone(), &embed.items, &child_path(path, embed), false)?;
        let exists = exists_statement(&joined, &child);
        Ok(if wants_null { Expr::not_exists(exists) } else { Expr::exists(exists) })
    }

    fn logic(
        &mut self,
        scope: Scope<'_>,
        embeds: &[&'a Embed],
        path: &[String],
        op: LogicOp,
        children: &[LogicTree],
    ) -> Result<Expr> {
        logic_tree(op, children, &mut |field, expr| match embed_named(embeds, field) {
            Some(embed) => self.embed_null_test(scope, embed, path, expr),
            None => condition(scope, field, expr),
        })
    }

    /// `order=rel(col)`: ordering by a column of a to-one embed.
    fn related_order(&mut self, scope: Scope<'_>, embeds: &[&'a Embed], name: &str, field: &Field) -> Result<Expr> {
        let embed =
            embeds.iter().find(|e| e.alias.as_deref() == Some(name) || e.relation == name).ok_or_else(|| {
                Error::refused(ErrorKind::NotEmbedded, format!("'{name}' is not an embedded resource in this request"))
            })?;
        let joined = self.join(scope, embed)?;
        if !joined.to_one {
            return Err(Error::refused(
                ErrorKind::RelatedOrderNotPossible,
                format!("A related order on '{name}' is not possible"),
            ));
        }
        let target =
            Scope { relation: joined.target, alias: &joined.alias, search_path: self.search_path, records: false };
        let (column, _) = field_expr(target, field)?;
        let mut s = joined.from.clone();
        s.expr(column).limit(1);
        Ok(Expr::SubQuery(None, Box::new(s.into())))
    }

    /// Every filter, order, range and logic tree must address a selected embed.
    fn check_paths(&self) -> Result<()> {
        let q = self.query;
        let paths = q
            .filters
            .iter()
            .map(|f| &f.path)
            .chain(q.logic.iter().map(|l| &l.path))
            .chain(q.order.iter().map(|o| &o.path))
            .chain(q.ranges.iter().map(|r| &r.path));
        for path in paths {
            if !path.is_empty() && !self.embed_paths.contains(path) {
                let name = path.last().map(String::as_str).unwrap_or("");
                return Err(Error::refused(
                    ErrorKind::NotEmbedded,
                    format!("'{name}' is not an embedded resource in this request"),
                ));
            }
        }
        Ok(())
    }
}

fn exists_statement(joined: &Joined<'_>, child: &Node) -> SelectStatement {
    let mut s = joined.from.clone();
    s.expr(Expr::cust("1"));
    for w in &child.wheres {
        s.and_where(w.clone());
    }
    s
}

fn child_path(path: &[String], embed: &Embed) -> Vec<String> {
    let mut p = path.to_vec();
    p.push(embed.alias.clone().unwrap_or_else(|| embed.relation.clone()));
    p
}

fn embed_named<'e>(embeds: &[&'e Embed], field: &Field) -> Option<&'e Embed> {
    if !field.json_path.is_empty() {
        return None;
    }
    embeds
        .iter()
        .copied()
        .find(|e| e.alias.as_deref() == Some(field.name.as_str()) || (e.alias.is_none() && e.relation == field.name))
}

fn cast_expr(e: Expr, cast: &str) -> Result<Expr> {
    if !is_safe_type_name(cast) {
        return Err(Error::refused(ErrorKind::BadQuery, format!("invalid cast target '{cast}'")));
    }
    Ok(Expr::cust_with_exprs(format!("CAST($1 AS {cast})"), [e]))
}

/// Whether a select list aggregates (`count()`, `col.sum()`, ...).
fn has_aggregates(items: &[SelectItem]) -> bool {
    items.iter().any(|i| match i {
        SelectItem::Count { .. } => true,
        SelectItem::Field(f) => f.aggregate.is_some(),
        _ => false,
    })
}

/// The SQL function of an aggregate.
fn aggregate_function(function: AggregateFunction) -> &'static str {
    match function {
        AggregateFunction::Sum => "sum",
        AggregateFunction::Avg => "avg",
        AggregateFunction::Min => "min",
        AggregateFunction::Max => "max",
        AggregateFunction::Count => "count",
    }
}

/// The JSON key of a selected field: its name, or the last key of its JSON path; aggregates
/// without an alias are named after the function.
fn default_name(field: &Field, aggregate: Option<AggregateFunction>) -> String {
    if let Some(function) = aggregate {
        return match function {
            AggregateFunction::Sum => "sum",
            AggregateFunction::Avg => "avg",
            AggregateFunction::Min => "min",
            AggregateFunction::Max => "max",
            AggregateFunction::Count => "count",
        }
        .into();
    }
    match field.json_path.last() {
        Some(step) => match &step.operand {
            JsonOperand::Key(k) => k.clone(),
            JsonOperand::Index(_) => field.name.clone(),
        },
        None => field.name.clone(),
    }
}

/// Whether relationship `r` is what `embed` names (SERVER-BEHAVIOUR.md §1e).
fn matches_embed(r: &Relationship, embed: &Embed) -> bool {
    let fk = &r.foreign_key;
    let direct = !matches!(r.cardinality, Cardinality::ManyToMany { .. });
    // A self reference is one foreign key seen from both ends. PostgREST's convention: the
    // table's name is the one-to-many side (`collections(*)`, the children), the FK column's
    // name the many-to-one side (`parent_id(*)`, the parent), and a hint, which may only be
    // the FK column, picks the one-to-many side through it (`collections!parent_id(*)`).
    // A constraint name does not name either.
    if direct && r.source == r.target {
        let fk_column = (fk.columns.len() == 1).then(|| fk.columns[0].as_str());
        let one_to_many =
            matches!(r.cardinality, Cardinality::OneToMany | Cardinality::OneToOne { source_holds_fk: false });
        return match &embed.hint {
            None => {
                (one_to_many && r.target.name == embed.relation) || (!one_to_many && fk_column == Some(&embed.relation))
            }
            Some(hint) => one_to_many && r.target.name == embed.relation && fk_column == Some(hint.as_str()),
        };
    }
    match &embed.hint {
        None => {
            r.target.name == embed.relation
                || (direct && fk.name == embed.relation)
                || (matches!(r.cardinality, Cardinality::ManyToOne | Cardinality::OneToOne { source_holds_fk: true })
                    && fk.table == r.source
                    && fk.columns.len() == 1
                    && fk.columns[0] == embed.relation)
        }
        Some(hint) => {
            if r.target.name != embed.relation {
                return false;
            }
            match &r.cardinality {
                Cardinality::ManyToMany { junction, source_fk, target_fk } => {
                    junction.name == *hint || source_fk.name == *hint || target_fk.name == *hint
                }
                _ => {
                    fk.name == *hint
                        || (fk.columns.len() == 1 && fk.columns[0] == *hint)
                        || (fk.foreign_columns.len() == 1 && fk.foreign_columns[0] == *hint)
                }
            }
        }
    }
}

fn hint_for(r: &Relationship) -> String {
    match &r.cardinality {
        Cardinality::ManyToMany { junction, .. } => junction.name.clone(),
        _ => r.foreign_key.name.clone(),
    }
}

fn describe(r: &Relationship) -> serde_json::Value {
    let cardinality = match r.cardinality {
        Cardinality::ManyToOne => "many-to-one",
        Cardinality::OneToMany => "one-to-many",
        Cardinality::OneToOne { .. } => "one-to-one",
        Cardinality::ManyToMany { .. } => "many-to-many",
    };
    let fk = &r.foreign_key;
    serde_json::json!({
        "cardinality": cardinality,
        "embedding": format!("{} with {}", r.source.name, r.target.name),
        "relationship": format!("{} using {}({}) and {}({})", hint_for(r), fk.table.name, fk.columns.join(", "), fk.foreign_table.name, fk.foreign_columns.join(", ")),
    })
}
