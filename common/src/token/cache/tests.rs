use std::time::Duration;

use super::*;
use crate::token::DEFAULT_CLUSTER_TOKEN_LIFETIME;

fn claims_expiring(exp: i64) -> Claims {
    let lifetime = Duration::from_secs(u64::try_from(exp - 100).unwrap());
    Claims::mint(
        "i",
        "a",
        "s",
        "u",
        vec![],
        None,
        UnixTime::from_secs(100),
        lifetime,
    )
}

const NOW: UnixTime = UnixTime::from_secs(100);

#[test]
fn hit_and_miss() {
    let cache = VerifiedCache::new(8);
    let claims = Claims::mint(
        "i",
        "a",
        "s",
        "u",
        vec![],
        None,
        NOW,
        DEFAULT_CLUSTER_TOKEN_LIFETIME,
    );
    assert!(cache.get("t1", NOW).is_none());
    cache.insert("t1", claims.clone(), NOW);
    assert_eq!(cache.get("t1", NOW).as_deref(), Some(&claims));
    assert!(cache.get("t2", NOW).is_none());
    assert!(cache.get("t1 ", NOW).is_none());
}

#[test]
fn entries_expire_at_exp() {
    let cache = VerifiedCache::new(8);
    cache.insert("t", claims_expiring(160), NOW);
    assert!(cache.get("t", UnixTime::from_secs(159)).is_some());
    assert!(cache.get("t", UnixTime::from_secs(160)).is_none());
    assert!(cache.is_empty(), "an expired entry is dropped on lookup");
    cache.insert("late", claims_expiring(160), UnixTime::from_secs(160));
    assert!(cache.is_empty(), "already expired claims are not stored");
}

#[test]
fn capacity_is_a_hard_bound_evicting_expired_then_soonest() {
    let cache = VerifiedCache::new(3);
    cache.insert("a", claims_expiring(110), NOW);
    cache.insert("b", claims_expiring(300), NOW);
    cache.insert("c", claims_expiring(200), NOW);
    assert_eq!(cache.len(), 3);
    // At 120 "a" has expired: it goes first.
    let later = UnixTime::from_secs(120);
    cache.insert("d", claims_expiring(400), later);
    assert_eq!(cache.len(), 3);
    assert!(cache.get("a", later).is_none());
    // Nothing expired: the soonest to expire ("c") goes.
    cache.insert("e", claims_expiring(500), later);
    assert_eq!(cache.len(), 3);
    assert!(cache.get("c", later).is_none());
    for kept in ["b", "d", "e"] {
        assert!(cache.get(kept, later).is_some(), "{kept}");
    }
    // Re-inserting a present token does not evict.
    cache.insert("e", claims_expiring(500), later);
    assert_eq!(cache.len(), 3);
    for i in 0..100 {
        cache.insert(&format!("x{i}"), claims_expiring(1000 + i), later);
    }
    assert_eq!(cache.len(), 3);
    assert_eq!(cache.capacity(), 3);
}

#[test]
fn zero_capacity_caches_nothing_and_clear_empties() {
    let off = VerifiedCache::new(0);
    off.insert("t", claims_expiring(200), NOW);
    assert!(off.get("t", NOW).is_none());
    let cache = VerifiedCache::default();
    cache.insert("t", claims_expiring(200), NOW);
    cache.clear();
    assert!(cache.get("t", NOW).is_none());
    assert!(format!("{cache:?}").contains("capacity"));
}

#[test]
fn shared_across_threads() {
    let cache = Arc::new(VerifiedCache::new(1000));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    let token = format!("{t}-{i}");
                    cache.insert(&token, claims_expiring(200), NOW);
                    assert!(cache.get(&token, NOW).is_some());
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(cache.len(), 400);
}
