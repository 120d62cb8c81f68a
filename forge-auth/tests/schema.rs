//! The auth schema against a real Postgres: Supabase-style SQL runs unchanged on it.

use forge_core::testing::test_db;

#[tokio::test]
async fn supabase_style_profiles_and_triggers_work_on_auth_users() {
    let t = test_db().await;
    forge_core::migrate::run(t.pool(), &[forge_auth::MIGRATIONS]).await.expect("migrate");
    assert_eq!(forge_core::migrate::run(t.pool(), &[forge_auth::MIGRATIONS]).await.expect("again"), 0);

    // The pattern Supabase documents for user profiles.
    sqlx::raw_sql(
        r#"
        create table public.profiles (id uuid primary key references auth.users on delete cascade, display_name text);
        create function public.handle_new_user() returns trigger language plpgsql security definer set search_path = ''
        as $$ begin
          insert into public.profiles (id, display_name) values (new.id, new.raw_user_meta_data ->> 'name');
          return new;
        end $$;
        create trigger on_auth_user_created after insert on auth.users for each row execute procedure public.handle_new_user();
        "#,
    )
    .execute(t.pool())
    .await
    .expect("supabase profile pattern");

    sqlx::raw_sql(
        r#"
        insert into auth.users (id, aud, role, email, raw_user_meta_data, email_confirmed_at, created_at, updated_at)
        values ('11111111-1111-4111-8111-111111111111', 'authenticated', 'authenticated', 'a@example.com',
                '{"name": "Alice"}', now(), now(), now());
        insert into auth.identities (provider_id, user_id, identity_data, provider)
        values ('11111111-1111-4111-8111-111111111111', '11111111-1111-4111-8111-111111111111',
                '{"sub": "11111111-1111-4111-8111-111111111111", "email": "A@Example.com"}', 'email');
        "#,
    )
    .execute(t.pool())
    .await
    .expect("a user");
    let (name, confirmed): (String, bool) = sqlx::query_as(
        "select p.display_name, u.confirmed_at is not null from public.profiles p join auth.users u using (id)",
    )
    .fetch_one(t.pool())
    .await
    .expect("profile");
    assert_eq!((name.as_str(), confirmed), ("Alice", true), "the trigger ran; confirmed_at is generated");
    let email: String =
        sqlx::query_scalar("select email from auth.identities").fetch_one(t.pool()).await.expect("identity");
    assert_eq!(email, "a@example.com", "identity email is generated, lower-cased");
    // A duplicate email is refused.
    let dup = sqlx::raw_sql(
        "insert into auth.users (id, email) values ('22222222-2222-4222-8222-222222222222', 'a@example.com')",
    )
    .execute(t.pool())
    .await;
    assert!(dup.is_err());
    // Deleting the user cascades to its profile and identities.
    sqlx::raw_sql("delete from auth.users").execute(t.pool()).await.expect("delete");
    let left: i64 =
        sqlx::query_scalar("select (select count(*) from public.profiles) + (select count(*) from auth.identities)")
            .fetch_one(t.pool())
            .await
            .expect("count");
    assert_eq!(left, 0);
    // The API roles cannot read auth tables; the service role can.
    let anon: bool = sqlx::query_scalar("select has_table_privilege('anon', 'auth.users', 'select')")
        .fetch_one(t.pool())
        .await
        .expect("priv");
    let service: bool = sqlx::query_scalar("select has_table_privilege('service_role', 'auth.users', 'select')")
        .fetch_one(t.pool())
        .await
        .expect("priv");
    assert_eq!((anon, service), (false, true));
}
