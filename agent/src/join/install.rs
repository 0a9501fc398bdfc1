//! Talking to the spoke: the kube client, the access check done BEFORE the token is
//! redeemed, and the server-side apply of [`Manifests`] (re-running `join` is safe).

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::manifests::Manifests;
use crate::error::{Error, Result};
use crate::identity::FIELD_MANAGER;

/// A kube client from `kubeconfig`, or from `$KUBECONFIG` / `~/.kube/config` / in-cluster.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| Error::KubeConfig(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| Error::KubeConfig(format!("{}: {e}", path.display())))?
        }
        None => Config::infer()
            .await
            .map_err(|e| Error::KubeConfig(e.to_string()))?,
    };
    Ok(Client::try_from(config)?)
}

/// One permission `join` needs: (verb, group, resource, namespaced).
const NEEDED: &[(&str, &str, &str, bool)] = &[
    ("create", "", "namespaces", false),
    ("create", "", "serviceaccounts", true),
    ("create", "rbac.authorization.k8s.io", "clusterroles", false),
    (
        "create",
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        false,
    ),
    ("create", "rbac.authorization.k8s.io", "roles", true),
    ("create", "rbac.authorization.k8s.io", "rolebindings", true),
    ("create", "", "secrets", true),
    ("create", "apps", "deployments", true),
    ("create", "", "services", true),
];

/// Checks with SelfSubjectAccessReviews that the kubeconfig may create everything `join`
/// installs. Fails with [`Error::SpokeForbidden`] listing what is missing.
pub async fn check_access(client: &Client, namespace: &str) -> Result<()> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut missing = Vec::new();
    for &(verb, group, resource, namespaced) in NEEDED {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.to_owned()),
                    group: Some(group.to_owned()),
                    resource: Some(resource.to_owned()),
                    namespace: namespaced.then(|| namespace.to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(map_forbidden)?;
        if !answer.status.is_some_and(|s| s.allowed) {
            missing.push(format!("{verb} {resource}"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::SpokeForbidden(format!(
            "missing: {}",
            missing.join(", ")
        )))
    }
}

/// Server-side applies every object, in order. Safe to repeat.
pub async fn apply(client: &Client, m: &Manifests) -> Result<()> {
    let ns = m.namespace.metadata.name.clone().unwrap_or_default();
    apply_one(Api::<Namespace>::all(client.clone()), &m.namespace).await?;
    apply_one(
        Api::<ServiceAccount>::namespaced(client.clone(), &ns),
        &m.service_account,
    )
    .await?;
    apply_one(Api::<ClusterRole>::all(client.clone()), &m.cluster_role).await?;
    apply_one(
        Api::<ClusterRoleBinding>::all(client.clone()),
        &m.cluster_role_binding,
    )
    .await?;
    apply_one(Api::<Role>::namespaced(client.clone(), &ns), &m.role).await?;
    apply_one(
        Api::<RoleBinding>::namespaced(client.clone(), &ns),
        &m.role_binding,
    )
    .await?;
    apply_one(Api::<Secret>::namespaced(client.clone(), &ns), &m.secret).await?;
    apply_one(
        Api::<Deployment>::namespaced(client.clone(), &ns),
        &m.deployment,
    )
    .await?;
    apply_one(Api::<Service>::namespaced(client.clone(), &ns), &m.service).await?;
    Ok(())
}

async fn apply_one<K>(api: Api<K>, object: &K) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = object.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(map_forbidden)?;
    tracing::info!(kind = %K::kind(&K::DynamicType::default()), %name, "applied");
    Ok(())
}

/// A 403 from the spoke becomes [`Error::SpokeForbidden`].
pub fn map_forbidden(e: kube::Error) -> Error {
    match &e {
        kube::Error::Api(status) if status.code == 403 => {
            Error::SpokeForbidden(status.message.clone())
        }
        _ => Error::from(e),
    }
}
