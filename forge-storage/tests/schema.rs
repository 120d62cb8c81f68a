//! The storage schema: Supabase's helper functions and the defaults that keep objects private.

use forge_core::testing::test_db;

#[tokio::test]
async fn helper_functions_split_names_as_supabase_does() {
    let db = test_db().await;
    forge_core::migrate::run(db.pool(), &[forge_storage::MIGRATIONS]).await.expect("migrate");
    let row: (Vec<String>, String, String, Vec<String>, String, String) = sqlx::query_as(
        "select storage.foldername('a/b/c.tar.gz'), storage.filename('a/b/c.tar.gz'), \
         storage.extension('a/b/c.tar.gz'), storage.foldername('top.png'), storage.filename('top.png'), \
         storage.extension('top.png')",
    )
    .fetch_one(db.pool())
    .await
    .expect("query");
    assert_eq!(row.0, ["a", "b"]);
    assert_eq!((row.1.as_str(), row.2.as_str()), ("c.tar.gz", "gz"));
    assert!(row.3.is_empty());
    assert_eq!((row.4.as_str(), row.5.as_str()), ("top.png", "png"));
    let rls: Vec<bool> = sqlx::query_scalar(
        "select relrowsecurity from pg_class where oid in ('storage.objects'::regclass, 'storage.buckets'::regclass)",
    )
    .fetch_all(db.pool())
    .await
    .expect("rls");
    assert_eq!(rls, [true, true], "both tables are behind RLS");
    // Applying again changes nothing.
    forge_core::migrate::run(db.pool(), &[forge_storage::MIGRATIONS]).await.expect("idempotent");
}
