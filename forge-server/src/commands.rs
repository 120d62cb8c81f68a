//! `forge-server projects ...` and `forge-server tokens ...`: the control plane from the
//! command line. Beside a running server they use its embedded cluster as it is (or the
//! configured database); on their own they start it for the command and stop it after.

use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::cli::{ProjectsCommand, TokensCommand};
use crate::config::Config;
use crate::platform::store::Actor;
use crate::platform::{Platform, Services};
use crate::{Error, prepare};

/// Opens the control plane for one command, runs `f`, and closes everything.
async fn with_platform<T>(
    config: &Config,
    f: impl AsyncFnOnce(&Platform) -> Result<T, crate::platform::Error>,
) -> Result<T, Error> {
    let db = prepare(config, true).await?;
    let url = config.public_url(config.listen);
    let services = Services { objects: Some(config.object_store()?), ..Services::default() };
    let platform_config = match crate::platform_config(config, &db, &url) {
        Ok(c) => c,
        Err(e) => {
            db.shutdown().await;
            return Err(e);
        }
    };
    let platform = match Platform::open(platform_config, services).await {
        Ok(p) => p,
        Err(e) => {
            db.shutdown().await;
            return Err(Error::Startup(format!("opening the control plane: {e}")));
        }
    };
    let result = f(&platform).await;
    platform.shutdown().await;
    db.shutdown().await;
    result.map_err(|e| Error::Startup(e.to_string()))
}

fn print(value: serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
}

/// `forge-server projects ...`.
pub(crate) async fn projects(config: &Config, action: ProjectsCommand) -> Result<(), Error> {
    with_platform(config, async |platform| {
        let actor = Actor::system();
        let store = platform.store();
        let find = async |reference: &str| {
            store.project(reference).await?.ok_or_else(|| crate::platform::Error::not_found("Project"))
        };
        match action {
            ProjectsCommand::List => {
                let rows = store.projects(None).await?;
                print(serde_json::Value::Array(
                    rows.iter().map(|r| crate::platform::api::projects::shown(platform, r)).collect(),
                ));
            }
            ProjectsCommand::Create { name, organization } => {
                let org = store
                    .organization(&organization)
                    .await?
                    .ok_or_else(|| crate::platform::Error::not_found("Organization"))?;
                let row = platform.create_project(&org, &name, "", &actor).await?;
                let mut shown = crate::platform::api::projects::shown(platform, &row);
                let keys = store.api_keys(&row.reference).await?;
                for key in &keys {
                    let field = match key.kind.as_str() {
                        "legacy_anon" => "anon_key",
                        "legacy_service_role" => "service_role_key",
                        "publishable" => "publishable_key",
                        _ => "secret_key",
                    };
                    shown[field] = json!(platform.reveal_key(&row.reference, key)?.expose_secret());
                }
                print(shown);
            }
            ProjectsCommand::Delete { reference } => {
                let row = find(&reference).await?;
                platform.delete_project(&row, &actor).await?;
                print(json!({ "ref": reference, "deleted": true }));
            }
            ProjectsCommand::Pause { reference } => {
                let row = find(&reference).await?;
                platform.pause_project(&row, &actor).await?;
                print(crate::platform::api::projects::shown(platform, &find(&reference).await?));
            }
            ProjectsCommand::Restore { reference } => {
                let row = find(&reference).await?;
                platform.restore_project(&row, &actor).await?;
                print(crate::platform::api::projects::shown(platform, &find(&reference).await?));
            }
            ProjectsCommand::Export { reference, output } => {
                let row = find(&reference).await?;
                let manifest = platform.export_project(&row, &output, &actor).await?;
                print(json!({
                    "ref": reference,
                    "output": output,
                    "database_bytes": manifest.database.size,
                    "objects": manifest.objects.len(),
                    "object_bytes": manifest.objects.iter().map(|o| o.size).sum::<u64>(),
                }));
            }
            ProjectsCommand::Import { archive, organization, name } => {
                let row = platform.import_project(&archive, organization.as_deref(), name.as_deref(), &actor).await?;
                let mut shown = crate::platform::api::projects::shown(platform, &row);
                for key in &store.api_keys(&row.reference).await? {
                    let field = match key.kind.as_str() {
                        "legacy_anon" => "anon_key",
                        "legacy_service_role" => "service_role_key",
                        "publishable" => "publishable_key",
                        _ => "secret_key",
                    };
                    shown[field] = json!(platform.reveal_key(&row.reference, key)?.expose_secret());
                }
                print(shown);
            }
        }
        Ok(())
    })
    .await
}

/// `forge-server tokens ...`.
pub(crate) async fn tokens(config: &Config, action: TokensCommand) -> Result<(), Error> {
    match action {
        TokensCommand::Create { email, name } => {
            let token = with_platform(config, async |platform| {
                let user = platform.user_for_email(&email).await?;
                let (_, token) = platform.create_access_token(user, &name, None).await?;
                Ok(token)
            })
            .await?;
            println!("{}", token.expose_secret());
            Ok(())
        }
    }
}
