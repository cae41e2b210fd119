//! Shipping the lab image from one Docker Engine to another: the source's export (`docker save`)
//! streamed straight into the target's load (`docker load`), so that an engine with no registry
//! and no Debian mirror gets the image in seconds, and nothing holds the whole image in memory
//! or on disk on the way.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::engine::Engine;
use crate::error::{Error, Result};

/// How often the bytes moved so far are reported.
const TICK: Duration = Duration::from_secs(1);

/// Copies image `reference` from engine `from` to engine `to` (each named as the user names it
/// in what is reported), reporting the bytes moved about once a second, and checks
/// that the target then has it under the same id. Returns the bytes moved: 0 when the target
/// already had that very image.
pub async fn ship(
    from: &Engine,
    to: &Engine,
    reference: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<u64> {
    let (from_label, to_label) = (from.name(), to.name());
    let failed = |cause: String| shipping_failed(reference, from_label, to_label, &cause);
    let source = from
        .image(reference)
        .await
        .map_err(|e| failed(format!("reading it on {from_label} failed: {e}")))?
        .ok_or_else(|| {
            failed(format!(
                "{from_label} does not have it (build it there with `lab image build`)"
            ))
        })?;
    let before = to
        .image(reference)
        .await
        .map_err(|e| failed(format!("reading it on {to_label} failed: {e}")))?;
    if before.map(|i| i.id).as_deref() == Some(source.id.as_str()) {
        progress(&format!("{reference} is already on {to_label}"));
        return Ok(0);
    }

    let started = Instant::now();
    let total = u64::try_from(source.size).unwrap_or(0);
    let moved = Arc::new(AtomicU64::new(0));
    // The load's own error only says the upload broke; the export's says why.
    let export_error: Arc<Mutex<Option<String>>> = Arc::default();
    // Set once the source has sent its last byte: the target then still takes seconds to
    // unpack the layers, which the progress says rather than seeming stuck.
    let sent = Arc::new(AtomicBool::new(false));
    let tar = {
        let (moved, export_error, sent) = (moved.clone(), export_error.clone(), sent.clone());
        let end = futures_util::stream::poll_fn(move |_| {
            sent.store(true, Ordering::Relaxed);
            Poll::Ready(None)
        });
        from.export_image(reference)
            .inspect(move |chunk| match chunk {
                Ok(bytes) => {
                    moved.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    if let Ok(mut slot) = export_error.lock() {
                        *slot = Some(e.to_string());
                    }
                }
            })
            .chain(end)
    };
    let mut load = std::pin::pin!(to.import_image(tar));
    let mut tick = tokio::time::interval(TICK);
    let loaded = loop {
        tokio::select! {
            loaded = &mut load => break loaded,
            _ = tick.tick() => progress(&shipping(
                reference,
                (from_label, to_label),
                moved.load(Ordering::Relaxed),
                total,
                sent.load(Ordering::Relaxed),
            )),
        }
    };
    if let Err(load_error) = loaded {
        let exported = export_error.lock().ok().and_then(|slot| slot.clone());
        return Err(failed(match exported {
            Some(e) => format!("reading it from {from_label} failed: {e}"),
            None => format!("loading it into {to_label} failed: {load_error}"),
        }));
    }

    let landed = to
        .image(reference)
        .await
        .map_err(|e| failed(format!("reading it on {to_label} afterwards failed: {e}")))?
        .map(|i| i.id);
    if landed.as_deref() != Some(source.id.as_str()) {
        return Err(failed(format!(
            "{to_label} loaded the tar but then had {} instead of {}",
            landed.unwrap_or_else(|| "no such image".into()),
            source.id
        )));
    }
    let moved = moved.load(Ordering::Relaxed);
    progress(&format!(
        "shipped {reference} from {from_label} to {to_label}: {} MB in {}",
        moved / MB,
        crate::progress::seconds(started.elapsed())
    ));
    Ok(moved)
}

/// Megabytes as `lab image info` counts them.
const MB: u64 = 1_000_000;

/// What a shipment is doing, from engine `from` to engine `to`: the source assembling its tar
/// (seconds before the first byte), "shipping pgha-lab:17-g16: 312 of ~650 MB" (the size is the
/// image's as the source reports it, which the tar only approximates), then the target
/// unpacking the layers it has received.
fn shipping(
    reference: &str,
    (from, to): (&str, &str),
    moved: u64,
    total: u64,
    sent: bool,
) -> String {
    if sent {
        format!(
            "shipping {reference}: all {} MB sent, {to} is loading it",
            moved / MB
        )
    } else if moved == 0 {
        format!(
            "shipping {reference}: {from} is preparing the export (~{} MB)",
            total.div_ceil(MB)
        )
    } else {
        format!(
            "shipping {reference}: {} of ~{} MB",
            moved / MB,
            total.div_ceil(MB)
        )
    }
}

/// The one paragraph a failed shipment reports, naming both engines.
fn shipping_failed(reference: &str, from: &str, to: &str, cause: &str) -> Error {
    Error::Failed(format!(
        "could not ship the image {reference} from the engine {from} to the engine {to}: \
         {cause}. Check that both engines answer (`docker info` against each) and that {to} has \
         room for the image (`docker system df`), then try again; or build the image on {to} \
         itself with `lab image build`."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_whole_megabytes_of_an_approximate_total() {
        let ends = ("local", "box2");
        assert_eq!(
            shipping("pgha-lab:17-g16", ends, 312_400_000, 649_100_000, false),
            "shipping pgha-lab:17-g16: 312 of ~650 MB"
        );
        // The tar carries headers the image size does not count: more than ~total is fine.
        assert_eq!(
            shipping("x:1", ends, 651_000_000, 650_000_000, false),
            "shipping x:1: 651 of ~650 MB"
        );
    }

    #[test]
    fn progress_says_which_engine_is_busy_before_and_after_the_bytes_move() {
        let ends = ("local", "box2");
        assert_eq!(
            shipping("x:1", ends, 0, 873_600_000, false),
            "shipping x:1: local is preparing the export (~874 MB)"
        );
        assert_eq!(
            shipping("x:1", ends, 886_183_424, 873_600_000, true),
            "shipping x:1: all 886 MB sent, box2 is loading it"
        );
    }

    #[test]
    fn a_failure_names_both_engines_in_one_paragraph() {
        let text = shipping_failed("pgha-lab:17-g16", "local", "box2", "loading it failed: EOF")
            .to_string();
        assert!(
            text.starts_with(
                "could not ship the image pgha-lab:17-g16 from the engine local to the engine \
                 box2: loading it failed: EOF."
            ),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
    }
}
