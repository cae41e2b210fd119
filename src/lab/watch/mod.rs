//! `lab watch`: a lab live. With a terminal on stdout, a full-screen view redrawn every second
//! and at every answer, until `q` or Ctrl-C; without one (piped, CI), one timestamped line per
//! event, the first stating the whole lab, until the process is killed. `poll` asks the lab,
//! `events` finds what changed, `view` draws it; this module owns the terminal, and puts it
//! back however the view ends (a key, a signal, an error, a panic). `lab serve` reuses `poll`
//! and `events` for its pages.

pub mod events;
pub mod poll;
mod view;

use std::io::{IsTerminal, Stdout, stdout};
use std::sync::Once;
use std::time::{Duration, SystemTime};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::event::{self, Event as Input, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model;
use crate::terminal;
use events::{Detector, clock};
use poll::Poller;
use view::{Log, Logged};

/// Watches lab `name` until stopped; returns the exit code: 0 after `q`, 130 after Ctrl-C,
/// 128 + the signal after SIGTERM or SIGHUP. A lab that is not there to begin with is an error.
pub async fn watch(engine: &Engine, name: &str) -> Result<i32> {
    let lab = model::get(engine, name).await?;
    let poller = Poller::new(engine, lab, poll::EVERY);
    if stdout().is_terminal() {
        screen(poller).await
    } else {
        lines(poller).await
    }
}

/// Without a terminal: a line stating the lab, then a line per event. Once the reader has gone
/// (`lab watch | head -3`) the process ends quietly, within a second even while nothing
/// happens.
async fn lines(mut poller: Poller) -> Result<i32> {
    let first = poller.first().await?;
    terminal::out(&format!(
        "{} {}",
        clock(SystemTime::now()),
        first.describe()
    ));
    let mut detector = Detector::new(&first);
    loop {
        let snap = poller.next().await?;
        terminal::exit_if_reader_gone();
        for event in detector.next(&snap) {
            terminal::out(&format!("{} {event}", clock(SystemTime::now())));
        }
    }
}

/// The full-screen view, until a key or a signal ends it.
async fn screen(mut poller: Poller) -> Result<i32> {
    let mut screen = Screen::enter()?;
    let mut inputs = inputs();
    let mut stop = Stops::listen()?;
    let mut log = Log::new(now());
    let mut snap = poller.placeholder();
    screen.draw(&snap, &log)?;
    let first = tokio::select! {
        first = poller.first() => first?,
        code = until_quit(&mut inputs, &mut stop, &mut screen, &snap, &log) => return code,
    };
    let mut detector = Detector::new(&first);
    snap = first;
    loop {
        screen.draw(&snap, &log)?;
        tokio::select! {
            next = poller.next() => {
                snap = next?;
                let at = clock(SystemTime::now());
                for event in detector.next(&snap) {
                    log.push(Logged { at: at.clone(), event });
                }
            }
            code = stop.next() => return Ok(code),
            input = inputs.recv() => match input {
                Some(Key::Quit(code)) => return Ok(code),
                // A resize, or a key that does nothing: drawn again at once.
                Some(Key::Other) => {}
                None => return Err(lost_terminal()),
            },
        }
    }
}

/// Waits for a quitting key or signal while the first answers come, redrawing on a resize.
async fn until_quit(
    inputs: &mut mpsc::UnboundedReceiver<Key>,
    stop: &mut Stops,
    screen: &mut Screen,
    snap: &events::Snapshot,
    log: &Log,
) -> Result<i32> {
    loop {
        tokio::select! {
            code = stop.next() => return Ok(code),
            input = inputs.recv() => match input {
                Some(Key::Quit(code)) => return Ok(code),
                Some(Key::Other) => screen.draw(snap, log)?,
                None => return Err(lost_terminal()),
            },
        }
    }
}

/// The error when the terminal's keys can no longer be read (the terminal closed).
fn lost_terminal() -> Error {
    Error::Failed(
        "lab watch lost its terminal: its keys can no longer be read, so it stopped; run it \
         again in a terminal, or piped for one line per event"
            .into(),
    )
}

/// What a key press or a terminal event means to the view.
enum Key {
    /// `q` (exit code 0) or Ctrl-C (130, as a Ctrl-C ends every `lab` command).
    Quit(i32),
    Other,
}

/// The terminal's keys and resizes, read on a thread of their own (crossterm reads block).
/// The thread ends once the view has stopped listening.
fn inputs() -> mpsc::UnboundedReceiver<Key> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        loop {
            let input = match event::poll(Duration::from_millis(250)) {
                Ok(true) => event::read(),
                Ok(false) if tx.is_closed() => return,
                Ok(false) => continue,
                Err(e) => Err(e),
            };
            let key = match input {
                Ok(Input::Key(k)) if k.kind == KeyEventKind::Press => match k.code {
                    KeyCode::Char('q' | 'Q') => Key::Quit(0),
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        Key::Quit(130)
                    }
                    _ => Key::Other,
                },
                Ok(_) => Key::Other,
                // No terminal to read: dropping the sender tells the view.
                Err(_) => return,
            };
            if tx.send(key).is_err() {
                return;
            }
        }
    });
    rx
}

/// The signals that end the view as a key does, the terminal put back first: SIGINT (from
/// outside: in raw mode Ctrl-C is a key), SIGTERM, SIGHUP.
struct Stops {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Stops {
    fn listen() -> Result<Stops> {
        let on = |kind: SignalKind| signal(kind).map_err(Error::io("listen for signals"));
        Ok(Stops {
            int: on(SignalKind::interrupt())?,
            term: on(SignalKind::terminate())?,
            hup: on(SignalKind::hangup())?,
        })
    }

    /// The exit code of the next signal: 128 + its number.
    async fn next(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => 130,
            _ = self.term.recv() => 143,
            _ = self.hup.recv() => 129,
        }
    }
}

/// The terminal in raw mode on the alternate screen, for as long as this lives.
struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    /// Declared last, so dropped last: the terminal is put back after ratatui's own cleanup.
    _restore: Restore,
}

impl Screen {
    fn enter() -> Result<Screen> {
        restore_on_panic();
        enable_raw_mode().map_err(Error::io("put the terminal in raw mode"))?;
        // From here on, whatever fails puts the terminal back.
        let restore = Restore;
        execute!(stdout(), EnterAlternateScreen, Hide)
            .map_err(Error::io("switch to the terminal's alternate screen"))?;
        let terminal = Terminal::new(CrosstermBackend::new(stdout()))
            .map_err(Error::io("draw on the terminal"))?;
        Ok(Screen {
            terminal,
            _restore: restore,
        })
    }

    fn draw(&mut self, snap: &events::Snapshot, log: &Log) -> Result<()> {
        let now = now();
        self.terminal
            .draw(|frame| view::draw(frame, snap, log, &now))
            .map(drop)
            .map_err(Error::io("draw on the terminal"))
    }
}

/// The time to the second, as the view's header shows it (the events keep their
/// milliseconds).
fn now() -> String {
    let now = clock(SystemTime::now());
    now.split('.').next().unwrap_or(&now).to_string()
}

/// Puts the terminal back when dropped.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        restore();
    }
}

/// Raw mode off, the alternate screen left, the cursor shown: the terminal as it was. Each
/// step is tried even when one before failed; doing it twice does no harm.
fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(stdout(), LeaveAlternateScreen, Show);
}

/// A panic, on any thread, puts the terminal back before its message is printed, so that the
/// message can be read and the shell is usable.
fn restore_on_panic() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
