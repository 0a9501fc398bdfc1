//! The storage and key-lifecycle conformance suites (written once in the hub) on a real
//! PostgreSQL server; the hub's unit tests run the same cases on SQLite.

use tether_e2e::{Postgres, TestDir};
use tether_hub::store::conformance::postgres_fresh_store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_and_key_conformance_on_postgres() {
    let dir = TestDir::new("conformance-pg").expect("test dir");
    let pg = Postgres::start(&dir).await.expect("postgres");
    let suites = [
        ("store", tether_hub::store::conformance::CASES),
        ("keys", tether_hub::keys::conformance::CASES),
    ];
    let mut ran = 0;
    for (suite, cases) in suites {
        for (name, case) in cases {
            eprintln!("conformance on postgres: {suite}::{name}");
            case(postgres_fresh_store(&pg.url()).await).await;
            ran += 1;
        }
    }
    assert!(ran >= 15, "only {ran} conformance cases ran");
}
