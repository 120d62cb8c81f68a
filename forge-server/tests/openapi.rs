//! The Management API's OpenAPI document at `/openapi.json` and its docs page at `/docs`,
//! through the real binary: the document is OpenAPI 3.1, names every route the API serves
//! (and the server serves every route it names), every operation but the setup asks for the
//! bearer token, the answers match their schemas, and the docs page loads only its own files.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use common::{Response, Server, command};
use serde_json::{Value, json};

/// Every route of `forge-server/src/platform/api/mod.rs`'s router. A new route is listed here
/// too, or `the_document_names_every_route_and_the_server_serves_them` fails.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/setup"),
    ("GET", "/v1/organizations"),
    ("POST", "/v1/organizations"),
    ("GET", "/v1/organizations/{slug}"),
    ("GET", "/v1/organizations/{slug}/members"),
    ("PATCH", "/v1/organizations/{slug}/members/{user_id}"),
    ("DELETE", "/v1/organizations/{slug}/members/{user_id}"),
    ("POST", "/v1/organizations/{slug}/members/invitations"),
    ("GET", "/v1/organizations/{slug}/audit"),
    ("POST", "/v1/invitations/accept"),
    ("GET", "/v1/projects"),
    ("POST", "/v1/projects"),
    ("GET", "/v1/projects/{ref}"),
    ("DELETE", "/v1/projects/{ref}"),
    ("POST", "/v1/projects/{ref}/pause"),
    ("POST", "/v1/projects/{ref}/restore"),
    ("POST", "/v1/projects/{ref}/transfer"),
    ("GET", "/v1/projects/{ref}/api-keys"),
    ("POST", "/v1/projects/{ref}/api-keys"),
    ("GET", "/v1/projects/{ref}/api-keys/{id}"),
    ("DELETE", "/v1/projects/{ref}/api-keys/{id}"),
    ("POST", "/v1/projects/{ref}/database/query"),
    ("GET", "/v1/projects/{ref}/usage"),
    ("GET", "/v1/projects/{ref}/config/auth/signing-keys"),
    ("POST", "/v1/projects/{ref}/config/auth/signing-keys/rotate"),
    ("DELETE", "/v1/projects/{ref}/config/auth/signing-keys/{id}"),
    ("GET", "/v1/profile/access-tokens"),
    ("POST", "/v1/profile/access-tokens"),
    ("DELETE", "/v1/profile/access-tokens/{id}"),
];

/// The query parameters routes read (from `Query<T>` extractors, which the document does not
/// see unless the route declares `T` in its `params`).
const QUERY_PARAMS: &[(&str, &str, &str)] = &[
    ("GET", "/v1/organizations/{slug}/audit", "limit"),
    ("GET", "/v1/projects/{ref}/api-keys", "reveal"),
    ("GET", "/v1/projects/{ref}/api-keys/{id}", "reveal"),
    ("GET", "/v1/projects/{ref}/usage", "from"),
    ("GET", "/v1/projects/{ref}/usage", "to"),
];

/// The only operation without a bearer token.
const PUBLIC: (&str, &str) = ("POST", "/v1/setup");

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// `forge-server tokens create --email <email>` beside the running server.
fn pat(dir: &Path, email: &str) -> String {
    let out = command(dir).args(["tokens", "create", "--email", email]).output().expect("run the CLI");
    assert!(out.status.success(), "tokens create failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

/// Every operation of the document: (METHOD, path, operation).
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                ops.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

/// `#/components/schemas/X` in `spec`.
fn resolve<'a>(spec: &'a Value, reference: &str) -> &'a Value {
    let name = reference.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("a foreign $ref {reference}"));
    let schema = &spec["components"]["schemas"][name];
    assert!(schema.is_object(), "$ref {reference} names no schema");
    schema
}

/// Checks `value` against `schema` (the subset of JSON Schema the document uses: `$ref`, `type`
/// with `null`, `required`, `properties`, `items`), naming where it differs.
fn conforms(spec: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        return conforms(spec, resolve(spec, reference), value, at);
    }
    if let Some(one_of) = schema["oneOf"].as_array() {
        return if one_of.iter().any(|s| conforms(spec, s, value, at).is_ok()) {
            Ok(())
        } else {
            Err(format!("{at}: {value} matches none of {schema}"))
        };
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let fits = |t: &str| match t {
        "null" => value.is_null(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|t| fits(t)) {
        return Err(format!("{at}: {value} is not {types:?}"));
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, v) in values.iter().enumerate() {
            conforms(spec, items, v, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                return Err(format!("{at}: `{name}` is required and missing from {value}"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, v) in object {
                let property = properties.get(name).ok_or_else(|| format!("{at}: `{name}` is not in the schema"))?;
                conforms(spec, property, v, &format!("{at}.{name}"))?;
            }
        }
    }
    Ok(())
}

/// Every `$ref` anywhere in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(values) => values.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The answer's schema for `status`.
fn response_schema(op: &Value, status: u16) -> &Value {
    &op["responses"][status.to_string()]["content"]["application/json"]["schema"]
}

#[test]
fn the_document_names_every_route_and_the_server_serves_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let res = server.get("/openapi.json");
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.header("content-type").is_some_and(|t| t.starts_with("application/json")));
    let spec = res.json();

    // The served document is the one the crate builds from its routes.
    let built = serde_json::to_value(forge_server::platform::api::openapi()).expect("the document serializes");
    assert_eq!(spec, built);

    assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", spec["openapi"]);
    assert_eq!(spec["info"]["title"], "Forge Management API");
    assert!(spec["info"]["version"].is_string());
    let bearer = &spec["components"]["securitySchemes"]["bearer"];
    assert_eq!((&bearer["type"], &bearer["scheme"]), (&json!("http"), &json!("bearer")), "{bearer}");

    // The document names exactly the routes listed here.
    let ops = operations(&spec);
    let documented: BTreeSet<(String, String)> = ops.iter().map(|(m, p, _)| (m.clone(), p.clone())).collect();
    let listed: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented.len(), ops.len());
    let missing: Vec<_> = listed.difference(&documented).collect();
    let unlisted: Vec<_> = documented.difference(&listed).collect();
    assert!(missing.is_empty() && unlisted.is_empty(), "not documented: {missing:?}; not listed here: {unlisted:?}");

    let mut ids = HashSet::new();
    for (method, path, op) in &ops {
        let name = format!("{method} {path}");
        // Unique operation ids: the generated clients name their functions by them.
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{name} has no operationId"));
        assert!(ids.insert(id.to_owned()), "{name}: operationId {id} twice");
        assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{name} has no tag");

        // The bearer token, everywhere but the setup.
        let security = op.get("security").and_then(Value::as_array).cloned().unwrap_or_default();
        if (method.as_str(), path.as_str()) == PUBLIC {
            assert!(security.is_empty(), "{name} is public: {security:?}");
        } else {
            assert_eq!(security, vec![json!({ "bearer": [] })], "{name} must ask for the bearer token");
            assert!(op["responses"]["401"].is_object(), "{name} documents no 401");
        }

        // Every path parameter is declared once, as a required path parameter.
        let params: Vec<&Value> = op["parameters"].as_array().into_iter().flatten().collect();
        for segment in path.split('/').filter(|s| s.starts_with('{')) {
            let param = segment.trim_matches(['{', '}']);
            let declared: Vec<_> = params.iter().filter(|p| p["name"] == param && p["in"] == "path").collect();
            assert_eq!(declared.len(), 1, "{name}: path parameter {param} declared {} times", declared.len());
            assert_eq!(declared[0]["required"], true, "{name}: {param}");
        }

        // A success, and every 4xx answers the error shape.
        let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{name} has no responses"));
        assert!(responses.keys().any(|s| s.starts_with('2')), "{name} documents no success");
        for (status, response) in responses {
            if status.starts_with('4') {
                assert_eq!(
                    response["content"]["application/json"]["schema"],
                    json!({ "$ref": "#/components/schemas/ErrorBody" }),
                    "{name} {status}"
                );
            }
        }
    }
    for (method, path, name) in QUERY_PARAMS {
        let (_, _, op) = ops.iter().find(|(m, p, _)| m == method && p == path).expect("a listed route");
        let declared =
            op["parameters"].as_array().into_iter().flatten().any(|p| p["name"] == *name && p["in"] == "query");
        assert!(declared, "{method} {path} reads ?{name} but does not declare it");
    }
    let mut all = Vec::new();
    refs(&spec, &mut all);
    for r in &all {
        resolve(&spec, r);
    }

    // The server serves every documented route: without a token each answers 401 from the
    // route's own caller check, where an unknown route answers the API's 404.
    for (method, path, _) in &ops {
        let concrete = path
            .replace("{slug}", "no-such-organization")
            .replace("{ref}", "nosuchproject")
            .replace("{user_id}", "00000000-0000-0000-0000-000000000000")
            .replace("{id}", "00000000-0000-0000-0000-000000000000");
        let res = server.request(method, &concrete, &[("content-type", "application/json")], b"{}");
        let code = res.json()["code"].as_str().map(str::to_owned);
        if (method.as_str(), path.as_str()) == PUBLIC {
            assert_eq!((res.status, code.as_deref()), (400, Some("invalid_request")), "{method} {concrete}");
        } else {
            assert_eq!((res.status, code.as_deref()), (401, Some("unauthorized")), "{method} {concrete}");
        }
    }
    let unknown = server.get("/v1/no-such-route");
    assert_eq!((unknown.status, unknown.json()["code"].as_str()), (404, Some("not_found")));

    // With a token, the answers match their documented schemas.
    let token = pat(dir.path(), "owner@example.com");
    let auth = format!("Bearer {token}");
    let call = |method: &str, path: &str, body: Option<Value>| -> Response {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        server.request(method, path, &[("authorization", &auth), ("content-type", "application/json")], body.as_bytes())
    };
    let op_of = |method: &str, path: &str| -> Value {
        ops.iter()
            .find(|(m, p, _)| m == method && p == path)
            .map(|(_, _, op)| op.clone())
            .unwrap_or_else(|| panic!("{method} {path} is not documented"))
    };
    let check = |method: &str, template: &str, res: &Response| {
        let op = op_of(method, template);
        let schema = response_schema(&op, res.status);
        assert!(
            schema.is_object() || res.body.is_empty(),
            "{method} {template} answered {} which is not documented: {}",
            res.status,
            res.body
        );
        if schema.is_object()
            && let Err(e) = conforms(&spec, schema, &res.json(), "answer")
        {
            panic!("{method} {template} ({}): {e}", res.status);
        }
    };
    for (path, template) in [
        ("/v1/organizations", "/v1/organizations"),
        ("/v1/organizations/default", "/v1/organizations/{slug}"),
        ("/v1/organizations/default/members", "/v1/organizations/{slug}/members"),
        ("/v1/organizations/default/audit?limit=5", "/v1/organizations/{slug}/audit"),
        ("/v1/projects", "/v1/projects"),
        ("/v1/projects/default", "/v1/projects/{ref}"),
        ("/v1/projects/default/api-keys?reveal=true", "/v1/projects/{ref}/api-keys"),
        ("/v1/profile/access-tokens", "/v1/profile/access-tokens"),
        ("/v1/projects/nosuchproject", "/v1/projects/{ref}"),
    ] {
        let res = call("GET", path, None);
        check("GET", template, &res);
    }
    let created = call("POST", "/v1/organizations", Some(json!({ "name": "Schema check" })));
    assert_eq!(created.status, 201, "{}", created.body);
    check("POST", "/v1/organizations", &created);
    let bad = call("POST", "/v1/organizations", Some(json!({ "nom": "x" })));
    assert_eq!(bad.status, 400);
    check("POST", "/v1/organizations", &bad);
    let token_made = call("POST", "/v1/profile/access-tokens", Some(json!({ "name": "ci" })));
    assert_eq!(token_made.status, 201, "{}", token_made.body);
    check("POST", "/v1/profile/access-tokens", &token_made);
    let rows =
        call("POST", "/v1/projects/default/database/query", Some(json!({ "query": "select 1 as one, 'a' as b" })));
    assert_eq!((rows.status, rows.json()), (200, json!([{ "one": 1, "b": "a" }])));
    check("POST", "/v1/projects/{ref}/database/query", &rows);
    let refused = call("POST", "/v1/projects/default/database/query", Some(json!({ "query": "select nope" })));
    check("POST", "/v1/projects/{ref}/database/query", &refused);
    let id = token_made.json()["id"].as_str().expect("id").to_owned();
    let deleted = call("DELETE", &format!("/v1/profile/access-tokens/{id}"), None);
    assert_eq!(deleted.status, 204);
    check("DELETE", "/v1/profile/access-tokens/{id}", &deleted);
}

#[test]
fn the_docs_page_renders_the_document_from_its_own_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let page = server.get("/docs");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.body.contains("<div id=\"swagger-ui\">"), "{}", page.body);

    // Every file the page loads is the server's own, and served.
    let mut files = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in page.body.split(attr).skip(1) {
            files.push(part.split('"').next().expect("attribute value").to_owned());
        }
    }
    assert!(files.len() >= 4, "{files:?}");
    assert!(!page.body.contains("://"), "no absolute URLs: {}", page.body);
    for file in &files {
        assert!(file.starts_with("/docs/") && !file.contains("..") && !file.contains(':'), "not a local file: {file}");
        let res = server.get(file);
        assert_eq!(res.status, 200, "{file}: {}", res.status);
        assert!(!res.body.is_empty(), "{file}");
    }
    assert!(files.iter().any(|f| f.ends_with(".js")) && files.iter().any(|f| f.ends_with(".css")));

    // The page's configuration points at the local document and turns the online validator off.
    let init = server.get("/docs/swagger-initializer.js");
    assert_eq!(init.status, 200);
    assert!(init.body.contains("\"url\": \"/openapi.json\""), "{}", init.body);
    assert!(init.body.contains("\"validatorUrl\": \"none\""), "{}", init.body);
    assert!(!init.body.contains("http://") && !init.body.contains("https://"), "{}", init.body);
    assert_eq!(server.get("/docs/no-such-file.js").status, 404);
}
