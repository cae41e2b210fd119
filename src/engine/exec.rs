//! Running commands inside node containers through the Engine's exec API: captured (output and
//! exit code, with a deadline), or attached to this process's terminal for interactive sessions.

use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt, stderr, stdout};

use super::{Engine, api};
use crate::error::{Error, Result};
use crate::terminal;

type Output =
    Pin<Box<dyn Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>> + Send>>;
type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// stderr and stdout together, for error messages: whichever says why.
    pub fn said(&self) -> String {
        let text = format!("{}\n{}", self.stderr.trim(), self.stdout.trim());
        text.trim().to_string()
    }
}

impl Engine {
    /// Runs `cmd` as `user` in `container` and waits up to `timeout` for it to finish. The
    /// command runs under coreutils' `timeout` inside the node, so that it ends there too when
    /// it overruns, or when this process is gone (Ctrl-C, a kill): an abandoned `tar` must not
    /// race the next command.
    pub async fn exec(
        &self,
        container: &str,
        user: &str,
        cmd: &[&str],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let shown = cmd.join(" ");
        let overran = || Error::Docker {
            action: format!("finish `{shown}` in {container}"),
            message: format!(
                "it was still running after {} s, and was stopped",
                timeout.as_secs()
            ),
        };
        let secs = timeout.as_secs().max(1).to_string();
        let bounded: Vec<&str> = ["timeout", "-k", "5", secs.as_str()]
            .into_iter()
            .chain(cmd.iter().copied())
            .collect();
        let started = std::time::Instant::now();
        // The node's own deadline comes first; this one is for an engine that stops answering.
        let outer = timeout + Duration::from_secs(10);
        match tokio::time::timeout(outer, self.exec_inner(container, user, &bounded, &shown)).await
        {
            Ok(Ok(out)) if [124, 137].contains(&out.code) && started.elapsed() >= timeout => {
                Err(overran())
            }
            Ok(result) => result,
            Err(_) => Err(overran()),
        }
    }

    async fn exec_inner(
        &self,
        container: &str,
        user: &str,
        cmd: &[&str],
        shown: &str,
    ) -> Result<ExecOutput> {
        let action = || format!("run `{shown}` in {container}");
        let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        let (id, mut output, _) = self.start(container, user, &cmd, false, false).await?;
        // Frames are not aligned to lines, so bytes are gathered first and decoded at the end.
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some(frame) = output.next().await {
            match frame.map_err(api(action()))? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    out.extend_from_slice(&message)
                }
                LogOutput::StdErr { message } => err.extend_from_slice(&message),
                LogOutput::StdIn { .. } => {}
            }
        }
        let code = self.exit_code(&id, &action()).await?;
        Ok(ExecOutput {
            code,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        })
    }

    /// Creates and starts an exec with stdout and stderr attached (stdin and a terminal when
    /// asked); returns its id, its output and its input.
    async fn start(
        &self,
        container: &str,
        user: &str,
        cmd: &[String],
        tty: bool,
        stdin: bool,
    ) -> Result<(String, Output, Input)> {
        let action = || format!("run `{}` in {container}", cmd.join(" "));
        // Full-screen programs (psql's pager, vim) need to know the terminal.
        let env = tty.then(|| {
            vec![format!(
                "TERM={}",
                std::env::var("TERM").unwrap_or_else(|_| "xterm".into())
            )]
        });
        let created = self
            .docker
            .create_exec(
                container,
                CreateExecOptions {
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(tty),
                    user: Some(user.to_string()),
                    env,
                    cmd: Some(cmd.to_vec()),
                    ..Default::default()
                },
            )
            .await
            .map_err(api(action()))?;
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    tty,
                    ..Default::default()
                }),
            )
            .await
            .map_err(api(action()))?;
        match started {
            StartExecResults::Attached { output, input } => Ok((created.id, output, input)),
            StartExecResults::Detached => Err(Error::Docker {
                action: action(),
                message: "the Engine did not attach to the command".into(),
            }),
        }
    }

    /// The exit code, once the Engine has noticed the process ended (slightly after its output
    /// stream closes).
    async fn exit_code(&self, exec_id: &str, action: &str) -> Result<i64> {
        loop {
            let info = self
                .docker
                .inspect_exec(exec_id)
                .await
                .map_err(api(action))?;
            if info.running != Some(true) {
                return Ok(info.exit_code.unwrap_or(-1));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `cmd` with this process's stdin (when `stdin`), stdout and stderr, in a terminal of
    /// its own when `tty` (raw mode here, the window size followed); returns its exit code.
    pub async fn exec_attached(
        &self,
        container: &str,
        user: &str,
        cmd: &[String],
        tty: bool,
        stdin: bool,
    ) -> Result<i64> {
        let action = || format!("run `{}` in {container}", cmd.join(" "));
        let (id, mut output, mut input) = self.start(container, user, cmd, tty, stdin).await?;
        // Restores the terminal however the session ends.
        let _raw = tty.then(terminal::RawMode::enter);
        if tty {
            self.follow_window_size(&id).await;
        }
        if stdin {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut input).await;
                // End of input reaches the command (psql reading a script, say).
                let _ = input.shutdown().await;
            });
        }
        let (mut out, mut err) = (stdout(), stderr());
        while let Some(frame) = output.next().await {
            match frame.map_err(api(action()))? {
                LogOutput::StdErr { message } => {
                    let _ = err.write_all(&message).await;
                    let _ = err.flush().await;
                }
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    let _ = out.write_all(&message).await;
                    let _ = out.flush().await;
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        self.exit_code(&id, &action()).await
    }

    /// Sizes the remote terminal like ours, now and whenever ours changes.
    async fn follow_window_size(&self, exec_id: &str) {
        let resize = |engine: Engine, id: String| async move {
            if let Some((rows, cols)) = terminal::size() {
                let _ = engine
                    .docker
                    .resize_exec(
                        &id,
                        ResizeExecOptions {
                            height: rows,
                            width: cols,
                        },
                    )
                    .await;
            }
        };
        resize(self.clone(), exec_id.to_string()).await;
        let (engine, id) = (self.clone(), exec_id.to_string());
        if let Ok(mut changes) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        {
            tokio::spawn(async move {
                while changes.recv().await.is_some() {
                    resize(engine.clone(), id.clone()).await;
                }
            });
        }
    }
}
