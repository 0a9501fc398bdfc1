//! The reconciler: makes the cluster Secrets in the hub cluster match the registry.
//!
//! Desired = [`render_all`] of the registry; actual = the Secrets carrying
//! [`MANAGED_SELECTOR`](super::MANAGED_SELECTOR). [`plan`] lists the Secrets that differ;
//! [`Reconciler::converge`] writes each with optimistic concurrency, so that when several
//! hub replicas race, exactly one write lands per change and only that replica audits and
//! counts it:
//! - create → `AlreadyExists`: re-read; equal means another replica did it;
//! - replace with the `resourceVersion` read → `Conflict`: re-read and compare again;
//! - delete with a `resourceVersion` precondition → `NotFound` (done by another) or
//!   `Conflict` (changed: re-read).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use tether_common::time::Clock;
use tracing::Instrument as _;

use super::secret::{RenderSettings, Rendered, published, render_all};
use super::{
    ANNOTATION_CLUSTER, ANNOTATION_PREFIX, ArgoCdError, ArgoCdLink, LABEL_MANAGED_BY,
    LABEL_SECRET_TYPE, MANAGED_BY, MANAGED_SELECTOR, METRIC_RECONCILE_ERRORS, METRIC_SECRET_WRITES,
    METRIC_SECRETS, METRIC_WRITE_CONFLICTS, SECRET_NAME_PREFIX, SECRET_TYPE_CLUSTER, audit_kind,
};
use crate::registry::ClusterRecord;
use crate::store::{AuditOutcome, AuditRecord, Store};

/// Attempts to converge one Secret before giving up until the next run.
pub const MAX_ATTEMPTS: usize = 5;
/// First retry delay after a failed run; doubles up to the resync interval.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);

/// The few Kubernetes calls the reconciler makes on the Secrets of one namespace.
pub trait SecretApi: Send + Sync {
    /// The namespace (for messages).
    fn namespace(&self) -> &str;
    /// The Secrets matching [`MANAGED_SELECTOR`](super::MANAGED_SELECTOR).
    fn list(&self) -> impl Future<Output = Result<Vec<Secret>, ApiError>> + Send;
    /// One Secret, if it exists.
    fn get(&self, name: &str) -> impl Future<Output = Result<Option<Secret>, ApiError>> + Send;
    /// Creates; [`ApiError::AlreadyExists`] if the name is taken.
    fn create(&self, secret: &Secret) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Replaces; [`ApiError::Conflict`] if its `resourceVersion` is no longer current.
    fn replace(&self, secret: &Secret) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Deletes if still at `resource_version`: [`ApiError::Conflict`] if it changed,
    /// [`ApiError::NotFound`] if it is gone.
    fn delete(
        &self,
        name: &str,
        resource_version: Option<&str>,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// What the Kubernetes API answered, as far as the reconciler cares.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 409 `AlreadyExists`.
    #[error("already exists")]
    AlreadyExists,
    /// 409 `Conflict`: the object changed since it was read.
    #[error("changed since it was read (conflict)")]
    Conflict,
    /// 404.
    #[error("not found")]
    NotFound,
    /// Anything else (apiserver unreachable, forbidden, invalid), with the API's words.
    #[error("{0}")]
    Failed(String),
}

impl From<kube::Error> for ApiError {
    fn from(err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) if status.is_already_exists() => Self::AlreadyExists,
            kube::Error::Api(status) if status.is_not_found() => Self::NotFound,
            kube::Error::Api(status) if status.is_conflict() => Self::Conflict,
            kube::Error::Api(status) => Self::Failed(format!(
                "{} {}: {}",
                status.code, status.reason, status.message
            )),
            other => Self::Failed(chain(&other)),
        }
    }
}

/// The message of `err` and its causes, `: `-separated.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// [`SecretApi`] on a real cluster.
#[derive(Clone)]
pub struct KubeSecrets {
    api: Api<Secret>,
    namespace: String,
}

impl KubeSecrets {
    /// The Secrets of `namespace` through `client`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
        }
    }
}

impl std::fmt::Debug for KubeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSecrets")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl SecretApi for KubeSecrets {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    async fn list(&self) -> Result<Vec<Secret>, ApiError> {
        let params = ListParams::default().labels(MANAGED_SELECTOR);
        Ok(self.api.list(&params).await?.items)
    }

    async fn get(&self, name: &str) -> Result<Option<Secret>, ApiError> {
        Ok(self.api.get_opt(name).await?)
    }

    async fn create(&self, secret: &Secret) -> Result<(), ApiError> {
        self.api.create(&PostParams::default(), secret).await?;
        Ok(())
    }

    async fn replace(&self, secret: &Secret) -> Result<(), ApiError> {
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        self.api
            .replace(name, &PostParams::default(), secret)
            .await?;
        Ok(())
    }

    async fn delete(&self, name: &str, resource_version: Option<&str>) -> Result<(), ApiError> {
        let params = DeleteParams {
            preconditions: resource_version.map(|rv| Preconditions {
                resource_version: Some(rv.to_owned()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        self.api.delete(name, &params).await?;
        Ok(())
    }
}

/// One write that landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// A Secret was created.
    Create,
    /// A Secret was replaced.
    Update,
    /// A Secret was deleted.
    Delete,
}

impl Op {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    /// The audit kind.
    pub fn audit_kind(self) -> &'static str {
        match self {
            Self::Create => audit_kind::SECRET_CREATED,
            Self::Update => audit_kind::SECRET_UPDATED,
            Self::Delete => audit_kind::SECRET_DELETED,
        }
    }
}

/// A Secret that is not what it should be.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The Secret's name.
    pub name: String,
    /// The cluster it is for.
    pub cluster: String,
    /// What it should be; `None`: it should not exist.
    pub desired: Option<Rendered>,
    /// What was read; `None`: it does not exist.
    pub current: Option<Secret>,
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Secrets the registry calls for.
    pub desired: usize,
    /// Writes that landed, by kind.
    pub created: usize,
    /// Replaced.
    pub updated: usize,
    /// Deleted.
    pub deleted: usize,
}

impl Summary {
    /// Writes that landed.
    pub fn writes(&self) -> usize {
        self.created + self.updated + self.deleted
    }

    fn count(&mut self, op: Op) {
        match op {
            Op::Create => self.created += 1,
            Op::Update => self.updated += 1,
            Op::Delete => self.deleted += 1,
        }
    }
}

/// The Secrets that differ between `desired` (by name) and `actual` (the managed Secrets
/// listed), by name: missing ones, differing ones, and ones whose cluster is gone.
pub fn plan(desired: &BTreeMap<String, Rendered>, actual: Vec<Secret>) -> Vec<Step> {
    let mut actual: BTreeMap<String, Secret> = actual
        .into_iter()
        .filter(is_managed)
        .filter_map(|s| s.metadata.name.clone().map(|name| (name, s)))
        .collect();
    let names: BTreeSet<String> = desired.keys().chain(actual.keys()).cloned().collect();
    names
        .into_iter()
        .filter_map(|name| {
            let want = desired.get(&name);
            let current = actual.remove(&name);
            if let (Some(want), Some(current)) = (want, &current)
                && in_sync(&want.secret, current)
            {
                return None;
            }
            let cluster = match (want, &current) {
                (Some(want), _) => want.cluster.to_string(),
                (None, Some(current)) => cluster_of(current, &name),
                (None, None) => return None,
            };
            Some(Step {
                name,
                cluster,
                desired: want.cloned(),
                current,
            })
        })
        .collect()
}

/// Whether `current` carries what `desired` says: the same data and labels, and the hub's
/// annotations (annotations others add are left alone).
pub fn in_sync(desired: &Secret, current: &Secret) -> bool {
    let empty = BTreeMap::new();
    let annotations = |s: &Secret| s.metadata.annotations.clone().unwrap_or_default();
    let ours = |s: &Secret| -> BTreeMap<String, String> {
        annotations(s)
            .into_iter()
            .filter(|(k, _)| k.starts_with(ANNOTATION_PREFIX))
            .collect()
    };
    desired.data.as_ref().unwrap_or(&empty) == current.data.as_ref().unwrap_or(&empty)
        && current.string_data.as_ref().is_none_or(BTreeMap::is_empty)
        && desired.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())
            == current.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())
        && ours(desired) == ours(current)
}

/// Whether a Secret carries both labels of the Secrets the hub owns.
pub fn is_managed(secret: &Secret) -> bool {
    secret.metadata.labels.as_ref().is_some_and(|labels| {
        labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY)
            && labels.get(LABEL_SECRET_TYPE).map(String::as_str) == Some(SECRET_TYPE_CLUSTER)
    })
}

/// `current` turned into `desired`, keeping its identity (`resourceVersion`, uid, owners,
/// finalizers, type) and the annotations others added.
pub fn updated(desired: &Secret, current: &Secret) -> Secret {
    let mut next = current.clone();
    next.metadata.labels.clone_from(&desired.metadata.labels);
    let mut annotations: BTreeMap<String, String> = current
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !k.starts_with(ANNOTATION_PREFIX))
        .collect();
    annotations.extend(desired.metadata.annotations.clone().unwrap_or_default());
    next.metadata.annotations = Some(annotations);
    next.metadata.managed_fields = None;
    next.data.clone_from(&desired.data);
    next.string_data = None;
    next
}

/// The cluster a Secret is for: its annotation, else its name without the prefix.
fn cluster_of(secret: &Secret, name: &str) -> String {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_CLUSTER))
        .cloned()
        .unwrap_or_else(|| {
            name.strip_prefix(SECRET_NAME_PREFIX)
                .unwrap_or(name)
                .to_owned()
        })
}

/// Makes the Secrets in one namespace match the registry.
pub struct Reconciler<A> {
    api: A,
    store: Store,
    settings: Arc<RenderSettings>,
    clock: Arc<dyn Clock>,
}

impl<A: SecretApi> Reconciler<A> {
    /// A reconciler writing through `api`, reading the registry from `store`.
    pub fn new(api: A, store: Store, settings: Arc<RenderSettings>, clock: Arc<dyn Clock>) -> Self {
        Self {
            api,
            store,
            settings,
            clock,
        }
    }

    /// The Kubernetes API it writes through.
    pub fn api(&self) -> &A {
        &self.api
    }

    /// Runs forever: at once, then every `resync`, and at once when `link` is poked. A
    /// failed run is logged and retried after [`FIRST_RETRY`], doubling up to `resync`.
    pub async fn run(self, link: Arc<ArgoCdLink>, resync: Duration) {
        let mut failures: u32 = 0;
        let mut trigger = "startup";
        loop {
            let span = tracing::info_span!(
                "argocd_reconcile",
                trigger,
                namespace = %self.api.namespace(),
            );
            let delay = match self.reconcile().instrument(span).await {
                Ok(_) => {
                    failures = 0;
                    resync
                }
                Err(err) => {
                    failures = failures.saturating_add(1);
                    let delay = retry_delay(failures, resync);
                    metrics::counter!(METRIC_RECONCILE_ERRORS).increment(1);
                    tracing::warn!(
                        error = %chain(&err),
                        failures,
                        retry_in = %humantime::format_duration(delay),
                        "ArgoCD cluster Secrets: reconciliation failed"
                    );
                    delay
                }
            };
            trigger = tokio::select! {
                () = link.changed() => "change",
                () = tokio::time::sleep(delay) => if failures > 0 { "retry" } else { "resync" },
            };
        }
    }

    /// One run: reads the registry, renders, lists, and converges every differing Secret.
    /// Every Secret is attempted; the first failure is returned after the others.
    pub async fn reconcile(&self) -> Result<Summary, ArgoCdError> {
        let records = self.store.list_cluster_records().await?;
        self.reconcile_records(&records).await
    }

    /// [`Self::reconcile`] for the given registry.
    pub async fn reconcile_records(
        &self,
        records: &[ClusterRecord],
    ) -> Result<Summary, ArgoCdError> {
        let steps = self.observe(records).await?;
        let mut summary = Summary {
            desired: records.iter().filter(|r| published(r).is_ok()).count(),
            ..Summary::default()
        };
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!(METRIC_SECRETS).set(summary.desired as f64);
        let mut first_error = None;
        for step in steps {
            match self.converge(step).await {
                Ok(Some(op)) => summary.count(op),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(error = %chain(&err), "ArgoCD cluster Secret not converged");
                    first_error.get_or_insert(err);
                }
            }
        }
        if summary.writes() > 0 {
            tracing::info!(
                created = summary.created,
                updated = summary.updated,
                deleted = summary.deleted,
                "ArgoCD cluster Secrets written"
            );
        } else {
            tracing::debug!(secrets = summary.desired, "ArgoCD cluster Secrets in sync");
        }
        first_error.map_or(Ok(summary), Err)
    }

    /// Renders `records` and lists the Secrets: the steps to take.
    pub async fn observe(&self, records: &[ClusterRecord]) -> Result<Vec<Step>, ArgoCdError> {
        let desired = render_all(records, &self.settings)?;
        let actual = self
            .api
            .list()
            .await
            .map_err(|source| self.api_error("list", "", source))?;
        Ok(plan(&desired, actual))
    }

    /// Brings one Secret to what it should be; `Some(op)` if this replica's write landed,
    /// `None` if nothing was left to do (another replica did it, or it is not ours).
    pub async fn converge(&self, step: Step) -> Result<Option<Op>, ArgoCdError> {
        let Step {
            name,
            cluster,
            desired,
            mut current,
        } = step;
        let desired = desired.as_ref();
        for _ in 0..MAX_ATTEMPTS {
            let lost = match (desired, current.take()) {
                (None, None) => return Ok(None),
                (_, Some(found)) if !is_managed(&found) => {
                    tracing::warn!(
                        secret = %name,
                        namespace = %self.api.namespace(),
                        "a Secret of this name exists without the labels {LABEL_MANAGED_BY}={MANAGED_BY} \
                         and {LABEL_SECRET_TYPE}={SECRET_TYPE_CLUSTER}: leaving it alone; delete it to let \
                         the hub manage the cluster"
                    );
                    return Ok(None);
                }
                (None, Some(found)) => {
                    let rv = found.metadata.resource_version.as_deref();
                    match self.api.delete(&name, rv).await {
                        Ok(()) => return self.landed(Op::Delete, &name, &cluster, None).await,
                        Err(ApiError::NotFound) => return Ok(None),
                        Err(ApiError::Conflict) => true,
                        Err(source) => return Err(self.api_error("delete", &name, source)),
                    }
                }
                (Some(want), None) => match self.api.create(&want.secret).await {
                    Ok(()) => return self.landed(Op::Create, &name, &cluster, Some(want)).await,
                    Err(ApiError::AlreadyExists) => true,
                    Err(source) => return Err(self.api_error("create", &name, source)),
                },
                (Some(want), Some(found)) => {
                    if in_sync(&want.secret, &found) {
                        return Ok(None);
                    }
                    match self.api.replace(&updated(&want.secret, &found)).await {
                        Ok(()) => {
                            return self.landed(Op::Update, &name, &cluster, Some(want)).await;
                        }
                        Err(ApiError::Conflict) => true,
                        Err(ApiError::NotFound) => false,
                        Err(source) => return Err(self.api_error("replace", &name, source)),
                    }
                }
            };
            if lost {
                metrics::counter!(METRIC_WRITE_CONFLICTS).increment(1);
                tracing::debug!(secret = %name, "changed by another writer; re-reading");
            }
            current = self
                .api
                .get(&name)
                .await
                .map_err(|source| self.api_error("get", &name, source))?;
        }
        Err(ArgoCdError::TooManyConflicts {
            name,
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Counts, logs and audits a write that landed.
    async fn landed(
        &self,
        op: Op,
        name: &str,
        cluster: &str,
        rendered: Option<&Rendered>,
    ) -> Result<Option<Op>, ArgoCdError> {
        metrics::counter!(METRIC_SECRET_WRITES, "op" => op.as_str()).increment(1);
        let namespace = self.api.namespace();
        tracing::info!(secret = %name, %namespace, %cluster, op = op.as_str(), "ArgoCD cluster Secret written");
        let skipped: Vec<&str> = rendered
            .map(|r| r.skipped_labels.iter().map(|s| s.key.as_str()).collect())
            .unwrap_or_default();
        for label in rendered.iter().flat_map(|r| &r.skipped_labels) {
            tracing::warn!(%cluster, label = %label.key, reason = %label.reason, "spoke label not copied to its ArgoCD Secret");
        }
        let record = AuditRecord::new(
            self.clock.now().as_secs(),
            op.audit_kind(),
            "system",
            AuditOutcome::Success,
        )
        .with_subject(cluster.to_owned())
        .with_details(serde_json::json!({
            "secret": name,
            "namespace": namespace,
            "skipped_labels": skipped,
        }));
        if let Err(err) = self.store.append_audit(&record).await {
            tracing::error!(error = %err, secret = %name, "cannot audit an ArgoCD Secret write");
        }
        Ok(Some(op))
    }

    fn api_error(&self, op: &'static str, name: &str, source: ApiError) -> ArgoCdError {
        ArgoCdError::Api {
            op,
            namespace: self.api.namespace().to_owned(),
            name: name.to_owned(),
            source,
        }
    }
}

impl<A> std::fmt::Debug for Reconciler<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("namespace", &self.settings.namespace)
            .finish_non_exhaustive()
    }
}

/// The delay before retry number `failures` (1-based): [`FIRST_RETRY`] doubling, at most
/// `resync`.
pub fn retry_delay(failures: u32, resync: Duration) -> Duration {
    let factor = 1_u32 << failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(factor).min(resync)
}
