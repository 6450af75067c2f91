//! An honest package: what the build and the artefacts say about themselves is true.

use std::path::Path;
use tokio_util::sync::CancellationToken;

fn manifest() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap()
}

#[sqlx::test]
async fn metrics_are_served_with_the_openmetrics_content_type_they_are_encoded_in(
    pool: sqlx::PgPool,
) {
    let readiness = std::sync::Arc::new(exsync::health::Readiness::default());
    let shutdown = CancellationToken::new();
    let (addr, server) = exsync::health::serve(
        "127.0.0.1:0".parse().unwrap(),
        exsync::store::Store::from_pool(pool),
        readiness,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    // The OpenMetrics text format ends with "# EOF".
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    shutdown.cancel();
    let _ = server.await;
}

#[test]
fn the_license_file_matches_the_manifests_license() {
    assert!(manifest().contains("license = \"MIT\""));
    let license =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("LICENSE")).unwrap();
    assert!(license.starts_with("MIT License"), "{license}");
    assert!(license.contains("Permission is hereby granted, free of charge"));
}

#[test]
fn one_toml_parser_the_version_config_uses() {
    let lock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).unwrap();
    let versions: Vec<&str> = lock
        .split("[[package]]")
        .filter(|p| p.contains("\nname = \"toml\"\n"))
        .collect();
    assert_eq!(versions.len(), 1, "more than one toml crate is locked");
}
