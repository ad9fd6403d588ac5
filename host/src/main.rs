//! The `keycloak-operator` command: run the operator, print the CRDs, or
//! describe a component file.

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
    /// Write the CRDs of the built-in kinds as YAML files into directories.
    Crds {
        /// Directory to write into; repeat for more than one.
        #[arg(long, default_value = "crds")]
        out: Vec<PathBuf>,
    },
    /// Load a component and print what it describes.
    Describe {
        /// The component file (.wasm).
        component: PathBuf,
        /// Print only the CRD of the kind it serves (JSON, which
        /// `kubectl apply -f -` reads).
        #[arg(long)]
        crd: bool,
    },
    /// Work with components as OCI artifacts.
    Component {
        #[command(subcommand)]
        command: ComponentCommand,
    },
}

#[derive(Subcommand)]
enum ComponentCommand {
    /// Publish a component to an OCI registry and print its reference
    /// pinned by digest (what a ReconcilerComponent's `spec.oci` takes).
    Push {
        /// The component file (.wasm).
        file: PathBuf,
        /// Where to publish it: `registry/repository[:tag]`.
        reference: String,
        /// Reach the registry over plain HTTP (a registry on loopback).
        #[arg(long)]
        insecure: bool,
        /// User name for the registry (with `REGISTRY_PASSWORD`).
        #[arg(long, env = "REGISTRY_USERNAME")]
        username: Option<String>,
        /// Password for the registry.
        #[arg(long, env = "REGISTRY_PASSWORD", hide_env_values = true)]
        password: Option<String>,
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
        Command::Describe { component, crd } => describe(component, crd).await,
        Command::Component {
            command:
                ComponentCommand::Push {
                    file,
                    reference,
                    insecure,
                    username,
                    password,
                },
        } => push(file, reference, insecure, username, password).await,
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

fn write_crds(outs: Vec<PathBuf>) -> anyhow::Result<()> {
    for out in outs {
        std::fs::create_dir_all(&out)?;
        for (file, crd) in keycloak_operator::crds::all() {
            std::fs::write(out.join(&file), keycloak_operator::crds::render(&crd)?)?;
            println!("wrote {}", out.join(file).display());
        }
    }
    Ok(())
}

async fn describe(component: PathBuf, crd_only: bool) -> anyhow::Result<()> {
    let runtime = Runtime::new(RuntimeSettings::default()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let all = runtime.policy([Capability::KeycloakAdmin, Capability::ReadSecrets]);
    let loaded = runtime.load(&component, &all).await?;
    let d = &loaded.description;
    let text = if crd_only {
        let crd = d
            .crd
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("{} describes no CRD", component.display()))?;
        format!("{}\n", crd.trim_end())
    } else {
        let children: Vec<String> = d
            .child_kinds
            .iter()
            .map(|k| format!("{}/{}", k.api_version, k.kind))
            .collect();
        format!(
            "component: {}@{}\ndigest:    {}\nserves:    {}/{} {:?} ({})\nscope:     {:?}\nneeds:     {:?}\nchildren:  {:?}\nfinalizer: {}\n",
            d.name,
            d.version,
            loaded.digest,
            d.group,
            d.kind,
            d.versions,
            d.plural,
            d.keycloak_scope,
            d.capabilities,
            children,
            d.finalizer
        )
    };
    write_stdout(&text)
}

/// Writes to stdout; a reader that closed the pipe early (`| head`) is
/// not an error, so `println!`'s panic on EPIPE is avoided.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

async fn push(
    file: PathBuf,
    reference: String,
    insecure: bool,
    username: Option<String>,
    password: Option<String>,
) -> anyhow::Result<()> {
    use keycloak_operator::delivery::{OciClient, OciSettings};
    use oci_client::secrets::RegistryAuth;

    let bytes = std::fs::read(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    // Refuse what the operator would refuse, before it is published.
    let runtime = Runtime::new(RuntimeSettings::default()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let all = runtime.policy([Capability::KeycloakAdmin, Capability::ReadSecrets]);
    let loaded = runtime.load_bytes(&bytes, &file, &all).await?;
    let registry = reference.split('/').next().unwrap_or_default().to_owned();
    let client = OciClient::new(OciSettings {
        insecure_registries: if insecure { vec![registry] } else { Vec::new() },
        ..OciSettings::default()
    });
    let auth = match (username, password) {
        (Some(user), Some(password)) => RegistryAuth::Basic(user, password),
        (None, None) => RegistryAuth::Anonymous,
        _ => anyhow::bail!(
            "give both --username and --password (or REGISTRY_USERNAME and REGISTRY_PASSWORD), or neither"
        ),
    };
    let pinned = client.push(&reference, bytes, &auth).await?;
    eprintln!(
        "pushed {} ({}, serves {}, component digest {})",
        file.display(),
        loaded.label(),
        loaded.description.kind_key(),
        loaded.digest
    );
    println!("{pinned}");
    Ok(())
}
