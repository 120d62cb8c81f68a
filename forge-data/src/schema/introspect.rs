//! Reading the exposed schemas from the Postgres catalog.

use std::collections::HashMap;

use sqlx::PgPool;

use super::model::{
    Column, ComputedField, ComputedRelationship, ForeignKey, Function, FunctionArg, QualifiedName, Relation,
    RelationKind, ReturnType, Schema, Volatility,
};
use super::views::{Origin, origins};

const RELATIONS: &str = "
select n.nspname::text, c.relname::text, c.relkind::text, obj_description(c.oid, 'pg_class'),
       pg_relation_is_updatable(c.oid, true), c.oid::int8
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any($1) and c.relkind in ('r', 'p', 'v', 'm', 'f')";

const COLUMNS: &str = "
select n.nspname::text, c.relname::text, a.attname::text, a.attnum,
       format_type(a.atttypid, a.atttypmod),
       -- The type to cast filter values to: without a length, except that bare `character`
       -- and `bit` mean length 1, so use their unbounded forms.
       case t.typname when 'bpchar' then 'bpchar' when '_bpchar' then 'bpchar[]'
                      when 'bit' then 'varbit' when '_bit' then 'varbit[]'
                      else format_type(a.atttypid, null) end,
       not a.attnotnull,
       -- The default, as PostgREST reads it: an identity `by default` draws from its
       -- sequence, a stored generated column has none (its expression is no default), and
       -- a domain's default applies when the column has none of its own.
       case when a.attidentity = 'd'
              then format('nextval(%L)', pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname))
            when a.attgenerated <> '' then null
            when d.adbin is null and t.typbasetype <> 0 then pg_get_expr(t.typdefaultbin, 0)
            else pg_get_expr(d.adbin, d.adrelid) end,
       (a.attidentity = 'a' or a.attgenerated <> ''),
       case when t.typcategory = 'A' then format_type(t.typelem, null) end,
       coalesce((select array_agg(e.enumlabel::text order by e.enumsortorder) from pg_enum e
                 where e.enumtypid = case when t.typcategory = 'A' then t.typelem else t.oid end), '{}'),
       col_description(c.oid, a.attnum)
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_type t on t.oid = a.atttypid
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where n.nspname = any($1) and c.relkind in ('r', 'p', 'v', 'm', 'f') and a.attnum > 0 and not a.attisdropped
order by 1, 2, a.attnum";

const UNIQUE_KEYS: &str = "
select n.nspname::text, c.relname::text, i.indisprimary,
       array(select a.attname::text from unnest(i.indkey::int2[]) with ordinality k(attnum, ord)
             join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum order by k.ord)
from pg_index i
join pg_class c on c.oid = i.indrelid
join pg_namespace n on n.oid = c.relnamespace
where i.indisunique and i.indexprs is null and i.indpred is null and n.nspname = any($1)";

// Every foreign key, by table oid and attribute numbers: views in exposed schemas may carry
// the columns of tables in other schemas.
const FOREIGN_KEYS: &str = "
select con.conname::text, con.conrelid::int8, con.conkey, con.confrelid::int8, con.confkey
from pg_constraint con
where con.contype = 'f'
order by 1";

// The stored rule of each exposed view, to read where its columns come from.
const VIEW_RULES: &str = "
select v.oid::int8, r.ev_action::text
from pg_rewrite r
join pg_class v on v.oid = r.ev_class
join pg_namespace n on n.oid = v.relnamespace
where n.nspname = any($1) and v.relkind in ('v', 'm') and r.rulename = '_RETURN'";

const FUNCTIONS: &str = "
select n.nspname::text, p.proname::text,
       coalesce(p.proargnames::text[], '{}'), coalesce(p.proargmodes::text[], '{}'),
       array(select format_type(t.oid, null) from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]))
             with ordinality u(oid, ord) join pg_type t on t.oid = u.oid order by u.ord),
       p.pronargdefaults, p.provariadic <> 0,
       format_type(p.prorettype, null), p.proretset, rt.typtype::text,
       rn.nspname::text, rc.relname::text, rc.relkind::text,
       p.provolatile::text, obj_description(p.oid, 'pg_proc')
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_type rt on rt.oid = p.prorettype
left join pg_class rc on rc.oid = rt.typrelid
left join pg_namespace rn on rn.oid = rc.relnamespace
where n.nspname = any($1) and p.prokind = 'f'
  and p.prorettype not in ('trigger'::regtype, 'event_trigger'::regtype)
  and not exists (select 1 from pg_depend dep where dep.objid = p.oid and dep.deptype = 'e')
order by p.oid";

// Functions of one argument, a row of an exposed relation, in any schema: a computed field
// resolves through the request's search path, which may go beyond the exposed schemas
// (PostgREST's db-extra-search-path). Not variadic, not aggregates, not returning void.
// Those returning a relation's row type are also computed relationships (to-one unless
// they return a set not declared `ROWS 1`).
const COMPUTED: &str = "
select n.nspname::text, p.proname::text, an.nspname::text, ac.relname::text,
       format_type(p.prorettype, null), p.proretset, rn.nspname::text, rc.relname::text, p.prorows = 1
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_type at on at.oid = p.proargtypes[0]
join pg_class ac on ac.oid = at.typrelid and ac.reltype = at.oid
join pg_namespace an on an.oid = ac.relnamespace
left join pg_class rc on rc.reltype = p.prorettype and rc.relkind in ('r', 'p', 'v', 'm', 'f')
left join pg_namespace rn on rn.oid = rc.relnamespace
where p.pronargs = 1 and p.provariadic = 0 and p.prokind = 'f'
  and an.nspname = any($1) and ac.relkind in ('r', 'p', 'v', 'm', 'f')
  and p.prorettype not in ('void'::regtype, 'trigger'::regtype, 'event_trigger'::regtype)
order by p.oid";

type ComputedRow = (String, String, String, String, String, bool, Option<String>, Option<String>, bool);

// The attributes of the composite types (`create type ... as (...)`) functions of the exposed
// schemas return: their results read like `returns table` ones.
const COMPOSITE_TYPES: &str = "
select n.nspname::text, c.relname::text,
       array_agg(a.attname::text order by a.attnum), array_agg(format_type(a.atttypid, null) order by a.attnum)
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where c.relkind = 'c'
  and exists (select 1 from pg_proc p join pg_namespace pn on pn.oid = p.pronamespace
              where p.prorettype = c.reltype and pn.nspname = any($1))
group by 1, 2";

type ColumnRow = (
    String,
    String,
    String,
    i16,
    String,
    String,
    bool,
    Option<String>,
    bool,
    Option<String>,
    Vec<String>,
    Option<String>,
);

type ForeignKeyRow = (String, i64, Vec<i16>, i64, Vec<i16>);

type FunctionRow = (
    String,
    String,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    i16,
    bool,
    String,
    bool,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

/// Reads the relations, keys and functions of `schemas`.
pub async fn introspect(pool: &PgPool, schemas: &[String]) -> Result<Schema, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let relation_rows: Vec<(String, String, String, Option<String>, i32, i64)> =
        sqlx::query_as(RELATIONS).bind(schemas).fetch_all(&mut *conn).await?;
    let column_rows: Vec<ColumnRow> = sqlx::query_as(COLUMNS).bind(schemas).fetch_all(&mut *conn).await?;
    let key_rows: Vec<(String, String, bool, Vec<String>)> =
        sqlx::query_as(UNIQUE_KEYS).bind(schemas).fetch_all(&mut *conn).await?;
    // Every foreign key (not only the exposed schemas'): a view may expose a private table.
    let fk_rows: Vec<ForeignKeyRow> = sqlx::query_as(FOREIGN_KEYS).fetch_all(&mut *conn).await?;
    let rule_rows: Vec<(i64, String)> = sqlx::query_as(VIEW_RULES).bind(schemas).fetch_all(&mut *conn).await?;
    let function_rows: Vec<FunctionRow> = sqlx::query_as(FUNCTIONS).bind(schemas).fetch_all(&mut *conn).await?;
    let computed_rows: Vec<ComputedRow> = sqlx::query_as(COMPUTED).bind(schemas).fetch_all(&mut *conn).await?;
    let composite_rows: Vec<(String, String, Vec<String>, Vec<String>)> =
        sqlx::query_as(COMPOSITE_TYPES).bind(schemas).fetch_all(&mut *conn).await?;
    let postgis: bool = sqlx::query_scalar("select exists (select 1 from pg_extension where extname = 'postgis')")
        .fetch_one(&mut *conn)
        .await?;
    drop(conn);

    let mut relations: HashMap<QualifiedName, Relation> = HashMap::new();
    let mut by_oid: HashMap<i64, QualifiedName> = HashMap::new();
    for (schema, name, kind, comment, updatable, oid) in relation_rows {
        let kind = match kind.as_str() {
            "v" => RelationKind::View,
            "m" => RelationKind::MaterializedView,
            "f" => RelationKind::ForeignTable,
            _ => RelationKind::Table,
        };
        // pg_relation_is_updatable's bits: 8 insert, 4 update, 16 delete.
        let name = QualifiedName::new(schema, name);
        by_oid.insert(oid, name.clone());
        relations.insert(
            name.clone(),
            Relation {
                name,
                kind,
                columns: Vec::new(),
                primary_key: Vec::new(),
                unique_keys: Vec::new(),
                insertable: updatable & 8 != 0,
                updatable: updatable & 4 != 0,
                deletable: updatable & 16 != 0,
                comment,
                computed_fields: Vec::new(),
                computed_relationships: Vec::new(),
            },
        );
    }
    for row in column_rows {
        let (
            schema,
            table,
            name,
            position,
            data_type,
            type_name,
            nullable,
            default,
            generated,
            element,
            enums,
            comment,
        ) = row;
        if let Some(rel) = relations.get_mut(&QualifiedName::new(schema, table)) {
            rel.columns.push(Column {
                name,
                position,
                data_type,
                type_name,
                nullable,
                default,
                generated,
                element_type: element,
                enum_values: enums,
                comment,
            });
        }
    }
    for (schema, table, primary, columns) in key_rows {
        if let Some(rel) = relations.get_mut(&QualifiedName::new(schema, table)) {
            if primary {
                rel.primary_key = columns.clone();
            }
            rel.unique_keys.push(columns);
        }
    }
    for row in computed_rows {
        let (schema, name, table_schema, table, type_name, returns_set, target_schema, target, one_row) = row;
        let function = QualifiedName::new(schema, name);
        let target = target_schema.zip(target).map(|(s, t)| QualifiedName::new(s, t));
        let target = target.filter(|t| relations.contains_key(t));
        let Some(rel) = relations.get_mut(&QualifiedName::new(table_schema, table)) else { continue };
        if let Some(target) = target {
            let to_one = !returns_set || one_row;
            rel.computed_relationships.push(ComputedRelationship { function: function.clone(), target, to_one });
        }
        // Set-returning functions of a row are computed relationships only, not fields.
        if !returns_set {
            rel.computed_fields.push(ComputedField { function, type_name });
        }
    }
    let views: Vec<(QualifiedName, Vec<Origin>)> =
        rule_rows.into_iter().filter_map(|(oid, rule)| Some((by_oid.get(&oid)?.clone(), origins(&rule)))).collect();
    let foreign_keys = project_foreign_keys(fk_rows, &relations, &by_oid, &views);

    let composites: HashMap<QualifiedName, Vec<(String, String)>> = composite_rows
        .into_iter()
        .map(|(schema, name, names, types)| (QualifiedName::new(schema, name), names.into_iter().zip(types).collect()))
        .collect();
    let mut functions: HashMap<QualifiedName, Vec<Function>> = HashMap::new();
    for row in function_rows {
        if let Some(function) = function_from_row(row, schemas, &composites) {
            functions.entry(function.name.clone()).or_default().push(function);
        }
    }

    let mut schema = Schema {
        schemas: schemas.to_vec(),
        relations,
        functions,
        foreign_keys,
        relationships: HashMap::new(),
        postgis,
    };
    schema.link();
    Ok(schema)
}

/// A function of the schema cache, or `None` for one PostgREST leaves out of it: one whose
/// parameters are all unnamed, unless it has a single one of a type that takes a raw body.
fn function_from_row(
    row: FunctionRow,
    schemas: &[String],
    composites: &HashMap<QualifiedName, Vec<(String, String)>>,
) -> Option<Function> {
    let (
        schema,
        name,
        arg_names,
        arg_modes,
        arg_types,
        n_defaults,
        _variadic,
        return_type,
        returns_set,
        return_typtype,
        return_rel_schema,
        return_rel_name,
        return_relkind,
        volatility,
        comment,
    ) = row;
    // Modes: i in, o out, b inout, v variadic, t table column. No modes means all "in".
    let mode = |i: usize| arg_modes.get(i).map(String::as_str).unwrap_or("i");
    let mut args = Vec::new();
    let mut out_columns = Vec::new();
    for (i, type_name) in arg_types.iter().enumerate() {
        let arg_name = arg_names.get(i).cloned().unwrap_or_default();
        match mode(i) {
            "i" | "b" | "v" => args.push(FunctionArg {
                name: arg_name.clone(),
                type_name: type_name.clone(),
                has_default: false,
                variadic: mode(i) == "v",
            }),
            _ => {}
        }
        if matches!(mode(i), "o" | "b" | "t") {
            out_columns.push((arg_name, type_name.clone()));
        }
    }
    // No `proargnames` at all: every parameter is unnamed (PostgREST's `callable`).
    let callable = match args.as_slice() {
        [] => true,
        _ if !arg_names.is_empty() => true,
        [one] => matches!(one.type_name.as_str(), "bytea" | "json" | "jsonb" | "text" | "xml"),
        _ => false,
    };
    if !callable {
        return None;
    }
    let defaults = usize::try_from(n_defaults).unwrap_or(0).min(args.len());
    let first_default = args.len() - defaults;
    for arg in &mut args[first_default..] {
        arg.has_default = true;
    }
    let returns = if return_type == "void" {
        ReturnType::Void
    } else if let (Some(rs), Some(rn), Some("r" | "v" | "m" | "p" | "f")) =
        (&return_rel_schema, &return_rel_name, return_relkind.as_deref())
    {
        if schemas.contains(rs) { ReturnType::Composite(QualifiedName::new(rs, rn)) } else { ReturnType::Record }
    } else if !out_columns.is_empty() && (return_type == "record" || return_typtype == "c") {
        ReturnType::Columns(out_columns)
    } else if let (Some(rs), Some(rn), Some("c")) = (&return_rel_schema, &return_rel_name, return_relkind.as_deref())
        && let Some(attributes) = composites.get(&QualifiedName::new(rs.clone(), rn.clone()))
    {
        // A composite type's attributes, as the columns of `returns table` (PostgREST reads
        // its results like a table's).
        ReturnType::Columns(attributes.clone())
    } else if return_type == "record" || return_typtype == "c" || return_typtype == "p" {
        ReturnType::Record
    } else {
        ReturnType::Scalar(return_type)
    };
    let volatility = match volatility.as_str() {
        "i" => Volatility::Immutable,
        "s" => Volatility::Stable,
        _ => Volatility::Volatile,
    };
    Some(Function { name: QualifiedName::new(schema, name), args, returns, returns_set, volatility, comment })
}

/// An exposed relation that carries a given set of base-table columns, under its own names.
struct Carrier {
    relation: QualifiedName,
    columns: Vec<String>,
}

/// The exposed relations (the table itself, and views that select those columns) carrying
/// columns `attnums` of table `oid`.
fn carriers(
    oid: i64,
    attnums: &[i16],
    relations: &HashMap<QualifiedName, Relation>,
    by_oid: &HashMap<i64, QualifiedName>,
    views: &[(QualifiedName, Vec<Origin>)],
) -> Vec<Carrier> {
    let mut out = Vec::new();
    if let Some(rel) = by_oid.get(&oid).and_then(|n| relations.get(n)) {
        let columns: Option<Vec<String>> =
            attnums.iter().map(|a| rel.columns.iter().find(|c| c.position == *a).map(|c| c.name.clone())).collect();
        if let Some(columns) = columns {
            out.push(Carrier { relation: rel.name.clone(), columns });
        }
    }
    for (view, view_origins) in views {
        let columns: Option<Vec<String>> = attnums
            .iter()
            .map(|a| view_origins.iter().find(|o| i64::from(o.table) == oid && o.column == *a).map(|o| o.name.clone()))
            .collect();
        if let Some(columns) = columns {
            out.push(Carrier { relation: view.clone(), columns });
        }
    }
    out
}

/// Each foreign key, between every pair of exposed relations that carry its two sides.
fn project_foreign_keys(
    rows: Vec<ForeignKeyRow>,
    relations: &HashMap<QualifiedName, Relation>,
    by_oid: &HashMap<i64, QualifiedName>,
    views: &[(QualifiedName, Vec<Origin>)],
) -> Vec<ForeignKey> {
    let mut out = Vec::new();
    for (name, table, columns, foreign_table, foreign_columns) in rows {
        let sources = carriers(table, &columns, relations, by_oid, views);
        if sources.is_empty() {
            continue;
        }
        let targets = carriers(foreign_table, &foreign_columns, relations, by_oid, views);
        for source in &sources {
            for target in &targets {
                out.push(ForeignKey {
                    name: name.clone(),
                    table: source.relation.clone(),
                    columns: source.columns.clone(),
                    foreign_table: target.relation.clone(),
                    foreign_columns: target.columns.clone(),
                });
            }
        }
    }
    out
}
