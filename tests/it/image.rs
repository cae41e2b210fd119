//! The lab image holds the training stack, laid out as the course expects, with no key baked in.

use std::collections::HashMap;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptions;

use crate::common::*;

const TAG: &str = "image";

#[tokio::test]
async fn the_image_holds_the_training_stack_and_no_private_key() {
    let (d, _sweep) = setup(&[], Some(TAG)).await;
    let name = "pgha-lab-it-image";
    d.create_container(
        Some(CreateContainerOptions {
            name: Some(name.into()),
            ..Default::default()
        }),
        ContainerCreateBody {
            image: Some(image().into()),
            labels: Some(HashMap::from([(TEST_LABEL.to_string(), TAG.to_string())])),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    d.start_container(name, None).await.unwrap();

    // The versions, as a trainee's postgres login shell finds the programs.
    let versions = exec_ok(
        &d,
        name,
        "postgres",
        "postgres --version; patroni --version; etcd --version | head -1; pgbackrest version; \
         /usr/sbin/haproxy -v | head -1",
    )
    .await;
    let lines: Vec<&str> = versions.lines().collect();
    assert!(
        lines[0].starts_with("postgres (PostgreSQL) 17."),
        "{versions}"
    );
    assert!(lines[1].starts_with("patroni 4."), "{versions}");
    assert!(lines[2].starts_with("etcd Version: 3.5."), "{versions}");
    assert!(lines[3].starts_with("pgBackRest 2.5"), "{versions}");
    assert!(lines[4].starts_with("HAProxy version "), "{versions}");

    // The course's commands work from a postgres login shell.
    let env = exec_ok(
        &d,
        name,
        "postgres",
        "command -v psql patronictl; echo $PGDATA; etcdctl version | head -1",
    )
    .await;
    assert!(env.contains("/usr/lib/postgresql/17/bin/psql"), "{env}");
    assert!(env.contains("/pgdata/17/data"), "{env}");
    assert!(env.contains("/usr/bin/patronictl"), "{env}");
    assert!(env.contains("etcdctl version: 3.5."), "{env}");

    // The layout and its owners.
    let owners = exec_ok(
        &d,
        name,
        "root",
        "stat -c '%U:%G %n' /pgha /pgha/config /pgha/certs /pgha/data/etcd \
         /pgha/data/pgbackrest /pgdata/17 /var/log/etcd /var/log/patroni /var/log/pgbackrest; \
         readlink /etc/pgbackrest.conf",
    )
    .await;
    for path in [
        "/pgha",
        "/pgha/config",
        "/pgha/certs",
        "/pgha/data/etcd",
        "/pgha/data/pgbackrest",
        "/pgdata/17",
        "/var/log/etcd",
        "/var/log/patroni",
        "/var/log/pgbackrest",
    ] {
        assert!(
            owners.contains(&format!("postgres:postgres {path}\n")),
            "{path}: {owners}"
        );
    }
    assert!(owners.ends_with("/pgha/config/pgbackrest.conf"), "{owners}");

    // PostgreSQL is Patroni's to start: no cluster exists and nothing runs.
    let (code, _) = exec(
        &d,
        name,
        "root",
        "ls /pgdata/17/data || ls /etc/postgresql/17/main",
    )
    .await;
    assert_ne!(code, 0, "the image must not carry a PostgreSQL cluster");
    let (code, _) = exec(&d, name, "root", "pgrep -x postgres").await;
    assert_ne!(code, 0, "the image must not start PostgreSQL");

    // No private key, host key or certificate key anywhere.
    let keys = exec_ok(
        &d,
        name,
        "root",
        "grep -rlIs -- '-----BEGIN .*PRIVATE KEY' / --exclude-dir=proc --exclude-dir=sys \
         --exclude-dir=dev || true; ls /etc/ssh/ssh_host_* 2>/dev/null || true",
    )
    .await;
    assert_eq!(keys, "", "private keys found in the image");

    // `lab image info` reads the versions back from the image's labels.
    let info = lab_ok(&["image", "info"]);
    assert!(info.stdout.contains("PostgreSQL  17."), "{info}");
    assert!(info.stdout.contains("Patroni     4."), "{info}");
}

/// An image leaves an engine as `docker save`'s tar (with its manifest.json) and comes back
/// from that tar with the same id: the two halves of shipping it to another engine, on a tiny
/// image of this test's own.
#[tokio::test]
async fn an_exported_image_is_a_tar_that_loads_back_as_the_same_image() {
    use futures_util::StreamExt;
    use pgha_lab::engine::Engine;
    use pgha_lab::image::definition::file;

    let tag = "pgha-lab-it-ship:tiny";
    let engine = Engine::connect().await.unwrap();
    let dockerfile = format!("FROM scratch\nCOPY hello /hello\nLABEL {TEST_LABEL}=ship\n");
    let context = pgha_lab::engine::archive(
        &[
            file("Dockerfile", &dockerfile, 0o644),
            file("hello", "shipped\n", 0o644),
        ],
        0,
    )
    .unwrap();
    let id = engine
        .build(context, Some(tag), HashMap::new(), false, &mut |_| {})
        .await
        .unwrap();

    let mut tar = Vec::new();
    let mut export = engine.export_image(tag);
    while let Some(chunk) = export.next().await {
        tar.extend_from_slice(&chunk.unwrap());
    }
    let mut manifest = None;
    for entry in tar::Archive::new(tar.as_slice()).entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("manifest.json") {
            manifest = Some(serde_json::from_reader::<_, serde_json::Value>(&mut entry).unwrap());
        }
    }
    let manifest = manifest.expect("the export holds a manifest.json");
    assert_eq!(manifest[0]["RepoTags"][0], tag, "{manifest}");

    engine.remove_image_if_unused(tag).await;
    assert!(engine.image(tag).await.unwrap().is_none());
    let chunks = tar
        .chunks(4096)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect::<Vec<_>>();
    engine
        .import_image(futures_util::stream::iter(chunks))
        .await
        .unwrap();
    let loaded = engine.image(tag).await.unwrap().expect("loaded back");
    engine.remove_image_if_unused(tag).await;
    assert_eq!(
        id.trim_start_matches("sha256:"),
        loaded.id.trim_start_matches("sha256:")
    );
}
