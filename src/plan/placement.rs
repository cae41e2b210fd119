//! Where each lab of a class goes when it spans several engines. The rule: an engine takes
//! labs while they fit in 80 % of its memory at `LAB_MEMORY` each (the labs it holds already
//! counted), and each lab goes to the engine with the most room left, the engine given first on
//! a tie, so a class spreads evenly over alike engines. A lab that exists already stays where
//! it is. A class that does not fit is refused before anything is made, saying how many labs
//! each engine can still take.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// What an idle default lab (five nodes, three of them PostgreSQL) was measured to use: 620 MiB
/// (scripts/bench.sh).
pub const LAB_MEMORY: u64 = 620 << 20;

/// Of an engine's memory, the share labs may take: the rest is its system's and its daemon's,
/// and a drill's or a reset's peaks.
const SHARE: f64 = 0.8;

/// One engine's room.
#[derive(Debug, Clone)]
pub struct Room {
    pub engine: String,
    pub memory_bytes: u64,
    /// Labs it holds already.
    pub labs: usize,
}

impl Room {
    /// How many labs it can hold in all.
    pub fn capacity(&self) -> usize {
        (self.memory_bytes as f64 * SHARE / LAB_MEMORY as f64) as usize
    }
}

/// The engine of each of `names`, in order; `existing` maps a lab that exists to its engine.
pub fn place(
    rooms: &[Room],
    names: &[String],
    existing: &BTreeMap<String, String>,
) -> Result<Vec<String>> {
    let mut held: Vec<usize> = rooms.iter().map(|r| r.labs).collect();
    let mut placed = Vec::new();
    let mut missing = 0;
    for name in names {
        if let Some(engine) = existing
            .get(name)
            .filter(|e| rooms.iter().any(|r| &r.engine == *e))
        {
            placed.push(engine.clone());
            continue;
        }
        let best = rooms
            .iter()
            .enumerate()
            .filter(|(i, r)| held[*i] < r.capacity())
            // The most room left; on a tie the first given (max_by_key keeps the last).
            .max_by_key(|(i, r)| (r.capacity() - held[*i], std::cmp::Reverse(*i)));
        match best {
            Some((i, r)) => {
                held[i] += 1;
                placed.push(r.engine.clone());
            }
            None => missing += 1,
        }
    }
    if missing > 0 {
        let free: Vec<String> = rooms
            .iter()
            .map(|r| {
                format!(
                    "{} {} more ({:.1} GiB, {} held)",
                    r.engine,
                    r.capacity().saturating_sub(r.labs),
                    r.memory_bytes as f64 / (1u64 << 30) as f64,
                    r.labs
                )
            })
            .collect();
        return Err(Error::Invalid(format!(
            "the class of {} labs does not fit: {missing} lab(s) have no room. At {} MiB a lab \
             within 80 % of each engine's memory, the engines take: {}. Add an engine with \
             --engine, make fewer labs, or remove some first.",
            names.len(),
            LAB_MEMORY >> 20,
            free.join("; ")
        )));
    }
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(engine: &str, gib: u64, labs: usize) -> Room {
        Room {
            engine: engine.into(),
            memory_bytes: gib << 30,
            labs,
        }
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c-{i:02}")).collect()
    }

    #[test]
    fn alike_engines_share_a_class_evenly_the_first_first() {
        let placed = place(
            &[room("a", 24, 0), room("b", 24, 0)],
            &names(4),
            &BTreeMap::new(),
        );
        assert_eq!(placed.unwrap(), ["a", "b", "a", "b"]);
    }

    #[test]
    fn room_follows_memory_and_what_is_held() {
        // 24 GiB holds 31 labs, 8 GiB 10; the big one takes labs until room is level.
        assert_eq!(room("a", 24, 0).capacity(), 31);
        let placed = place(
            &[room("a", 24, 25), room("b", 8, 0)],
            &names(6),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(placed, ["b", "b", "b", "b", "a", "b"]);
    }

    #[test]
    fn a_lab_that_exists_keeps_its_engine() {
        let existing = BTreeMap::from([("c-00".to_string(), "b".to_string())]);
        let placed = place(&[room("a", 24, 0), room("b", 24, 1)], &names(2), &existing);
        assert_eq!(placed.unwrap(), ["b", "a"]);
    }

    #[test]
    fn a_class_too_big_is_refused_saying_what_fits() {
        let e = place(
            &[room("a", 8, 8), room("b", 4, 0)],
            &names(8),
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("class of 8 labs does not fit: 1 lab(s) have no room"),
            "{e}"
        );
        assert!(e.contains("a 2 more (8.0 GiB, 8 held); b 5 more"), "{e}");
    }
}
