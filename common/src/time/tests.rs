use std::sync::Arc;
use std::time::Duration;

use super::*;

#[test]
fn arithmetic_saturates_and_checks() {
    let t = UnixTime::from_secs(100);
    assert_eq!(
        t.checked_add(Duration::from_secs(5)),
        Some(UnixTime::from_secs(105))
    );
    assert_eq!(
        t.checked_sub(Duration::from_millis(5_900)),
        Some(UnixTime::from_secs(95))
    );
    assert_eq!(
        UnixTime::from_secs(i64::MAX).checked_add(Duration::from_secs(1)),
        None
    );
    assert_eq!(
        UnixTime::from_secs(i64::MIN).checked_sub(Duration::from_secs(1)),
        None
    );
    assert_eq!(t.checked_add(Duration::MAX), None);
    assert_eq!(t.saturating_add(Duration::MAX).as_secs(), i64::MAX);
    assert_eq!(t.saturating_sub(Duration::MAX).as_secs(), i64::MIN);
    assert!(UnixTime::from_secs(1) < UnixTime::from_secs(2));
}

#[test]
fn serde_is_a_plain_integer() {
    let t = UnixTime::from_secs(1_700_000_000);
    assert_eq!(serde_json::to_string(&t).unwrap(), "1700000000");
    assert_eq!(
        serde_json::from_str::<UnixTime>("42").unwrap(),
        UnixTime::from_secs(42)
    );
    assert!(serde_json::from_str::<UnixTime>("\"42\"").is_err());
    assert!(serde_json::from_str::<UnixTime>("42.5").is_err());
    assert!(serde_json::from_str::<UnixTime>("true").is_err());
    assert_eq!(t.to_string(), "1700000000");
}

#[test]
fn manual_clock_moves_only_when_told() {
    let clock = Arc::new(ManualClock::new(UnixTime::from_secs(10)));
    let shared: Arc<dyn Clock> = clock.clone();
    assert_eq!(shared.now(), UnixTime::from_secs(10));
    clock.advance(Duration::from_secs(5));
    assert_eq!(shared.now(), UnixTime::from_secs(15));
    clock.set(UnixTime::from_secs(1));
    assert_eq!(clock.now(), UnixTime::from_secs(1));
}

#[test]
fn system_clock_is_after_2020() {
    assert!(SystemClock.now() > UnixTime::from_secs(1_577_836_800));
}
