//! `jobhost config init|check`: write a commented configuration file, or check one.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum ConfigCommand {
    /// Write a commented configuration file with every knob.
    Init {
        /// `development` (the built-in defaults) or `production` (JSON logs, lower limits).
        #[arg(long, default_value = "development", value_parser = ["development", "production"])]
        profile: String,
        /// Where to write it; `-` prints it.
        #[arg(default_value = "jobhost.toml")]
        file: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Validate FILE (with the JOBHOST_* environment overrides) and print the effective
    /// configuration, passwords masked.
    Check {
        /// The config file.
        file: PathBuf,
    },
}

/// `jobhost config init|check`.
pub(crate) fn config_command(command: &ConfigCommand) -> Result<ExitCode> {
    match command {
        ConfigCommand::Init {
            profile,
            file,
            force,
        } => {
            let profile = match profile.as_str() {
                "production" => jobhost_config::Profile::Production,
                _ => jobhost_config::Profile::Development,
            };
            let text = profile.file();
            if file.as_os_str() == "-" {
                outln!("{}", text.trim_end());
                return Ok(ExitCode::SUCCESS);
            }
            if file.exists() && !force {
                bail!("{} exists; pass --force to replace it", file.display());
            }
            std::fs::write(file, text)
                .with_context(|| format!("cannot write {}", file.display()))?;
            outln!("wrote {}", file.display());
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Check { file } => {
            let config = crate::load_config(Some(file))?;
            let shown = toml::to_string_pretty(&config.masked())
                .context("cannot print the configuration")?;
            outln!(
                "# {}: valid. Effective configuration (file < JOBHOST_* env):",
                file.display()
            );
            outln!("{}", shown.trim_end());
            Ok(ExitCode::SUCCESS)
        }
    }
}
