//! Ctrl-C as something a long operation waits on, so that `lab create` can stop at any point
//! (planning, the image build, bootstrap) and remove what it made, and the other commands can
//! finish the step in progress, instead of dying midway.

use std::future::Future;

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::progress::Progress;

/// Fires once Ctrl-C was pressed; clones share it.
#[derive(Clone)]
pub struct Interrupt(watch::Receiver<bool>);

impl Interrupt {
    /// Takes Ctrl-C over from the default (killing the process): from here on every operation
    /// that should stop on it must wait on `pressed`. A second Ctrl-C is ignored, so a rollback
    /// in progress finishes.
    pub fn listen() -> Interrupt {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = tx.send(true);
            }
            // Keeps the channel open: a closed one would read as pressed.
            std::future::pending::<()>().await;
        });
        Interrupt(rx)
    }

    /// Returns when Ctrl-C has been pressed.
    pub async fn pressed(&mut self) {
        let _ = self.0.wait_for(|pressed| *pressed).await;
    }

    /// Whether Ctrl-C has been pressed by now.
    pub fn was_pressed(&self) -> bool {
        *self.0.borrow()
    }
}

/// Runs an operation that must not stop halfway (a reset, a stop, a start, a drill): Ctrl-C is
/// noted and said at once, the operation goes on to its end, and only then does the command
/// end, with exit code 130 and where the lab stands. The next command takes the lab from there.
pub async fn finishing<T>(
    interrupt: &Interrupt,
    progress: &Progress,
    what: &str,
    operation: impl Future<Output = Result<T>>,
) -> Result<T> {
    let mut waiting = interrupt.clone();
    tokio::pin!(operation);
    tokio::select! {
        done = &mut operation => return done,
        _ = waiting.pressed() => {}
    }
    progress.line(format!(
        "Ctrl-C: finishing {what} first, so that the lab is not left halfway (a second Ctrl-C \
         is ignored)"
    ));
    operation.await?;
    Err(Error::InterruptedAfter(format!(
        "{what} finished; the lab is as that left it"
    )))
}
