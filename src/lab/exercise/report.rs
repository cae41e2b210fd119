//! What `lab exercise status` says: one lab's verdict in words, and a class's table.

use serde::Serialize;

use crate::error::Error;
use crate::exercise::Exercise;

/// What `lab exercise status` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub lab: String,
    pub exercise: Exercise,
    pub symptom: String,
    pub solved: bool,
    /// What is still wrong, in the trainee's terms.
    pub wrong: Vec<String>,
    /// Seconds since it started.
    pub elapsed: u64,
    /// Seconds it took to solve, when solved.
    pub took: Option<u64>,
    pub hints: usize,
}

impl Status {
    pub fn text(&self) -> String {
        let mut out = format!(
            "lab {}, exercise {} (started {} ago): {}\n  symptom: {}\n",
            self.lab,
            self.exercise.name(),
            duration(self.elapsed),
            if self.solved {
                "solved"
            } else {
                "not solved yet"
            },
            self.symptom
        );
        for w in &self.wrong {
            out.push_str(&format!("  ✗ {w}\n"));
        }
        match self.took {
            Some(t) if self.solved => out.push_str(&format!(
                "  solved in {} with {} of 3 hints; `lab exercise stop --name {}` ends it",
                duration(t),
                self.hints,
                self.lab
            )),
            _ => out.push_str(&format!(
                "  {} of 3 hints given; `lab exercise hint --name {}` gives the next",
                self.hints, self.lab
            )),
        }
        out
    }
}

/// One lab's line in `lab exercise status --all`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub lab: String,
    /// None when no exercise runs there.
    pub status: Option<Status>,
    /// Why it could not be judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Row {
    pub fn of(lab: &str, status: Option<Status>) -> Row {
        Row {
            lab: lab.to_string(),
            status,
            error: None,
        }
    }

    pub fn failed(lab: &str, e: &Error) -> Row {
        Row {
            lab: lab.to_string(),
            status: None,
            error: Some(e.to_string()),
        }
    }
}

/// Who solved what, in how long: a row per lab.
pub fn table(rows: &[Row]) -> String {
    let cells = rows.iter().map(|r| match (&r.status, &r.error) {
        (_, Some(e)) => vec![
            r.lab.clone(),
            "-".into(),
            "not judged".into(),
            "-".into(),
            "-".into(),
            e.clone(),
        ],
        (None, None) => vec![
            r.lab.clone(),
            "-".into(),
            "no exercise".into(),
            "-".into(),
            "-".into(),
            String::new(),
        ],
        (Some(s), None) => vec![
            r.lab.clone(),
            s.exercise.name().to_string(),
            if s.solved {
                "solved".into()
            } else {
                "not solved".into()
            },
            match s.took {
                Some(t) if s.solved => duration(t),
                _ => format!("{} so far", duration(s.elapsed)),
            },
            format!("{}/3", s.hints),
            s.wrong.first().cloned().unwrap_or_default(),
        ],
    });
    crate::table::render(
        &["LAB", "EXERCISE", "STATE", "TIME", "HINTS", "STILL WRONG"],
        cells,
    )
}

/// `lab exercise status --all`'s exit code: 0 every running exercise solved, 1 one is not (or
/// could not be judged), 2 none runs.
pub fn class_code(rows: &[Row]) -> i32 {
    if rows
        .iter()
        .any(|r| r.error.is_some() || r.status.as_ref().is_some_and(|s| !s.solved))
    {
        1
    } else if rows.iter().any(|r| r.status.is_some()) {
        0
    } else {
        2
    }
}

/// "4m 05s", "42s".
pub fn duration(seconds: u64) -> String {
    if seconds >= 60 {
        format!("{}m {:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(solved: bool, elapsed: u64, took: Option<u64>) -> Status {
        Status {
            lab: "a".into(),
            exercise: Exercise::QuorumLost,
            symptom: "writes fail".into(),
            solved,
            wrong: if solved {
                Vec::new()
            } else {
                vec!["etcd has no quorum".into()]
            },
            elapsed,
            took,
            hints: 1,
        }
    }

    #[test]
    fn durations_read_as_minutes_and_seconds() {
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(245), "4m 05s");
    }

    #[test]
    fn a_class_table_says_who_solved_what_in_how_long() {
        let rows = vec![
            Row::of("c-a", Some(status(true, 400, Some(245)))),
            Row::of("c-b", Some(status(false, 400, None))),
            Row::of("c-c", None),
            Row::failed("c-d", &Error::Failed("engine gone".into())),
        ];
        let table = table(&rows);
        let line = |lab: &str| table.lines().find(|l| l.starts_with(lab)).unwrap();
        assert!(line("c-a").contains("solved") && line("c-a").contains("4m 05s"));
        assert!(line("c-b").contains("6m 40s so far") && line("c-b").contains("etcd has no"));
        assert!(line("c-c").contains("no exercise"));
        assert!(line("c-d").contains("engine gone"));
        assert_eq!(class_code(&rows), 1);
        assert_eq!(class_code(&rows[..1]), 0, "all running ones solved");
        assert_eq!(class_code(&rows[2..3]), 2, "none runs");
    }

    #[test]
    fn the_status_text_ends_with_what_to_do_next() {
        let open = status(false, 70, None).text();
        assert!(open.contains("not solved yet") && open.contains("✗ etcd has no quorum"));
        assert!(
            open.ends_with("`lab exercise hint --name a` gives the next"),
            "{open}"
        );
        let done = status(true, 300, Some(250)).text();
        assert!(
            done.contains("solved in 4m 10s with 1 of 3 hints"),
            "{done}"
        );
    }
}
