//! The `keycloak-operator` command: run the operator, print the CRDs, or
//! describe a component file.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keycloak_operator::runtime::model::Capability;
use keycloak_operator::runtime::{Runtime, RuntimeSettings};

#[derive(Parser)]
#[command(
    name = "keycloak-operator",
    version,
    about = "Keycloak operator with WebAssembly reconcilers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator.
    Run {
        /// The configuration file (YAML), watched for changes.
        #[arg(
            long,
            env = "KEYCLOAK_OPERATOR_CONFIG",
            default_value = "/etc/keycloak-operator/config.yaml"
        )]
        config: PathBuf,
        /// This replica's identity in the leader election (default: the pod
        /// name, else the host name and process id).
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        /// Log as JSON lines.
        #[arg(long, env = "LOG_JSON")]
        log_json: bool,
    },
    /// Write the CRDs of the built-in kinds as YAML files into a directory.
    Crds {
        /// Directory to write into.
        #[arg(long, default_value = "crds")]
        out: PathBuf,
    },
    /// Load a component and print what it describes.
    Describe {
        /// The component file (.wasm).
        component: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // reqwest is built without a default TLS provider; kube uses ring too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match cli.command {
        Command::Run {
            config,
            identity,
            log_json,
        } => run(config, identity, log_json).await,
        Command::Crds { out } => write_crds(out),
        Command::Describe { component } => describe(component).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn,kube_lease_manager=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

async fn run(config_path: PathBuf, identity: Option<String>, log_json: bool) -> anyhow::Result<()> {
    init_logging(log_json);
    let config = keycloak_operator::config::HostConfig::load(&config_path)?;
    let identity = identity.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    keycloak_operator::operator::run(
        config,
        keycloak_operator::operator::RunOptions { config_path, identity },
    )
    .await
}

fn write_crds(out: PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(&out)?;
    for (file, crd) in keycloak_operator::crds::all() {
        std::fs::write(out.join(&file), keycloak_operator::crds::render(&crd)?)?;
        println!("wrote {}", out.join(file).display());
    }
    Ok(())
}

async fn describe(component: PathBuf) -> anyhow::Result<()> {
    let runtime = Runtime::new(RuntimeSettings::default()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let all: BTreeSet<Capability> = [Capability::KeycloakAdmin, Capability::ReadSecrets].into();
    let loaded = runtime.load(&component, &all).await?;
    let d = &loaded.description;
    println!("component: {}@{}", d.name, d.version);
    println!("digest:    {}", loaded.digest);
    println!("serves:    {}/{} {:?} ({})", d.group, d.kind, d.versions, d.plural);
    println!("scope:     {:?}", d.keycloak_scope);
    println!("needs:     {:?}", d.capabilities);
    println!(
        "children:  {:?}",
        d.child_kinds
            .iter()
            .map(|k| format!("{}/{}", k.api_version, k.kind))
            .collect::<Vec<_>>()
    );
    println!("finalizer: {}", d.finalizer);
    Ok(())
}
