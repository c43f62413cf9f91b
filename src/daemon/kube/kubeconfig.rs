//! The cluster's kubeconfig (cluster, user and context named
//! `lab-<cluster>`, as kind names its `kind-<cluster>`), and merging it into
//! (and removing it from) a user's `~/.kube/config`.

use super::tls::Pki;
use base64::Engine;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Why the user's kubeconfig could not be read or written; names the file.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("no home directory to write ~/.kube/config")]
    NoHome,
    #[error("{}: not a kubeconfig: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: Box<serde_saphyr::Error>,
    },
    #[error("the cluster's kubeconfig: {0}")]
    Ours(Box<serde_saphyr::Error>),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Chown { path: PathBuf, source: nix::Error },
    #[error(transparent)]
    Write(#[from] super::tls::TlsError),
}

pub fn context_name(cluster: &str) -> String {
    format!("lab-{cluster}")
}

/// The kubeconfig as a JSON value (written as YAML).
pub fn build(cluster: &str, port: u16, pki: &Pki) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let name = context_name(cluster);
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {
            "server": format!("https://127.0.0.1:{port}"),
            "certificate-authority-data": b64(&pki.ca_cert)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "users": [{"name": name, "user": {
            "client-certificate-data": b64(&pki.admin_cert),
            "client-key-data": b64(&pki.admin_key)}}],
        "preferences": {}
    })
}

pub fn to_yaml(v: &Value) -> String {
    serde_saphyr::to_string(v).unwrap_or_else(|_| v.to_string())
}

/// Replace (or add) the entries named `name` of the `clusters`, `contexts`
/// and `users` lists of `config` with those of `ours`; set the current
/// context.
pub fn merge(config: &mut Value, ours: &Value, name: &str) {
    if !config.is_object() {
        *config = json!({"apiVersion": "v1", "kind": "Config", "preferences": {}});
    }
    for list in ["clusters", "contexts", "users"] {
        let mut items: Vec<Value> = config
            .get(list)
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        items.retain(|i| i.get("name").and_then(|n| n.as_str()) != Some(name));
        items.extend(ours[list].as_array().cloned().unwrap_or_default());
        config[list] = Value::Array(items);
    }
    config["current-context"] = json!(name);
}

/// Remove the entries named `name`; unset the current context if it was
/// ours. Returns whether anything was removed.
pub fn remove(config: &mut Value, name: &str) -> bool {
    let mut removed = false;
    for list in ["clusters", "contexts", "users"] {
        if let Some(items) = config.get_mut(list).and_then(|v| v.as_array_mut()) {
            let before = items.len();
            items.retain(|i| i.get("name").and_then(|n| n.as_str()) != Some(name));
            removed |= items.len() != before;
        }
    }
    if config.get("current-context").and_then(|v| v.as_str()) == Some(name) {
        config["current-context"] = json!("");
        removed = true;
    }
    removed
}

/// The invoking user's kubeconfig: `SUDO_USER`'s `~/.kube/config` (with
/// their uid/gid, so the file stays theirs), else `$HOME/.kube/config`.
pub fn user_config_path() -> Option<(PathBuf, Option<(u32, u32)>)> {
    if let Ok(user) = std::env::var("SUDO_USER")
        && !user.is_empty()
        && user != "root"
        && let Ok(Some(u)) = nix::unistd::User::from_name(&user)
    {
        return Some((
            u.dir.join(".kube/config"),
            Some((u.uid.as_raw(), u.gid.as_raw())),
        ));
    }
    let home = std::env::var("HOME").ok().filter(|h| !h.is_empty())?;
    Some((Path::new(&home).join(".kube/config"), None))
}

fn read_config(path: &Path) -> Result<Value, KubeconfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(Value::Null),
        Ok(text) => serde_saphyr::from_str::<Value>(&text).map_err(|e| KubeconfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(e),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Null),
        Err(source) => Err(KubeconfigError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_config(path: &Path, v: &Value, owner: Option<(u32, u32)>) -> Result<(), KubeconfigError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let new_dir = !dir.exists();
    std::fs::create_dir_all(dir).map_err(|source| KubeconfigError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    super::tls::write_private(path, to_yaml(v).as_bytes())?;
    if let Some((uid, gid)) = owner {
        let own = |p: &Path| {
            nix::unistd::chown(
                p,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .map_err(|source| KubeconfigError::Chown {
                path: p.to_path_buf(),
                source,
            })
        };
        if new_dir {
            own(dir)?;
        }
        own(path)?;
    }
    Ok(())
}

/// `lab up --write-kubeconfig`: merge the cluster's kubeconfig into the
/// invoking user's. Returns the path written.
pub fn merge_into_user(cluster: &str, ours_yaml: &str) -> Result<PathBuf, KubeconfigError> {
    let (path, owner) = user_config_path().ok_or(KubeconfigError::NoHome)?;
    let ours: Value =
        serde_saphyr::from_str(ours_yaml).map_err(|e| KubeconfigError::Ours(Box::new(e)))?;
    let mut config = read_config(&path)?;
    merge(&mut config, &ours, &context_name(cluster));
    write_config(&path, &config, owner)?;
    Ok(path)
}

/// `lab down`: remove the cluster's context from the invoking user's
/// kubeconfig, if it is there. Returns the path when something was removed.
pub fn remove_from_user(cluster: &str) -> Result<Option<PathBuf>, KubeconfigError> {
    let Some((path, owner)) = user_config_path() else {
        return Ok(None);
    };
    if !path.exists() {
        return Ok(None);
    }
    let mut config = read_config(&path)?;
    if !remove(&mut config, &context_name(cluster)) {
        return Ok(None);
    }
    write_config(&path, &config, owner)?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_replaces_and_remove_restores() {
        let pki = super::super::tls::Pki {
            ca_cert: "CA".into(),
            server_cert: String::new(),
            server_key: String::new(),
            admin_cert: "C".into(),
            admin_key: "K".into(),
        };
        let ours = build("dev", 1234, &pki);
        let yaml = to_yaml(&ours);
        let back: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, ours, "the YAML round-trips");
        let mut cfg = json!({"clusters": [{"name": "kind-x", "cluster": {}}],
            "contexts": [{"name": "kind-x"}], "users": [{"name": "kind-x"}],
            "current-context": "kind-x"});
        merge(&mut cfg, &ours, "lab-dev");
        merge(&mut cfg, &ours, "lab-dev");
        assert_eq!(cfg["clusters"].as_array().unwrap().len(), 2);
        assert_eq!(cfg["current-context"], "lab-dev");
        assert_eq!(
            cfg["clusters"][1]["cluster"]["server"],
            "https://127.0.0.1:1234"
        );
        assert!(remove(&mut cfg, "lab-dev"));
        assert_eq!(cfg["clusters"].as_array().unwrap().len(), 1);
        assert_eq!(cfg["current-context"], "");
        assert!(!remove(&mut cfg, "lab-dev"));
    }
}
