//! Reading the exposed schemas from the Postgres catalog.

use std::collections::HashMap;

use sqlx::PgPool;

use super::model::{
    Column, ForeignKey, Function, FunctionArg, QualifiedName, Relation, RelationKind, ReturnType, Schema, Volatility,
};

const RELATIONS: &str = "
select n.nspname::text, c.relname::text, c.relkind::text, obj_description(c.oid, 'pg_class'),
       pg_relation_is_updatable(c.oid, true)
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
       not a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
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

const FOREIGN_KEYS: &str = "
select con.conname::text, n1.nspname::text, c1.relname::text,
       array(select a.attname::text from unnest(con.conkey) with ordinality k(attnum, ord)
             join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum order by k.ord),
       n2.nspname::text, c2.relname::text,
       array(select a.attname::text from unnest(con.confkey) with ordinality k(attnum, ord)
             join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum order by k.ord)
from pg_constraint con
join pg_class c1 on c1.oid = con.conrelid
join pg_namespace n1 on n1.oid = c1.relnamespace
join pg_class c2 on c2.oid = con.confrelid
join pg_namespace n2 on n2.oid = c2.relnamespace
where con.contype = 'f' and n1.nspname = any($1) and n2.nspname = any($1)
order by 1";

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
  and not exists (select 1 from pg_depend dep where dep.objid = p.oid and dep.deptype = 'e')";

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

type ForeignKeyRow = (String, String, String, Vec<String>, String, String, Vec<String>);

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
    let relation_rows: Vec<(String, String, String, Option<String>, i32)> =
        sqlx::query_as(RELATIONS).bind(schemas).fetch_all(&mut *conn).await?;
    let column_rows: Vec<ColumnRow> = sqlx::query_as(COLUMNS).bind(schemas).fetch_all(&mut *conn).await?;
    let key_rows: Vec<(String, String, bool, Vec<String>)> =
        sqlx::query_as(UNIQUE_KEYS).bind(schemas).fetch_all(&mut *conn).await?;
    let fk_rows: Vec<ForeignKeyRow> = sqlx::query_as(FOREIGN_KEYS).bind(schemas).fetch_all(&mut *conn).await?;
    let function_rows: Vec<FunctionRow> = sqlx::query_as(FUNCTIONS).bind(schemas).fetch_all(&mut *conn).await?;
    drop(conn);

    let mut relations: HashMap<QualifiedName, Relation> = HashMap::new();
    for (schema, name, kind, comment, updatable) in relation_rows {
        let kind = match kind.as_str() {
            "v" => RelationKind::View,
            "m" => RelationKind::MaterializedView,
            "f" => RelationKind::ForeignTable,
            _ => RelationKind::Table,
        };
        // pg_relation_is_updatable's bits: 8 insert, 4 update, 16 delete.
        let name = QualifiedName::new(schema, name);
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
    let foreign_keys = fk_rows
        .into_iter()
        .map(|(name, schema, table, columns, fschema, ftable, fcolumns)| ForeignKey {
            name,
            table: QualifiedName::new(schema, table),
            columns,
            foreign_table: QualifiedName::new(fschema, ftable),
            foreign_columns: fcolumns,
        })
        .collect();

    let mut functions: HashMap<QualifiedName, Vec<Function>> = HashMap::new();
    for row in function_rows {
        let function = function_from_row(row, schemas);
        functions.entry(function.name.clone()).or_default().push(function);
    }

    let mut schema =
        Schema { schemas: schemas.to_vec(), relations, functions, foreign_keys, relationships: HashMap::new() };
    schema.link();
    Ok(schema)
}

fn function_from_row(row: FunctionRow, schemas: &[String]) -> Function {
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
    Function { name: QualifiedName::new(schema, name), args, returns, returns_set, volatility, comment }
}
