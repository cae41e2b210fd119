//! Commands over a class of labs (`create` with several names or `--count`, `reset --all`):
//! each lab's work run as many at once as the machine has cores, under that lab's own lock.

use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::progress::Progress;

/// Runs `work` for every named lab (each with its own progress prefix when there are several),
/// as many at once as this machine has cores: a class of labs on a laptop would otherwise
/// compete for two cores and run into the stages' deadlines. A lab that fails does not stop
/// the others; Ctrl-C stops new ones from starting. The end is a line per lab, and an error
/// when any failed (exit 130 when Ctrl-C stopped some).
pub async fn each<F, Fut>(
    progress: &Progress,
    names: &[String],
    interrupt: &Interrupt,
    work: F,
) -> Result<()>
where
    F: Fn(String, Progress) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let at_once = std::thread::available_parallelism().map_or(2, |n| n.get());
    each_at(progress, names, at_once, interrupt, work).await
}

/// `each`, `at_once` labs at a time (an engine's share of a class, as many as its cores).
pub async fn each_at<F, Fut>(
    progress: &Progress,
    names: &[String],
    at_once: usize,
    interrupt: &Interrupt,
    work: F,
) -> Result<()>
where
    F: Fn(String, Progress) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    if let [name] = names {
        return work(name.clone(), progress.clone()).await;
    }
    // Unordered: a lab that ends early frees its place for the next at once, not only once the
    // labs begun before it have ended.
    let mut results: Vec<(usize, Result<()>)> =
        futures_util::stream::iter(names.iter().enumerate().map(|(i, name)| {
            let run = if interrupt.was_pressed() {
                futures_util::future::Either::Left(async { Err(Error::Interrupted) })
            } else {
                futures_util::future::Either::Right(work(name.clone(), progress.for_lab(name)))
            };
            async move { (i, run.await) }
        }))
        .buffer_unordered(at_once)
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    let results: Vec<Result<()>> = results.into_iter().map(|(_, r)| r).collect();
    let mut failed = Vec::new();
    for (name, result) in names.iter().zip(&results) {
        match result {
            Ok(()) => progress.line(format!("lab {name}: done")),
            Err(e) => {
                progress.line(format!("lab {name}: FAILED: {e}"));
                failed.push(name.as_str());
            }
        }
    }
    let summary = || {
        format!(
            "{} of {} labs did not finish: {} (each one's error is above)",
            failed.len(),
            names.len(),
            failed.join(", ")
        )
    };
    let interrupted = results
        .iter()
        .any(|r| matches!(r, Err(Error::Interrupted | Error::InterruptedAfter(_))));
    match (failed.is_empty(), interrupted) {
        (true, _) => Ok(()),
        (false, true) => Err(Error::InterruptedAfter(summary())),
        (false, false) => Err(Error::Failed(summary())),
    }
}

/// Whether lab `name` belongs to the class `prefix`: the prefix itself, or a lab `lab create
/// --count N --name PREFIX` names (PREFIX-a, PREFIX-07, ...).
pub fn in_class(name: &str, prefix: &str) -> bool {
    name == prefix
        || name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|rest| !rest.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_is_its_prefix_and_the_labs_named_after_it() {
        for name in ["demo", "demo-a", "demo-07", "demo-z"] {
            assert!(in_class(name, "demo"), "{name}");
        }
        for name in ["demos", "demo-", "demox-a", "dem"] {
            assert!(!in_class(name, "demo"), "{name}");
        }
    }
}
