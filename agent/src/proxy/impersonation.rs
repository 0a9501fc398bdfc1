//! Client-requested impersonation (`kubectl --as`, `--as-group`, `--as-uid`): honoured only
//! when the spoke's own authorizer says the authenticated user may `impersonate` each
//! requested identity, asked with a `SubjectAccessReview` ([`SarCheck`]).

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

use super::auth::Identity;
use super::identity::{EXTRA_ISSUER, EXTRA_SID};
use super::status::ProxyError;

/// `resource` of a user impersonation.
pub const USERS: &str = "users";
/// `resource` of a group impersonation.
pub const GROUPS: &str = "groups";
/// `resource` of a uid impersonation.
pub const UIDS: &str = "uids";
/// `resource` of a service-account impersonation; the name is `<namespace>/<name>`.
pub const SERVICEACCOUNTS: &str = "serviceaccounts";
/// Prefix of the `resource` of an extra impersonation: `userextras/<key>`, name the value.
pub const USEREXTRAS_PREFIX: &str = "userextras/";

/// Decides whether `who` may impersonate one identity.
#[async_trait]
pub trait ImpersonationCheck: Send + Sync {
    /// Whether `who` may `impersonate` `(resource, name)`, where resource is [`USERS`],
    /// [`GROUPS`], [`UIDS`], [`SERVICEACCOUNTS`] or `userextras/<key>`. `Err` when the
    /// question could not be answered (the request is then refused, never let through).
    async fn allowed(
        &self,
        who: &Identity,
        verb_resource: (&str, &str),
    ) -> Result<bool, ProxyError>;
}

/// Asks the spoke's API server with a `SubjectAccessReview`.
///
/// The agent's ServiceAccount needs `create` on `subjectaccessreviews.authorization.k8s.io`.
#[derive(Clone)]
pub struct SarCheck {
    client: kube::Client,
}

impl SarCheck {
    /// A check using `client` (the agent's in-cluster client).
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

impl fmt::Debug for SarCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SarCheck").finish_non_exhaustive()
    }
}

#[async_trait]
impl ImpersonationCheck for SarCheck {
    async fn allowed(
        &self,
        who: &Identity,
        (resource, name): (&str, &str),
    ) -> Result<bool, ProxyError> {
        let review = review(who, resource, name);
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "SubjectAccessReview for impersonation failed");
                ProxyError::ServiceUnavailable(
                    "could not check the impersonation permission with the cluster".to_owned(),
                )
            })?;
        Ok(answer
            .status
            .is_some_and(|s| s.allowed && s.denied != Some(true)))
    }
}

/// The `SubjectAccessReview` asking whether `who` may impersonate `(resource, name)`.
pub fn review(who: &Identity, resource: &str, name: &str) -> SubjectAccessReview {
    let (resource, subresource, namespace, name) =
        if let Some(key) = resource.strip_prefix(USEREXTRAS_PREFIX) {
            ("userextras", Some(key), None, name)
        } else if resource == SERVICEACCOUNTS {
            match name.split_once('/') {
                Some((ns, sa)) => (resource, None, Some(ns), sa),
                None => (resource, None, None, name),
            }
        } else {
            (resource, None, None, name)
        };
    let mut extra = BTreeMap::new();
    if let Some(sid) = &who.sid {
        extra.insert(EXTRA_SID.to_owned(), vec![sid.clone()]);
    }
    extra.insert(EXTRA_ISSUER.to_owned(), vec![who.issuer.clone()]);
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(who.username.clone()),
            groups: Some(who.groups.clone()),
            extra: Some(extra),
            resource_attributes: Some(ResourceAttributes {
                verb: Some("impersonate".to_owned()),
                group: Some(String::new()),
                resource: Some(resource.to_owned()),
                subresource: subresource.map(str::to_owned),
                namespace: namespace.map(str::to_owned),
                name: Some(name.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

#[cfg(test)]
mod tests;
