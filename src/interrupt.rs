//! Ctrl-C as something a long operation waits on, so that `lab create` can stop at any point
//! (planning, the image build, bootstrap) and remove what it made, instead of dying midway.

use tokio::sync::watch;

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
}
