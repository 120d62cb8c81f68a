//! `postgres_changes`: bindings at join, the capture leader's loop, and delivery of decoded
//! changes to each subscriber whose role and claims may SELECT the row.
//!
//! Authorization is batched per identity (a role and its claims): one pipelined round trip
//! per identity, table and batch of changes, whatever the number of subscribers sharing it.
//! Each identity has its own worker, so deliveries to one identity stay in commit order
//! while a slow or failing policy delays nobody else; each check has a statement timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use forge_core::rls::RequestContext;
use forge_core::{DbErrorKind, ForgeError, Principal};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::bus::Envelope;
use crate::cdc::{self, Change, ChangeKind};
use crate::error::{Error, ErrorKind};
use crate::protocol;
use crate::tenant::{Member, Note, Out, Tenant};

/// One `postgres_changes` binding of a channel.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    /// The id the join reply gave it; events name it in `ids`.
    pub(crate) id: u32,
    /// `None` for `*`.
    pub(crate) event: Option<ChangeKind>,
    pub(crate) schema: String,
    /// `None` for every table of the schema.
    pub(crate) table: Option<String>,
    pub(crate) filter: Option<cdc::filter::Filters>,
    /// The binding as the client sent it, echoed with its id in the join reply.
    pub(crate) echo: Map<String, Value>,
}

static NEXT_BINDING: AtomicU64 = AtomicU64::new(1);

impl Binding {
    /// Reads one binding of a join's `config.postgres_changes`.
    pub(crate) fn parse(value: &Value) -> Result<Binding, Error> {
        let invalid = |m: String| Error::new(ErrorKind::InvalidBinding, m);
        let Some(obj) = value.as_object() else {
            return Err(invalid("A postgres_changes binding must be an object".into()));
        };
        let text = |name: &str| -> Result<Option<String>, Error> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(invalid(format!("The postgres_changes `{name}` must be a string"))),
            }
        };
        let event = match text("event")?.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("*") => None,
            Some("INSERT") => Some(ChangeKind::Insert),
            Some("UPDATE") => Some(ChangeKind::Update),
            Some("DELETE") => Some(ChangeKind::Delete),
            Some(other) => return Err(invalid(format!("Unknown postgres_changes event: {other}"))),
        };
        let (schema, table) = match (text("schema")?, text("table")?) {
            (None, None) => {
                return Err(invalid(format!(
                    "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: {value}"
                )));
            }
            (schema, table) => (schema.unwrap_or_else(|| "public".into()), table.filter(|t| t != "*")),
        };
        let filter = match text("filter")? {
            None => None,
            Some(f) if f.is_empty() => None,
            Some(f) => Some(cdc::filter::parse(&f).map_err(invalid)?),
        };
        if filter.is_some() && table.is_none() {
            return Err(invalid("A postgres_changes filter needs a `table`".into()));
        }
        let id = (NEXT_BINDING.fetch_add(1, Ordering::Relaxed) % u64::from(u32::MAX)) as u32;
        Ok(Binding { id, event, schema, table, filter, echo: obj.clone() })
    }

    /// The binding as the join reply echoes it.
    pub(crate) fn reply(&self) -> Value {
        let mut out = self.echo.clone();
        out.insert("id".into(), Value::from(self.id));
        Value::Object(out)
    }

    fn matches(&self, change: &Change) -> bool {
        // realtime.messages is read for broadcasts, never sent as a change (as upstream).
        if &*change.schema == "realtime" && change.table.starts_with("messages") {
            return false;
        }
        // A change Supabase reports as an error (a table without a primary key) goes to every
        // subscriber of the table, whatever its filter.
        (self.schema == "*" || *self.schema == *change.schema)
            && self.table.as_deref().is_none_or(|t| t == &*change.table)
            && self.event.is_none_or(|e| e == change.kind)
            && (change.errors.is_some() || self.filter.as_ref().is_none_or(|f| f.matches(change)))
    }
}

/// Checks a join's bindings against the catalog: the table, and every column a filter
/// names, must exist. Returns, per binding, whether its table is in the publication.
pub(crate) async fn check_bindings(tenant: &Tenant, bindings: &[Binding], who: &Principal) -> Result<Vec<bool>, Error> {
    let pool = tenant.project.db().pool();
    let mut published = Vec::with_capacity(bindings.len());
    for b in bindings {
        let Some(table) = &b.table else {
            if b.schema != "*" {
                let exists: bool = sqlx::query_scalar("select exists (select 1 from pg_namespace where nspname = $1)")
                    .bind(&b.schema)
                    .fetch_one(pool)
                    .await
                    .map_err(|e| Error::Core(e.into()))?;
                if !exists {
                    return Err(Error::new(
                        ErrorKind::InvalidBinding,
                        format!("The schema {} does not exist", b.schema),
                    ));
                }
            }
            let any: bool = sqlx::query_scalar(
                "select exists (select 1 from pg_publication_tables where pubname = 'supabase_realtime' and ($1 = '*' or schemaname = $1))",
            )
            .bind(&b.schema)
            .fetch_one(pool)
            .await
            .map_err(|e| Error::Core(e.into()))?;
            published.push(any);
            continue;
        };
        // Each column, its type, and whether the subscriber's role may select it: a filter
        // may name only those it may (as upstream's subscription_check_filters), or a hidden
        // value could be probed with filters.
        let columns: Option<(Vec<String>, Vec<String>, Vec<bool>)> = sqlx::query_as(
            "select array_agg(a.attname::text order by a.attnum), array_agg(t.typname::text order by a.attnum),
                    array_agg(r.oid is null or has_column_privilege(r.oid, c.oid, a.attnum, 'SELECT') order by a.attnum)
               from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
               join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
               join pg_type t on t.oid = a.atttypid
               left join pg_roles r on r.rolname = $3 and $3 <> 'service_role'
              where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p', 'v', 'm', 'f')
              group by c.oid",
        )
        .bind(&b.schema)
        .bind(table)
        .bind(who.role())
        .fetch_optional(pool)
        .await
        .map_err(|e| Error::Core(e.into()))?;
        let Some(columns) = columns else {
            return Err(Error::new(
                ErrorKind::InvalidBinding,
                format!("The table {}.{} does not exist", b.schema, table),
            ));
        };
        if let Some(filter) = &b.filter {
            let (names, types, selectable) = columns;
            for c in filter.columns() {
                if !names.iter().any(|have| have == c) {
                    return Err(Error::new(
                        ErrorKind::InvalidBinding,
                        format!(
                            "Error parsing `filter` params: the column {c} does not exist in {}.{}",
                            b.schema, table
                        ),
                    ));
                }
            }
            let columns: Vec<cdc::Column> = names
                .into_iter()
                .zip(types)
                .zip(selectable)
                .filter(|(_, may)| *may)
                .map(|((name, type_name), _)| cdc::Column { name, type_name })
                .collect();
            filter.validate(&columns).map_err(|m| Error::new(ErrorKind::InvalidBinding, m))?;
        }
        let in_publication: bool = sqlx::query_scalar(
            "select exists (select 1 from pg_publication_tables where pubname = 'supabase_realtime' and schemaname = $1 and tablename = $2)",
        )
        .bind(&b.schema)
        .bind(table)
        .fetch_one(pool)
        .await
        .map_err(|e| Error::Core(e.into()))?;
        published.push(in_publication);
    }
    Ok(published)
}

/// Waits (up to ten seconds) until the project's replication slot exists, whichever node
/// made it, so that a change committed after a join is never one the slot did not see.
pub(crate) async fn wait_until_capturing(tenant: &Tenant) -> Result<(), Error> {
    if tenant.capturing.load(Ordering::Relaxed) || !tenant.realtime.config().changes {
        return Ok(());
    }
    let pool = tenant.project.db().pool();
    let slot = cdc::slot::slot_name(pool).await.map_err(Error::internal)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // A slot being created is listed before it is consistent; its confirmed position is
        // set once it is, and only changes committed after that are decoded.
        let exists: bool = sqlx::query_scalar(
            "select exists (select 1 from pg_replication_slots where slot_name = $1 and confirmed_flush_lsn is not null)",
        )
            .bind(&slot)
            .fetch_one(pool)
            .await
            .map_err(|e| Error::Core(e.into()))?;
        if exists {
            tenant.capturing.store(true, Ordering::Relaxed);
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "Realtime was unable to start capturing changes of the project database",
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `system` message Supabase sends once a channel's bindings are (or are not)
/// subscribed: whether all are, and the message.
pub(crate) fn subscribed_message(bindings: &[Binding], published: &[bool]) -> (bool, String) {
    let missing = bindings.iter().zip(published).find(|(_, p)| !**p).map(|(b, _)| b);
    match missing {
        None => (true, "Subscribed to PostgreSQL".to_owned()),
        Some(b) => (
            false,
            format!(
                "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: [schema: {}, table: {}, filters: [{}]]",
                b.schema,
                b.table.as_deref().unwrap_or("*"),
                b.echo.get("filter").and_then(Value::as_str).unwrap_or(""),
            ),
        ),
    }
}

/// Per-identity delivery workers of one project.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    workers: Mutex<HashMap<String, mpsc::Sender<Work>>>,
    /// The worker that checks every identity's share of a batch together.
    bulk: Mutex<Option<mpsc::Sender<Shares>>>,
    /// Identities whose batched check failed or ran long, checked alone until the instant.
    suspects: Mutex<HashMap<String, Instant>>,
    /// Identity checks made together with others, and alone.
    pub(crate) checked_together: AtomicU64,
    pub(crate) checked_alone: AtomicU64,
}

/// A batch of changes as the identity workers share it, with each change's `data` serialized
/// once for every subscriber who sees all of it.
#[derive(Debug)]
struct Batch {
    changes: Vec<Change>,
    /// Per change: `data` with every column, and a DELETE's `data` cut to the primary key.
    texts: Vec<[std::sync::OnceLock<Arc<str>>; 2]>,
}

impl Batch {
    fn new(changes: Vec<Change>) -> Self {
        let texts = changes.iter().map(|_| Default::default()).collect();
        Batch { changes, texts }
    }

    /// The `data` of change `i` as `principal` may see it, as JSON text: shared by everyone
    /// who may select every column, built for this subscriber otherwise.
    fn data(&self, i: usize, principal: &Principal, selectable: Option<&[String]>) -> Arc<str> {
        let change = &self.changes[i];
        let all = selectable.is_none_or(|cols| change.columns.iter().all(|c| cols.contains(&c.name)));
        if !all {
            return Arc::from(payload_data(change, principal, selectable).to_string());
        }
        let keyed = change.kind == ChangeKind::Delete && !matches!(principal, Principal::Service(_));
        self.texts[i][usize::from(keyed)]
            .get_or_init(|| Arc::from(payload_data(change, principal, None).to_string()))
            .clone()
    }
}

impl std::ops::Deref for Batch {
    type Target = [Change];

    fn deref(&self) -> &[Change] {
        &self.changes
    }
}

/// Per change index: the members it matched, with their matching binding ids.
type Targets = Vec<(usize, Vec<(Arc<Member>, Vec<u32>)>)>;

/// Changes for one identity: which members get which changes, under which binding ids.
#[derive(Debug)]
struct Work {
    changes: Arc<Batch>,
    principal: Principal,
    targets: Targets,
}

/// Hands decoded changes to the subscribers on this node.
pub(crate) fn dispatch(tenant: &Arc<Tenant>, mut changes: Vec<Change>) {
    // Exactly once: what a new leader re-sends (published, not yet confirmed, by the last
    // one) is dropped here.
    {
        let mut delivered = tenant.delivered.lock().unwrap_or_else(|e| e.into_inner());
        changes.retain(|c| c.position > *delivered);
        if let Some(last) = changes.last() {
            *delivered = last.position;
        }
    }
    if changes.is_empty() {
        return;
    }
    let changes = Arc::new(Batch::new(changes));
    // Messages written with realtime.send and realtime.broadcast_changes become broadcasts.
    for change in changes.iter() {
        if &*change.schema == "realtime" && change.table.starts_with("messages") && change.kind == ChangeKind::Insert {
            broadcast_message(tenant, change);
        }
    }
    let members = tenant.change_members();
    if members.is_empty() {
        return;
    }
    // Each member's identity (its role and claims), read once for the whole batch.
    let identities: Vec<(String, Principal)> = members
        .iter()
        .map(|m| {
            let principal = m.principal();
            (format!("{}\u{0}{}", principal.role(), principal.claims_json()), principal)
        })
        .collect();
    let mut by_identity: HashMap<String, Work> = HashMap::new();
    for (i, change) in changes.iter().enumerate() {
        for (m, (key, principal)) in members.iter().zip(&identities) {
            let ids: Vec<u32> = m.bindings.iter().filter(|b| b.matches(change)).map(|b| b.id).collect();
            if ids.is_empty() {
                continue;
            }
            if !by_identity.contains_key(key) {
                let work = Work { changes: changes.clone(), principal: principal.clone(), targets: Vec::new() };
                by_identity.insert(key.clone(), work);
            }
            let Some(work) = by_identity.get_mut(key) else { continue };
            match work.targets.last_mut() {
                Some((at, list)) if *at == i => list.push((m.clone(), ids)),
                _ => work.targets.push((i, vec![(m.clone(), ids)])),
            }
        }
    }
    let items: Shares = by_identity.into_iter().collect();
    let mut bulk = tenant.changes.bulk.lock().unwrap_or_else(|e| e.into_inner());
    let items = match bulk.as_ref() {
        Some(tx) => match tx.try_send(items) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(items)) => {
                for (_, work) in items {
                    fell_behind(work);
                }
                return;
            }
            Err(mpsc::error::TrySendError::Closed(items)) => items,
        },
        None => items,
    };
    let (tx, rx) = mpsc::channel(QUEUED_BATCHES);
    let _ = tx.try_send(items);
    *bulk = Some(tx);
    tokio::spawn(bulk_worker(Arc::downgrade(tenant), rx));
}

/// The most batches waiting for their checks, for everyone together or for one identity
/// alone; past it, a batch is dropped for those it was for, and they are told.
const QUEUED_BATCHES: usize = 256;

/// Tells the members of `work` that delivery fell too far behind and changes were dropped.
fn fell_behind(work: Work) {
    let mut told = std::collections::HashSet::new();
    for (_, members) in work.targets {
        for (m, _) in members {
            if told.insert(m.id) {
                let message = "Realtime fell behind checking changes for this subscription; some were dropped";
                m.system("postgres_changes", false, message);
            }
        }
    }
}

/// A batch's shares, one per identity (its key and its work).
type Shares = Vec<(String, Work)>;

/// A table's changes that need checking (indexes into the batch) and who needs them
/// (indexes into the shares).
type TableChecks = HashMap<(Arc<str>, Arc<str>), (Vec<usize>, Vec<usize>)>;

/// Hands one identity's share of a batch to its own worker (checked alone, in order).
fn to_worker(tenant: &Arc<Tenant>, key: String, work: Work) {
    let mut workers = tenant.changes.workers.lock().unwrap_or_else(|e| e.into_inner());
    let work = match workers.get(&key) {
        Some(tx) => match tx.try_send(work) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(work)) => return fell_behind(work),
            Err(mpsc::error::TrySendError::Closed(work)) => work,
        },
        None => work,
    };
    let (tx, rx) = mpsc::channel(QUEUED_BATCHES);
    let _ = tx.try_send(work);
    workers.insert(key.clone(), tx);
    tokio::spawn(identity_worker(Arc::downgrade(tenant), key, rx));
}

/// How long an identity whose batched check failed is checked alone.
const SUSPECT_FOR: Duration = Duration::from_secs(600);

/// The most identities one batched check covers.
const CHUNK: usize = 100;

/// Checks each batch for all identities together, batch after batch (so each identity's
/// changes stay in commit order). Identities under suspicion go to their own workers, at
/// this point in the order; so do those of a batched check that fails or runs long, which
/// then stay under suspicion for a while.
async fn bulk_worker(tenant: Weak<Tenant>, mut rx: mpsc::Receiver<Shares>) {
    while let Some(items) = rx.recv().await {
        let Some(t) = tenant.upgrade() else { return };
        let now = Instant::now();
        let (alone, together): (Vec<_>, Vec<_>) = {
            let mut suspects = t.changes.suspects.lock().unwrap_or_else(|e| e.into_inner());
            suspects.retain(|_, until| *until > now);
            items.into_iter().partition(|(key, _)| suspects.contains_key(key))
        };
        for (key, work) in alone {
            to_worker(&t, key, work);
        }
        deliver_together(&t, together).await;
    }
}

/// One batch for many identities: one batched check per table and chunk of identities, then
/// each identity's visible changes sent.
async fn deliver_together(tenant: &Arc<Tenant>, items: Shares) {
    // Per table, the changes anyone needs checked, and who needs them.
    let mut tables: TableChecks = HashMap::new();
    for (n, (_, work)) in items.iter().enumerate() {
        if matches!(work.principal, Principal::Service(_)) {
            continue;
        }
        for (i, _) in &work.targets {
            let c = &work.changes[*i];
            if !needs_check(c) {
                continue;
            }
            let (indexes, who) = tables.entry((c.schema.clone(), c.table.clone())).or_default();
            if !indexes.contains(i) {
                indexes.push(*i);
            }
            if who.last() != Some(&n) {
                who.push(n);
            }
        }
    }
    let mut verdicts: Vec<HashMap<usize, Verdict>> = items.iter().map(|_| HashMap::new()).collect();
    let mut failed = vec![false; items.len()];
    let mut checks = Vec::new();
    for ((schema, table), (mut indexes, who)) in tables {
        indexes.sort_unstable();
        for chunk in who.chunks(CHUNK) {
            checks.push((schema.clone(), table.clone(), indexes.clone(), chunk.to_vec()));
        }
    }
    let results = futures_util::future::join_all(
        checks
            .iter()
            .map(|(schema, table, indexes, chunk)| check_together(tenant, schema, table, indexes, chunk, &items)),
    )
    .await;
    for ((_, _, indexes, chunk), per_identity) in checks.iter().zip(results) {
        for (n, checked) in chunk.iter().zip(per_identity) {
            match checked {
                Some(checked) => {
                    for (pos, i) in indexes.iter().enumerate() {
                        verdicts[*n].insert(*i, checked.for_position(pos + 1));
                    }
                }
                None => failed[*n] = true,
            }
        }
    }
    let until = Instant::now() + SUSPECT_FOR;
    for ((key, work), (verdicts, failed)) in items.into_iter().zip(verdicts.into_iter().zip(failed)) {
        if failed {
            tenant.changes.suspects.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), until);
            to_worker(tenant, key, work);
        } else {
            send_visible(work, &verdicts);
        }
    }
}

/// What the batched check said about one identity.
#[derive(Debug)]
enum Checked {
    /// The positions (1-based) of the visible rows, and the selectable columns.
    Rows(Vec<i32>, Arc<Vec<String>>),
    /// Its policy raised.
    Raised,
    /// Its policy ran past the check's timeout.
    TimedOut,
}

impl Checked {
    fn for_position(&self, pos: usize) -> Verdict {
        match self {
            Checked::Rows(seen, columns) if seen.contains(&(pos as i32)) => Verdict::Visible(columns.clone()),
            Checked::Rows(..) => Verdict::Hidden,
            Checked::Raised => Verdict::Failed("The row-level security check of a change failed".to_owned()),
            Checked::TimedOut => Verdict::Failed("The row-level security check of a change timed out".to_owned()),
        }
    }
}

/// How long one identity's check may take inside a batched check before that identity is
/// checked alone (with the full `check_timeout`): a normal policy takes well under this.
const TOGETHER_TIMEOUT: Duration = Duration::from_millis(100);

/// Checks one table's changes for the identities `chunk` (indexes into `items`) in one
/// transaction and one round trip: per identity a savepoint, its role and claims, the check
/// (a prepared statement, so plans are reused) and a rollback to the savepoint, all
/// pipelined. An identity whose check runs past [`TOGETHER_TIMEOUT`], or whose settings do
/// not apply, is `None`: it is checked alone.
async fn check_together(
    tenant: &Tenant,
    schema: &str,
    table: &str,
    indexes: &[usize],
    chunk: &[usize],
    items: &[(String, Work)],
) -> Vec<Option<Checked>> {
    let alone = || chunk.iter().map(|_| None).collect::<Vec<_>>();
    let Some((_, first)) = chunk.first().map(|n| &items[*n]) else { return Vec::new() };
    let changes = &first.changes;
    let keys = check_keys(changes, indexes);
    let relation = format!("{}.{}", quote(schema), quote(table));
    let sql = check_sql(&relation, &changes[indexes[0]].primary_key);
    let limit = tenant.realtime.config().check_timeout.min(TOGETHER_TIMEOUT);
    let timeout = limit.as_millis().max(1).to_string();
    let ctx = RequestContext::new(Principal::service(), http::Method::GET, "/realtime/v1/websocket");
    let run = async {
        let tx = forge_core::rls::begin(tenant.project.db(), &ctx).await?;
        let client = tx.client();
        let (savepoint, set, check, back) = futures_util::future::try_join4(
            tx.prepare("savepoint forge_check"),
            tx.prepare(
                "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true), \
                        set_config('request.jwt.claim.sub', $3, true), set_config('request.jwt.claim.role', $1, true), \
                        set_config('statement_timeout', $4, true)",
            ),
            tx.prepare(&sql),
            tx.prepare("rollback to savepoint forge_check"),
        )
        .await?;
        let identities: Vec<(String, String, String)> = chunk
            .iter()
            .map(|n| {
                let p = &items[*n].1.principal;
                (p.role().to_owned(), p.claims_json(), p.claims().sub().unwrap_or_default().to_owned())
            })
            .collect();
        // Every statement of every identity goes out before the first answer is read.
        let per_identity = identities.iter().map(|(role, claims, sub)| {
            let (savepoint, set, check, back) = (&savepoint, &set, &check, &back);
            let (timeout, keys, relation) = (&timeout, &keys, &relation);
            async move {
                let (_, settings, rows, _) = futures_util::future::join4(
                    client.execute(savepoint, &[]),
                    client.execute(set, &[role, claims, sub, timeout]),
                    client.query(check, &[keys, relation]),
                    client.execute(back, &[]),
                )
                .await;
                match (settings, rows) {
                    (Err(_), _) => None,
                    (Ok(_), Ok(rows)) => Some(checked_rows(&rows)),
                    (Ok(_), Err(e)) => match e.code().map(|c| c.code()) {
                        Some("42501") => Some(Checked::Rows(Vec::new(), Arc::new(Vec::new()))),
                        Some("57014") | Some("25P02") | None => None,
                        Some(_) => Some(Checked::Raised),
                    },
                }
            }
        });
        let results = futures_util::future::join_all(per_identity).await;
        tx.rollback().await?;
        tenant
            .changes
            .checked_together
            .fetch_add(results.iter().filter(|r| r.is_some()).count() as u64, Ordering::Relaxed);
        Ok::<_, ForgeError>(results)
    };
    let guard = tenant.realtime.config().check_timeout + limit * chunk.len() as u32;
    match tokio::time::timeout(guard, run).await {
        Ok(Ok(results)) => results,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, schema, table, "realtime: a batched check failed; checking its identities alone");
            alone()
        }
        Err(_) => alone(),
    }
}

/// Whether a subscriber's policies must be asked about `change`: not a DELETE (its row is
/// gone) and not an error change (it carries no row; see `payload_data`).
fn needs_check(change: &Change) -> bool {
    change.kind != ChangeKind::Delete && change.errors.is_none()
}

/// The primary keys of `indexes`' rows as the check's `$1`: one JSON object each.
fn check_keys(changes: &[Change], indexes: &[usize]) -> Value {
    let key = &changes[indexes[0]].primary_key;
    indexes
        .iter()
        .map(|i| {
            let record = changes[*i].record.as_ref();
            key.iter().map(|k| (k.clone(), record.and_then(|r| r.get(k)).cloned().unwrap_or(Value::Null))).collect()
        })
        .map(Value::Object)
        .collect()
}

/// What the check's rows say: the positions seen and the columns the role may select.
fn checked_rows(rows: &[tokio_postgres::Row]) -> Checked {
    let seen: Vec<i32> = rows.iter().filter_map(|r| r.try_get::<_, i32>(0).ok()).collect();
    let columns = rows.first().and_then(|r| r.try_get::<_, Vec<String>>(1).ok()).unwrap_or_default();
    Checked::Rows(seen, Arc::new(columns))
}

/// The check of one table's changes under the current role and claims: the positions of
/// the rows (`$1`, primary keys as JSON) a SELECT returns, and the columns (of `$2`, the
/// table) the role may select. Identifiers are the catalog's, quoted.
fn check_sql(relation: &str, key: &[String]) -> String {
    let on = key.iter().map(|k| format!("t.{0} = k.{0}", quote(k))).collect::<Vec<_>>().join(" and ");
    format!(
        "select (k.ordinality)::int4, array(select a.attname::text from pg_attribute a \
             where a.attrelid = to_regclass($2) and a.attnum > 0 and not a.attisdropped \
               and has_column_privilege(a.attrelid, a.attnum, 'SELECT')) \
         from jsonb_populate_recordset(null::{relation}, $1::jsonb) with ordinality as k \
         where exists (select 1 from {relation} as t where {on})"
    )
}

/// A broadcast from `realtime.messages` (realtime.send, realtime.broadcast_changes).
fn broadcast_message(tenant: &Tenant, change: &Change) {
    let Some(record) = &change.record else { return };
    if record.get("extension").and_then(Value::as_str) != Some("broadcast") {
        return;
    }
    let (Some(topic), Some(event)) =
        (record.get("topic").and_then(Value::as_str), record.get("event").and_then(Value::as_str))
    else {
        return;
    };
    // realtime.send_binary's bytes arrive as bytea's text form, `\x0a1b...`.
    let binary = record.get("binary_payload").and_then(Value::as_str).and_then(|hex| {
        let hex = hex.strip_prefix("\\x")?;
        (0..hex.len())
            .step_by(2)
            .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
            .collect::<Option<Vec<u8>>>()
    });
    let body = match binary {
        Some(bytes) => protocol::Body::Binary(bytes.into()),
        None => protocol::Body::Json(record.get("payload").cloned().unwrap_or(Value::Null)),
    };
    let private = record.get("private").and_then(Value::as_bool).unwrap_or(false);
    let meta = record.get("id").map(|id| json!({ "id": id }));
    tenant.deliver_broadcast(&format!("realtime:{topic}"), event, &body, private, None, meta.as_ref());
}

/// Delivers one identity's changes in order, then exits once idle.
async fn identity_worker(tenant: Weak<Tenant>, key: String, mut rx: mpsc::Receiver<Work>) {
    loop {
        let work = match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(work)) => work,
            Ok(None) => return,
            Err(_) => {
                let Some(t) = tenant.upgrade() else { return };
                let mut workers = t.changes.workers.lock().unwrap_or_else(|e| e.into_inner());
                match rx.try_recv() {
                    Ok(work) => {
                        drop(workers);
                        work
                    }
                    Err(_) => {
                        workers.remove(&key);
                        return;
                    }
                }
            }
        };
        let Some(t) = tenant.upgrade() else { return };
        deliver(&t, work).await;
    }
}

/// Checks one identity's changes against the database and sends the visible ones.
async fn deliver(tenant: &Tenant, work: Work) {
    let visible = visibility(tenant, &work.principal, &work.changes, &work.targets).await;
    if !visible.is_empty() {
        tenant.changes.checked_alone.fetch_add(1, Ordering::Relaxed);
    }
    send_visible(work, &visible);
}

/// Sends one identity's changes as `visible` decided (a change with no verdict needed none).
fn send_visible(work: Work, visible: &HashMap<usize, Verdict>) {
    let Work { changes, principal, targets } = work;
    for (i, members) in targets {
        let columns = match visible.get(&i) {
            Some(Verdict::Visible(columns)) => Some(columns),
            Some(Verdict::Hidden) => continue,
            Some(Verdict::Failed(message)) => {
                for (m, _) in &members {
                    m.system("postgres_changes", false, message);
                }
                continue;
            }
            None => None,
        };
        let data = changes.data(i, &principal, columns.map(|c| c.as_slice()));
        for (m, ids) in members {
            m.send(Out::Frame(protocol::encode_change(m.vsn, &m.topic, &ids, &data)));
        }
    }
}

/// Supabase's `data`: `old_record` omitted for INSERT and `record` for DELETE, and of the
/// columns only those `selectable` by the subscriber's role (all when `None`). A DELETE's old
/// row is cut to its primary key for anyone but the service role (RLS cannot be asked about
/// a row that is gone).
fn payload_data(change: &Change, principal: &Principal, selectable: Option<&[String]>) -> Value {
    if let Some(errors) = &change.errors {
        // As Supabase's apply_rls: an error change is sent without its row.
        let mut data = json!({
            "schema": &*change.schema,
            "table": &*change.table,
            "commit_timestamp": null,
            "type": change.kind,
            "columns": [],
            "errors": errors,
        });
        if change.kind != ChangeKind::Delete {
            data["record"] = json!({});
        }
        if change.kind != ChangeKind::Insert {
            data["old_record"] = json!({});
        }
        return data;
    }
    let mut data = Map::new();
    data.insert("schema".into(), Value::from(&*change.schema));
    data.insert("table".into(), Value::from(&*change.table));
    data.insert("commit_timestamp".into(), Value::from(change.commit_timestamp.clone()));
    data.insert("type".into(), serde_json::to_value(change.kind).unwrap_or(Value::Null));
    let allowed = |name: &str| selectable.is_none_or(|cols| cols.iter().any(|c| c == name));
    let columns: Vec<&cdc::Column> = change.columns.iter().filter(|c| allowed(&c.name)).collect();
    data.insert("columns".into(), serde_json::to_value(columns).unwrap_or(Value::Null));
    if change.kind != ChangeKind::Delete {
        let mut record = change.record.clone().unwrap_or_default();
        record.retain(|k, _| allowed(k));
        data.insert("record".into(), Value::Object(record));
    }
    if change.kind != ChangeKind::Insert {
        let mut old = change.old_record.clone().unwrap_or_default();
        old.retain(|k, _| allowed(k));
        if change.kind == ChangeKind::Delete
            && !matches!(principal, Principal::Service(_))
            && !change.primary_key.is_empty()
        {
            old.retain(|k, _| change.primary_key.iter().any(|p| p == k));
        }
        data.insert("old_record".into(), Value::Object(old));
    }
    data.insert("errors".into(), change.errors.as_ref().map_or(Value::Null, |e| json!(e)));
    Value::Object(data)
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// What a subscriber's check decided about one change.
#[derive(Debug)]
enum Verdict {
    /// Its policies hide the row.
    Hidden,
    /// It may see the row, and of its columns those it may select.
    Visible(Arc<Vec<String>>),
    /// The check failed or timed out: the message for that subscription.
    Failed(String),
}

/// Which of the target changes `principal` may see: one query per table. A DELETE is not
/// checked; the service role sees everything.
async fn visibility(
    tenant: &Tenant,
    principal: &Principal,
    changes: &[Change],
    targets: &Targets,
) -> HashMap<usize, Verdict> {
    let mut out = HashMap::new();
    if matches!(principal, Principal::Service(_)) {
        return out;
    }
    let mut by_table: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, _) in targets {
        let c = &changes[*i];
        if needs_check(c) {
            by_table.entry((&c.schema, &c.table)).or_default().push(*i);
        }
    }
    let timeout = tenant.realtime.config().check_timeout;
    for ((schema, table), indexes) in by_table {
        let keys = check_keys(changes, &indexes);
        let relation = format!("{}.{}", quote(schema), quote(table));
        let sql = check_sql(&relation, &changes[indexes[0]].primary_key);
        let ctx = RequestContext::new(principal.clone(), http::Method::GET, "/realtime/v1/websocket")
            .with_setting("statement_timeout", timeout.as_millis().max(1).to_string());
        let db = tenant.project.db();
        let result = tokio::time::timeout(
            timeout + Duration::from_secs(1),
            forge_core::rls::try_once(db, &ctx, &sql, &[&keys, &relation]),
        )
        .await
        .unwrap_or_else(|_| Err(ForgeError::internal("timed out")));
        let checked = match result {
            Ok(rows) => checked_rows(&rows),
            Err(e) if e.db_kind() == Some(DbErrorKind::InsufficientPrivilege) => {
                Checked::Rows(Vec::new(), Arc::new(Vec::new()))
            }
            Err(e) => {
                tracing::warn!(error = %e, schema, table, role = principal.role(), "realtime RLS check failed");
                if e.db_kind() == Some(DbErrorKind::QueryCanceled) { Checked::TimedOut } else { Checked::Raised }
            }
        };
        for (pos, i) in indexes.iter().enumerate() {
            out.insert(*i, checked.for_position(pos + 1));
        }
    }
    out
}

/// The most bytes of changes one bus envelope carries.
const ENVELOPE_BYTES: usize = 256 * 1024;

/// Runs on every node for as long as the project has realtime state: tries to become the
/// capture leader (an advisory lock), and while it is, reads the slot, publishes each batch
/// to every node and only then confirms it.
pub(crate) async fn capture(tenant: Weak<Tenant>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let Some(t) = tenant.upgrade() else { return };
        let pool = t.project.db().pool().clone();
        drop(t);
        match cdc::leader::try_lead(&pool).await {
            Ok(Some(mut guard)) => {
                backoff = Duration::from_millis(500);
                if let Err(e) = lead(&tenant, &mut guard).await {
                    tracing::warn!(error = %e, "realtime change capture stopped; retrying");
                }
                guard.release().await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "realtime change capture could not reach the database");
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

async fn lead(
    tenant: &Weak<Tenant>,
    guard: &mut cdc::leader::LeaderGuard,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (pool, bus, node, project, interval) = {
        let t = tenant.upgrade().ok_or("project gone")?;
        (
            t.project.db().pool().clone(),
            t.realtime.0.bus.clone(),
            t.realtime.node(),
            Arc::<str>::from(t.reference()),
            t.realtime.config().poll_interval,
        )
    };
    let slot = cdc::slot::slot_name(&pool).await?;
    let mut maintained: Option<std::time::Instant> = None;
    let mut capture = cdc::slot::Capture::open(&pool, &slot).await?;
    if capture.lost {
        let payload = serde_json::to_vec(&Note::ChangesLost)?;
        bus.publish(Envelope { origin: node, project: project.clone(), payload: Bytes::from(payload) }).await?;
    }
    if let Some(t) = tenant.upgrade() {
        t.capturing.store(true, Ordering::Relaxed);
    }
    tracing::info!(slot, project = &*project, "realtime change capture leads");
    loop {
        if tenant.strong_count() == 0 {
            return Ok(());
        }
        if !guard.is_alive().await {
            return Err("lost the capture lock".into());
        }
        // The leader keeps realtime.messages' daily partitions: tomorrow's made, old ones gone;
        // and reports how much WAL the slot holds.
        if maintained.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
            maintained = Some(std::time::Instant::now());
            match cdc::slot::lag_bytes(&pool, &slot).await {
                Ok(lag) => {
                    if let Some(t) = tenant.upgrade() {
                        t.slot_lag.store(lag, Ordering::Relaxed);
                    }
                    tracing::info!(slot, lag_bytes = lag, "realtime replication slot lag");
                }
                Err(e) => tracing::warn!(error = %e, "realtime: reading the slot's lag failed"),
            }
            if let Err(e) = sqlx::query("select realtime.forge_maintain_partitions()").execute(&pool).await {
                tracing::warn!(error = %e, "realtime: maintaining realtime.messages' partitions failed");
            }
        }
        let batch = capture.next_batch(1000).await?;
        let idle = batch.changes.is_empty();
        for chunk in chunks(batch.changes) {
            let payload = serde_json::to_vec(&Note::Changes { changes: chunk })?;
            bus.publish(Envelope { origin: node, project: project.clone(), payload: Bytes::from(payload) }).await?;
        }
        capture.confirm(batch.confirm).await?;
        if idle {
            tokio::time::sleep(interval).await;
        }
    }
}

/// Splits changes into envelopes of about [`ENVELOPE_BYTES`], in order.
fn chunks(changes: Vec<Change>) -> Vec<Vec<Change>> {
    let mut out: Vec<Vec<Change>> = Vec::new();
    let mut size = 0;
    for c in changes {
        let bytes = serde_json::to_vec(&c).map_or(0, |v| v.len());
        if out.is_empty() || size + bytes > ENVELOPE_BYTES {
            out.push(Vec::new());
            size = 0;
        }
        size += bytes;
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}
