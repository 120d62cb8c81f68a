//! A project's lifecycle: create (a database cloned from the template, keys, a record), pause
//! (its pools closed; requests answer 503 `project_paused`), restore, transfer to another
//! organization, and delete (database, replication slots, stored files, keys and record).

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use forge_core::ProjectRef;
use object_store::ObjectStore as _;
use uuid::Uuid;

use crate::platform::cluster::{Cluster, owner_role_name, project_database_name};
use crate::platform::error::{Error, Result};
use crate::platform::store::{Actor, Organization, ProjectRow, Status};
use crate::platform::{Platform, keys};

/// A new project's ref: 20 lower-case letters, as Supabase's.
pub fn new_ref() -> ProjectRef {
    let mut bytes = [0u8; 20];
    SystemRandom::new().fill(&mut bytes).expect("the system random source");
    let text: String = bytes.iter().map(|b| char::from(b'a' + b % 26)).collect();
    ProjectRef::new(&text).expect("lower-case letters make a valid ref")
}

impl Platform {
    /// The cluster with the fewest projects.
    async fn least_loaded(&self) -> Result<Cluster> {
        let loads = self.0.store.cluster_loads().await?;
        let best = loads.iter().min_by_key(|(id, n)| (*n, id.clone())).map(|(id, _)| id.clone());
        best.and_then(|id| self.0.registry.cluster(&id))
            .ok_or_else(|| Error::internal("no cluster to place a project on"))
    }

    /// Creates a project in `org`.
    #[tracing::instrument(skip_all, fields(organization = %org.slug))]
    pub async fn create_project(
        &self,
        org: &Organization,
        name: &str,
        region: &str,
        actor: &Actor,
    ) -> Result<ProjectRow> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 256 {
            return Err(Error::invalid("A project's name must have 1 to 256 characters"));
        }
        let store = &self.0.store;
        let reference = new_ref();
        let cluster = self.least_loaded().await?;
        let database = project_database_name(&self.0.database, reference.as_str());
        let region = if region.trim().is_empty() { "local" } else { region.trim() };
        let mut tx = store.pool().begin().await?;
        store
            .insert_project(
                &mut *tx,
                reference.as_str(),
                org.id,
                name,
                Status::ComingUp,
                Some(&cluster.id),
                Some(&database),
                region,
            )
            .await?;
        keys::create(&mut tx, store, &self.0.master, &reference, &self.0.registry.config().verify, actor.user_id)
            .await?;
        store
            .audit(
                &mut *tx,
                actor,
                "project.create",
                Some(org.id),
                Some(reference.as_str()),
                serde_json::json!({ "name": name, "cluster": cluster.id }),
            )
            .await?;
        tx.commit().await?;
        let role = owner_role_name(reference.as_str());
        let made = async {
            cluster.create_database(&database, &self.0.template).await?;
            let password = keys::new_owner_password();
            cluster.create_owner_role(&database, &role, &password).await?;
            keys::put_owner_password(store, &self.0.master, reference.as_str(), &password).await
        };
        if let Err(e) = made.await {
            tracing::error!(project = %reference, error = %e, "creating the project's database failed");
            let _ = cluster.drop_database(&database).await;
            let _ = cluster.drop_owner_role(&role).await;
            let _ = store.delete_project(reference.as_str()).await;
            return Err(e);
        }
        // The template was migrated by this build at start-up.
        store.set_migrations(reference.as_str(), &crate::platform::schema::project_migrations()).await?;
        store.set_status(store.pool(), reference.as_str(), Status::Active).await?;
        tracing::info!(project = %reference, cluster = %cluster.id, "created a project");
        store.project(reference.as_str()).await?.ok_or_else(|| Error::internal("the new project vanished"))
    }

    /// Pauses a project: every node closes its pools and answers 503 until it is restored.
    pub async fn pause_project(&self, row: &ProjectRow, actor: &Actor) -> Result<()> {
        self.managed(row)?;
        match row.status() {
            Status::Active => {}
            Status::Paused => return Ok(()),
            _ => return Err(Error::conflict("Only an active project can be paused")),
        }
        self.set_status(row, Status::Paused, actor, "project.pause").await?;
        self.close_here(&row.reference).await;
        Ok(())
    }

    /// Restores a paused project.
    pub async fn restore_project(&self, row: &ProjectRow, actor: &Actor) -> Result<()> {
        self.managed(row)?;
        match row.status() {
            Status::Paused => {}
            Status::Active => return Ok(()),
            _ => return Err(Error::conflict("Only a paused project can be restored")),
        }
        self.set_status(row, Status::Active, actor, "project.restore").await?;
        self.0.registry.forget(&row.reference).await;
        Ok(())
    }

    /// Moves a project to another organization.
    pub async fn transfer_project(&self, row: &ProjectRow, to: &Organization, actor: &Actor) -> Result<()> {
        let store = &self.0.store;
        let mut tx = store.pool().begin().await?;
        store.transfer(&mut *tx, &row.reference, to.id).await?;
        let details = serde_json::json!({ "from": row.organization_slug, "to": to.slug });
        store
            .audit(
                &mut *tx,
                actor,
                "project.transfer",
                Some(row.organization_id),
                Some(&row.reference),
                details.clone(),
            )
            .await?;
        store.audit(&mut *tx, actor, "project.transfer", Some(to.id), Some(&row.reference), details).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a project: its database (and the replication slots on it), its files, its
    /// keys and its record. The audit log keeps that it happened.
    #[tracing::instrument(skip_all, fields(project = %row.reference))]
    pub async fn delete_project(&self, row: &ProjectRow, actor: &Actor) -> Result<()> {
        let (cluster, database) = self.managed(row)?;
        let store = &self.0.store;
        store.set_status(store.pool(), &row.reference, Status::Removing).await?;
        self.close_here(&row.reference).await;
        cluster.drop_database(&database).await?;
        cluster.drop_owner_role(&owner_role_name(&row.reference)).await?;
        self.delete_files(&row.reference).await?;
        let mut tx = store.pool().begin().await?;
        store
            .audit(
                &mut *tx,
                actor,
                "project.delete",
                Some(row.organization_id),
                Some(&row.reference),
                serde_json::json!({ "name": row.name }),
            )
            .await?;
        sqlx::query("delete from forge.projects where ref = $1").bind(&row.reference).execute(&mut *tx).await?;
        tx.commit().await?;
        tracing::info!("deleted a project");
        Ok(())
    }

    /// Removes every stored object under the project's prefix.
    async fn delete_files(&self, reference: &str) -> Result<()> {
        let Some(objects) = &self.0.objects else {
            return Ok(());
        };
        use futures_util::StreamExt as _;
        let prefix = object_store::path::Path::from(reference);
        let locations = objects.list(Some(&prefix)).map(|meta| meta.map(|m| m.location)).boxed();
        let mut deleted = objects.delete_stream(locations);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::internal(format!("deleting the project's files: {e}"))),
            }
        }
        Ok(())
    }

    /// The cluster and database of a project the control plane manages (not the default one).
    fn managed(&self, row: &ProjectRow) -> Result<(Cluster, String)> {
        match (row.cluster_id.as_deref(), row.database.as_deref()) {
            (Some(c), Some(d)) => {
                let cluster =
                    self.0.registry.cluster(c).ok_or_else(|| Error::internal(format!("unknown cluster {c}")))?;
                Ok((cluster, d.to_owned()))
            }
            _ => Err(Error::conflict(
                "The default project is the server's configured database; it cannot be paused, restored or deleted here",
            )),
        }
    }

    async fn set_status(&self, row: &ProjectRow, status: Status, actor: &Actor, action: &str) -> Result<()> {
        let store = &self.0.store;
        let mut tx = store.pool().begin().await?;
        store.set_status(&mut *tx, &row.reference, status).await?;
        store
            .audit(&mut *tx, actor, action, Some(row.organization_id), Some(&row.reference), serde_json::json!({}))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes what this node holds of a project: its pools and its realtime state. A
    /// project never opened here may still have realtime state (its sockets opened it).
    async fn close_here(&self, reference: &str) {
        self.0.registry.forget(reference).await;
        if let Some(realtime) = &self.0.realtime {
            realtime.stop_project(reference).await;
        }
    }

    /// The project's database name and cluster, for tests and tools.
    pub fn placement(&self, row: &ProjectRow) -> Option<(String, String)> {
        Some((row.cluster_id.clone()?, row.database.clone()?))
    }

    /// A new API key of `kind` for the project.
    pub async fn add_api_key(
        &self,
        row: &ProjectRow,
        kind: forge_core::keys::ApiKeyKind,
        name: &str,
        actor: &Actor,
    ) -> Result<(Uuid, secrecy::SecretString)> {
        self.managed(row)?;
        let reference = ProjectRef::new(&row.reference).map_err(|_| Error::not_found("Project"))?;
        let store = &self.0.store;
        let current = keys::load_from(store, &self.0.master, &reference, &self.0.registry.config().verify).await?;
        let mut tx = store.pool().begin().await?;
        let (id, value) =
            keys::add(&mut tx, store, &self.0.master, &current, &reference, kind, name, actor.user_id).await?;
        self.finish_key_change(
            tx,
            row,
            actor,
            "api_key.create",
            serde_json::json!({ "id": id, "type": kind.as_str(), "name": name }),
        )
        .await?;
        Ok((id, value))
    }

    /// Revokes one API key; every node stops accepting it within one poll interval.
    pub async fn revoke_api_key(&self, row: &ProjectRow, id: Uuid, actor: &Actor) -> Result<()> {
        self.managed(row)?;
        let store = &self.0.store;
        let mut tx = store.pool().begin().await?;
        if !store.revoke_api_key(&mut *tx, &row.reference, id).await? {
            return Err(Error::not_found("API key"));
        }
        self.finish_key_change(tx, row, actor, "api_key.revoke", serde_json::json!({ "id": id })).await
    }

    /// Rotates the project's signing keys: the standby key starts signing, the current one is
    /// kept as previous (its sessions still verify), and a new standby key is made and
    /// published. Every node picks the change up within one poll interval.
    pub async fn rotate_signing_keys(&self, row: &ProjectRow, actor: &Actor) -> Result<()> {
        self.managed(row)?;
        let store = &self.0.store;
        let mut tx = store.pool().begin().await?;
        if !store.rotate_signing_keys(&mut tx, &row.reference).await? {
            return Err(Error::conflict("The project has no standby signing key to rotate to"));
        }
        keys::add_standby(&mut tx, store, &self.0.master, &row.reference).await?;
        self.finish_key_change(tx, row, actor, "signing_key.rotate", serde_json::json!({})).await
    }

    /// Deletes a previous signing key: sessions it signed stop verifying.
    pub async fn delete_signing_key(&self, row: &ProjectRow, id: Uuid, actor: &Actor) -> Result<()> {
        self.managed(row)?;
        let store = &self.0.store;
        let mut tx = store.pool().begin().await?;
        if !store.delete_signing_key(&mut *tx, &row.reference, id).await? {
            return Err(Error::not_found("Previous signing key"));
        }
        self.finish_key_change(tx, row, actor, "signing_key.delete", serde_json::json!({ "id": id })).await
    }

    /// A stored signing key's public JWK.
    pub fn signing_key_jwk(
        &self,
        reference: &str,
        row: &crate::platform::store::SigningKeyRow,
    ) -> Result<serde_json::Value> {
        keys::public_jwk(&self.0.master, reference, row)
    }

    /// A connection to a managed project's database as its owner role (never the cluster's
    /// superuser), for SQL its members send.
    pub async fn owner_connection(&self, row: &ProjectRow) -> Result<sqlx::PgConnection> {
        let (cluster, database) = self.managed(row)?;
        let password = keys::owner_password(&self.0.store, &self.0.master, &row.reference).await?;
        cluster.connect_as(&database, &owner_role_name(&row.reference), &password).await
    }

    /// Ends a change to a project's keys: a new revision (so every node reloads them at its
    /// next poll), the audit entry, the commit, and this node's reload at once.
    async fn finish_key_change(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        row: &ProjectRow,
        actor: &Actor,
        action: &str,
        details: serde_json::Value,
    ) -> Result<()> {
        let store = &self.0.store;
        store.touch(&mut *tx, &row.reference).await?;
        store.audit(&mut *tx, actor, action, Some(row.organization_id), Some(&row.reference), details).await?;
        tx.commit().await?;
        self.0.registry.invalidate(&row.reference);
        Ok(())
    }

    /// Opens a stored key.
    pub fn reveal_key(
        &self,
        reference: &str,
        row: &crate::platform::store::ApiKeyRow,
    ) -> Result<secrecy::SecretString> {
        keys::reveal(&self.0.master, reference, row)
    }
}
