//! Images: inspect, pull, import a root filesystem, build from an in-memory context, export and
//! load one as a tar stream (to ship it to another engine), and run a throwaway container to
//! read what an image holds.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, CreateImageOptions, ImportImageOptions, LogsOptions,
    RemoveContainerOptions, RemoveImageOptions, WaitContainerOptions,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncReadExt;

use super::{Engine, ExecOutput, api, is_not_found};
use crate::error::{Error, Result};

/// What `lab` reads of an image.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub id: String,
    pub size: i64,
    pub created: String,
    pub labels: HashMap<String, String>,
}

/// Waits for the next item of a progress stream, giving up when the Engine stays silent.
async fn next_within<S, T>(stream: &mut S, silence: Duration, what: &str) -> Result<Option<T>>
where
    S: Stream<Item = std::result::Result<T, bollard::errors::Error>> + Unpin,
{
    match tokio::time::timeout(silence, stream.next()).await {
        Ok(Some(item)) => item.map(Some).map_err(api(what)),
        Ok(None) => Ok(None),
        Err(_) => Err(Error::Docker {
            action: what.to_string(),
            message: format!("no progress for {} s", silence.as_secs()),
        }),
    }
}

impl Engine {
    /// The image, or None when the engine does not have it.
    pub async fn image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(Some(ImageInfo {
                id: image.id.unwrap_or_default(),
                size: image.size.unwrap_or(0),
                created: image.created.unwrap_or_default(),
                labels: image.config.and_then(|c| c.labels).unwrap_or_default(),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspect image {reference}"))(e)),
        }
    }

    /// Pulls `image:tag` from its registry, reporting progress lines.
    pub async fn pull(&self, image: &str, tag: &str, progress: &mut dyn FnMut(&str)) -> Result<()> {
        let what = format!("pull {image}:{tag}");
        let options = CreateImageOptions {
            from_image: Some(image.to_string()),
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(info) = next_within(&mut stream, Duration::from_secs(60), &what).await? {
            if let Some(status) = info.status {
                progress(&status);
            }
        }
        Ok(())
    }

    /// Imports a root filesystem tarball as `repo:tag`, with Dockerfile-style `changes`.
    pub async fn import(
        &self,
        tarball: &Path,
        repo: &str,
        tag: &str,
        changes: &[&str],
    ) -> Result<()> {
        let what = format!("import {} as {repo}:{tag}", tarball.display());
        let file = tokio::fs::File::open(tarball)
            .await
            .map_err(Error::io(format!("open {}", tarball.display())))?;
        let chunks = futures_util::stream::unfold(file, |mut file| async move {
            let mut buf = vec![0u8; 1 << 20];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), file))
                }
                Err(e) => Some((Err(e), file)),
            }
        });
        let options = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(tag.into()),
            changes: changes.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        };
        let mut stream =
            self.docker
                .create_image(Some(options), Some(bollard::body_try_stream(chunks)), None);
        while next_within(&mut stream, Duration::from_secs(300), &what)
            .await?
            .is_some()
        {}
        Ok(())
    }

    /// Builds an image from a tar build context (from scratch when `fresh`, else reusing the
    /// build cache); returns the new image's id. Output lines of the build go to `progress`.
    pub async fn build(
        &self,
        context: Vec<u8>,
        tag: Option<&str>,
        buildargs: HashMap<String, String>,
        fresh: bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<String> {
        let what = "build the lab image";
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: tag.map(str::to_string),
            rm: true,
            forcerm: true,
            nocache: fresh,
            buildargs: Some(buildargs),
            ..Default::default()
        };
        let mut stream = self.docker.build_image(
            options,
            None,
            Some(bollard::body_full(bytes::Bytes::from(context))),
        );
        let mut id = None;
        let mut tail: Vec<String> = Vec::new();
        // apt-get can be silent for minutes on a slow mirror.
        while let Some(info) = next_within(&mut stream, Duration::from_secs(600), what).await? {
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(Error::ImageBuild {
                    step: tail.last().cloned().unwrap_or_else(|| "starting".into()),
                    message: format!("{detail}\n{}", tail.join("\n")),
                });
            }
            if let Some(text) = info.stream {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    progress(line);
                    tail.push(line.to_string());
                    if tail.len() > 15 {
                        tail.remove(0);
                    }
                }
            }
            if let Some(aux) = info.aux.and_then(|a| a.id) {
                id = Some(aux);
            }
        }
        id.ok_or_else(|| Error::ImageBuild {
            step: "finishing".into(),
            message: "the Engine reported no image id".into(),
        })
    }

    /// The image as `docker save` writes it (a tar of its layers, config and manifest.json),
    /// chunk by chunk as the Engine sends it, so that nothing holds the whole image. The stream
    /// owns its connection: it may outlive `self` and be handed to another engine's load.
    pub fn export_image(
        &self,
        reference: &str,
    ) -> impl Stream<Item = Result<Bytes>> + Send + Unpin + 'static {
        let what = format!("export image {reference}");
        let docker = self.docker.clone();
        let reference = reference.to_string();
        // bollard's stream borrows the client; owning a clone keeps ours free of `self`.
        let chunks = futures_util::stream::once(async move { docker.export_image(&reference) })
            .flatten()
            .map(move |chunk| chunk.map_err(api(what.as_str())));
        Box::pin(chunks)
    }

    /// Loads images from a tar stream as `docker load` does (POST /images/load), reading the
    /// stream only as fast as the Engine takes it.
    pub async fn import_image<S>(&self, tar: S) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>> + Send + 'static,
    {
        let what = "load an image";
        let mut stream = self.docker.import_image_stream(
            ImportImageOptions {
                quiet: true,
                ..Default::default()
            },
            tar,
            None,
        );
        // The Engine answers once it has read the whole tar, then reports the loaded image.
        while next_within(&mut stream, Duration::from_secs(600), what)
            .await?
            .is_some()
        {}
        Ok(())
    }

    /// Removes an image nothing uses any more; one still in use stays, silently.
    pub async fn remove_image_if_unused(&self, id: &str) {
        let _ = self
            .docker
            .remove_image(id, None::<RemoveImageOptions>, None)
            .await;
    }

    /// Runs `cmd` in a new container of `image` (entrypoint replaced), collects its output and
    /// removes the container.
    pub async fn run_once(&self, image: &str, cmd: &[&str]) -> Result<ExecOutput> {
        let what = format!("run a probe container of {image}");
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(cmd.iter().map(|s| s.to_string()).collect()),
            labels: Some(HashMap::from([(
                crate::labels::PROBE.to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .map_err(api(&what))?;
        let result = self.run_created(&created.id, &what).await;
        let _ = self
            .docker
            .remove_container(
                &created.id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await;
        result
    }

    async fn run_created(&self, id: &str, what: &str) -> Result<ExecOutput> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(api(what))?;
        let mut wait = self.docker.wait_container(id, None::<WaitContainerOptions>);
        let mut code = 0;
        while let Some(status) = wait.next().await {
            match status {
                Ok(s) => code = s.status_code,
                // A non-zero exit arrives as this error; the code is what matters.
                Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => code = c,
                Err(e) => return Err(api(what)(e)),
            }
        }
        let mut logs = self.docker.logs(
            id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let (mut stdout, mut stderr) = (String::new(), String::new());
        while let Some(frame) = logs.next().await {
            match frame.map_err(api(what))? {
                bollard::container::LogOutput::StdErr { message } => {
                    stderr.push_str(&String::from_utf8_lossy(&message))
                }
                other => stdout.push_str(&String::from_utf8_lossy(&other.into_bytes())),
            }
        }
        Ok(ExecOutput {
            code,
            stdout,
            stderr,
        })
    }
}
