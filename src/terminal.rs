//! The local terminal, for interactive sessions in a node: raw mode while a remote shell or
//! psql owns the keyboard (restored however the session ends), and the window size; and what a
//! command prints on stdout, for a person or a pipe.

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;

use rustix::termios::{OptionalActions, Termios, tcgetattr, tcgetwinsize, tcsetattr};

/// Prints `text` on stdout, ending it with a newline. A reader that has gone (`lab list | head
/// -1`) ends the process quietly, with the exit code a shell gives a command killed by SIGPIPE,
/// as other command-line tools do, rather than a panic.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let newline = if text.ends_with('\n') { "" } else { "\n" };
    let written = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.write_all(newline.as_bytes()))
        .and_then(|()| stdout.flush());
    if written.is_err() {
        std::process::exit(141);
    }
}

/// Ends the process as `out` does when stdout's reader has gone, without waiting for
/// something to write: a command that prints only now and then (`lab watch | head -3`) would
/// otherwise outlive its reader until its next line.
pub fn exit_if_reader_gone() {
    use rustix::event::{PollFd, PollFlags, poll};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
    // Zero timeout: a look, not a wait. A pipe whose reader closed says POLLERR.
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if poll(&mut fds, Some(&zero)).is_ok()
        && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
    {
        std::process::exit(141);
    }
}

/// Whether stdin and stdout are both a terminal, so a session can be interactive.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// Asks `what` ("... Go on?") on the terminal and returns when the answer is yes; otherwise an
/// error that exits 2: `cancelled` when the answer is no, and when there is no terminal to ask
/// on, `what` with how to say yes without one (`yes_flag`, such as --yes).
pub fn confirm(what: &str, yes_flag: &str, cancelled: &str) -> Result<(), crate::error::Error> {
    use crate::error::Error;
    if !interactive() {
        return Err(Error::Invalid(format!(
            "{what}. Without a terminal to confirm on, add {yes_flag}"
        )));
    }
    eprint!("{what}.\nGo on? [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(Error::io("read the answer"))?;
    if is_yes(&answer) {
        Ok(())
    } else {
        Err(Error::Invalid(cancelled.into()))
    }
}

/// Whether a typed answer means yes (anything else, an empty line included, is no).
fn is_yes(answer: &str) -> bool {
    matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES")
}

/// Raw mode on stdin until dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// None when stdin is not a terminal.
    pub fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(&stdin, OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// (rows, columns) of the terminal on stdout.
/// The terminal's width in columns, found on stdout or else on stderr (as clap finds it for
/// the help it wraps, so that `lab --help | less` wraps alike).
pub fn width() -> Option<u16> {
    fn on(fd: impl AsFd) -> Option<u16> {
        let ws = tcgetwinsize(fd).ok()?;
        (ws.ws_col > 0).then_some(ws.ws_col)
    }
    on(std::io::stdout()).or_else(|| on(std::io::stderr()))
}

pub fn size() -> Option<(u16, u16)> {
    let ws = tcgetwinsize(std::io::stdout()).ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

#[cfg(test)]
mod confirm_tests {
    use super::is_yes;

    #[test]
    fn only_a_yes_is_a_yes() {
        assert!(is_yes("y\n") && is_yes(" yes ") && is_yes("Y"));
        assert!(!is_yes("\n") && !is_yes("n") && !is_yes("yess") && !is_yes(""));
    }
}
