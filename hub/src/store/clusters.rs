//! Rows of the spoke registry (`clusters`). The types live in [`crate::registry`].

use std::collections::BTreeMap;

use sqlx::Row;
use tether_common::time::UnixTime;

use super::{Store, StoreError, with_pool};
use crate::registry::{ClusterName, ClusterRow, RegistryError};

/// Table name of the spoke registry.
pub const CLUSTERS_TABLE: &str = "clusters";

const INSERT_CLUSTER_SQL: &str = "INSERT INTO clusters (name, labels, created_at) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO NOTHING";
// A removed cluster is no longer registered: no tokens are minted for it.
const SELECT_CLUSTER_SQL: &str =
    "SELECT name, labels, created_at FROM clusters WHERE name = $1 AND state <> 'removed'";
const SELECT_CLUSTERS_SQL: &str =
    "SELECT name, labels, created_at FROM clusters WHERE state <> 'removed' ORDER BY name";
const DELETE_CLUSTER_SQL: &str = "DELETE FROM clusters WHERE name = $1";

impl Store {
    /// Registers a cluster; [`RegistryError::AlreadyExists`] if the name is taken. Callers
    /// write the audit record (they know the actor).
    pub async fn add_cluster(
        &self,
        name: &ClusterName,
        labels: &BTreeMap<String, String>,
        now: UnixTime,
    ) -> Result<ClusterRow, RegistryError> {
        let labels_json = serde_json::to_string(labels).map_err(|e| StoreError::Corrupt {
            table: CLUSTERS_TABLE,
            reason: format!("cannot encode labels: {e}"),
        })?;
        let inserted = with_pool!(self, pool => sqlx::query(INSERT_CLUSTER_SQL)
            .bind(name.as_str())
            .bind(labels_json.as_str())
            .bind(now.as_secs())
            .execute(pool)
            .await
            .map_err(StoreError::from)?
            .rows_affected());
        if inserted != 1 {
            return Err(RegistryError::AlreadyExists(name.clone()));
        }
        Ok(ClusterRow {
            name: name.clone(),
            labels: labels.clone(),
            created_at: now,
        })
    }

    /// The cluster called `name`, if registered (and not removed).
    pub async fn cluster(&self, name: &ClusterName) -> Result<Option<ClusterRow>, StoreError> {
        let raw = with_pool!(self, pool => sqlx::query(SELECT_CLUSTER_SQL)
            .bind(name.as_str())
            .fetch_optional(pool)
            .await?
            .map(|row| -> Result<RawCluster, sqlx::Error> {
                Ok(RawCluster {
                    name: row.try_get("name")?,
                    labels: row.try_get("labels")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .transpose()?);
        raw.map(RawCluster::into_row).transpose()
    }

    /// Every registered (not removed) cluster, by name.
    pub async fn list_clusters(&self) -> Result<Vec<ClusterRow>, StoreError> {
        let raw = with_pool!(self, pool => sqlx::query(SELECT_CLUSTERS_SQL)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| -> Result<RawCluster, sqlx::Error> {
                Ok(RawCluster {
                    name: row.try_get("name")?,
                    labels: row.try_get("labels")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?);
        raw.into_iter().map(RawCluster::into_row).collect()
    }

    /// Removes a cluster; [`RegistryError::NotFound`] if it was not registered.
    pub async fn remove_cluster(&self, name: &ClusterName) -> Result<(), RegistryError> {
        let deleted = with_pool!(self, pool => sqlx::query(DELETE_CLUSTER_SQL)
            .bind(name.as_str())
            .execute(pool)
            .await
            .map_err(StoreError::from)?
            .rows_affected());
        if deleted == 0 {
            return Err(RegistryError::NotFound(name.clone()));
        }
        Ok(())
    }
}

struct RawCluster {
    name: String,
    labels: String,
    created_at: i64,
}

impl RawCluster {
    fn into_row(self) -> Result<ClusterRow, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            table: CLUSTERS_TABLE,
            reason,
        };
        let name = ClusterName::parse(&self.name).map_err(|e| corrupt(e.to_string()))?;
        let labels = serde_json::from_str(&self.labels)
            .map_err(|e| corrupt(format!("cluster {name}: labels are not a JSON object: {e}")))?;
        Ok(ClusterRow {
            name,
            labels,
            created_at: UnixTime::from_secs(self.created_at),
        })
    }
}
