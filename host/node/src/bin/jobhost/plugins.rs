//! `jobhost plugins list|inspect|state`: the plugins a folder holds, one file's imports and
//! capabilities, and a plugin's `kv` state in Redis.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use jobhost::node::connect_store;
use jobhost::text::printable;
use jobhost_config::Config;
use jobhost_runtime::plugin::{ImportCheck, capability_report};
use jobhost_runtime::{CapabilityUse, PluginStatus, Runtime};

#[derive(Subcommand)]
pub(crate) enum PluginsCommand {
    /// Load every `.wasm` in the folder and show what loaded and what was rejected, and why.
    List {
        /// Plugins folder (overrides `runtime.plugins_dir`).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one plugin file: name, version, job types, imports and whether they are granted,
    /// and each capability requested (imported or declared) against granted.
    Inspect {
        /// The `.wasm` file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show or change a plugin's `kv` state in Redis: its keys with their sizes, one value
    /// (`--get`), or remove one key (`--delete`) or all of them (`--clear`).
    State {
        /// The plugin id (its file name without `.wasm`).
        plugin: String,
        /// Print this key's value (as stored: text or bytes) to standard output.
        #[arg(long, conflicts_with_all = ["delete", "clear"])]
        get: Option<String>,
        /// Remove this key.
        #[arg(long, conflicts_with = "clear")]
        delete: Option<String>,
        /// Remove every key of the plugin.
        #[arg(long)]
        clear: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Redis URL (overrides `redis.url` / JOBHOST_REDIS_URL).
        #[arg(long)]
        redis_url: Option<String>,
    },
}

/// What `plugins state` does.
pub(crate) enum StateAction {
    List,
    Get(String),
    Delete(String),
    Clear,
}

pub(crate) async fn plugins_state(
    config: Config,
    plugin: &str,
    action: StateAction,
    json: bool,
) -> Result<ExitCode> {
    let (store, _) = connect_store(&config, false).await?;
    match action {
        StateAction::List => {
            let sizes = store.kv_sizes(plugin).await?;
            if json {
                let entries: Vec<_> = sizes
                    .iter()
                    .map(|(key, bytes)| serde_json::json!({"key": key, "bytes": bytes}))
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&entries)?);
            } else if sizes.is_empty() {
                outln!("plugin {plugin:?} has no state");
            } else {
                outln!("{:<40} BYTES", "KEY");
                for (key, bytes) in &sizes {
                    outln!("{key:<40} {bytes}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        StateAction::Get(key) => match store.kv_get(plugin, &key).await? {
            Some(value) => {
                use std::io::Write as _;
                std::io::stdout().write_all(&value)?;
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("plugin {plugin:?} has no key {key:?}");
                Ok(ExitCode::FAILURE)
            }
        },
        StateAction::Delete(key) => {
            if store.kv_delete(plugin, &key).await? {
                outln!("deleted {key:?} of plugin {plugin:?}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("plugin {plugin:?} has no key {key:?}");
                Ok(ExitCode::FAILURE)
            }
        }
        StateAction::Clear => {
            let count = store.kv_clear(plugin).await?;
            tracing::info!(plugin, keys = count, "plugin state cleared");
            outln!("cleared {count} keys of plugin {plugin:?}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) async fn plugins_list(config: Config, json: bool) -> Result<ExitCode> {
    let runtime = Runtime::new(config)?;
    runtime.sync_dir().await?;
    let statuses = runtime.plugins();
    if json {
        outln!("{}", serde_json::to_string_pretty(&statuses)?);
        return Ok(ExitCode::SUCCESS);
    }
    if statuses.is_empty() {
        outln!("no .wasm files in {}", runtime.plugins_dir().display());
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<16} {:<9} {:<10} {:<24} DETAIL",
        "ID",
        "STATUS",
        "VERSION",
        "JOB TYPES"
    );
    for status in &statuses {
        print_status_row(status);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn print_status_row(status: &PluginStatus) {
    let (version, job_types, description) = match &status.info {
        Some(info) => (
            info.version.as_str(),
            info.job_types.join(","),
            info.description.as_str(),
        ),
        None => ("-", "-".to_owned(), ""),
    };
    let detail = match &status.rejection {
        Some(reason) if status.status == "loaded" => format!("update rejected: {reason}"),
        Some(reason) => reason.clone(),
        None => description.to_owned(),
    };
    // Everything but the status comes from the plugin (or its file name): escaped, so a
    // newline cannot forge a row and an escape sequence cannot reach the terminal.
    outln!(
        "{:<16} {:<9} {:<10} {:<24} {}",
        printable(&status.id),
        status.status,
        printable(version),
        job_types,
        printable(&detail)
    );
}

pub(crate) async fn plugins_inspect(config: Config, file: &Path, json: bool) -> Result<ExitCode> {
    let runtime = Runtime::new(config)?;
    let inspection = runtime.inspect(file).await;
    let (imports, code) = match &inspection.result {
        Ok(plugin) => (plugin.imports.clone(), ExitCode::SUCCESS),
        Err(rejection) => (rejection.imports.clone(), ExitCode::FAILURE),
    };
    // Requested (imports, and describe()'s list when it ran) against granted (config).
    let grants = runtime.grants(&inspection.id);
    let declared = match &inspection.result {
        Ok(plugin) => plugin.info.capabilities.clone(),
        Err(_) => Vec::new(),
    };
    let strict = runtime.config().runtime.strict_imports;
    let capabilities = capability_report(&imports, &declared, &grants, strict);
    if json {
        let value = match &inspection.result {
            Ok(plugin) => serde_json::json!({
                "id": inspection.id, "file": file, "status": "loadable",
                "digest": plugin.digest, "info": plugin.info, "imports": imports,
                "grants": grants, "capabilities": capabilities,
            }),
            Err(rejection) => serde_json::json!({
                "id": inspection.id, "file": file, "status": "rejected",
                "digest": rejection.digest, "reason": rejection.error.to_string(),
                "imports": imports, "grants": grants, "capabilities": capabilities,
            }),
        };
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(code);
    }
    outln!("id:          {}", printable(&inspection.id));
    outln!("file:        {}", printable(&file.display().to_string()));
    match &inspection.result {
        Ok(plugin) => {
            let info = &plugin.info;
            outln!("status:      loadable");
            outln!("sha256:      {}", plugin.digest);
            outln!("name:        {}", printable(&info.name));
            outln!("version:     {}", printable(&info.version));
            outln!("job types:   {}", info.job_types.join(", "));
            outln!("description: {}", printable(&info.description));
            outln!(
                "requests:    {}",
                printable(&list_or_none(&info.capabilities))
            );
            outln!(
                "schema:      {}",
                if info.spec_schema.is_some() {
                    "yes"
                } else {
                    "no"
                }
            );
        }
        Err(rejection) => {
            outln!("status:      rejected");
            if let Some(digest) = &rejection.digest {
                outln!("sha256:      {digest}");
            }
            outln!("reason:      {}", printable(&rejection.error.to_string()));
        }
    }
    print_imports(&imports, strict);
    // Without imports the file never compiled: nothing is known of what it requests.
    if !imports.is_empty() {
        print_capabilities(&capabilities, inspection.result.is_ok());
    }
    Ok(code)
}

/// The capability table: requested by the plugin against granted by the config.
pub(crate) fn print_capabilities(rows: &[CapabilityUse], described: bool) {
    outln!("capabilities:");
    if rows.is_empty() {
        outln!("  (none requested or granted)");
        return;
    }
    outln!(
        "  {:<12} {:<18} {:<8} STATUS",
        "CAPABILITY",
        "REQUESTED",
        "GRANTED"
    );
    for row in rows {
        let requested = match (row.imported, row.declared) {
            (true, true) => "import, describe",
            (true, false) => "import",
            (false, true) => "describe",
            (false, false) => "-",
        };
        let granted = if row.granted { "yes" } else { "no" };
        outln!(
            "  {:<12} {:<18} {:<8} {}",
            printable(&row.capability),
            requested,
            granted,
            row.status.phrase()
        );
    }
    if !described {
        outln!("  (describe() did not run: requested means imported)");
    }
}

pub(crate) fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

pub(crate) fn print_imports(imports: &[ImportCheck], strict: bool) {
    if imports.is_empty() {
        return;
    }
    outln!("imports:");
    for import in imports {
        let verdict = match (import.capability, import.granted) {
            (None, _) => "not provided by this host".to_owned(),
            (Some(cap), true) => format!("granted ({cap})"),
            (Some(cap), false) if strict => format!("NOT granted (needs `{cap}`)"),
            (Some(cap), false) => format!("imported, not granted: calls refused (`{cap}`)"),
        };
        outln!("  {:<44} {verdict}", printable(&import.interface));
    }
}
