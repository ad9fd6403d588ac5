//! Turning a Pod into a running container: the image's root filesystem,
//! the volumes, the environment, the command line, the network namespace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, ServiceAccount};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::{Launch, RunningPod, spawn};
use crate::netns::NetworkNamespace;
use crate::testbed::testbed;

fn ports_from_kubeconfig() -> Result<u16> {
    let text = std::fs::read_to_string(&testbed().kubeconfig)?;
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .context("no server in the bed's kubeconfig")?;
    let port = server.rsplit(':').next().context("no port in the server URL")?;
    Ok(port.trim_end_matches('/').parse()?)
}

fn port_of(url: &str) -> Option<u16> {
    url.trim_end_matches('/')
        .rsplit(':')
        .next()?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// The ports of the bed a pod reaches: the API server, Keycloak, the
/// registry.
fn bed_ports() -> Result<Vec<u16>> {
    let mut ports = vec![ports_from_kubeconfig()?];
    ports.extend(port_of(&testbed().keycloak_url));
    if let Ok(registry) = crate::registry::oci_registry() {
        ports.extend(port_of(&registry));
    }
    Ok(ports)
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Expands `$(NAME)` references to variables defined before, as a kubelet
/// does; `$$(NAME)` stays literal.
fn expand(value: &str, defined: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("$(") {
        if rest[..start].ends_with('$') {
            out.push_str(&rest[..start - 1]);
            out.push_str("$(");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find(')') {
            Some(end) => {
                let name = &after[..end];
                match defined.iter().rev().find(|(n, _)| n == name) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push_str("$(");
                        out.push_str(name);
                        out.push(')');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

async fn crane(args: &[&str]) -> Result<Vec<u8>> {
    let crane = crate::managed::bed_var("TESTBED_CRANE")?;
    let output = tokio::process::Command::new(&crane)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running {crane}"))?;
    if !output.status.success() {
        bail!(
            "crane {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

/// The image's root filesystem (extracted once per image) and its config.
async fn pull(image: &str, cache: &Path) -> Result<(PathBuf, Value)> {
    let key: String = image
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let dir = cache.join(key);
    let root = dir.join("rootfs");
    let config_path = dir.join("config.json");
    if !config_path.exists() {
        let tmp = dir.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("rootfs"))?;
        let config = crane(&["config", "--insecure", image]).await?;
        let crane_bin = crate::managed::bed_var("TESTBED_CRANE")?;
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{} export --insecure {} - | tar -x -C {}",
                shell_quote(&crane_bin),
                shell_quote(image),
                shell_quote(&tmp.join("rootfs").display().to_string())
            ))
            .status()
            .await?;
        if !status.success() {
            bail!("exporting {image} failed");
        }
        std::fs::write(tmp.join("config.json"), config)?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir)?;
    }
    let config: Value = serde_json::from_slice(&std::fs::read(&config_path)?)?;
    Ok((root, config))
}

fn field(pod: &Pod, path: &str) -> String {
    match path {
        "metadata.name" => pod.metadata.name.clone().unwrap_or_default(),
        "metadata.namespace" => pod.metadata.namespace.clone().unwrap_or_default(),
        "metadata.uid" => pod.metadata.uid.clone().unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

pub(super) async fn start(client: &Client, pod: &Pod, dir: &Path, index: u32) -> Result<RunningPod> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.clone().context("a pod without a spec")?;
    let container: Container = spec.containers.first().cloned().context("a pod without a container")?;
    let image = container.image.clone().context("a container without an image")?;
    let (root, image_config) = pull(&image, &dir.join("images")).await?;
    let pod_dir = dir.join("pods").join(&name);
    let volumes_dir = pod_dir.join("volumes");
    std::fs::create_dir_all(&volumes_dir)?;
    let pod_ip = format!("10.244.0.{}", 10 + index % 200);

    let security = container.security_context.clone().unwrap_or_default();
    let pod_security = spec.security_context.clone().unwrap_or_default();
    let uid_run = security.run_as_user.or(pod_security.run_as_user).unwrap_or(0);
    let gid_run = security.run_as_group.or(pod_security.run_as_group).unwrap_or(uid_run);
    let fs_group = pod_security.fs_group.unwrap_or(gid_run);
    if security.allow_privilege_escalation != Some(false) {
        bail!("the container allows privilege escalation; the chart says it must not");
    }

    // Volumes, as files on the host, mounted below.
    let mut sources: BTreeMap<String, (PathBuf, bool)> = BTreeMap::new();
    for volume in spec.volumes.clone().unwrap_or_default() {
        let path = volumes_dir.join(&volume.name);
        std::fs::create_dir_all(&path)?;
        if let Some(config_map) = &volume.config_map {
            let cm: ConfigMap = Api::namespaced(client.clone(), &namespace)
                .get(&config_map.name)
                .await
                .with_context(|| format!("ConfigMap {} of volume {}", config_map.name, volume.name))?;
            for (key, value) in cm.data.unwrap_or_default() {
                std::fs::write(path.join(key), value)?;
            }
            sources.insert(volume.name.clone(), (path, true));
        } else if let Some(projected) = &volume.projected {
            // What the ServiceAccount admission plugin injects: a token from
            // the TokenRequest API bound to the pod, the cluster's CA from
            // the kube-root-ca.crt ConfigMap, the namespace.
            for source in projected.sources.clone().unwrap_or_default() {
                if let Some(token) = source.service_account_token {
                    let account = spec.service_account_name.clone().unwrap_or_else(|| "default".into());
                    let request: TokenRequest = serde_json::from_value(json!({
                        "spec": {
                            "audiences": token.audience.iter().collect::<Vec<_>>(),
                            "expirationSeconds": token.expiration_seconds.unwrap_or(3600),
                            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid},
                        }
                    }))?;
                    let issued = Api::<ServiceAccount>::namespaced(client.clone(), &namespace)
                        .create_token_request(&account, &PostParams::default(), &request)
                        .await
                        .with_context(|| format!("a token for ServiceAccount {namespace}/{account}"))?;
                    let issued = issued
                        .status
                        .and_then(|s| s.token)
                        .context("TokenRequest answered without a token")?;
                    std::fs::write(path.join(&token.path), issued)?;
                }
                if let Some(config_map) = source.config_map {
                    let cm: ConfigMap = Api::namespaced(client.clone(), &namespace)
                        .get(&config_map.name)
                        .await
                        .with_context(|| format!("ConfigMap {}", config_map.name))?;
                    let data = cm.data.unwrap_or_default();
                    for item in config_map.items.unwrap_or_default() {
                        let value = data.get(&item.key).cloned().unwrap_or_default();
                        std::fs::write(path.join(&item.path), value)?;
                    }
                }
                if let Some(downward) = source.downward_api {
                    for item in downward.items.unwrap_or_default() {
                        let value = item.field_ref.map(|f| field(pod, &f.field_path)).unwrap_or_default();
                        std::fs::write(path.join(&item.path), value)?;
                    }
                }
            }
            sources.insert(volume.name.clone(), (path, true));
        } else if volume.empty_dir.is_some() {
            std::os::unix::fs::chown(&path, Some(uid_run as u32), Some(fs_group as u32))?;
            sources.insert(volume.name.clone(), (path, false));
        } else {
            bail!("volume {} is of a type the stand-in does not run", volume.name);
        }
    }
    let mut mounts: Vec<(PathBuf, String, bool)> = Vec::new();
    for mount in container.volume_mounts.clone().unwrap_or_default() {
        let (source, always_ro) = sources
            .get(&mount.name)
            .cloned()
            .with_context(|| format!("volume mount {} has no volume", mount.name))?;
        mounts.push((
            source,
            mount.mount_path.clone(),
            always_ro || mount.read_only == Some(true),
        ));
    }
    for (_, path, _) in &mounts {
        std::fs::create_dir_all(root.join(path.trim_start_matches('/')))?;
    }

    // The environment: exactly the container's, plus what a kubelet adds.
    let apiserver = ports_from_kubeconfig()?;
    let mut env: Vec<(String, String)> = vec![
        ("HOSTNAME".into(), name.clone()),
        ("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into()),
        ("KUBERNETES_SERVICE_PORT".into(), apiserver.to_string()),
    ];
    if let Some(image_env) = image_config["config"]["Env"].as_array() {
        for entry in image_env.iter().filter_map(Value::as_str) {
            if let Some((k, v)) = entry.split_once('=') {
                env.push((k.into(), v.into()));
            }
        }
    }
    for var in container.env.clone().unwrap_or_default() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => expand(value, &env),
            (None, Some(from)) => match &from.field_ref {
                Some(field_ref) if field_ref.field_path == "status.podIP" => pod_ip.clone(),
                Some(field_ref) => field(pod, &field_ref.field_path),
                None => bail!("env {} comes from a source the stand-in does not run", var.name),
            },
            (None, None) => String::new(),
        };
        env.push((var.name.clone(), value));
    }

    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let (command, args) = match (&container.command, &container.args) {
        (Some(command), Some(args)) => (command.clone(), args.clone()),
        (Some(command), None) => (command.clone(), Vec::new()),
        (None, Some(args)) => (strings(&image_config["config"]["Entrypoint"]), args.clone()),
        (None, None) => (
            strings(&image_config["config"]["Entrypoint"]),
            strings(&image_config["config"]["Cmd"]),
        ),
    };
    let args: Vec<String> = args.iter().map(|a| expand(a, &env)).collect();
    if command.is_empty() {
        bail!("no command for the container of {name}");
    }

    // The network: the pod's own namespace; the bed bridged in, its ports out.
    let mut network = NetworkNamespace::create(&format!("kop-{}", &uid.chars().take(8).collect::<String>()))?;
    for port in bed_ports()? {
        network.bridge_in(port)?;
    }
    let mut ports = BTreeMap::new();
    for port in container.ports.clone().unwrap_or_default() {
        let number = u16::try_from(port.container_port)?;
        let host = network.bridge_out(number).await?;
        ports.insert(number.to_string(), host);
        if let Some(port_name) = &port.name {
            ports.insert(port_name.clone(), host);
        }
    }
    let readiness = match container.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref()) {
        None => None,
        Some(get) => {
            let port = match &get.port {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => u16::try_from(*n)?,
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(named) => container
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(named))
                    .map(|p| u16::try_from(p.container_port))
                    .transpose()?
                    .with_context(|| format!("readiness probe port {named} is not a container port"))?,
            };
            Some((get.path.clone().unwrap_or_else(|| "/".into()), port))
        }
    };

    // The mounts, in a mount namespace of the container's own.
    let r = shell_quote(&root.display().to_string());
    let mut script = format!(
        "set -e\nR={r}\nmount --bind \"$R\" \"$R\"\nmount -t proc proc \"$R/proc\"\n\
         mount -t tmpfs -o mode=755,size=64k tmpfs \"$R/dev\"\n\
         for d in null zero random urandom; do : > \"$R/dev/$d\"; mount --bind \"/dev/$d\" \"$R/dev/$d\"; done\n"
    );
    for (source, path, read_only) in &mounts {
        let target = format!("\"$R\"{}", shell_quote(path));
        script.push_str(&format!(
            "mount --bind {} {target}\n",
            shell_quote(&source.display().to_string())
        ));
        if *read_only {
            script.push_str(&format!("mount -o remount,bind,ro {target}\n"));
        }
    }
    if security.read_only_root_filesystem == Some(true) {
        script.push_str("mount -o remount,bind,ro \"$R\"\n");
    }
    script.push_str(&format!("hostname {}\nexec \"$@\"\n", shell_quote(&name)));
    let mut argv: Vec<String> = vec!["/usr/bin/env".into(), "-i".into()];
    argv.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    argv.extend([
        "/usr/bin/setpriv".into(),
        "--no-new-privs".into(),
        "/usr/sbin/chroot".into(),
        format!("--userspec={uid_run}:{gid_run}"),
        format!("--groups={fs_group}"),
        root.display().to_string(),
    ]);
    argv.extend(command);
    argv.extend(args);
    let launch = Launch {
        script,
        argv,
        netns: network.name.clone(),
        log: pod_dir.join("container.log"),
        readiness,
        grace: Duration::from_secs(
            spec.termination_grace_period_seconds
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(30),
        ),
    };
    let child = spawn(&launch)?;
    Ok(RunningPod {
        uid,
        child,
        _network: network,
        ports,
        dir: pod_dir,
        restarts: 0,
        ready: None,
        launch,
        pod_ip,
        started: tokio::time::Instant::now(),
        held: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_to_earlier_variables_are_expanded() {
        let defined = vec![("POD_IP".to_owned(), "10.0.0.1".to_owned())];
        assert_eq!(expand("$(POD_IP):8080", &defined), "10.0.0.1:8080");
        assert_eq!(expand("$(UNSET)-x", &defined), "$(UNSET)-x");
        assert_eq!(expand("$$(POD_IP)", &defined), "$(POD_IP)");
    }
}
