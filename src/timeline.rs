//! A drill's client timeline as series: the workload's acknowledgements and errors counted per
//! 100 ms, on a clock whose zero is the fault. The JSON report keeps these series and the
//! `--plot` picture is drawn from them, so the two never disagree. Pure: no I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::workload::Record;

/// The width of one bucket: fine enough to show a sub-second switchover, coarse enough that a
/// bucket holds a few operations at the workload's pace.
pub const BUCKET: Duration = Duration::from_millis(100);

/// Which side of the workload an error series belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Write,
    Read,
}

/// One kind of error, counted per bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorSeries {
    pub side: Side,
    /// As the client was told it, the same words as the report's errors.
    pub kind: String,
    pub counts: Vec<u32>,
}

/// Every series of one drill, bucket by bucket; bucket `i` covers
/// `[start + i * bucket, start + (i + 1) * bucket)` seconds after the fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    /// Bucket width, in seconds.
    pub bucket: f64,
    /// Where the first bucket begins, in seconds relative to the fault (a multiple of `bucket`,
    /// at most 0): the fault always falls on a bucket's edge.
    pub start: f64,
    /// Acknowledged writes per bucket.
    pub writes: Vec<u32>,
    /// Answered reads per bucket, when the drill had a reader.
    pub reads: Option<Vec<u32>>,
    /// Errors per bucket, one series per side and kind, writes first, each side's kinds in
    /// the order first seen.
    pub errors: Vec<ErrorSeries>,
}

impl Timeline {
    /// Buckets the workload's records around a fault at `fault` (on the workload's clock).
    pub fn of(writes: &Record, reads: Option<&Record>, fault: Duration) -> Timeline {
        let index = |at: Duration| bucket_of(at, fault);
        let events = writes
            .acks
            .iter()
            .map(|a| a.at)
            .chain(writes.failures.iter().map(|f| f.0))
            .chain(reads.iter().flat_map(|r| {
                r.acks
                    .iter()
                    .map(|a| a.at)
                    .chain(r.failures.iter().map(|f| f.0))
            }));
        let (mut first, mut last) = (0, 0);
        for i in events.map(index) {
            first = first.min(i);
            last = last.max(i);
        }
        let len = usize::try_from(last - first + 1).unwrap_or(1);
        let count = |times: &mut dyn Iterator<Item = Duration>| {
            let mut counts = vec![0u32; len];
            for at in times {
                // Every event lies in [first, last], so the index is in range.
                if let Some(c) = usize::try_from(index(at) - first)
                    .ok()
                    .and_then(|i| counts.get_mut(i))
                {
                    *c += 1;
                }
            }
            counts
        };
        let mut errors = Vec::new();
        for (side, record) in [(Side::Write, Some(writes)), (Side::Read, reads)] {
            let Some(record) = record else { continue };
            // Kinds in the order first seen, as the report lists them.
            let mut kinds: BTreeMap<&str, Duration> = BTreeMap::new();
            for (at, kind) in &record.failures {
                kinds.entry(kind).or_insert(*at);
            }
            let mut kinds: Vec<(&str, Duration)> = kinds.into_iter().collect();
            kinds.sort_by_key(|(_, at)| *at);
            for (kind, _) in kinds {
                errors.push(ErrorSeries {
                    side,
                    kind: kind.to_string(),
                    counts: count(
                        &mut record
                            .failures
                            .iter()
                            .filter(|(_, k)| k == kind)
                            .map(|(at, _)| *at),
                    ),
                });
            }
        }
        Timeline {
            bucket: BUCKET.as_secs_f64(),
            // In milliseconds, then to seconds: -28 buckets read -2.8, not -2.8000000000000003.
            start: (first * bucket_ms()) as f64 / 1000.0,
            writes: count(&mut writes.acks.iter().map(|a| a.at)),
            reads: reads.map(|r| count(&mut r.acks.iter().map(|a| a.at))),
            errors,
        }
    }

    /// Where the last bucket ends, in seconds after the fault.
    pub fn end(&self) -> f64 {
        self.start + self.writes.len() as f64 * self.bucket
    }

    /// Where bucket `i` begins, in seconds after the fault.
    pub fn at(&self, i: usize) -> f64 {
        self.start + i as f64 * self.bucket
    }
}

/// The bucket an event at `at` falls in, counted from the fault's (0): negative before it.
fn bucket_of(at: Duration, fault: Duration) -> i64 {
    (ms(at) - ms(fault)).div_euclid(bucket_ms())
}

fn bucket_ms() -> i64 {
    ms(BUCKET)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Ack;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_start_is_a_whole_number_of_buckets_without_rounding_noise() {
        let writes = Record {
            acks: acks(&[200]),
            ..Record::default()
        };
        // 2.8 s before the fault: 0.1 * -28 would be -2.8000000000000003.
        assert_eq!(Timeline::of(&writes, None, ms(3_000)).start, -2.8);
    }

    fn acks(times: &[u64]) -> Vec<Ack> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| Ack {
                id: i as i64 + 1,
                at: ms(*t),
                server: "10.0.0.2".into(),
            })
            .collect()
    }

    #[test]
    fn acknowledgements_are_counted_per_100_ms_with_the_fault_on_a_bucket_edge() {
        // The fault at 1 050 ms: buckets are [-0.1, 0), [0, 0.1), ... after it.
        let writes = Record {
            acks: acks(&[800, 960, 990, 1_049, 1_050, 1_149, 1_400]),
            ..Record::default()
        };
        let t = Timeline::of(&writes, None, ms(1_050));
        assert_eq!(t.bucket, 0.1);
        // 800 ms is 250 ms before the fault: bucket -3, which begins at -0.3 s.
        assert_eq!(t.start, -0.3);
        assert_eq!(t.writes, vec![1, 0, 3, 2, 0, 0, 1]);
        assert!((t.end() - 0.4).abs() < 1e-9, "{}", t.end());
        assert!((t.at(3) - 0.0).abs() < 1e-9);
        assert_eq!(t.reads, None);
        assert!(t.errors.is_empty());
    }

    #[test]
    fn errors_are_series_by_side_and_kind_in_the_order_first_seen() {
        let fail = |at: u64, kind: &str| (ms(at), kind.to_string());
        let writes = Record {
            acks: acks(&[900, 2_000]),
            failures: vec![
                fail(1_010, "no answer within 2 s"),
                fail(1_020, "connection refused"),
                fail(1_030, "connection refused"),
                fail(1_210, "connection refused"),
            ],
            ..Record::default()
        };
        let reads = Record {
            acks: acks(&[950, 1_500]),
            failures: vec![fail(1_100, "connection closed")],
            ..Record::default()
        };
        let t = Timeline::of(&writes, Some(&reads), ms(1_000));
        // From bucket -1 (900 ms) to bucket 10 (2 000 ms).
        assert_eq!(t.writes.len(), 12);
        assert_eq!(t.writes[0], 1);
        assert_eq!(t.writes[11], 1);
        let reads = t.reads.as_ref().unwrap();
        assert_eq!((reads[0], reads[6]), (1, 1));
        let kinds: Vec<(Side, &str)> = t.errors.iter().map(|e| (e.side, e.kind.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (Side::Write, "no answer within 2 s"),
                (Side::Write, "connection refused"),
                (Side::Read, "connection closed"),
            ]
        );
        assert_eq!(&t.errors[1].counts[..4], &[0, 2, 0, 1]);
        assert_eq!(t.errors[2].counts[2], 1);
        for e in &t.errors {
            assert_eq!(e.counts.len(), t.writes.len(), "{e:?}");
        }
    }

    #[test]
    fn a_drill_with_nothing_recorded_still_has_the_fault_s_bucket() {
        let t = Timeline::of(&Record::default(), None, ms(3_000));
        assert_eq!(t.writes, vec![0]);
        assert_eq!(t.start, 0.0);
    }

    #[test]
    fn the_json_names_its_series() {
        let writes = Record {
            acks: acks(&[1_000]),
            failures: vec![(ms(1_000), "refused".into())],
            ..Record::default()
        };
        let json = serde_json::to_value(Timeline::of(&writes, None, ms(1_000))).unwrap();
        assert_eq!(json["bucket"], 0.1);
        assert_eq!(json["start"], 0.0);
        assert_eq!(json["writes"], serde_json::json!([1]));
        assert_eq!(json["reads"], serde_json::Value::Null);
        assert_eq!(json["errors"][0]["side"], "write");
        assert_eq!(json["errors"][0]["kind"], "refused");
        assert_eq!(json["errors"][0]["counts"], serde_json::json!([1]));
    }
}
