//! Progress on stderr: one line per finished step with its duration, a live spinner while a step
//! runs when stderr is a terminal, plain lines when it is not (CI logs, pipes).

use std::fmt::Display;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Where steps report; cheap to clone, one per lab when several run at once.
#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
    tty: bool,
    prefix: String,
}

impl Default for Progress {
    fn default() -> Progress {
        Progress::new()
    }
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            multi: MultiProgress::new(),
            tty: std::io::stderr().is_terminal(),
            prefix: String::new(),
        }
    }

    /// The same output, with every line prefixed by `[name]`.
    pub fn for_lab(&self, name: &str) -> Progress {
        Progress {
            prefix: format!("[{name}] "),
            ..self.clone()
        }
    }

    /// Starts a step; finish it with `done` (or drop it on failure).
    pub fn step(&self, label: impl Into<String>) -> Step {
        let label = label.into();
        let bar = self.tty.then(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(format!("{}{label}", self.prefix));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Step {
            progress: self.clone(),
            label,
            bar,
            started: Instant::now(),
            finished: false,
        }
    }

    /// A line of its own, above any running spinner.
    pub fn line(&self, text: impl Display) {
        let line = format!("{}{text}", self.prefix);
        if self.tty {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }
}

/// A running step.
pub struct Step {
    progress: Progress,
    label: String,
    bar: Option<ProgressBar>,
    started: Instant,
    finished: bool,
}

impl Step {
    /// Shows what the step is doing right now (terminal only; plain output stays one line per
    /// step).
    pub fn detail(&self, text: &str) {
        if let Some(bar) = &self.bar {
            let text: String = text.chars().take(90).collect();
            bar.set_message(format!("{}{}: {text}", self.progress.prefix, self.label));
        }
    }

    /// Ends the step with what it achieved; returns how long it took.
    pub fn done(mut self, summary: impl Display) -> Duration {
        let took = self.started.elapsed();
        self.finish(format!("✓ {}: {summary} ({})", self.label, seconds(took)));
        took
    }

    fn finish(&mut self, line: String) {
        self.finished = true;
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        self.progress.line(line);
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if !self.finished {
            let took = self.started.elapsed();
            self.finish(format!("✗ {} ({})", self.label, seconds(took)));
        }
    }
}

/// "1.2 s", the way every duration is shown.
pub fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_seconds_with_one_decimal() {
        assert_eq!(seconds(Duration::from_millis(27_149)), "27.1 s");
        assert_eq!(seconds(Duration::from_millis(40)), "0.0 s");
    }
}
