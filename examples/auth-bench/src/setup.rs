//! The stage: a private Postgres with forge-auth's schema and two small tables under RLS, one
//! server with `/auth/v1` and `/rest/v1`, users signed up over HTTP, and a real sign-in.

use std::net::SocketAddr;

use axum::Router;
use forge_auth::{Auth, AuthConfig, RateLimits};
use forge_core::keys::generate_es256_pkcs8;
use forge_core::testing::{TEST_JWT_SECRET, TestDb, test_db};
use forge_core::{Claims, Database, Project, ProjectKeys, ProjectLayer, ProjectSettings};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::load::Target;

type Error = Box<dyn std::error::Error>;

/// The password of every user.
pub(crate) const PASSWORD: &str = "correct-horse-battery-staple";
const POOL: u32 = 16;
/// Private and public notes per user.
const NOTES_PER_USER: i32 = 10;
/// Rows owned by nobody who signs in, so the table is not tiny.
const FILLER_ROWS: i32 = 100_000;

const SCHEMA: &str = "
create table notes (
  id bigserial primary key,
  owner uuid not null,
  public boolean not null default false,
  body text not null
);
alter table notes enable row level security;
create policy own_notes on notes for select to authenticated using (owner = auth.uid());
create policy public_notes on notes for select to anon using (public);
-- The same rows again, readable by anon and users alike when public: no auth.uid().
create table posts (like notes including all);
alter table posts enable row level security;
create policy public_posts on posts for select to anon, authenticated using (public);
";

/// Everything the measurements need.
#[derive(Debug)]
pub(crate) struct Bench {
    /// Kept so the database outlives the run.
    pub(crate) _db: TestDb,
    pub(crate) project: Project,
    pub(crate) addr: SocketAddr,
    /// The headers supabase-js sends without a session: the anon key as `apikey` and bearer.
    pub(crate) anon: Vec<(String, String)>,
    pub(crate) emails: Vec<String>,
    /// One refresh token per user, from their sign-up.
    pub(crate) refresh_tokens: Vec<String>,
    /// User 0's stored password hash.
    pub(crate) stored_hash: String,
    /// User 0's access token from a password sign-in (ES256), and its claims.
    pub(crate) es256_token: String,
    pub(crate) claims: Claims,
    /// The same claims signed with HS256.
    pub(crate) hs256_token: String,
    /// User 0's private and public note ids.
    pub(crate) private_ids: Vec<i64>,
    pub(crate) public_ids: Vec<i64>,
}

impl Bench {
    pub(crate) fn keys(&self) -> &ProjectKeys {
        self.project.keys()
    }

    /// The headers of a signed-in supabase-js client.
    pub(crate) fn as_user(&self, token: &str) -> Vec<(String, String)> {
        vec![
            ("apikey".to_owned(), self.keys().anon_key().to_owned()),
            ("authorization".to_owned(), format!("Bearer {token}")),
        ]
    }

    /// `POST /token?grant_type=password` for each user in turn.
    pub(crate) fn sign_in(&self) -> Target {
        sign_in(self.addr, &self.emails, &self.anon)
    }
}

pub(crate) async fn setup(users: usize, parallel: usize) -> Result<Bench, Error> {
    let t = test_db().await;
    forge_core::migrate::run(t.pool(), &[forge_auth::MIGRATIONS]).await?;
    sqlx::raw_sql(SCHEMA).execute(t.pool()).await?;

    // The project signs with ES256 (HS256 tokens with the project secret verify too).
    let project = {
        let base = t.project("bench");
        let keys = ProjectKeys::builder(base.reference().clone(), TEST_JWT_SECRET.as_bytes().to_vec())
            .es256_pkcs8(generate_es256_pkcs8()?)
            .build()?;
        let db = Database::connect_lazy(&t.config().with_pool_sizes(POOL, POOL as usize))?;
        Project::new(base.reference().clone(), db, keys, ProjectSettings::new("http://127.0.0.1"))
    };
    // Rate limits are per client address, and every request here comes from 127.0.0.1.
    let unlimited = 1_000_000_000;
    let limits = RateLimits::default()
        .with_token_per_5min(unlimited)
        .with_verify_per_5min(unlimited)
        .with_otp_per_5min(unlimited)
        .with_anonymous_per_hour(unlimited)
        .with_mfa_per_minute(unlimited)
        .with_email_sent_per_hour(unlimited)
        .with_sms_sent_per_hour(unlimited);
    let config = AuthConfig::default().with_rate_limits(limits).with_max_frequency(0);
    let auth = Auth::builder().config(config).build()?;
    let data = forge_data::Data::builder().build()?;
    let app = Router::new()
        .nest("/auth/v1", auth.router())
        .nest("/rest/v1", data.router())
        .layer(ProjectLayer::single(project.clone()));
    let addr = serve(app).await?;
    let anon_key = project.keys().anon_key().to_owned();
    let anon =
        vec![("apikey".to_owned(), anon_key.clone()), ("authorization".to_owned(), format!("Bearer {anon_key}"))];

    // Users sign up over HTTP (auto-confirmed), `parallel` at a time.
    let emails: Vec<String> = (0..users).map(|i| format!("user{i}@bench.test")).collect();
    let mut sessions = vec![Value::Null; users];
    for (c, chunk) in emails.chunks(parallel.max(1)).enumerate() {
        let mut set = JoinSet::new();
        for (i, email) in chunk.iter().enumerate() {
            let body = json!({ "email": email, "password": PASSWORD }).to_string();
            let target = Target::posts(addr, "/auth/v1/signup", &[body], &anon);
            set.spawn(async move { (c * parallel + i, target.once().await) });
        }
        // In the order they finish, so each carries its index.
        for (i, answer) in set.join_all().await {
            let (status, body) = answer?;
            if status != 200 {
                return Err(format!("sign-up answered {status}: {body}").into());
            }
            sessions[i] = serde_json::from_str::<Value>(&body)?;
        }
    }
    let field = |s: &Value, pointer: &str| s.pointer(pointer).and_then(Value::as_str).map(str::to_owned);
    let user_ids: Vec<String> =
        sessions.iter().map(|s| field(s, "/user/id").ok_or("no user id")).collect::<Result<_, _>>()?;
    let refresh_tokens: Vec<String> =
        sessions.iter().map(|s| field(s, "/refresh_token").ok_or("no refresh token")).collect::<Result<_, _>>()?;

    sqlx::query(
        "insert into notes (owner, public, body)
         select u::uuid, p, 'note ' || n || ' of ' || u
         from unnest($1::text[]) u, (values (false), (true)) v(p), generate_series(1, $2) n",
    )
    .bind(&user_ids)
    .bind(NOTES_PER_USER)
    .execute(t.pool())
    .await?;
    sqlx::query(
        "insert into notes (owner, public, body)
         select gen_random_uuid(), g % 2 = 0, 'filler note ' || g from generate_series(1, $1) g",
    )
    .bind(FILLER_ROWS)
    .execute(t.pool())
    .await?;
    sqlx::raw_sql("insert into posts select * from notes; analyze;").execute(t.pool()).await?;

    // User 0 signs in with the password, as a client would.
    let (status, body) = sign_in(addr, &emails, &anon).once().await?;
    if status != 200 {
        return Err(format!("sign-in answered {status}: {body}").into());
    }
    let session: Value = serde_json::from_str(&body)?;
    let es256_token = field(&session, "/access_token").ok_or("no access token")?;
    let claims = project.keys().verify_jwt(&es256_token)?;
    let hs256_token = project.keys().sign_hs256(claims.as_map())?;
    let stored_hash: String = sqlx::query_scalar("select encrypted_password from auth.users where email = $1")
        .bind(&emails[0])
        .fetch_one(t.pool())
        .await?;
    let note_ids = |public: bool| {
        sqlx::query_scalar::<_, i64>("select id from notes where owner = $1::uuid and public = $2 order by id")
            .bind(&user_ids[0])
            .bind(public)
            .fetch_all(t.pool())
    };
    let private_ids = note_ids(false).await?;
    let public_ids = note_ids(true).await?;
    Ok(Bench {
        _db: t,
        project,
        addr,
        anon,
        emails,
        refresh_tokens,
        stored_hash,
        es256_token,
        claims,
        hs256_token,
        private_ids,
        public_ids,
    })
}

fn sign_in(addr: SocketAddr, emails: &[String], anon: &[(String, String)]) -> Target {
    let bodies: Vec<String> = emails.iter().map(|e| json!({ "email": e, "password": PASSWORD }).to_string()).collect();
    Target::posts(addr, "/auth/v1/token?grant_type=password", &bodies, anon)
}

async fn serve(app: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        // With the peer address, so forge-auth's per-address rate limits apply as in production.
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    Ok(addr)
}
