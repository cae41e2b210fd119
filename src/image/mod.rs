//! `lab image build` and `lab image info`: the lab image, built through the Engine API from
//! Debian packages, on debian:trixie-slim where a registry answers and on a debootstrapped base
//! where none does; and shipped from one engine to another (`ship`).

pub mod definition;
mod rootfs;
mod ship;

pub use ship::ship;

use std::collections::HashMap;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::table;
use definition::{DEBOOTSTRAP_BASE, REGISTRY_BASE, label};

/// What `lab image build` was asked for.
pub struct BuildRequest {
    pub tag: String,
    pub force: bool,
    pub mirror: Option<String>,
}

/// Builds the image unless it is already there (or `force`).
pub async fn build(engine: &Engine, progress: &Progress, request: &BuildRequest) -> Result<()> {
    if !request.force
        && let Some(existing) = engine.image(&request.tag).await?
    {
        progress.line(format!(
            "{} is already built ({}); nothing to do. `lab image build --force` rebuilds it.",
            request.tag,
            describe(&existing.labels)
        ));
        return Ok(());
    }
    let started = std::time::Instant::now();
    let previous = engine.image(&request.tag).await?;
    let base = base_image(engine, progress, request).await?;

    let step = progress.step(format!("build {} on {}", request.tag, base.0));
    let mut buildargs = HashMap::from([("BASE".to_string(), base.0.clone())]);
    if let Some(mirror) = &request.mirror {
        buildargs.insert("MIRROR".into(), mirror.clone());
    }
    let context = definition::context().map_err(Error::io("pack the image definition"))?;
    let id = engine
        .build(context, None, buildargs, request.force, &mut |line| {
            step.detail(line)
        })
        .await?;
    step.done("packages installed, layout in place");

    let step = progress.step("read component versions");
    let probe = engine
        .run_once(&id, &["sh", "-c", definition::VERSION_PROBE])
        .await?;
    let mut labels = definition::versions(&probe.stdout).ok_or_else(|| Error::ImageBuild {
        step: "reading component versions".into(),
        message: format!(
            "the image lacks a component; the probe printed:\n{}",
            probe.said()
        ),
    })?;
    labels.insert(label::BASE.into(), base.1);
    labels.insert(label::DEFINITION.into(), definition::fingerprint());
    let summary = describe(&labels);
    // One LABEL instruction: the classic builder commits a layer per instruction, and each
    // commit costs seconds on some storage drivers.
    let labelled = format!("FROM {id}\nLABEL {}\n", label_instruction(&labels));
    let context = crate::engine::archive(&[definition::file("Dockerfile", &labelled, 0o644)], 0)
        .map_err(Error::io("pack the labelling step"))?;
    let built = engine
        .build(
            context,
            Some(&request.tag),
            HashMap::new(),
            false,
            &mut |_| {},
        )
        .await?;
    step.done(&summary);

    if let Some(old) = previous
        && !built.ends_with(old.id.trim_start_matches("sha256:"))
    {
        // The replaced image is ours; it goes unless a container still uses it.
        engine.remove_image_if_unused(&old.id).await;
    }
    let size = engine
        .image(&request.tag)
        .await?
        .map(|i| i.size)
        .unwrap_or(0);
    progress.line(format!(
        "{} built in {} ({} MB): {summary}",
        request.tag,
        crate::progress::seconds(started.elapsed()),
        size / 1_000_000
    ));
    Ok(())
}

/// Picks the base, says which path runs and why: (image reference, how it was made).
async fn base_image(
    engine: &Engine,
    progress: &Progress,
    request: &BuildRequest,
) -> Result<(String, String)> {
    let (repo, tag) = REGISTRY_BASE;
    let registry_base = format!("{repo}:{tag}");
    if engine.image(&registry_base).await?.is_some() {
        progress.line(format!(
            "base: {registry_base}, already on this engine (registry path)"
        ));
        return Ok((registry_base.clone(), registry_base));
    }
    let step = progress.step(format!("look for a registry: pull {registry_base}"));
    match engine.pull(repo, tag, &mut |line| step.detail(line)).await {
        Ok(()) => {
            step.done("pulled; building from Debian's slim image (registry path)");
            return Ok((registry_base.clone(), registry_base));
        }
        Err(e) => {
            step.done(format!(
                "none answered ({e}); the base is built from the Debian mirror instead \
                 (debootstrap path)"
            ));
        }
    }

    let (repo, tag) = DEBOOTSTRAP_BASE;
    let debootstrap_base = format!("{repo}:{tag}");
    if !request.force && engine.image(&debootstrap_base).await?.is_some() {
        progress.line(format!(
            "base: {debootstrap_base}, debootstrapped earlier on this engine"
        ));
        let how = format!("debootstrap of Debian trixie ({debootstrap_base})");
        return Ok((debootstrap_base, how));
    }
    rootfs::preflight(progress).await?;
    let mirror = request.mirror.clone().unwrap_or_else(rootfs::host_mirror);
    let how = format!("debootstrap of Debian trixie from {mirror}");
    let step = progress.step(format!("debootstrap Debian trixie from {mirror}"));
    let tarball = rootfs::build(&mirror, &step).await?;
    step.done("root filesystem ready");
    let step = progress.step(format!("import it as {debootstrap_base}"));
    let imported = engine
        .import(&tarball, repo, tag, &["CMD [\"bash\"]"])
        .await;
    let _ = std::fs::remove_file(&tarball);
    imported?;
    step.done("imported");
    Ok((debootstrap_base, how))
}

/// `k1="v1" k2="v2"`, sorted, values JSON-quoted (which Dockerfile LABEL accepts).
fn label_instruction(labels: &HashMap<String, String>) -> String {
    let mut pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::Value::from(v.as_str())))
        .collect();
    pairs.sort();
    pairs.join(" ")
}

/// "PostgreSQL 17.11, Patroni 4.0.7, etcd 3.5.16, pgBackRest 2.55.1, HAProxy 3.0.11-1"
pub fn describe(labels: &HashMap<String, String>) -> String {
    let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or("?");
    format!(
        "PostgreSQL {}, Patroni {}, etcd {}, pgBackRest {}, HAProxy {}",
        get(label::POSTGRESQL),
        get(label::PATRONI),
        get(label::ETCD),
        get(label::PGBACKREST),
        get(label::HAPROXY)
    )
}

/// What `lab image info` says of an image, in text and JSON.
#[derive(Debug, serde::Serialize)]
pub struct Info {
    pub image: String,
    pub id: String,
    pub created: String,
    pub size_bytes: u64,
    pub base: Option<String>,
    pub postgresql: Option<String>,
    pub patroni: Option<String>,
    pub etcd: Option<String>,
    pub pgbackrest: Option<String>,
    pub haproxy: Option<String>,
    /// Whether it was built from this lab binary's definition of the image.
    pub current: bool,
}

impl Info {
    /// The text `lab image info` prints.
    pub fn table(&self) -> String {
        let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        let mut rows = vec![
            ("image", self.image.clone()),
            ("id", self.id.clone()),
            ("created", self.created.clone()),
            ("size", format!("{} MB", self.size_bytes / 1_000_000)),
            ("base", or_unknown(&self.base)),
            ("PostgreSQL", or_unknown(&self.postgresql)),
            ("Patroni", or_unknown(&self.patroni)),
            ("etcd", or_unknown(&self.etcd)),
            ("pgBackRest", or_unknown(&self.pgbackrest)),
            ("HAProxy", or_unknown(&self.haproxy)),
        ];
        if !self.current {
            rows.push((
                "note",
                "built from another definition than this lab binary's; `lab image build \
                 --force` rebuilds it"
                    .into(),
            ));
        }
        let rows = rows
            .into_iter()
            .map(|(what, value)| [what.to_string(), value]);
        table::render(&[], rows)
    }
}

/// `lab image info`: what the image holds and how it was made.
pub async fn info(engine: &Engine, tag: &str) -> Result<Info> {
    let image = engine
        .image(tag)
        .await?
        .ok_or_else(|| Error::ImageMissing {
            image: tag.to_string(),
        })?;
    let get = |k: &str| image.labels.get(k).cloned();
    Ok(Info {
        image: tag.to_string(),
        id: image.id.clone(),
        created: image.created.clone(),
        size_bytes: u64::try_from(image.size).unwrap_or(0),
        base: get(label::BASE),
        postgresql: get(label::POSTGRESQL),
        patroni: get(label::PATRONI),
        etcd: get(label::ETCD),
        pgbackrest: get(label::PGBACKREST),
        haproxy: get(label::HAPROXY),
        current: get(label::DEFINITION) == Some(definition::fingerprint()),
    })
}

/// For `lab create`: the image must be there. The default image is built on the spot (so a
/// newcomer's first command works); any other is the user's to provide.
pub async fn ensure(engine: &Engine, progress: &Progress, tag: &str) -> Result<()> {
    match engine.image(tag).await? {
        Some(image) => {
            if tag == definition::IMAGE
                && image.labels.get(label::DEFINITION).map(String::as_str)
                    != Some(definition::fingerprint().as_str())
            {
                progress.line(format!(
                    "note: {tag} was built from another definition than this lab binary's; \
                     `lab image build --force` rebuilds it"
                ));
            }
            Ok(())
        }
        None if tag == definition::IMAGE => {
            progress.line(format!(
                "{tag} is not on this engine yet: building it first (once, a few minutes)"
            ));
            build(
                engine,
                progress,
                &BuildRequest {
                    tag: tag.to_string(),
                    force: false,
                    mirror: None,
                },
            )
            .await
        }
        None => Err(Error::ImageMissing {
            image: tag.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_become_one_quoted_instruction() {
        let labels = HashMap::from([
            ("b".to_string(), "debootstrap of \"trixie\"".to_string()),
            ("a".to_string(), "17.11".to_string()),
        ]);
        assert_eq!(
            label_instruction(&labels),
            r#"a="17.11" b="debootstrap of \"trixie\"""#
        );
    }
}
