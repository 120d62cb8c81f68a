//! A custom [`UserStore`]: a wrapper around the Postgres store that admits one email domain
//! and keeps a `public.profiles` row for every user, in the request's transaction.

mod common;

use common::AssertError as _;

use common::{api_built, assert_session};
use forge_auth::model::{Identity, User};
use forge_auth::store::StoreFuture;
use forge_auth::{
    Auth, AuthConfig, Deletion, Error, ErrorKind, Lookup, NewIdentity, NewUser, PgUserStore, UserChange, UserPage,
    UserQuery, UserStore,
};
use forge_core::error::DbErrorKind;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug)]
struct Profiles {
    domain: &'static str,
    inner: PgUserStore,
}

impl Profiles {
    async fn save(conn: &mut PgConnection, user: &User) -> forge_auth::Result<()> {
        let handle = user.user_metadata().get("handle").and_then(|h| h.as_str()).map(str::to_owned);
        sqlx::query(
            "insert into public.profiles (id, email, handle) values ($1, $2, $3) \
             on conflict (id) do update set email = excluded.email, handle = excluded.handle",
        )
        .bind(user.id)
        .bind(&user.email)
        .bind(handle)
        .execute(conn)
        .await
        .map_err(|e| match DbErrorKind::of_sqlx(&e) {
            Some(DbErrorKind::UniqueViolation) => Error::store_refused("handle_taken", "That handle is taken"),
            _ => e.into(),
        })?;
        Ok(())
    }

    fn admits(&self, email: Option<&str>) -> forge_auth::Result<()> {
        match email {
            Some(e) if !e.ends_with(self.domain) => {
                Err(Error::new(ErrorKind::EmailAddressNotAuthorized, "Sign-ups are open to staff addresses only"))
            }
            _ => Ok(()),
        }
    }
}

impl UserStore for Profiles {
    fn find<'a>(&'a self, conn: &'a mut PgConnection, by: Lookup<'a>) -> StoreFuture<'a, Option<User>> {
        self.inner.find(conn, by)
    }

    fn create<'a>(&'a self, conn: &'a mut PgConnection, new: NewUser) -> StoreFuture<'a, User> {
        Box::pin(async move {
            self.admits(new.email.as_deref())?;
            let user = self.inner.create(&mut *conn, new).await?;
            Self::save(conn, &user).await?;
            Ok(user)
        })
    }

    fn update<'a>(&'a self, conn: &'a mut PgConnection, id: Uuid, change: UserChange) -> StoreFuture<'a, User> {
        Box::pin(async move {
            if let Some(email) = &change.email {
                self.admits(email.as_deref())?;
            }
            let user = self.inner.update(&mut *conn, id, change).await?;
            Self::save(conn, &user).await?;
            Ok(user)
        })
    }

    fn delete<'a>(&'a self, conn: &'a mut PgConnection, id: Uuid, how: Deletion) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query("delete from public.profiles where id = $1").bind(id).execute(&mut *conn).await?;
            self.inner.delete(conn, id, how).await
        })
    }

    fn list<'a>(&'a self, conn: &'a mut PgConnection, query: &'a UserQuery) -> StoreFuture<'a, UserPage> {
        self.inner.list(conn, query)
    }

    fn identities<'a>(&'a self, conn: &'a mut PgConnection, user_id: Uuid) -> StoreFuture<'a, Vec<Identity>> {
        self.inner.identities(conn, user_id)
    }

    fn identity_owner<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        provider: &'a str,
        provider_id: &'a str,
    ) -> StoreFuture<'a, Option<Uuid>> {
        self.inner.identity_owner(conn, provider, provider_id)
    }

    fn link<'a>(&'a self, conn: &'a mut PgConnection, user_id: Uuid, identity: NewIdentity) -> StoreFuture<'a, ()> {
        self.inner.link(conn, user_id, identity)
    }

    fn unlink<'a>(&'a self, conn: &'a mut PgConnection, user_id: Uuid, identity: Option<Uuid>) -> StoreFuture<'a, ()> {
        self.inner.unlink(conn, user_id, identity)
    }
}

async fn profiles(t: &common::Api) -> Vec<(Uuid, Option<String>, Option<String>)> {
    sqlx::query_as("select id, email, handle from public.profiles order by email")
        .fetch_all(t.db.pool())
        .await
        .expect("profiles")
}

async fn users(t: &common::Api) -> i64 {
    sqlx::query_scalar("select count(*) from auth.users").fetch_one(t.db.pool()).await.expect("count")
}

async fn setup() -> common::Api {
    let builder = Auth::builder()
        .config(AuthConfig::default())
        .user_store(Profiles { domain: "@staff.test", inner: PgUserStore });
    let t = api_built(builder).await;
    sqlx::raw_sql(
        "create table public.profiles (id uuid primary key references auth.users on delete cascade, \
         email text, handle text unique)",
    )
    .execute(t.db.pool())
    .await
    .expect("profiles table");
    t
}

#[tokio::test]
async fn a_custom_store_sees_every_user_change_in_the_request_transaction() {
    let t = setup().await;

    // Sign-up goes through the store: the profile is written with the user.
    let body = json!({ "email": "ann@staff.test", "password": "correct horse 1", "data": { "handle": "ann" } });
    let r = t.post("/auth/v1/signup", body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s = r.json();
    assert_session(&s);
    let ann: Uuid = s["user"]["id"].as_str().expect("id").parse().expect("uuid");
    assert_eq!(profiles(&t).await, vec![(ann, Some("ann@staff.test".into()), Some("ann".into()))]);

    // The store's own rule, with its own error, and nothing stored.
    let r = t.post("/auth/v1/signup", json!({ "email": "eve@elsewhere.test", "password": "correct horse 1" })).await;
    r.assert_error(400, "email_address_not_authorized");
    assert_eq!(users(&t).await, 1);

    // A store failure after the user row was written rolls the whole sign-up back.
    let body = json!({ "email": "bob@staff.test", "password": "correct horse 1", "data": { "handle": "ann" } });
    t.post("/auth/v1/signup", body).await.assert_error(422, "handle_taken");
    assert_eq!(users(&t).await, 1, "the user row went with the profile");
    let login = t.login("bob@staff.test", "correct horse 1").await;
    login.assert_error(400, "invalid_credentials");

    // Changes through PUT /user and the admin API reach the store.
    let token = s["access_token"].as_str().expect("token");
    let r = t.send("PUT", "/auth/v1/user", Some(token), &json!({ "data": { "handle": "annie" } }).to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(profiles(&t).await[0].2.as_deref(), Some("annie"));
    let r = t.send("PUT", "/auth/v1/user", Some(token), &json!({ "email": "ann@gmail.test" }).to_string()).await;
    r.assert_error(400, "email_address_not_authorized");
    let r = t.admin("PUT", &format!("/auth/v1/admin/users/{ann}"), json!({ "email": "ann.b@staff.test" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["email"], "ann.b@staff.test");
    assert_eq!(profiles(&t).await[0].1.as_deref(), Some("ann.b@staff.test"));
    let login = t.login("ann.b@staff.test", "correct horse 1").await;
    assert_eq!(login.status, 200, "{}", login.body);

    // Admin-created users and deletion go through it too.
    let r =
        t.admin("POST", "/auth/v1/admin/users", json!({ "email": "cy@staff.test", "password": "pass word 3" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cy = r.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(profiles(&t).await.len(), 2);
    let r = t.admin("DELETE", &format!("/auth/v1/admin/users/{cy}"), json!({ "should_soft_delete": true })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(profiles(&t).await.len(), 1, "the store dropped the profile on a soft delete");
    let list = t.admin("GET", "/auth/v1/admin/users", serde_json::Value::Null).await;
    assert_eq!(list.json()["users"].as_array().map(Vec::len), Some(1));
}
