use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tether_common::time::{ManualClock, UnixTime};

use super::reconcile::{ApiError, Op, Step, in_sync, is_managed, plan, retry_delay, updated};
use super::secret::{NotPublished, copyable_label, published, render_all, secret_name, to_json};
use super::*;
use crate::registry::{ClusterName, ClusterRecord, ClusterRow, ClusterState};
use crate::store::Store;

const PROXY_CA: &str = "-----BEGIN CERTIFICATE-----\nPROXY\n-----END CERTIFICATE-----\n";
const HUB_CA: &str = "-----BEGIN CERTIFICATE-----\nHUB\n-----END CERTIFICATE-----\n";

fn settings(hub_ca: Option<&str>) -> RenderSettings {
    RenderSettings {
        namespace: "argocd".to_owned(),
        command: "/custom-tools/tetherctl".to_owned(),
        token_file: "/var/run/secrets/kubernetes.io/serviceaccount/token".to_owned(),
        hub_url: "https://hub.example.com".to_owned(),
        hub_ca_pem: hub_ca.map(str::to_owned),
    }
}

fn record(name: &str, labels: &[(&str, &str)]) -> ClusterRecord {
    ClusterRecord {
        row: ClusterRow {
            name: ClusterName::parse(name).unwrap(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            created_at: UnixTime::from_secs(1_000),
        },
        state: ClusterState::Joined,
        cert_serial: Some("01".to_owned()),
        cert_not_after: Some(UnixTime::from_secs(2_000_000)),
        agent_version: "0.1.0".to_owned(),
        last_seen: Some(UnixTime::from_secs(1_500)),
        proxy_url: format!("https://{name}.proxy.example.com:8443"),
        proxy_ca_pem: PROXY_CA.to_owned(),
    }
}

fn data(secret: &Secret, key: &str) -> String {
    let bytes = &secret.data.as_ref().unwrap()[key].0;
    String::from_utf8(bytes.clone()).unwrap()
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Rendering.

#[test]
fn renders_argocd_declarative_cluster_secret() {
    let rendered = render(
        &record(
            "prod-eu",
            &[("env", "prod"), ("example.com/team", "payments")],
        ),
        &settings(Some(HUB_CA)),
    )
    .unwrap();
    let secret = &rendered.secret;
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some("tether-cluster-prod-eu")
    );
    assert_eq!(secret.metadata.namespace.as_deref(), Some("argocd"));
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        secret.metadata.labels.clone().unwrap(),
        strings(&[
            ("argocd.argoproj.io/secret-type", "cluster"),
            ("app.kubernetes.io/managed-by", "tether-hub"),
            ("env", "prod"),
            ("example.com/team", "payments"),
        ])
    );
    assert_eq!(
        secret.metadata.annotations.clone().unwrap(),
        strings(&[("tether.dev/cluster", "prod-eu")])
    );
    assert_eq!(
        secret.data.as_ref().unwrap().keys().collect::<Vec<_>>(),
        ["config", "name", "server"]
    );
    assert_eq!(data(secret, "name"), "prod-eu");
    assert_eq!(
        data(secret, "server"),
        "https://prod-eu.proxy.example.com:8443"
    );
    let expected = format!(
        concat!(
            r#"{{"execProviderConfig":{{"command":"/custom-tools/tetherctl","#,
            r#""args":["credential","--hub","https://hub.example.com","--cluster","prod-eu","#,
            r#""--token-file","/var/run/secrets/kubernetes.io/serviceaccount/token"],"#,
            r#""env":{{"TETHER_HUB_CA_DATA":"{hub_ca}"}},"#,
            r#""apiVersion":"client.authentication.k8s.io/v1beta1","#,
            r#""installHint":"tetherctl must be installed in the ArgoCD application controller "#,
            r#"and server images at /custom-tools/tetherctl (see the Tether documentation on ArgoCD)"}},"#,
            r#""tlsClientConfig":{{"insecure":false,"caData":"{proxy_ca}"}}}}"#
        ),
        hub_ca = STANDARD.encode(HUB_CA),
        proxy_ca = STANDARD.encode(PROXY_CA),
    );
    assert_eq!(data(secret, "config"), expected);
    assert!(rendered.skipped_labels.is_empty());
    // The base64 in the config decodes to the PEMs.
    let config: serde_json::Value = serde_json::from_str(&data(secret, "config")).unwrap();
    let decode = |v: &serde_json::Value| {
        String::from_utf8(STANDARD.decode(v.as_str().unwrap()).unwrap()).unwrap()
    };
    assert_eq!(decode(&config["tlsClientConfig"]["caData"]), PROXY_CA);
    assert_eq!(
        decode(&config["execProviderConfig"]["env"]["TETHER_HUB_CA_DATA"]),
        HUB_CA
    );
}

#[test]
fn without_cas_the_config_has_no_env_and_no_ca_data() {
    let mut cluster = record("dev", &[]);
    cluster.proxy_ca_pem.clear();
    let rendered = render(&cluster, &settings(None)).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&data(&rendered.secret, "config")).unwrap();
    assert!(
        config["execProviderConfig"].get("env").is_none(),
        "{config}"
    );
    assert!(
        config["tlsClientConfig"].get("caData").is_none(),
        "{config}"
    );
    assert_eq!(config["tlsClientConfig"]["insecure"], false);
    assert_eq!(
        rendered.secret.metadata.labels.unwrap().len(),
        2,
        "only the hub's labels"
    );
}

#[test]
fn invalid_and_colliding_labels_are_skipped() {
    let rendered = render(
        &record(
            "dev",
            &[
                ("env", "dev"),
                ("Bad Key", "x"),
                ("tier", "not valid!"),
                ("-lead", "x"),
                ("UPPER.case_ok", "Yes_1"),
                ("empty-value", ""),
                ("a/b/c", "x"),
                ("Not_DNS/name", "x"),
                ("app.kubernetes.io/managed-by", "someone-else"),
                ("argocd.argoproj.io/secret-type", "repository"),
                ("long", &"x".repeat(64)),
            ],
        ),
        &settings(None),
    )
    .unwrap();
    let labels = rendered.secret.metadata.labels.unwrap();
    assert_eq!(
        labels,
        strings(&[
            ("argocd.argoproj.io/secret-type", "cluster"),
            ("app.kubernetes.io/managed-by", "tether-hub"),
            ("env", "dev"),
            ("UPPER.case_ok", "Yes_1"),
            ("empty-value", ""),
        ])
    );
    let mut skipped: Vec<&str> = rendered
        .skipped_labels
        .iter()
        .map(|s| s.key.as_str())
        .collect();
    skipped.sort_unstable();
    assert_eq!(
        skipped,
        [
            "-lead",
            "Bad Key",
            "Not_DNS/name",
            "a/b/c",
            "app.kubernetes.io/managed-by",
            "argocd.argoproj.io/secret-type",
            "long",
            "tier",
        ]
    );
    assert!(rendered.skipped_labels.iter().all(|s| !s.reason.is_empty()));
}

#[test]
fn label_rules() {
    assert!(copyable_label("example.com/x", "v").is_ok());
    assert!(copyable_label("x", &"v".repeat(63)).is_ok());
    assert!(copyable_label(&"k".repeat(64), "v").is_err());
    assert!(copyable_label(&format!("{}/x", "a".repeat(254)), "v").is_err());
    assert!(copyable_label("", "v").is_err());
    assert!(copyable_label("x", "-v").is_err());
    assert!(copyable_label("/x", "v").is_err());
}

#[test]
fn only_joined_clusters_with_a_proxy_url_are_published() {
    let joined = record("a", &[]);
    assert_eq!(published(&joined), Ok(()));
    let mut pending = record("b", &[]);
    pending.state = ClusterState::Pending;
    assert!(matches!(
        published(&pending),
        Err(NotPublished::NotJoined {
            state: "pending",
            ..
        })
    ));
    let mut removed = record("c", &[]);
    removed.state = ClusterState::Removed;
    assert!(published(&removed).is_err());
    let mut silent = record("d", &[]);
    silent.proxy_url.clear();
    assert!(matches!(
        published(&silent),
        Err(NotPublished::NoProxyUrl(_))
    ));
    let all = render_all(&[joined, pending, removed, silent], &settings(None)).unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["tether-cluster-a"]);
}

#[test]
fn yaml_and_json_are_the_same_secret() {
    let rendered = render(&record("prod", &[("env", "prod")]), &settings(Some(HUB_CA))).unwrap();
    let yaml = secret::to_yaml(&rendered.secret).unwrap();
    assert!(yaml.contains("apiVersion: v1"), "{yaml}");
    assert!(yaml.contains("kind: Secret"), "{yaml}");
    let from_yaml: Secret = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(from_yaml, rendered.secret);
    let json = to_json(&rendered.secret).unwrap();
    assert!(json.ends_with('\n'));
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["kind"], "Secret");
    assert_eq!(value["type"], "Opaque");
    assert_eq!(value["data"]["name"], STANDARD.encode("prod"));
    let from_json: Secret = serde_json::from_value(value).unwrap();
    assert_eq!(from_json, rendered.secret);
}

// ---------------------------------------------------------------------------------------
// Diff.

fn desired(records: &[ClusterRecord]) -> BTreeMap<String, Rendered> {
    render_all(records, &settings(None)).unwrap()
}

/// `secret` as the apiserver would return it.
fn stored(mut secret: Secret, rv: u64) -> Secret {
    secret.metadata.resource_version = Some(rv.to_string());
    secret.metadata.uid = Some(format!("uid-{rv}"));
    secret
}

#[test]
fn plan_creates_updates_and_deletes_only_what_differs() {
    let records = [
        record("same", &[]),
        record("changed", &[("env", "new")]),
        record("new", &[]),
    ];
    let want = desired(&records);
    let mut old_changed = render(&record("changed", &[("env", "old")]), &settings(None))
        .unwrap()
        .secret;
    old_changed.metadata.resource_version = Some("7".to_owned());
    let gone = render(&record("gone", &[]), &settings(None))
        .unwrap()
        .secret;
    let mut foreign = gone.clone();
    foreign.metadata.name = Some("someone-elses".to_owned());
    foreign.metadata.labels = Some(strings(&[("argocd.argoproj.io/secret-type", "cluster")]));
    let actual = vec![
        stored(want["tether-cluster-same"].secret.clone(), 3),
        old_changed.clone(),
        stored(gone.clone(), 5),
        foreign,
    ];
    let steps = plan(&want, actual);
    let summary: Vec<(&str, &str, bool, bool)> = steps
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.cluster.as_str(),
                s.desired.is_some(),
                s.current.is_some(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("tether-cluster-changed", "changed", true, true),
            ("tether-cluster-gone", "gone", false, true),
            ("tether-cluster-new", "new", true, false),
        ]
    );
    // Nothing to do when everything matches.
    let actual: Vec<Secret> = want
        .values()
        .enumerate()
        .map(|(i, r)| stored(r.secret.clone(), i as u64))
        .collect();
    assert_eq!(plan(&want, actual), Vec::<Step>::new());
}

#[test]
fn in_sync_compares_data_labels_and_own_annotations() {
    let want = render(&record("a", &[("env", "prod")]), &settings(None))
        .unwrap()
        .secret;
    let mut current = stored(want.clone(), 1);
    assert!(in_sync(&want, &current));
    // Annotations others add are theirs.
    current.metadata.annotations.as_mut().unwrap().insert(
        "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
        "{}".to_owned(),
    );
    assert!(in_sync(&want, &current));
    // An extra label, a stale annotation of ours, other data: out of sync.
    let mut extra_label = current.clone();
    extra_label
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("old".to_owned(), "x".to_owned());
    assert!(!in_sync(&want, &extra_label));
    let mut ours = current.clone();
    ours.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("tether.dev/other".to_owned(), "x".to_owned());
    assert!(!in_sync(&want, &ours));
    let mut other_data = current.clone();
    other_data
        .data
        .as_mut()
        .unwrap()
        .insert("project".to_owned(), ByteString(b"x".to_vec()));
    assert!(!in_sync(&want, &other_data));
    let mut string_data = current.clone();
    string_data.string_data = Some(strings(&[("server", "https://elsewhere")]));
    assert!(!in_sync(&want, &string_data));
}

#[test]
fn an_update_keeps_identity_and_foreign_annotations() {
    let want = render(&record("a", &[("env", "new")]), &settings(None))
        .unwrap()
        .secret;
    let mut current = stored(
        render(&record("a", &[("env", "old")]), &settings(None))
            .unwrap()
            .secret,
        9,
    );
    current.metadata.annotations.as_mut().unwrap().extend([
        ("note".to_owned(), "keep".to_owned()),
        ("tether.dev/stale".to_owned(), "drop".to_owned()),
    ]);
    let next = updated(&want, &current);
    assert_eq!(next.metadata.resource_version.as_deref(), Some("9"));
    assert_eq!(next.metadata.uid.as_deref(), Some("uid-9"));
    assert_eq!(next.metadata.labels, want.metadata.labels);
    assert_eq!(
        next.metadata.annotations.clone().unwrap(),
        strings(&[("note", "keep"), ("tether.dev/cluster", "a")])
    );
    assert_eq!(next.data, want.data);
    assert!(in_sync(&want, &next));
    assert!(is_managed(&next));
}

// ---------------------------------------------------------------------------------------
// The reconciler, against an in-process fake of the Secrets API.

/// An apiserver's Secrets in one namespace: resource versions, 409s and 404s like the real
/// one, and a count of the writes that landed.
#[derive(Default)]
struct FakeSecrets {
    objects: Mutex<BTreeMap<String, Secret>>,
    next_rv: AtomicU64,
    writes: AtomicUsize,
    /// Fails every call with this message.
    fail: Mutex<Option<String>>,
    /// Bumps the resourceVersion right before every replace (a writer that never stops).
    churn: bool,
    /// Yields to other tasks inside every call, so racing replicas interleave.
    yields: bool,
}

impl FakeSecrets {
    fn failing(&self) -> Result<(), ApiError> {
        match self.fail.lock().unwrap().clone() {
            Some(reason) => Err(ApiError::Failed(reason)),
            None => Ok(()),
        }
    }

    async fn step(&self) -> Result<(), ApiError> {
        if self.yields {
            tokio::task::yield_now().await;
        }
        self.failing()
    }

    fn rv(&self) -> String {
        (self.next_rv.fetch_add(1, Ordering::SeqCst) + 1).to_string()
    }

    fn put(&self, secret: Secret) {
        let mut secret = secret;
        secret.metadata.resource_version = Some(self.rv());
        let name = secret.metadata.name.clone().unwrap();
        self.objects.lock().unwrap().insert(name, secret);
    }

    fn snapshot(&self) -> BTreeMap<String, Secret> {
        self.objects.lock().unwrap().clone()
    }

    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
}

impl SecretApi for Arc<FakeSecrets> {
    fn namespace(&self) -> &str {
        "argocd"
    }

    async fn list(&self) -> Result<Vec<Secret>, ApiError> {
        self.step().await?;
        Ok(self
            .objects
            .lock()
            .unwrap()
            .values()
            .filter(|s| is_managed(s))
            .cloned()
            .collect())
    }

    async fn get(&self, name: &str) -> Result<Option<Secret>, ApiError> {
        self.step().await?;
        Ok(self.objects.lock().unwrap().get(name).cloned())
    }

    async fn create(&self, secret: &Secret) -> Result<(), ApiError> {
        self.step().await?;
        let name = secret.metadata.name.clone().unwrap();
        assert!(secret.metadata.resource_version.is_none());
        let mut objects = self.objects.lock().unwrap();
        if objects.contains_key(&name) {
            return Err(ApiError::AlreadyExists);
        }
        let mut secret = secret.clone();
        secret.metadata.resource_version = Some(self.rv());
        objects.insert(name, secret);
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn replace(&self, secret: &Secret) -> Result<(), ApiError> {
        self.step().await?;
        let name = secret.metadata.name.clone().unwrap();
        let mut objects = self.objects.lock().unwrap();
        if self.churn
            && let Some(current) = objects.get_mut(&name)
        {
            current.metadata.resource_version = Some(self.rv());
        }
        let current = objects.get(&name).ok_or(ApiError::NotFound)?;
        if current.metadata.resource_version != secret.metadata.resource_version {
            return Err(ApiError::Conflict);
        }
        let mut secret = secret.clone();
        secret.metadata.resource_version = Some(self.rv());
        objects.insert(name, secret);
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn delete(&self, name: &str, resource_version: Option<&str>) -> Result<(), ApiError> {
        self.step().await?;
        let mut objects = self.objects.lock().unwrap();
        let current = objects.get(name).ok_or(ApiError::NotFound)?;
        if resource_version
            .is_some_and(|rv| current.metadata.resource_version.as_deref() != Some(rv))
        {
            return Err(ApiError::Conflict);
        }
        objects.remove(name);
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn reconciler(api: &Arc<FakeSecrets>, store: &Store) -> Reconciler<Arc<FakeSecrets>> {
    Reconciler::new(
        Arc::clone(api),
        store.clone(),
        Arc::new(settings(Some(HUB_CA))),
        Arc::new(ManualClock::new(UnixTime::from_secs(1_000_000))),
    )
}

async fn audit_kinds(store: &Store) -> Vec<String> {
    let mut kinds: Vec<String> = store
        .recent_audit(None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.record.kind.starts_with("argocd.secret."))
        .map(|r| format!("{} {}", r.record.kind, r.record.subject.unwrap_or_default()))
        .collect();
    kinds.reverse();
    kinds
}

#[tokio::test]
async fn reconcile_creates_updates_deletes_then_does_nothing() {
    let store = crate::store::tests::sqlite_memory().await;
    let api = Arc::new(FakeSecrets::default());
    let r = reconciler(&api, &store).await;
    let mut pending = record("later", &[]);
    pending.state = ClusterState::Pending;
    let mut records = vec![record("a", &[("env", "prod")]), record("b", &[]), pending];

    let summary = r.reconcile_records(&records).await.unwrap();
    assert_eq!(
        (summary.desired, summary.created, summary.writes()),
        (2, 2, 2)
    );
    let secrets = api.snapshot();
    assert_eq!(
        secrets.keys().collect::<Vec<_>>(),
        ["tether-cluster-a", "tether-cluster-b"]
    );
    let want = render(&records[0], &settings(Some(HUB_CA))).unwrap().secret;
    assert!(in_sync(&want, &secrets["tether-cluster-a"]));

    // In sync: nothing is written.
    let summary = r.reconcile_records(&records).await.unwrap();
    assert_eq!(summary.writes(), 0);
    assert_eq!(api.writes(), 2);

    // A new proxy URL and a label change: updates, once.
    records[0].proxy_url = "https://moved.example.com".to_owned();
    records[1]
        .row
        .labels
        .insert("tier".to_owned(), "gold".to_owned());
    let summary = r.reconcile_records(&records).await.unwrap();
    assert_eq!(summary.updated, 2);
    assert_eq!(
        data(&api.snapshot()["tether-cluster-a"], "server"),
        "https://moved.example.com"
    );
    assert_eq!(r.reconcile_records(&records).await.unwrap().writes(), 0);

    // Removed: its Secret goes; the other stays.
    records[1].state = ClusterState::Removed;
    let summary = r.reconcile_records(&records).await.unwrap();
    assert_eq!((summary.deleted, summary.writes()), (1, 1));
    assert_eq!(
        api.snapshot().keys().collect::<Vec<_>>(),
        ["tether-cluster-a"]
    );
    // Gone from the registry altogether.
    let summary = r.reconcile_records(&[]).await.unwrap();
    assert_eq!(summary.deleted, 1);
    assert!(api.snapshot().is_empty());
    assert_eq!(api.writes(), 2 + 2 + 1 + 1);

    assert_eq!(
        audit_kinds(&store).await,
        [
            "argocd.secret.created a",
            "argocd.secret.created b",
            "argocd.secret.updated a",
            "argocd.secret.updated b",
            "argocd.secret.deleted b",
            "argocd.secret.deleted a",
        ]
    );
}

#[tokio::test]
async fn reconcile_reads_the_registry() {
    let store = crate::store::tests::sqlite_memory().await;
    let api = Arc::new(FakeSecrets::default());
    let r = reconciler(&api, &store).await;
    // Pending clusters (the only kind the store can make without an agent) have no Secret.
    let audit = crate::store::AuditRecord::new(
        0,
        "cluster.added",
        "t",
        crate::store::AuditOutcome::Success,
    );
    store
        .add_cluster_with_token(
            &ClusterName::parse("p").unwrap(),
            &BTreeMap::new(),
            Duration::from_secs(60),
            UnixTime::from_secs(1),
            &audit,
        )
        .await
        .unwrap();
    api.put(
        render(&record("stale", &[]), &settings(None))
            .unwrap()
            .secret,
    );
    let summary = r.reconcile().await.unwrap();
    assert_eq!((summary.desired, summary.deleted), (0, 1));
    assert!(api.snapshot().is_empty());
}

#[tokio::test]
async fn a_foreign_secret_of_the_same_name_is_left_alone() {
    let store = crate::store::tests::sqlite_memory().await;
    let api = Arc::new(FakeSecrets::default());
    let r = reconciler(&api, &store).await;
    let mut foreign = render(&record("a", &[]), &settings(None)).unwrap().secret;
    foreign.metadata.labels = Some(strings(&[("argocd.argoproj.io/secret-type", "cluster")]));
    api.put(foreign.clone());
    let summary = r.reconcile_records(&[record("a", &[])]).await.unwrap();
    assert_eq!(summary.writes(), 0);
    assert_eq!(api.writes(), 0);
    assert_eq!(
        api.snapshot()["tether-cluster-a"].metadata.labels,
        foreign.metadata.labels
    );
    assert!(audit_kinds(&store).await.is_empty());
}

#[tokio::test]
async fn api_failures_are_errors_with_the_cause() {
    let store = crate::store::tests::sqlite_memory().await;
    let api = Arc::new(FakeSecrets::default());
    let r = reconciler(&api, &store).await;
    *api.fail.lock().unwrap() = Some(
        "403 Forbidden: secrets is forbidden: User \"tether-hub\" cannot list resource".to_owned(),
    );
    let err = r.reconcile_records(&[record("a", &[])]).await.unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains("list Secret argocd/"), "{text}");
    assert!(text.contains("403 Forbidden"), "{text}");
    // Recovered: the next run writes.
    *api.fail.lock().unwrap() = None;
    assert_eq!(
        r.reconcile_records(&[record("a", &[])])
            .await
            .unwrap()
            .created,
        1
    );
}

#[tokio::test]
async fn a_secret_that_keeps_changing_is_given_up_until_next_time() {
    let store = crate::store::tests::sqlite_memory().await;
    let api = Arc::new(FakeSecrets {
        churn: true,
        ..FakeSecrets::default()
    });
    api.put(
        render(&record("a", &[("env", "old")]), &settings(None))
            .unwrap()
            .secret,
    );
    let r = reconciler(&api, &store).await;
    let err = r
        .reconcile_records(&[record("a", &[("env", "new")])])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ArgoCdError::TooManyConflicts {
                attempts: reconcile::MAX_ATTEMPTS,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(api.writes(), 0);
}

/// Two replicas observe the same state, then both write: exactly one write per change
/// lands, and only that replica audits it.
#[tokio::test]
async fn racing_replicas_write_each_change_once() {
    let store_a = crate::store::tests::sqlite_memory().await;
    let store_b = crate::store::tests::sqlite_memory().await;
    let api = Arc::new(FakeSecrets::default());
    let a = reconciler(&api, &store_a).await;
    let b = reconciler(&api, &store_b).await;

    // Creation: both saw nothing; B's create meets AlreadyExists, re-reads, finds it equal.
    let mut records = vec![record("x", &[]), record("y", &[])];
    let (plan_a, plan_b) = (
        a.observe(&records).await.unwrap(),
        b.observe(&records).await.unwrap(),
    );
    assert_eq!((plan_a.len(), plan_b.len()), (2, 2));
    let mut ops = Vec::new();
    for step in plan_a {
        ops.push(("a", a.converge(step).await.unwrap()));
    }
    for step in plan_b {
        ops.push(("b", b.converge(step).await.unwrap()));
    }
    assert_eq!(
        ops,
        [
            ("a", Some(Op::Create)),
            ("a", Some(Op::Create)),
            ("b", None),
            ("b", None)
        ]
    );
    assert_eq!(api.writes(), 2);

    // Update: B replaces with the resourceVersion it read, gets Conflict, re-reads: equal.
    records[0].proxy_url = "https://moved.example.com".to_owned();
    let (plan_a, plan_b) = (
        a.observe(&records).await.unwrap(),
        b.observe(&records).await.unwrap(),
    );
    assert_eq!(
        b.converge(plan_b[0].clone()).await.unwrap(),
        Some(Op::Update)
    );
    assert_eq!(a.converge(plan_a[0].clone()).await.unwrap(), None);
    assert_eq!(api.writes(), 3);

    // Delete: the loser's delete finds it gone.
    records.remove(1);
    let (plan_a, plan_b) = (
        a.observe(&records).await.unwrap(),
        b.observe(&records).await.unwrap(),
    );
    assert_eq!(
        a.converge(plan_a[0].clone()).await.unwrap(),
        Some(Op::Delete)
    );
    assert_eq!(b.converge(plan_b[0].clone()).await.unwrap(), None);
    assert_eq!(api.writes(), 4);

    // Audited by the replica whose write landed, nowhere else.
    assert_eq!(
        audit_kinds(&store_a).await,
        [
            "argocd.secret.created x",
            "argocd.secret.created y",
            "argocd.secret.deleted y"
        ]
    );
    assert_eq!(audit_kinds(&store_b).await, ["argocd.secret.updated x"]);
}

/// The same race with the replicas' calls interleaved by the scheduler, many times.
#[tokio::test]
async fn concurrent_replicas_never_write_twice() {
    let store = crate::store::tests::sqlite_memory().await;
    for round in 0..20 {
        let api = Arc::new(FakeSecrets {
            yields: true,
            ..FakeSecrets::default()
        });
        api.put(render(&record("old", &[]), &settings(None)).unwrap().secret);
        api.put(
            render(&record("keep", &[("v", "1")]), &settings(Some(HUB_CA)))
                .unwrap()
                .secret,
        );
        let records = vec![
            record("new", &[]),
            record("keep", &[("v", "2")]),
            record(&format!("r{round}"), &[]),
        ];
        let (a, b) = (
            reconciler(&api, &store).await,
            reconciler(&api, &store).await,
        );
        let (sa, sb) = tokio::join!(a.reconcile_records(&records), b.reconcile_records(&records));
        let (sa, sb) = (sa.unwrap(), sb.unwrap());
        // Two creates, one update, one delete: four changes, four writes in all.
        assert_eq!(api.writes(), 4, "round {round}");
        assert_eq!(sa.writes() + sb.writes(), 4, "round {round}");
        assert_eq!(sa.created + sb.created, 2);
        assert_eq!(sa.updated + sb.updated, 1);
        assert_eq!(sa.deleted + sb.deleted, 1);
        assert_eq!(
            a.reconcile_records(&records).await.unwrap().writes()
                + b.reconcile_records(&records).await.unwrap().writes(),
            0
        );
    }
}

#[test]
fn retries_back_off_up_to_the_resync_interval() {
    let resync = Duration::from_secs(30);
    let delays: Vec<u64> = (1..=7).map(|n| retry_delay(n, resync).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(retry_delay(u32::MAX, resync), resync);
    assert_eq!(
        retry_delay(3, Duration::from_secs(2)),
        Duration::from_secs(2)
    );
}

/// Waits (at most 5 s) until `api` holds no Secret.
async fn until_empty(api: &FakeSecrets) -> bool {
    for _ in 0..500 {
        if api.snapshot().is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn the_run_loop_reacts_to_pokes() {
    let store = crate::store::tests::sqlite_memory().await;
    let api = Arc::new(FakeSecrets::default());
    let r = reconciler(&api, &store).await;
    let link = Arc::new(ArgoCdLink::default());
    // An hour-long resync: only the startup run and pokes can act within the test.
    let task = tokio::spawn(r.run(Arc::clone(&link), Duration::from_secs(3600)));
    api.put(
        render(&record("stale", &[]), &settings(None))
            .unwrap()
            .secret,
    );
    assert!(until_empty(&api).await, "the startup run did not reconcile");
    api.put(
        render(&record("stale2", &[]), &settings(None))
            .unwrap()
            .secret,
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(api.snapshot().len(), 1, "reconciled without a poke");
    link.poke();
    assert!(until_empty(&api).await, "the poke did not reconcile");
    task.abort();
}

#[tokio::test]
async fn the_run_loop_resyncs_and_retries_after_failures() {
    let store = crate::store::tests::sqlite_memory().await;
    let api = Arc::new(FakeSecrets::default());
    *api.fail.lock().unwrap() = Some("503 apiserver unavailable".to_owned());
    let r = reconciler(&api, &store).await;
    let link = Arc::new(ArgoCdLink::default());
    let task = tokio::spawn(r.run(Arc::clone(&link), Duration::from_millis(50)));
    api.put(
        render(&record("stale", &[]), &settings(None))
            .unwrap()
            .secret,
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(api.snapshot().len(), 1);
    // The apiserver comes back: a retry (no poke) converges.
    *api.fail.lock().unwrap() = None;
    assert!(until_empty(&api).await, "no retry after the failure");
    // And the periodic resync catches what nobody poked about.
    api.put(
        render(&record("stale2", &[]), &settings(None))
            .unwrap()
            .secret,
    );
    assert!(until_empty(&api).await, "the resync did not reconcile");
    assert!(!task.is_finished(), "the loop must survive failures");
    task.abort();
}

#[tokio::test]
async fn a_poke_before_the_wait_is_not_lost() {
    let link = ArgoCdLink::default();
    link.poke();
    link.poke();
    tokio::time::timeout(Duration::from_secs(1), link.changed())
        .await
        .expect("the stored poke");
    assert!(
        tokio::time::timeout(Duration::from_millis(50), link.changed())
            .await
            .is_err(),
        "two pokes before a wait make one run"
    );
    assert!(link.settings().is_none());
    assert!(link.configure(Arc::new(settings(None))));
    assert!(!link.configure(Arc::new(settings(None))));
    assert_eq!(link.settings().unwrap().namespace, "argocd");
}

#[test]
fn secret_names_and_metadata_helpers() {
    assert_eq!(
        secret_name(&ClusterName::parse("a-b").unwrap()),
        "tether-cluster-a-b"
    );
    let unlabelled = Secret {
        metadata: ObjectMeta::default(),
        ..Secret::default()
    };
    assert!(!is_managed(&unlabelled));
}

// ---------------------------------------------------------------------------------------
// Configuration.

const BASE: &str = r#"
issuer: https://hub.example.com
listen: 127.0.0.1:8443
tls: {cert_file: /etc/tls.crt, key_file: /etc/tls.key}
metrics: {listen: "127.0.0.1:9464"}
storage: {url: "sqlite:///tmp/hub.db"}
keys: {kek_file: /etc/kek}
"#;

#[test]
fn config_defaults_and_full_section() {
    let config =
        crate::config::Config::from_yaml(&format!("{BASE}hub_cluster: {{}}\nargocd: {{}}\n"))
            .unwrap();
    assert_eq!(config.argocd, Some(ArgoCdConfig::default()));
    let argocd = config.argocd.unwrap();
    assert_eq!(argocd.namespace, "argocd");
    assert_eq!(argocd.credential_command, "/custom-tools/tetherctl");
    assert_eq!(
        argocd.resync_interval.as_duration(),
        Duration::from_secs(30)
    );
    let config = crate::config::Config::from_yaml(&format!(
        "{BASE}hub_cluster: {{kubeconfig: /etc/kc}}\nargocd:\n  namespace: gitops\n  credential_command: /opt/tetherctl\n  token_file: /var/run/argocd/token\n  hub_url: https://hub.internal:8443\n  hub_ca_file: /etc/ca.pem\n  resync_interval: 2m\n"
    ))
    .unwrap();
    let argocd = config.argocd.unwrap();
    assert_eq!(argocd.namespace, "gitops");
    assert_eq!(
        argocd.hub_url.unwrap().as_str(),
        "https://hub.internal:8443/"
    );
    assert_eq!(
        argocd.resync_interval.as_duration(),
        Duration::from_secs(120)
    );
    assert!(
        crate::config::Config::from_yaml(BASE)
            .unwrap()
            .argocd
            .is_none()
    );
}

#[test]
fn config_validation_names_the_field() {
    let cases = [
        ("argocd: {}\n", "hub_cluster"),
        (
            "hub_cluster: {}\nargocd: {namespace: Argo_CD}\n",
            "argocd.namespace",
        ),
        (
            "hub_cluster: {}\nargocd: {credential_command: ''}\n",
            "argocd.credential_command",
        ),
        (
            "hub_cluster: {}\nargocd: {token_file: token}\n",
            "argocd.token_file",
        ),
        (
            "hub_cluster: {}\nargocd: {resync_interval: 0s}\n",
            "argocd.resync_interval",
        ),
        (
            "hub_cluster: {}\nargocd: {resync_interval: 30d}\n",
            "argocd.resync_interval",
        ),
        (
            "hub_cluster: {}\nargocd: {hub_url: 'http://hub.example.com'}\n",
            "argocd.hub_url",
        ),
        ("hub_cluster: {}\nargocd: {nmespace: argocd}\n", "argocd"),
    ];
    for (yaml, field) in cases {
        let err = crate::config::Config::from_yaml(&format!("{BASE}{yaml}")).unwrap_err();
        assert!(
            err.field().is_some_and(|f| f.starts_with(field)),
            "{yaml}: {err} (field {:?})",
            err.field()
        );
    }
    let err = crate::config::Config::from_yaml(&format!("{BASE}argocd: {{}}\n")).unwrap_err();
    assert!(err.to_string().contains("required by `argocd`"), "{err}");
}

#[test]
fn the_documented_example_section_parses() {
    let config = crate::config::Config::from_yaml(crate::config::EXAMPLE).unwrap();
    let argocd = config.argocd.expect("argocd documented in example.yaml");
    assert_eq!(argocd, ArgoCdConfig::default());
}

#[test]
fn settings_default_to_the_issuer_and_the_self_signed_ca() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(crate::tls::CA_CERT_FILE), HUB_CA).unwrap();
    let yaml = format!(
        "issuer: https://hub.example.com\nlisten: 127.0.0.1:8443\ntls: {{self_signed: true, self_signed_dir: {:?}}}\nmetrics: {{listen: \"127.0.0.1:9464\"}}\nstorage: {{url: \"sqlite:///tmp/hub.db\"}}\nkeys: {{kek_file: /etc/kek}}\nhub_cluster: {{}}\nargocd: {{}}\n",
        dir.path().display().to_string()
    );
    let config = crate::config::Config::from_yaml(&yaml).unwrap();
    let resolved = resolve_settings(&config, config.argocd.as_ref().unwrap()).unwrap();
    assert_eq!(resolved.hub_url, config.issuer.as_str());
    assert_eq!(resolved.hub_ca_pem.as_deref(), Some(HUB_CA));
    assert_eq!(
        resolved.token_file,
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    );

    // Explicit hub_ca_file and hub_url win; with real certificates (no self-signed CA)
    // and no file, there is none.
    let explicit = dir.path().join("explicit.pem");
    std::fs::write(&explicit, HUB_CA.replace("HUB", "EXPLICIT")).unwrap();
    let mut argocd = ArgoCdConfig {
        hub_ca_file: Some(explicit),
        hub_url: Some(url::Url::parse("https://other.example.com:9443").unwrap()),
        ..ArgoCdConfig::default()
    };
    let resolved = resolve_settings(&config, &argocd).unwrap();
    assert!(resolved.hub_ca_pem.unwrap().contains("EXPLICIT"));
    assert_eq!(resolved.hub_url, "https://other.example.com:9443");
    let plain =
        crate::config::Config::from_yaml(&format!("{BASE}hub_cluster: {{}}\nargocd: {{}}\n"))
            .unwrap();
    argocd.hub_ca_file = None;
    assert!(
        resolve_settings(&plain, &argocd)
            .unwrap()
            .hub_ca_pem
            .is_none()
    );

    // An unreadable or non-PEM file is an error naming it.
    argocd.hub_ca_file = Some(dir.path().join("missing.pem"));
    let err = resolve_settings(&plain, &argocd).unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    argocd.hub_ca_file = Some(junk);
    assert!(matches!(
        resolve_settings(&plain, &argocd),
        Err(ArgoCdError::HubCa { .. })
    ));
}
