//! Prefix listing (`list` and `list-v2`) bounded by an index range: the same answers as the
//! `ilike` / `like` alone gave, and plans that read the folder through an index, not the bucket.

mod common;

use common::{Api, Backend, api};
use serde_json::{Value, json};

/// Rows as uploads leave them (a listing reads rows only), several of them names the API
/// refuses (`%`, `\`, non-ASCII) but a row may hold, each `created_at` its own. No two names
/// of one level differ only in ASCII case, so every listing's order is total.
const NAMES: &[&str] = &[
    "Photos/a.txt",
    "Photos/B.txt",
    "Photos/Sub/c.txt",
    "Photos/sUB2/d.txt",
    "Photos/.emptyFolderPlaceholder",
    "photos.txt",
    "Photos-old/e.txt",
    "50%/x.txt",
    "50x/y.txt",
    "50%off.txt",
    "a_b/1.txt",
    "axb/2.txt",
    "a_b.txt",
    "back\\slash/z.txt",
    "backxslash/w.txt",
    "Été/x.txt",
    "été/y.txt",
    "ÉTÉ/z.txt",
    "café/Über.txt",
    "café/über.txt",
    "Σίσυφος/Σ.txt",
    "σίσυφος/σ.txt",
    "straße/ß.txt",
    "İstanbul/ı.txt",
    "tr/I.txt",
    "tr/ı.txt",
    "\u{D7FF}x/a.txt",
    "\u{10FFFF}/max.txt",
    "z\u{10FFFF}/y.txt",
    "a/1.txt",
    "a/b/c/d.txt",
    "a/b/c.txt",
    "a/b.txt",
    "a.txt",
    "ab/2.txt",
    "a0/3.txt",
    "a./4.txt",
    "a-b/6.txt",
    "~/tilde.txt",
    "space dir/s.txt",
];

async fn fill(t: &Api, bucket: &str, names: &[String]) {
    t.create_bucket(bucket, false).await;
    sqlx::query(
        "insert into storage.objects (bucket_id, name, metadata, version, created_at, updated_at, last_accessed_at) \
         select $1, n, jsonb_build_object('size', i, 'mimetype', 'text/plain'), gen_random_uuid()::text, \
           now() - i * interval '1 minute', now() - i * interval '2 minutes', now() - i * interval '3 minutes' \
         from unnest($2::text[]) with ordinality as u(n, i)",
    )
    .bind(bucket)
    .bind(names)
    .execute(t.db.pool())
    .await
    .expect("insert rows");
}

async fn mixed_bucket(t: &Api) {
    fill(t, "mix", &NAMES.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).await;
}

/// What `list` answered before its scan had an index range: the statement it ran then, with
/// the `ilike`s alone.
async fn list_before(t: &Api, bucket: &str, prefix: &str, search: &str, (column, order): (&str, &str)) -> Value {
    let prefix = prefix.trim_matches('/');
    let (folder, level) = if prefix.is_empty() {
        (String::new(), 1i32)
    } else {
        (format!("{prefix}/"), prefix.split('/').count() as i32 + 1)
    };
    let ordering = if column == "name" {
        format!("lower(name) collate \"C\" {order}")
    } else {
        format!(
            "is_file, case when not is_file then lower(name) end collate \"C\" {order}, {column} {order}, lower(name) collate \"C\" {order}"
        )
    };
    let ts = |c: &str| format!("to_char({c} at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')");
    let sql = format!(
        "with entries as ( \
           select distinct on (path_tokens[$3], array_length(path_tokens, 1) = $3) \
             path_tokens[$3] as name, array_length(path_tokens, 1) = $3 as is_file, \
             case when array_length(path_tokens, 1) = $3 then id end as id, \
             case when array_length(path_tokens, 1) = $3 then updated_at end as updated_at, \
             case when array_length(path_tokens, 1) = $3 then created_at end as created_at, \
             case when array_length(path_tokens, 1) = $3 then last_accessed_at end as last_accessed_at, \
             case when array_length(path_tokens, 1) = $3 then metadata end as metadata \
           from storage.objects \
           where bucket_id = $1 and name ilike $2 escape '\\' and path_tokens[$3] ilike $4 escape '\\' \
           order by path_tokens[$3], array_length(path_tokens, 1) = $3 desc), \
         page as (select *, row_number() over (order by {ordering}) as n from entries \
           order by {ordering} limit $5 offset $6) \
         select coalesce(jsonb_agg(jsonb_build_object('name', name, 'id', id, 'updated_at', {updated}, \
           'created_at', {created}, 'last_accessed_at', {accessed}, 'metadata', metadata) order by n), \
           '[]'::jsonb) from page",
        updated = ts("updated_at"),
        created = ts("created_at"),
        accessed = ts("last_accessed_at"),
    );
    let escape = |s: &str| s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(bucket)
        .bind(format!("{}%", escape(&folder)))
        .bind(level)
        .bind(format!("{}%", escape(search)))
        .bind(1500i64)
        .bind(0i64)
        .fetch_one(t.db.pool())
        .await
        .expect("the statement of before")
}

async fn list(t: &Api, bucket: &str, body: Value) -> Value {
    let r = t.service("POST", &format!("/object/list/{bucket}"), body.clone()).await;
    assert_eq!(r.status, 200, "{body}: {}", r.text());
    r.json()
}

fn names(listing: &Value) -> Vec<&str> {
    listing.as_array().expect("an array").iter().map(|e| e["name"].as_str().expect("a name")).collect()
}

const PREFIXES: &[&str] = &[
    "",
    "photos",
    "PHOTOS/",
    "pHoToS",
    "photos/sub",
    "Photos/SUB/",
    "photos-old",
    "50%",
    "50%/",
    "50_",
    "a_b",
    "a_",
    "back\\slash",
    "backxslash",
    "été",
    "ÉTÉ",
    "Été",
    "café",
    "CAFÉ",
    "Σίσυφος",
    "σίσυφος",
    "ΣΊΣΥΦΟΣ",
    "straße",
    "STRASSE",
    "İstanbul",
    "tr",
    "a",
    "A",
    "a/b",
    "A/B",
    "a/b/c",
    "ab",
    "a0",
    "a.",
    "a-b",
    "~",
    "space dir",
    "\u{10FFFF}",
    "z\u{10FFFF}",
    "\u{D7FF}x",
    "nothing",
    "a//b",
];

const SEARCHES: &[&str] = &[
    "",
    "a",
    "B",
    "s",
    "S",
    "%",
    "_",
    "\\",
    "é",
    "É",
    "Ü",
    "ü",
    "σ",
    "Σ",
    "ı",
    "I",
    ".",
    "1",
    "~",
    "\u{10FFFF}",
    "\u{D7FF}",
];

#[tokio::test]
async fn list_answers_what_ilike_alone_answered() {
    let t = api(Backend::Memory).await;
    mixed_bucket(&t).await;
    for prefix in PREFIXES {
        for search in SEARCHES {
            let body = json!({ "prefix": prefix, "search": search, "limit": 1500 });
            let before = list_before(&t, "mix", prefix, search, ("name", "asc")).await;
            assert_eq!(list(&t, "mix", body).await, before, "prefix {prefix:?}, search {search:?}");
        }
        for (column, order) in
            [("name", "desc"), ("created_at", "asc"), ("updated_at", "desc"), ("last_accessed_at", "asc")]
        {
            let body = json!({ "prefix": prefix, "limit": 1500, "sortBy": { "column": column, "order": order } });
            let before = list_before(&t, "mix", prefix, "", (column, order)).await;
            assert_eq!(list(&t, "mix", body).await, before, "prefix {prefix:?} by {column} {order}");
        }
    }
}

#[tokio::test]
async fn list_keeps_supabase_case_and_escaping_rules() {
    let t = api(Backend::Memory).await;
    mixed_bucket(&t).await;
    let listed = |prefix: &'static str, search: &'static str| {
        let t = &t;
        async move { list(t, "mix", json!({ "prefix": prefix, "search": search })).await }
    };
    // Case-insensitive prefix, folders and files interleaved case-insensitively.
    for prefix in ["photos/", "PHOTOS", "pHoToS/"] {
        assert_eq!(
            names(&listed(prefix, "").await),
            [".emptyFolderPlaceholder", "a.txt", "B.txt", "Sub", "sUB2"],
            "{prefix}"
        );
    }
    assert_eq!(names(&listed("photos", "s").await), ["Sub", "sUB2"]);
    assert_eq!(names(&listed("Photos/SUB", "").await), ["c.txt"]);
    // `a/` is not `ab/`, `a0/` (the first name past `a/`), `a./` or `a-b/`; nested folders.
    assert_eq!(names(&listed("a", "").await), ["1.txt", "b", "b.txt"]);
    assert_eq!(names(&listed("A/B", "").await), ["c", "c.txt"]);
    assert_eq!(names(&listed("a/b/c", "").await), ["d.txt"]);
    assert_eq!(names(&listed("ab", "").await), ["2.txt"]);
    assert_eq!(names(&listed("a0", "").await), ["3.txt"]);
    assert_eq!(names(&listed("", "a").await), ["a", "a-b", "a.", "a.txt", "a0", "a_b", "a_b.txt", "ab", "axb"]);
    // `%`, `_` and `\` are themselves, not patterns.
    assert_eq!(names(&listed("50%", "").await), ["x.txt"]);
    assert_eq!(names(&listed("", "50%").await), ["50%", "50%off.txt"]);
    assert_eq!(names(&listed("a_b", "").await), ["1.txt"]);
    assert_eq!(names(&listed("", "a_").await), ["a_b", "a_b.txt"]);
    assert_eq!(names(&listed("back\\slash", "").await), ["z.txt"]);
    // Beyond ASCII, cases match as Postgres' `lower()` of the database's collation has them
    // (the test cluster's is C: ASCII letters only).
    assert_eq!(names(&listed("été", "").await), ["y.txt"]);
    assert_eq!(names(&listed("Été", "").await), ["x.txt"]);
    assert_eq!(names(&listed("CAFé", "").await), ["Über.txt", "über.txt"]);
    assert_eq!(names(&listed("CAFÉ", "").await), Vec::<&str>::new());
    assert_eq!(names(&listed("café", "ü").await), ["über.txt"]);
    assert_eq!(names(&listed("tr", "i").await), ["I.txt"]);
    assert_eq!(names(&listed("\u{10FFFF}", "").await), ["max.txt"]);
    assert_eq!(names(&listed("", "z\u{10FFFF}").await), ["z\u{10FFFF}"]);
    assert_eq!(names(&listed("\u{D7FF}X", "").await), ["a.txt"]);
}

/// The names `list-v2` answers for `body`, in order, following its cursor one entry at a time.
async fn list_v2_paged(t: &Api, bucket: &str, mut body: Value) -> Vec<String> {
    body["limit"] = json!(1);
    let mut out = Vec::new();
    loop {
        let r = t.service("POST", &format!("/object/list-v2/{bucket}"), body.clone()).await;
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        let page = r.json();
        for kind in ["folders", "objects"] {
            out.extend(page[kind].as_array().expect(kind).iter().map(|e| e["name"].as_str().expect("name").to_owned()));
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => body["cursor"] = json!(cursor),
            None => return out,
        }
    }
}

#[tokio::test]
async fn list_v2_answers_what_like_alone_answered() {
    let t = api(Backend::Memory).await;
    mixed_bucket(&t).await;
    let all: Vec<String> = sqlx::query_scalar("select name from storage.objects where bucket_id = 'mix'")
        .fetch_all(t.db.pool())
        .await
        .expect("names");
    for prefix in
        PREFIXES.iter().chain(&["Photos", "Photos/", "Photos/s", "a/", "back\\", "é", "É", "café/", "café/ü", " "])
    {
        for folded in [false, true] {
            // `like '<prefix>%'`: the names that start with the prefix, byte for byte, in byte
            // order; folded, one entry per folder at the next `/`.
            let mut expected: Vec<String> = all
                .iter()
                .filter_map(|n| n.strip_prefix(prefix))
                .map(|rest| match rest.find('/').filter(|_| folded) {
                    Some(slash) => format!("{prefix}{}", &rest[..=slash]),
                    None => format!("{prefix}{rest}"),
                })
                .collect();
            expected.sort();
            expected.dedup();
            let body = json!({ "prefix": prefix, "with_delimiter": folded });
            assert_eq!(list_v2_paged(&t, "mix", body).await, expected, "prefix {prefix:?}, folded {folded}");
        }
    }
}

/// Every node of an `EXPLAIN (FORMAT JSON)` plan.
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut out = vec![plan];
    for child in plan["Plans"].as_array().into_iter().flatten() {
        out.extend(nodes(child));
    }
    out
}

/// Asserts that `plan` reads `storage.objects` through `index` with a condition that contains
/// `range`, and never scans the table whole.
#[track_caller]
fn assert_index_range(plan: &Value, index: &str, range: &str, what: &str) {
    let all = nodes(&plan[0]["Plan"]);
    assert!(!all.iter().any(|n| n["Node Type"] == "Seq Scan"), "{what}: a sequential scan in {plan:#}");
    assert!(
        all.iter().any(|n| n["Index Name"] == index && n["Index Cond"].as_str().is_some_and(|c| c.contains(range))),
        "{what}: no range of {index} in {plan:#}"
    );
}

#[tokio::test]
async fn prefix_listing_plans_read_the_folder_through_an_index() {
    let t = api(Backend::Memory).await;
    // A folder of 300 among 6,000 objects (some under names that share its name as a prefix),
    // and another bucket beside it; then statistics, as autovacuum would gather them.
    let mut names: Vec<String> = (0..300).map(|i| format!("photos/IMG_{i:04}.jpg")).collect();
    names.extend((0..2000).map(|i| format!("archive/{}/doc-{i}.pdf", i % 20)));
    names.extend((0..1000).map(|i| format!("photos-{}/IMG_{i}.jpg", i % 10)));
    names.extend((0..2700).map(|i| format!("videos/{}/clip-{i}.mp4", i % 20)));
    fill(&t, "big", &names).await;
    fill(&t, "other", &names[..2000]).await;
    sqlx::query("analyze storage.objects").execute(t.db.pool()).await.expect("analyze");

    let cases = [
        ("list", json!({ "prefix": "photos/", "limit": 1000 }), "idx_objects_bucket_id_name_lower", "lower(name)"),
        ("list", json!({ "prefix": "Photos", "search": "img_01" }), "idx_objects_bucket_id_name_lower", "lower(name)"),
        (
            "list",
            json!({ "prefix": "photos", "sortBy": { "column": "created_at", "order": "desc" } }),
            "idx_objects_bucket_id_name_lower",
            "lower(name)",
        ),
        ("list", json!({ "prefix": "", "search": "photos" }), "idx_objects_bucket_id_name_lower", "lower(name)"),
        ("list-v2", json!({ "prefix": "photos/", "with_delimiter": true }), "name_prefix_search", "~>=~"),
        ("list-v2", json!({ "prefix": "photos/IMG_01" }), "name_prefix_search", "~>=~"),
        (
            "list-v2",
            json!({ "prefix": "photos/", "sortBy": { "column": "updated_at", "order": "desc" } }),
            "name_prefix_search",
            "~>=~",
        ),
    ];
    for (route, body, index, range) in cases {
        for generic in [false, true] {
            let plan = forge_storage::testing::explain_listing(&t.project, route, "big", body.clone(), generic).await;
            assert_index_range(&plan, index, range, &format!("{route} {body} (generic plan: {generic})"));
        }
    }
    // And the listings still answer the folder.
    assert_eq!(
        list(&t, "big", json!({ "prefix": "PHOTOS/", "limit": 1000 })).await.as_array().map(Vec::len),
        Some(300)
    );
    let r = t.service("POST", "/object/list-v2/big", json!({ "prefix": "photos/" })).await;
    assert_eq!(r.json()["objects"].as_array().map(Vec::len), Some(300));
}
