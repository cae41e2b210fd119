//! The one look of every table `lab` prints (labs, nodes, backups, plans, drill reports): each
//! column as wide as its widest cell, two spaces apart, left-aligned, no borders or rules.

use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Row, Table};

/// Spaces between two columns.
const GAP: u16 = 2;

/// `rows` under `header` (no header line when it is empty: a list of names and their values
/// needs none), without trailing spaces and without a final newline.
///
/// Every row is one whole line, whatever the terminal's width and whatever a cell holds: people
/// grep these lines, scripts and tests split them, and some cells are commands to copy whole.
/// A long line is the terminal's to wrap; nothing is ever cut. The first column starts each
/// line, so a row's line starts with its name.
pub fn render<R: Into<Row>>(header: &[&str], rows: impl IntoIterator<Item = R>) -> String {
    let mut table = Table::new();
    table
        .load_style(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    if !header.is_empty() {
        table.set_header(header.to_vec());
    }
    table.add_rows(rows);
    // Padding is a column's, and the columns exist only once the rows are in.
    for column in table.column_iter_mut() {
        column.set_padding((0, GAP));
    }
    table.trim_fmt()
}

/// Where each of `cells` starts in `line`, each looked for after the one before it: a table's
/// columns are aligned when every row's cells start where the header's words do.
/// A node as tables show it: its name in the lab, and its container's where that differs
/// ("pgha1 (alice1)"), so both the course's name and Docker's are in view.
pub fn node(name: &str, container: &str) -> String {
    if name == container {
        name.to_string()
    } else {
        format!("{name} ({container})")
    }
}

#[cfg(test)]
pub(crate) fn starts(line: &str, cells: &[&str]) -> Vec<usize> {
    let mut from = 0;
    cells
        .iter()
        .map(|cell| {
            let at = from
                + line[from..]
                    .find(cell)
                    .unwrap_or_else(|| panic!("{cell:?} not in {line:?}"));
            from = at + cell.len();
            at
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_and_nothing_is_cut() {
        let long = "x".repeat(300);
        let text = render(
            &["name", "state", "note"],
            [
                vec!["a", "running", "short"],
                vec![long.as_str(), "3/3 running", ""],
                vec!["b", "-", "the last column is not padded"],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[0],
            format!("name{}state        note", " ".repeat(298))
        );
        let header = starts(lines[0], &["name", "state", "note"]);
        assert_eq!(starts(lines[1], &["a", "running", "short"]), header);
        assert_eq!(starts(lines[3], &["b", "-", "the last"]), header);
        assert_eq!(lines[2], format!("{long}  3/3 running"));
        assert!(!text.ends_with('\n'));
        assert!(lines.iter().all(|l| l == &l.trim_end()), "{text:?}");
    }

    #[test]
    fn no_header_line_without_a_header() {
        let text = render(
            &[],
            [["drill", "switchover"], ["acknowledged writes lost", "0"]],
        );
        assert_eq!(
            text,
            "drill                     switchover\nacknowledged writes lost  0"
        );
    }

    #[test]
    fn a_header_alone_is_a_line() {
        assert_eq!(
            render(&["lab", "nodes"], Vec::<Vec<String>>::new()),
            "lab  nodes"
        );
    }
}
