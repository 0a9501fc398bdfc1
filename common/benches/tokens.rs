//! Token costs: minting (claims + signature), cold verification (full signature check) and
//! verification answered by the `VerifiedCache`.
//!
//! `cargo bench -p tether-common --bench tokens -- --warm-up-time 1 --measurement-time 3`
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark is test code: any failure must abort the run"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tether_common::time::UnixTime;
use tether_common::token::{
    Algorithm, Claims, DEFAULT_CLUSTER_TOKEN_LIFETIME, KeySet, SigningKey, VerifiedCache, Verifier,
    VerifyOptions,
};

const ISSUER: &str = "https://hub.example";
const AUDIENCE: &str = "cluster-a";
const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);

fn claims() -> Claims {
    Claims::mint(
        ISSUER,
        AUDIENCE,
        "upstream|1234567890",
        "alice@example.com",
        vec!["dev".to_owned(), "ops".to_owned()],
        Some("session-id".to_owned()),
        NOW,
        DEFAULT_CLUSTER_TOKEN_LIFETIME,
    )
}

fn bench(c: &mut Criterion) {
    let keys = [Algorithm::Es256, Algorithm::Rs256].map(|alg| SigningKey::generate(alg).unwrap());
    let jwks = keys.iter().map(SigningKey::public_jwk).collect();
    let verifier = Verifier::new(
        KeySet::from_jwks(&jwks),
        VerifyOptions::new(ISSUER, AUDIENCE),
    );

    let mut mint = c.benchmark_group("mint");
    for key in &keys {
        mint.bench_function(key.alg().as_str(), |b| {
            b.iter(|| key.sign(&claims()).unwrap())
        });
    }
    mint.finish();

    let mut cold = c.benchmark_group("verify_cold");
    for key in &keys {
        let token = key.sign(&claims()).unwrap();
        cold.bench_function(key.alg().as_str(), |b| {
            b.iter(|| verifier.verify(black_box(&token), NOW).unwrap())
        });
    }
    cold.finish();

    let mut cached = c.benchmark_group("verify_cached");
    for key in &keys {
        let token = key.sign(&claims()).unwrap();
        let cache = VerifiedCache::new(10_000);
        verifier.verify_cached(&cache, &token, NOW).unwrap();
        cached.bench_function(key.alg().as_str(), |b| {
            b.iter(|| {
                verifier
                    .verify_cached(&cache, black_box(&token), NOW)
                    .unwrap()
            })
        });
    }
    cached.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
