//! `GET /`: an OpenAPI (Swagger 2.0) description of the exposed tables, views and functions,
//! in PostgREST's layout.

use serde_json::{Map, Value, json};

use crate::schema::{Column, Function, Relation, Schema, Volatility};

/// The JSON-schema type and format for a Postgres type name.
fn json_type(type_name: &str) -> (Option<&'static str>, String) {
    let base = type_name.trim_end_matches("[]");
    let ty = match base {
        "smallint" | "integer" | "bigint" => Some("integer"),
        "numeric" | "real" | "double precision" => Some("number"),
        "boolean" => Some("boolean"),
        "json" | "jsonb" => None,
        _ => Some("string"),
    };
    (ty, base.to_owned())
}

fn property(column: &Column, relation: &Relation, schema: &Schema) -> Value {
    let mut prop = Map::new();
    let (ty, format) = json_type(&column.data_type);
    if column.is_array() {
        prop.insert("type".into(), json!("array"));
        let mut items = Map::new();
        if let Some(t) = ty {
            items.insert("type".into(), json!(t));
        }
        if !column.enum_values.is_empty() {
            items.insert("enum".into(), json!(column.enum_values));
        }
        prop.insert("items".into(), Value::Object(items));
    } else if let Some(t) = ty {
        prop.insert("type".into(), json!(t));
    }
    prop.insert("format".into(), json!(format));
    if !column.is_array() && !column.enum_values.is_empty() {
        prop.insert("enum".into(), json!(column.enum_values));
    }
    if let Some(default) = &column.default {
        prop.insert("default".into(), json!(default));
    }
    let mut notes = Vec::new();
    if let Some(comment) = &column.comment {
        notes.push(comment.clone());
    }
    if relation.primary_key.contains(&column.name) {
        notes.push("Note:\nThis is a Primary Key.<pk/>".into());
    }
    for fk in schema.foreign_keys.iter().filter(|fk| fk.table == relation.name) {
        if let Some(i) = fk.columns.iter().position(|c| c == &column.name) {
            let target = fk.foreign_columns.get(i).map(String::as_str).unwrap_or("");
            notes.push(format!(
                "Note:\nThis is a Foreign Key to `{}.{target}`.<fk table='{}' column='{target}'/>",
                fk.foreign_table.name, fk.foreign_table.name
            ));
        }
    }
    if !notes.is_empty() {
        prop.insert("description".into(), json!(notes.join("\n\n")));
    }
    Value::Object(prop)
}

fn definition(relation: &Relation, schema: &Schema) -> Value {
    let required: Vec<&str> = relation
        .columns
        .iter()
        .filter(|c| !c.nullable && c.default.is_none() && !c.generated)
        .map(|c| c.name.as_str())
        .collect();
    let properties: Map<String, Value> =
        relation.columns.iter().map(|c| (c.name.clone(), property(c, relation, schema))).collect();
    let mut def = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        def["required"] = json!(required);
    }
    if let Some(comment) = &relation.comment {
        def["description"] = json!(comment);
    }
    def
}

fn row_filters(relation: &Relation) -> Vec<Value> {
    relation
        .columns
        .iter()
        .map(|c| json!({ "$ref": format!("#/parameters/rowFilter.{}.{}", relation.name.name, c.name) }))
        .collect()
}

fn refs(names: &[&str]) -> Vec<Value> {
    names.iter().map(|n| json!({ "$ref": format!("#/parameters/{n}") })).collect()
}

fn relation_path(relation: &Relation) -> Value {
    let name = &relation.name.name;
    let body =
        json!({ "name": name, "in": "body", "required": false, "schema": { "$ref": format!("#/definitions/{name}") } });
    let tag = json!([name]);
    let mut get_params = row_filters(relation);
    get_params.extend(refs(&["select", "order", "range", "rangeUnit", "offset", "limit", "preferCount"]));
    let mut path = Map::new();
    path.insert(
        "get".into(),
        json!({
            "tags": tag,
            "summary": relation.comment,
            "parameters": get_params,
            "responses": {
                "200": { "description": "OK", "schema": { "type": "array", "items": { "$ref": format!("#/definitions/{name}") } } },
                "206": { "description": "Partial Content" }
            }
        }),
    );
    if relation.insertable {
        let mut params = vec![body.clone()];
        params.extend(refs(&["select", "preferPost"]));
        path.insert(
            "post".into(),
            json!({ "tags": tag, "parameters": params, "responses": { "201": { "description": "Created" } } }),
        );
    }
    if relation.updatable {
        let mut params = row_filters(relation);
        params.push(body);
        params.extend(refs(&["preferReturn"]));
        path.insert(
            "patch".into(),
            json!({ "tags": tag, "parameters": params, "responses": { "204": { "description": "No Content" } } }),
        );
    }
    if relation.deletable {
        let mut params = row_filters(relation);
        params.extend(refs(&["preferReturn"]));
        path.insert(
            "delete".into(),
            json!({ "tags": tag, "parameters": params, "responses": { "204": { "description": "No Content" } } }),
        );
    }
    Value::Object(path)
}

fn function_path(function: &Function) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for arg in &function.args {
        let (ty, format) = json_type(&arg.type_name);
        let mut prop = json!({ "format": format });
        if arg.type_name.ends_with("[]") {
            prop["type"] = json!("array");
            prop["items"] = ty.map(|t| json!({ "type": t })).unwrap_or_else(|| json!({}));
        } else if let Some(t) = ty {
            prop["type"] = json!(t);
        }
        properties.insert(arg.name.clone(), prop);
        if !arg.has_default {
            required.push(arg.name.clone());
        }
    }
    let args = json!({
        "in": "body", "name": "args", "required": true,
        "schema": { "type": "object", "properties": properties, "required": required }
    });
    let tag = json!(["(rpc) ".to_owned() + &function.name.name]);
    let responses = json!({ "200": { "description": "OK" } });
    let mut path = Map::new();
    path.insert(
        "post".into(),
        json!({ "tags": tag, "summary": function.comment, "parameters": [args, { "$ref": "#/parameters/preferParams" }], "responses": responses }),
    );
    if function.volatility != Volatility::Volatile {
        let params: Vec<Value> = function
            .args
            .iter()
            .map(|a| {
                let (ty, format) = json_type(&a.type_name);
                json!({ "name": a.name, "in": "query", "required": !a.has_default, "type": ty.unwrap_or("string"), "format": format })
            })
            .collect();
        path.insert(
            "get".into(),
            json!({ "tags": tag, "summary": function.comment, "parameters": params, "responses": responses }),
        );
    }
    Value::Object(path)
}

fn common_parameters(schema: &Schema, exposed: &str) -> Map<String, Value> {
    let mut params = Map::new();
    let mut add = |name: &str, value: Value| {
        params.insert(name.to_owned(), value);
    };
    add(
        "select",
        json!({ "name": "select", "description": "Filtering Columns", "required": false, "in": "query", "type": "string" }),
    );
    add(
        "order",
        json!({ "name": "order", "description": "Ordering", "required": false, "in": "query", "type": "string" }),
    );
    add(
        "range",
        json!({ "name": "Range", "description": "Limiting and Pagination", "required": false, "in": "header", "type": "string" }),
    );
    add(
        "rangeUnit",
        json!({ "name": "Range-Unit", "description": "Limiting and Pagination", "required": false, "default": "items", "in": "header", "type": "string" }),
    );
    add(
        "offset",
        json!({ "name": "offset", "description": "Limiting and Pagination", "required": false, "in": "query", "type": "string" }),
    );
    add(
        "limit",
        json!({ "name": "limit", "description": "Limiting and Pagination", "required": false, "in": "query", "type": "string" }),
    );
    add(
        "preferParams",
        json!({ "name": "Prefer", "description": "Preference", "required": false, "enum": ["params=single-object"], "in": "header", "type": "string" }),
    );
    add(
        "preferReturn",
        json!({ "name": "Prefer", "description": "Preference", "required": false, "enum": ["return=representation", "return=minimal", "return=none"], "in": "header", "type": "string" }),
    );
    add(
        "preferCount",
        json!({ "name": "Prefer", "description": "Preference", "required": false, "enum": ["count=none"], "in": "header", "type": "string" }),
    );
    add(
        "preferPost",
        json!({ "name": "Prefer", "description": "Preference", "required": false, "enum": ["return=representation", "return=minimal", "return=none", "resolution=ignore-duplicates", "resolution=merge-duplicates"], "in": "header", "type": "string" }),
    );
    for relation in schema.relations.values().filter(|r| r.name.schema == exposed) {
        for column in &relation.columns {
            let (_, format) = json_type(&column.data_type);
            add(
                &format!("rowFilter.{}.{}", relation.name.name, column.name),
                json!({ "name": column.name, "required": false, "format": format, "in": "query", "type": "string" }),
            );
        }
    }
    params
}

/// The OpenAPI document for `schema_name` (one of the exposed schemas).
pub(crate) fn document(schema: &Schema, schema_name: &str, host: Option<&str>, base_path: &str) -> Value {
    let mut relations: Vec<&Relation> = schema.relations.values().filter(|r| r.name.schema == schema_name).collect();
    relations.sort_by(|a, b| a.name.name.cmp(&b.name.name));
    let mut functions: Vec<&Function> = schema
        .functions
        .iter()
        .filter(|(name, _)| name.schema == schema_name)
        .flat_map(|(_, overloads)| overloads.first())
        .collect();
    functions.sort_by(|a, b| a.name.name.cmp(&b.name.name));

    let mut paths = Map::new();
    paths.insert("/".into(), json!({ "get": { "tags": ["Introspection"], "summary": "OpenAPI description (this document)", "produces": ["application/openapi+json", "application/json"], "responses": { "200": { "description": "OK" } } } }));
    for relation in &relations {
        paths.insert(format!("/{}", relation.name.name), relation_path(relation));
    }
    for function in &functions {
        paths.insert(format!("/rpc/{}", function.name.name), function_path(function));
    }
    let definitions: Map<String, Value> =
        relations.iter().map(|r| (r.name.name.clone(), definition(r, schema))).collect();
    let mut doc = json!({
        "swagger": "2.0",
        "info": { "title": "Forge REST API", "description": "PostgREST-compatible API generated from the database schema", "version": env!("CARGO_PKG_VERSION") },
        "basePath": base_path,
        "schemes": ["http", "https"],
        "consumes": ["application/json", "application/vnd.pgrst.object+json;nulls=stripped", "application/vnd.pgrst.object+json", "text/csv"],
        "produces": ["application/json", "application/vnd.pgrst.object+json;nulls=stripped", "application/vnd.pgrst.object+json", "text/csv"],
        "paths": paths,
        "definitions": definitions,
        "parameters": common_parameters(schema, schema_name),
        "externalDocs": { "description": "PostgREST Documentation", "url": "https://postgrest.org/en/latest/references/api.html" }
    });
    if let Some(host) = host {
        doc["host"] = json!(host);
    }
    doc
}
