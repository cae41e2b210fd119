//! Placement, with no I/O: which engine each lab of a class goes to when a class spans several
//! Docker Engines.
//!
//! The rule: a lab needs [`LAB_MEMORY`] (620 MiB, what an idle default 3-node lab was measured
//! to hold), and an engine takes labs while (labs on it + new ones) × that need stays within
//! [`MEMORY_SHARE`] % (80 %) of its memory total, the rest left to its host and the engine
//! itself. Memory, not CPU, is what limits idle labs. Each new lab goes to the engine with the
//! most room left in bytes (on a tie, the engine given first): a class alternates over engines
//! of one size, and over engines of different sizes fills the bigger until it has no more room
//! left than the others, then alternates. A lab that already exists (create run again for the
//! same names) stays on its engine. When the class does not fit, the refusal
//! says how many labs each engine can still take and how many are missing.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// The memory one lab is counted to need: 620 MiB, measured on an idle default 3-node lab.
pub const LAB_MEMORY: u64 = 620 * 1024 * 1024;

/// The share of an engine's memory, in %, that labs may fill.
pub const MEMORY_SHARE: u64 = 80;

/// An engine as placement sees it.
#[derive(Debug, Clone)]
pub struct EngineLoad {
    /// How the engine is named to the user.
    pub label: String,
    /// The memory its host has, in bytes.
    pub memory_bytes: u64,
    /// The CPUs its host has: not part of the rule, shown when a class does not fit.
    pub cpus: u64,
    /// The labs already on it, those kept in place by `existing` included: each is counted at
    /// the need given to [`place`].
    pub labs: usize,
}

impl EngineLoad {
    /// The bytes labs may fill on this engine.
    fn budget(&self) -> u64 {
        u64::try_from(u128::from(self.memory_bytes) * u128::from(MEMORY_SHARE) / 100)
            .unwrap_or(u64::MAX)
    }

    /// How many labs it holds at most, at `need` bytes each.
    fn holds(&self, need: u64) -> usize {
        usize::try_from(self.budget() / need.max(1)).unwrap_or(usize::MAX)
    }
}

/// Assigns each of `labs`, in order, to an engine: (lab, engine label), in the order of `labs`.
/// `existing` maps a lab already made to the label of the engine it is on, where it stays.
/// Each lab needs `need` bytes (normally [`LAB_MEMORY`]).
pub fn place(
    engines: &[EngineLoad],
    need: u64,
    labs: &[String],
    existing: &HashMap<String, String>,
) -> Result<Vec<(String, String)>> {
    if engines.is_empty() {
        return Err(Error::Invalid(
            "no Docker Engine to place the labs on: name at least one.".into(),
        ));
    }
    let mut taken: Vec<usize> = engines.iter().map(|e| e.labs).collect();
    let mut placed = Vec::with_capacity(labs.len());
    let mut missing = 0;
    for lab in labs {
        if let Some(label) = existing.get(lab) {
            if !engines.iter().any(|e| &e.label == label) {
                return Err(Error::Invalid(format!(
                    "lab {lab} already exists on the engine {label}, which is not among the \
                     engines given ({}): name {label} too, or destroy the lab there first.",
                    labels(engines)
                )));
            }
            placed.push((lab.clone(), label.clone()));
            continue;
        }
        // The most room left; `max_by_key` would take the last of equals, hence the reversal.
        let best = engines
            .iter()
            .enumerate()
            .filter(|(i, e)| taken[*i] < e.holds(need))
            .rev()
            .max_by_key(|(i, e)| e.budget().saturating_sub(taken[*i] as u64 * need));
        match best {
            Some((i, engine)) => {
                taken[i] += 1;
                placed.push((lab.clone(), engine.label.clone()));
            }
            None => missing += 1,
        }
    }
    if missing > 0 {
        return Err(refusal(engines, need, labs.len(), missing));
    }
    Ok(placed)
}

/// The one paragraph a class that does not fit gets.
fn refusal(engines: &[EngineLoad], need: u64, class: usize, missing: usize) -> Error {
    let room: Vec<String> = engines
        .iter()
        .map(|e| {
            format!(
                "{} ({:.1} GiB, {} CPUs, {} lab(s) on it) can take {} more",
                e.label,
                e.memory_bytes as f64 / GIB,
                e.cpus,
                e.labs,
                e.holds(need).saturating_sub(e.labs)
            )
        })
        .collect();
    Error::Invalid(format!(
        "the class of {class} lab(s) does not fit: at {} MiB per lab within {MEMORY_SHARE} % of \
         each engine's memory, {}; {missing} lab(s) have no room. Add an engine, free memory on \
         one, or make {missing} fewer.",
        need / (1024 * 1024),
        room.join(", ")
    ))
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn labels(engines: &[EngineLoad]) -> String {
    engines
        .iter()
        .map(|e| e.label.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1024 * 1024 * 1024;

    fn engine(label: &str, memory_bytes: u64, labs: usize) -> EngineLoad {
        EngineLoad {
            label: label.into(),
            memory_bytes,
            cpus: 4,
            labs,
        }
    }

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("c-{i}")).collect()
    }

    fn count(placed: &[(String, String)], label: &str) -> usize {
        placed.iter().filter(|(_, e)| e == label).count()
    }

    #[test]
    fn a_class_splits_evenly_over_engines_of_one_size() {
        let engines = [engine("a", 16 * GB, 0), engine("b", 16 * GB, 0)];
        let placed = place(&engines, LAB_MEMORY, &names(10), &HashMap::new()).unwrap();
        assert_eq!((count(&placed, "a"), count(&placed, "b")), (5, 5));
        // Alternating, the first engine first on each tie.
        assert_eq!(placed[0], ("c-1".into(), "a".into()));
        assert_eq!(placed[1], ("c-2".into(), "b".into()));
        assert_eq!(placed[2], ("c-3".into(), "a".into()));
    }

    #[test]
    fn a_bigger_engine_takes_more_and_labs_already_there_count() {
        // 32 GiB holds 42 labs, 8 GiB holds 10; 40 already on the big one leave it 2 spots.
        let engines = [engine("big", 32 * GB, 40), engine("small", 8 * GB, 0)];
        let placed = place(&engines, LAB_MEMORY, &names(6), &HashMap::new()).unwrap();
        assert_eq!((count(&placed, "big"), count(&placed, "small")), (0, 6));
        // Room left 25.6 GiB against 6.4 GiB: the big one takes 32 before the small one has
        // more room, then they alternate.
        let engines = [engine("big", 32 * GB, 0), engine("small", 8 * GB, 0)];
        let placed = place(&engines, LAB_MEMORY, &names(40), &HashMap::new()).unwrap();
        assert_eq!((count(&placed, "big"), count(&placed, "small")), (36, 4));
        assert_eq!(placed[31].1, "big");
        assert_eq!(placed[32].1, "small");
        assert_eq!(placed[33].1, "big");
    }

    #[test]
    fn the_rule_stops_at_eighty_percent_of_memory() {
        // 80 % of 10 × 620 MiB is 8 labs' worth.
        let engines = [engine("a", 10 * LAB_MEMORY, 0)];
        assert!(place(&engines, LAB_MEMORY, &names(8), &HashMap::new()).is_ok());
        assert!(place(&engines, LAB_MEMORY, &names(9), &HashMap::new()).is_err());
    }

    #[test]
    fn a_class_that_does_not_fit_is_refused_naming_each_engines_room() {
        let engines = [engine("a", 8 * GB, 3), engine("b", 4 * GB, 0)];
        let text = place(&engines, LAB_MEMORY, &names(30), &HashMap::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            text,
            "the class of 30 lab(s) does not fit: at 620 MiB per lab within 80 % of each \
             engine's memory, a (8.0 GiB, 4 CPUs, 3 lab(s) on it) can take 7 more, b (4.0 GiB, \
             4 CPUs, 0 lab(s) on it) can take 5 more; 18 lab(s) have no room. Add an engine, \
             free memory on one, or make 18 fewer."
        );
    }

    #[test]
    fn labs_that_exist_keep_their_engine() {
        // c-1 and c-2 are on b already (counted in its labs); the new ones go to a, the emptier.
        let engines = [engine("a", 16 * GB, 0), engine("b", 16 * GB, 2)];
        let existing = HashMap::from([
            ("c-1".to_string(), "b".to_string()),
            ("c-2".to_string(), "b".to_string()),
        ]);
        let placed = place(&engines, LAB_MEMORY, &names(4), &existing).unwrap();
        assert_eq!(
            placed,
            [("c-1", "b"), ("c-2", "b"), ("c-3", "a"), ("c-4", "a")]
                .map(|(l, e)| (l.to_string(), e.to_string()))
        );
    }

    #[test]
    fn a_lab_on_an_engine_not_given_is_refused() {
        let engines = [engine("a", 16 * GB, 0)];
        let existing = HashMap::from([("c-1".to_string(), "gone".to_string())]);
        let text = place(&engines, LAB_MEMORY, &names(2), &existing)
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with("lab c-1 already exists on the engine gone"),
            "{text}"
        );
    }
}
