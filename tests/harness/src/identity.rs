//! Running a process under test as a ServiceAccount instead of cluster admin.
//!
//! The fixture issues no ServiceAccount tokens (no token controller), so the
//! identity is taken by impersonation through the admin credentials: the
//! apiserver authorises every request as the impersonated user and groups,
//! so RBAC applies exactly as it would to the ServiceAccount's own token.

use std::path::{Path, PathBuf};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result, io};
use crate::fixture::KubeFixture;
use crate::resources::apply_yaml;

/// The MetalLB namespace the deploy manifests use.
pub const METALLB_NAMESPACE: &str = "metallb-system";

/// A user and groups to impersonate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    /// `system:serviceaccount:<ns>:<name>` with the groups a ServiceAccount
    /// token carries.
    pub fn service_account(namespace: &str, name: &str) -> Identity {
        Identity {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// MetalLB's speaker ServiceAccount (`metallb-system/speaker`).
    pub fn speaker() -> Identity {
        Identity::service_account(METALLB_NAMESPACE, "speaker")
    }

    /// MetalLB's controller ServiceAccount (`metallb-system/controller`).
    pub fn controller() -> Identity {
        Identity::service_account(METALLB_NAMESPACE, "controller")
    }

    /// `kubeconfig` with this identity's `as` / `as-groups` added to every
    /// user entry.
    pub fn impersonating(&self, mut kubeconfig: Kubeconfig) -> Kubeconfig {
        for named in &mut kubeconfig.auth_infos {
            if let Some(auth) = named.auth_info.as_mut() {
                auth.impersonate = Some(self.user.clone());
                auth.impersonate_groups = Some(self.groups.clone());
            }
        }
        kubeconfig
    }

    /// Writes the fixture's kubeconfig, impersonating this identity, to
    /// `path` (mode 0600: it holds the admin token), for a process's
    /// `--kubeconfig`. Written as JSON, which every kubeconfig reader
    /// (client-go, kube-rs) accepts as YAML.
    pub fn write_kubeconfig(&self, fixture: &KubeFixture, path: &Path) -> Result<PathBuf> {
        let admin = read_kubeconfig(fixture.kubeconfig_path())?;
        let text = serde_json::to_string_pretty(&self.impersonating(admin)).map_err(|source| {
            Error::Json {
                context: "serialising a kubeconfig".into(),
                source,
            }
        })?;
        write_private(path, text.as_bytes())?;
        Ok(path.to_owned())
    }

    /// A client of the fixture acting as this identity, default namespace
    /// `namespace`.
    pub async fn client(&self, fixture: &KubeFixture, namespace: &str) -> Result<Client> {
        let admin = read_kubeconfig(fixture.kubeconfig_path())?;
        let options = KubeConfigOptions::default();
        let mut config = kube::Config::from_custom_kubeconfig(self.impersonating(admin), &options)
            .await
            .map_err(|source| Error::Kubeconfig {
                context: format!("building a kubeconfig for {}", self.user),
                source: Box::new(source),
            })?;
        config.default_namespace = namespace.to_owned();
        ferrolb_runtime::client::connect(config).map_err(crate::error::kube(format!("client for {}", self.user)))
    }
}

fn read_kubeconfig(path: &Path) -> Result<Kubeconfig> {
    Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
        context: format!("reading {}", path.display()),
        source: Box::new(source),
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("creating {}", path.display())))?;
    file.write_all(bytes)
        .map_err(io(format!("writing {}", path.display())))
}

/// deploy/manifests as shipped, in the order they must be applied.
pub const DEPLOY_RBAC_MANIFESTS: [(&str, &str); 4] = [
    (
        "namespace.yaml",
        include_str!("../../../deploy/manifests/namespace.yaml"),
    ),
    (
        "serviceaccounts.yaml",
        include_str!("../../../deploy/manifests/serviceaccounts.yaml"),
    ),
    (
        "rbac-speaker.yaml",
        include_str!("../../../deploy/manifests/rbac-speaker.yaml"),
    ),
    (
        "rbac-controller.yaml",
        include_str!("../../../deploy/manifests/rbac-controller.yaml"),
    ),
];

/// Applies the MetalLB namespace, both ServiceAccounts and the speaker's and
/// controller's RBAC from deploy/manifests, unmodified, with an admin client.
/// Idempotent (server-side apply), so tests sharing a fixture may all call it.
pub async fn apply_deploy_rbac(admin: &Client) -> Result<()> {
    for (name, yaml) in DEPLOY_RBAC_MANIFESTS {
        apply_yaml(admin, yaml).await.map_err(|e| match e {
            Error::Kube { context, source } => Error::Kube {
                context: format!("deploy/manifests/{name}: {context}"),
                source,
            },
            other => other,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: fixture
  cluster:
    server: https://127.0.0.1:6443
users:
- name: admin
  user:
    token: secret-token
contexts:
- name: fixture
  context: {cluster: fixture, user: admin}
current-context: fixture
"#;

    #[test]
    fn impersonation_keeps_the_credentials_and_adds_as_fields() {
        let kc = Kubeconfig::from_yaml(ADMIN).expect("valid kubeconfig");
        let out = Identity::speaker().impersonating(kc);
        let text = serde_json::to_value(&out).expect("serialises");
        let user = &text["users"][0]["user"];
        assert_eq!(user["token"], "secret-token");
        assert_eq!(user["as"], "system:serviceaccount:metallb-system:speaker");
        assert_eq!(
            user["as-groups"],
            serde_json::json!([
                "system:serviceaccounts",
                "system:serviceaccounts:metallb-system",
                "system:authenticated"
            ])
        );
        assert_eq!(
            text["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
    }
}
