//! `lab watch`'s terminal view, drawn with ratatui from a snapshot and the event log: a line
//! naming the lab and the time, a table of the nodes, etcd's and HAProxy's lines, and the
//! events, newest at the bottom. Drawing only: what is drawn comes from `events`, the terminal
//! itself from the command (`super`).

use std::collections::VecDeque;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Padding, Paragraph, Row, Table};

use super::events::{Event, Node, Presence, Snapshot, Tone};

/// An event with the time it was seen ("22:14:03.412").
pub struct Logged {
    pub at: String,
    pub event: Event,
}

/// The events seen since the view began, the newest last; the oldest go past KEPT.
pub struct Log {
    since: String,
    events: VecDeque<Logged>,
}

/// How many events the log keeps: more than any screen shows.
const KEPT: usize = 1000;

impl Log {
    /// An empty log, begun at `since` ("22:14:03").
    pub fn new(since: String) -> Log {
        Log {
            since,
            events: VecDeque::new(),
        }
    }

    pub fn push(&mut self, logged: Logged) {
        if self.events.len() == KEPT {
            self.events.pop_front();
        }
        self.events.push_back(logged);
    }
}

/// The columns of the node table.
const HEADER: [&str; 7] = ["node", "container", "role", "state", "tl", "lag", "from"];
/// The gap between the table's columns.
const GAP: u16 = 2;

/// Draws the whole view on `frame`; `now` is the time the header shows.
pub fn draw(frame: &mut Frame, snap: &Snapshot, log: &Log, now: &str) {
    let nodes = match snap.presence {
        Presence::Here | Presence::Returning => snap.nodes.len().max(1) as u16 + 3,
        _ => 5,
    };
    // etcd's and HAProxy's lines, as many as the lab has (none while it cannot be seen).
    let services = services(snap);
    let [title, table, cluster, events] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(nodes),
        Constraint::Length(services.len() as u16),
        Constraint::Min(3),
    ])
    .areas(frame.area());
    frame.render_widget(header(snap, now), title);
    match &snap.presence {
        Presence::Here | Presence::Returning => frame.render_widget(node_table(&snap.nodes), table),
        Presence::Gone => frame.render_widget(
            missing(&format!(
                "lab {} is gone: no container of it is left. Still watching: it shows again \
                 once it is back.",
                snap.lab
            )),
            table,
        ),
        Presence::EngineLost(why) => frame.render_widget(
            missing(&format!(
                "{why}. Still watching: asking again every second."
            )),
            table,
        ),
    }
    frame.render_widget(Paragraph::new(services), cluster);
    render_log(frame, log, events);
}

/// "lab pgha  22:14:03 UTC  q quits", the keys dimmed.
fn header(snap: &Snapshot, now: &str) -> Line<'static> {
    Line::from(vec![
        Span::from(format!(" lab {}", snap.lab)).bold(),
        Span::from(format!("  {now} UTC")),
        Span::from("  q quits").dim(),
    ])
}

/// A bordered box saying why there is nothing to show.
fn missing(text: &str) -> Paragraph<'static> {
    Paragraph::new(text.to_string())
        .style(Style::new().fg(Color::Red))
        .wrap(ratatui::widgets::Wrap { trim: true })
        .block(boxed(" nodes "))
}

/// One row per node: its container, its Patroni member's role and state, timeline, lag and
/// the node it streams from; each column as wide as its widest cell.
fn node_table(nodes: &[Node]) -> Table<'static> {
    let rows: Vec<[Span<'static>; 7]> = nodes.iter().map(cells).collect();
    let widths: Vec<Constraint> = (0..HEADER.len())
        .map(|i| {
            let widest = rows.iter().map(|r| r[i].width()).max().unwrap_or(0);
            Constraint::Length(widest.max(HEADER[i].len()) as u16)
        })
        .collect();
    Table::new(rows.into_iter().map(Row::new), widths)
        .header(Row::new(HEADER).style(Style::new().add_modifier(Modifier::BOLD)))
        .column_spacing(GAP)
        .block(boxed(" nodes "))
}

/// A bordered box with a space inside its sides.
fn boxed(title: &str) -> Block<'_> {
    Block::bordered()
        .title(title)
        .padding(Padding::horizontal(1))
}

fn cells(n: &Node) -> [Span<'static>; 7] {
    let dash = || Span::from("-");
    let container = if n.cut_off {
        Span::from("cut off").red()
    } else if n.running {
        Span::from(n.container.clone())
    } else {
        Span::from(n.container.clone()).red()
    };
    let Some(m) = &n.member else {
        let state = match (n.postgres, n.running && !n.cut_off) {
            (true, true) => Span::from("no answer").red(),
            _ => dash(),
        };
        // A node without PostgreSQL says what it is instead.
        let role = if n.postgres || n.runs.is_empty() {
            dash()
        } else {
            Span::from(n.runs.clone()).dim()
        };
        return [
            Span::from(n.name.clone()),
            container,
            role,
            state,
            dash(),
            dash(),
            dash(),
        ];
    };
    let role = match m.role.as_str() {
        "primary" if m.leads() => Span::from("primary").green().bold(),
        other => Span::from(other.to_string()),
    };
    let doing = m.doing().to_string();
    // A node cut off still says what it did before (its WAL receiver streams until
    // wal_receiver_timeout): not green, then.
    let state = match doing.as_str() {
        "streaming" | "running" if !n.cut_off => Span::from(doing).green(),
        _ => Span::from(doing).yellow(),
    };
    let lag = match m.lag {
        Some(0) => Span::from("0 B"),
        Some(b) => Span::from(bytes(b)).yellow(),
        None => dash(),
    };
    [
        Span::from(n.name.clone()),
        container,
        role,
        state,
        m.timeline.map_or_else(dash, |t| Span::from(t.to_string())),
        lag,
        m.streams_from.clone().map_or_else(dash, Span::from),
    ]
}

/// "123 B", "12.0 KiB", "16.0 MiB"
fn bytes(b: u64) -> String {
    match b {
        0..1024 => format!("{b} B"),
        1024..1_048_576 => format!("{:.1} KiB", b as f64 / 1024.0),
        _ => format!("{:.1} MiB", b as f64 / 1_048_576.0),
    }
}

/// etcd's line and HAProxy's: red where they fail the cluster.
fn services(snap: &Snapshot) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    if let Some(e) = &snap.etcd {
        let down: Vec<&str> = e
            .members
            .iter()
            .filter(|m| !e.up.contains(m))
            .map(String::as_str)
            .collect();
        let mut text = e.describe();
        if !down.is_empty() {
            text.push_str(&format!("; down: {}", down.join(", ")));
        }
        let style = if e.has_quorum() {
            Style::new()
        } else {
            Style::new().fg(Color::Red)
        };
        lines.push(Line::from(vec![
            Span::from(" etcd     ").bold(),
            Span::styled(text, style),
        ]));
    }
    if let Some(h) = &snap.haproxy {
        let (text, style) = match &h.routing {
            Some(r) if r.primary.is_empty() => (r.describe(), Style::new().fg(Color::Red)),
            Some(r) => (r.describe(), Style::new()),
            None => ("not answering".to_string(), Style::new().fg(Color::Red)),
        };
        lines.push(Line::from(vec![
            Span::from(" HAProxy  ").bold(),
            Span::styled(format!("{}: {text}", h.node), style),
        ]));
    }
    lines
}

/// The events box: as many of the newest events as fit, each wrapped under its time.
fn render_log(frame: &mut Frame, log: &Log, area: Rect) {
    let block = boxed(" events ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let mut lines: Vec<Line<'static>> = Vec::new();
    for logged in log.events.iter().rev() {
        let style = match logged.event.tone() {
            Tone::Bad => Style::new().fg(Color::Red),
            Tone::Good => Style::new().fg(Color::Green),
            Tone::Change => Style::new().fg(Color::Yellow),
        };
        let indent = logged.at.len() + 2;
        let text = logged.event.to_string();
        let mut wrapped: Vec<Line<'static>> = wrap(&text, width.saturating_sub(indent).max(10))
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let time = if i == 0 {
                    format!("{}  ", logged.at)
                } else {
                    " ".repeat(indent)
                };
                Line::from(vec![Span::from(time).dim(), Span::styled(part, style)])
            })
            .collect();
        wrapped.reverse();
        lines.extend(wrapped);
        if lines.len() >= usize::from(inner.height) {
            break;
        }
    }
    if lines.is_empty() {
        lines.push(Line::from(format!("no change since {} UTC", log.since)).dim());
    }
    lines.truncate(usize::from(inner.height));
    lines.reverse();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// `text` cut into lines of at most `width` characters, between words where it can be.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let fits = line.chars().count() + 1 + word.chars().count() <= width;
        if !line.is_empty() && !fits {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        // A word longer than the line is cut where the line ends.
        while line.chars().count() > width {
            let cut: String = line.chars().take(width).collect();
            line = line.chars().skip(width).collect();
            lines.push(cut);
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::super::events::{Etcd, Haproxy, Member};
    use super::*;
    use crate::services::haproxy::Routing;

    fn node(name: &str, role: &str, from: Option<&str>, lag: Option<u64>) -> Node {
        Node {
            name: name.into(),
            container_name: name.to_string(),
            container: "running".into(),
            running: true,
            cut_off: false,
            postgres: true,
            runs: String::new(),
            member: Some(Member {
                role: role.into(),
                state: "running".into(),
                timeline: Some(3),
                lag,
                streams_from: from.map(String::from),
            }),
        }
    }

    fn snapshot(lab: &str) -> Snapshot {
        let n = |i: usize| format!("{lab}{i}");
        Snapshot {
            lab: lab.into(),
            presence: Presence::Here,
            nodes: vec![
                node(&n(1), "primary", None, None),
                node(&n(2), "replica", Some(&n(1)), Some(0)),
                node(&n(3), "replica", Some(&n(1)), Some(17_301_504)),
                Node {
                    container: "exited".into(),
                    running: false,
                    postgres: false,
                    runs: "haproxy".into(),
                    member: None,
                    ..node(&n(4), "", None, None)
                },
            ],
            etcd: Some(Etcd {
                members: vec![n(1), n(2), n(3)],
                up: vec![n(1), n(2)],
                leader: Some(n(2)),
            }),
            haproxy: Some(Haproxy {
                node: n(4),
                routing: Some(Routing {
                    primary: vec![n(1)],
                    replicas: vec![n(2), n(3)],
                }),
            }),
        }
    }

    /// The screen's text, a line per row, right-trimmed.
    fn screen(snap: &Snapshot, log: &Log, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| draw(f, snap, log, "22:14:03")).unwrap();
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect()
    }

    fn logged(at: &str, event: Event) -> Logged {
        Logged {
            at: at.into(),
            event,
        }
    }

    #[test]
    fn eighty_columns_hold_every_column_and_the_newest_events() {
        let mut log = Log::new("22:10:00".into());
        for i in 0..30 {
            log.push(logged(
                &format!("22:14:{i:02}.000"),
                Event::TimelineSwitched { from: i, to: i + 1 },
            ));
        }
        log.push(logged(
            "22:15:00.412",
            Event::LabGone { lab: "pgha".into() },
        ));
        let lines = screen(&snapshot("pgha"), &log, 80, 24);
        let text = lines.join("\n");
        assert!(
            lines[0].starts_with(" lab pgha  22:14:03 UTC  q quits"),
            "{text}"
        );
        assert!(
            lines[2].contains("node   container  role     state      tl  lag       from"),
            "{text}"
        );
        assert!(
            lines[5].contains("pgha3  running    replica  streaming  3   16.5 MiB  pgha1"),
            "{text}"
        );
        assert!(lines[6].contains("pgha4  exited     haproxy  -"), "{text}");
        assert!(
            lines[8].contains("etcd     2 of 3 up (quorum 2), leader pgha2; down: pgha3"),
            "{text}"
        );
        assert!(
            lines[9].contains("HAProxy  pgha4: 5000 → pgha1, 5001 → pgha2, pgha3"),
            "{text}"
        );
        // The newest event is at the bottom, wrapped under its time, not cut at the border.
        assert!(
            lines[21].contains("│ 22:15:00.412  lab gone: no container of lab pgha is left"),
            "{text}"
        );
        assert!(
            lines[22].contains("│               Engine; watching for it to come back"),
            "{text}"
        );
        assert!(
            lines[20].contains("22:14:29.000  timeline switched: 29 -> 30"),
            "{text}"
        );
        assert!(lines.iter().all(|l| l.chars().count() <= 80));
    }

    #[test]
    fn a_lab_that_is_gone_says_so_in_place_of_its_nodes() {
        let gone = Snapshot {
            presence: Presence::Gone,
            nodes: vec![],
            etcd: None,
            haproxy: None,
            ..snapshot("pgha")
        };
        let text = screen(&gone, &Log::new("22:10:00".into()), 80, 12).join("\n");
        assert!(
            text.contains("lab pgha is gone: no container of it is left."),
            "{text}"
        );
        assert!(text.contains("no change since 22:10:00 UTC"), "{text}");
    }

    #[test]
    fn long_words_and_lines_wrap_within_the_width() {
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
        assert_eq!(wrap("abcdefghij k", 4), ["abcd", "efgh", "ij k"]);
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(17_301_504), "16.5 MiB");
    }
}
