//! The objects `join` installs into the spoke, built as typed k8s-openapi values so that
//! `--dry-run` prints exactly what `install` applies.
//!
//! Only APIs served by Kubernetes 1.20 are used: core/v1, apps/v1, rbac.authorization.k8s.io/v1.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, Namespace, PodSecurityContext,
    PodSpec, PodTemplateSpec, Secret, SecretVolumeSource, SecurityContext, Service, ServiceAccount,
    ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::error::{Error, Result};
use crate::identity::{Identity, SECRET_NAME};

/// Default namespace.
pub const DEFAULT_NAMESPACE: &str = "tether-system";
/// Default image.
pub const DEFAULT_IMAGE: &str = "ghcr.io/tether/tether-agent:latest";
/// Name of the ServiceAccount, Deployment and Service.
pub const AGENT_NAME: &str = "tether-agent";
/// Name of the ClusterRole (and its binding) that lets the proxy impersonate.
pub const IMPERSONATE_ROLE: &str = "tether-agent-impersonate";
/// Name of the Role (and its binding) that lets the agent update its identity Secret.
pub const IDENTITY_ROLE: &str = "tether-agent-identity";
/// Port the proxy listens on in the pod.
pub const PROXY_PORT: i32 = 8443;
/// Port of the Service.
pub const SERVICE_PORT: i32 = 443;
/// Where the Deployment mounts the identity Secret.
pub const IDENTITY_MOUNT: &str = "/var/run/tether/identity";
/// Where the Deployment keeps `jwks.json` and `status.json`.
pub const STATE_MOUNT: &str = "/var/lib/tether";

/// What the manifests depend on besides the identity.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Namespace for the namespaced objects.
    pub namespace: String,
    /// The agent's container image.
    pub image: String,
}

/// Every object `join` installs, in apply order.
#[derive(Debug, Clone)]
pub struct Manifests {
    /// The agent's namespace.
    pub namespace: Namespace,
    /// `tether-agent`.
    pub service_account: ServiceAccount,
    /// `tether-agent-impersonate`.
    pub cluster_role: ClusterRole,
    /// Binds the ClusterRole to the ServiceAccount.
    pub cluster_role_binding: ClusterRoleBinding,
    /// `tether-agent-identity`: get/update/patch on the identity Secret only (renewal).
    pub role: Role,
    /// Binds the Role to the ServiceAccount.
    pub role_binding: RoleBinding,
    /// `tether-agent-identity`.
    pub secret: Secret,
    /// `tether-agent`.
    pub deployment: Deployment,
    /// `tether-agent`, 443 -> 8443.
    pub service: Service,
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), AGENT_NAME.to_owned()),
        ("app.kubernetes.io/part-of".to_owned(), "tether".to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "tether-agent-join".to_owned(),
        ),
    ])
}

fn selector() -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/name".to_owned(), AGENT_NAME.to_owned())])
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels()),
        ..Default::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The impersonation rules: the proxy sets `Impersonate-User`, `-Group`, `-Extra-*` and
/// `-Uid`, and checks `--as` requests with SubjectAccessReviews.
///
/// RBAC matches `userextras/<key>` exactly (there is no `userextras/*` wildcard), so each
/// extra the proxy sets is listed by name.
pub fn impersonate_rules() -> Vec<PolicyRule> {
    use crate::proxy::identity::{EXTRA_IMPERSONATED_BY, EXTRA_ISSUER, EXTRA_SID};
    let extras =
        [EXTRA_SID, EXTRA_ISSUER, EXTRA_IMPERSONATED_BY].map(|k| format!("userextras/{k}"));
    let mut resources = strings(&["users", "groups", "uids", "serviceaccounts"]);
    resources.extend(extras);
    vec![
        PolicyRule {
            api_groups: Some(strings(&["", "authentication.k8s.io"])),
            resources: Some(resources),
            verbs: strings(&["impersonate"]),
            ..Default::default()
        },
        PolicyRule {
            api_groups: Some(strings(&["authorization.k8s.io"])),
            resources: Some(strings(&["subjectaccessreviews"])),
            verbs: strings(&["create"]),
            ..Default::default()
        },
    ]
}

impl Manifests {
    /// The manifests for `identity`.
    pub fn build(opts: &InstallOptions, identity: &Identity) -> Self {
        let ns = opts.namespace.as_str();
        let subject = Subject {
            kind: "ServiceAccount".to_owned(),
            name: AGENT_NAME.to_owned(),
            namespace: Some(ns.to_owned()),
            ..Default::default()
        };
        Self {
            namespace: Namespace {
                metadata: meta(ns, None),
                ..Default::default()
            },
            service_account: ServiceAccount {
                metadata: meta(AGENT_NAME, Some(ns)),
                ..Default::default()
            },
            cluster_role: ClusterRole {
                metadata: meta(IMPERSONATE_ROLE, None),
                rules: Some(impersonate_rules()),
                ..Default::default()
            },
            cluster_role_binding: ClusterRoleBinding {
                metadata: meta(IMPERSONATE_ROLE, None),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".to_owned(),
                    kind: "ClusterRole".to_owned(),
                    name: IMPERSONATE_ROLE.to_owned(),
                },
                subjects: Some(vec![subject.clone()]),
            },
            role: Role {
                metadata: meta(IDENTITY_ROLE, Some(ns)),
                rules: Some(vec![PolicyRule {
                    api_groups: Some(strings(&[""])),
                    resources: Some(strings(&["secrets"])),
                    resource_names: Some(strings(&[SECRET_NAME])),
                    verbs: strings(&["get", "update", "patch"]),
                    ..Default::default()
                }]),
            },
            role_binding: RoleBinding {
                metadata: meta(IDENTITY_ROLE, Some(ns)),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".to_owned(),
                    kind: "Role".to_owned(),
                    name: IDENTITY_ROLE.to_owned(),
                },
                subjects: Some(vec![subject]),
            },
            secret: Secret {
                metadata: meta(SECRET_NAME, Some(ns)),
                type_: Some("Opaque".to_owned()),
                data: Some(identity.secret_data()),
                ..Default::default()
            },
            deployment: deployment(opts),
            service: Service {
                metadata: meta(AGENT_NAME, Some(ns)),
                spec: Some(ServiceSpec {
                    selector: Some(selector()),
                    ports: Some(vec![ServicePort {
                        name: Some("https".to_owned()),
                        port: SERVICE_PORT,
                        target_port: Some(IntOrString::String("https".to_owned())),
                        protocol: Some("TCP".to_owned()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        }
    }

    /// `(kind, name)` of every object, in apply order.
    pub fn names(&self) -> Vec<(&'static str, String)> {
        let name = |m: &ObjectMeta| m.name.clone().unwrap_or_default();
        vec![
            ("Namespace", name(&self.namespace.metadata)),
            ("ServiceAccount", name(&self.service_account.metadata)),
            ("ClusterRole", name(&self.cluster_role.metadata)),
            (
                "ClusterRoleBinding",
                name(&self.cluster_role_binding.metadata),
            ),
            ("Role", name(&self.role.metadata)),
            ("RoleBinding", name(&self.role_binding.metadata)),
            ("Secret", name(&self.secret.metadata)),
            ("Deployment", name(&self.deployment.metadata)),
            ("Service", name(&self.service.metadata)),
        ]
    }

    /// All objects as one multi-document YAML stream.
    pub fn to_yaml(&self) -> Result<String> {
        let docs = [
            yaml(&self.namespace)?,
            yaml(&self.service_account)?,
            yaml(&self.cluster_role)?,
            yaml(&self.cluster_role_binding)?,
            yaml(&self.role)?,
            yaml(&self.role_binding)?,
            yaml(&self.secret)?,
            yaml(&self.deployment)?,
            yaml(&self.service)?,
        ];
        Ok(docs
            .iter()
            .map(|d| format!("---\n{}", d.trim_end()))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n")
    }
}

fn yaml<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_saphyr::to_string(value).map_err(|e| Error::Yaml(e.to_string()))
}

fn deployment(opts: &InstallOptions) -> Deployment {
    let ns = opts.namespace.as_str();
    let container = Container {
        name: AGENT_NAME.to_owned(),
        image: Some(opts.image.clone()),
        args: Some(vec![
            "run".to_owned(),
            "--namespace".to_owned(),
            ns.to_owned(),
            "--state-dir".to_owned(),
            STATE_MOUNT.to_owned(),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("https".to_owned()),
            container_port: PROXY_PORT,
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }]),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "identity".to_owned(),
                mount_path: IDENTITY_MOUNT.to_owned(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "state".to_owned(),
                mount_path: STATE_MOUNT.to_owned(),
                ..Default::default()
            },
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(strings(&["ALL"])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    Deployment {
        metadata: meta(AGENT_NAME, Some(ns)),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector()),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_owned()),
                ..Default::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(AGENT_NAME.to_owned()),
                    containers: vec![container],
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        ..Default::default()
                    }),
                    volumes: Some(vec![
                        Volume {
                            name: "identity".to_owned(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(SECRET_NAME.to_owned()),
                                default_mode: Some(0o400),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        Volume {
                            name: "state".to_owned(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
