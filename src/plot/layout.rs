//! Where everything in a drill's picture goes, worked out before anything is drawn: the axes'
//! ranges, the stacked error series, the marker tags in rows that do not overlap, and the
//! legend's entries. Pure, so the decisions are tested without a backend.

use plotters::style::RGBColor;

use super::{NewLeader, Picture};
use crate::timeline::Side;

/// The picture's size in pixels, the same for SVG and PNG.
pub const SIZE: (u32, u32) = (1400, 820);
/// The legend's column on the right.
pub const LEGEND_WIDTH: u32 = 380;
/// The plots' left margin, where the y axes' numbers and descriptions go.
pub const Y_LABELS: u32 = 66;
pub const MARGIN_RIGHT: u32 = 24;
/// Height of one row of marker tags above the upper panel.
pub const TAG_ROW: u32 = 20;
/// The longest legend line, in characters: the column's width at the legend's font size.
const LEGEND_CHARS: usize = 46;
/// A legend entry longer than a line wraps onto this many at most (an error's words are worth
/// reading to their end).
const LEGEND_LINES: usize = 2;

pub const WRITES: RGBColor = RGBColor(31, 119, 180);
/// The writes' area is filled opaque and pale, so the band behind it does not change its colour.
pub const WRITES_FILL: RGBColor = RGBColor(164, 201, 231);
pub const READS: RGBColor = RGBColor(44, 160, 44);
pub const FAULT: RGBColor = RGBColor(214, 39, 40);
pub const LEADER: RGBColor = RGBColor(148, 103, 189);
pub const REACHED: RGBColor = RGBColor(23, 190, 207);
/// The predicted window's band, laid over white at BAND_ALPHA: light enough that the grid
/// shows through it.
pub const BAND: RGBColor = RGBColor(255, 187, 60);
pub const BAND_ALPHA: f64 = 0.22;
/// One colour per error kind, none of them the markers' or the series'.
const ERROR_COLOURS: [RGBColor; 6] = [
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(127, 127, 127),
    RGBColor(100, 50, 10),
];

/// A vertical line across both panels at `x` seconds, with a short tag above the plots.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub x: f64,
    pub tag: String,
    pub colour: RGBColor,
    /// Which row of tags it sits in, 0 nearest the plot.
    pub row: usize,
}

/// One error series stacked on those before it: `top[i]` is the sum of this kind's count and
/// every earlier kind's in bucket `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stacked {
    pub top: Vec<u32>,
    pub colour: RGBColor,
}

/// What a legend line's swatch looks like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Swatch {
    /// A filled box: an area series or the band.
    Area(RGBColor),
    /// A short line: a line series or a marker.
    Line(RGBColor),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The x axis, in seconds after the fault.
    pub x: (f64, f64),
    /// The upper panel's y axis top (acknowledgements per bucket), a whole number.
    pub y_acks: u32,
    /// The lower panel's (errors per bucket, stacked).
    pub y_errors: u32,
    pub stacked: Vec<Stacked>,
    pub markers: Vec<Marker>,
    /// How many rows the marker tags take.
    pub tag_rows: usize,
    /// Each entry's swatch and its lines.
    pub legend: Vec<(Swatch, Vec<String>)>,
}

impl Layout {
    /// Lays out `p`; `width` says how wide a tag is in pixels (the backend's font knows), and
    /// `plot_px` is how many pixels the x axis spans.
    pub fn of(p: &Picture, plot_px: f64, width: &dyn Fn(&str) -> f64) -> Layout {
        let t = p.timeline;
        let mut right = t.end().max(p.predicted.1);
        let leader_at = p.leader.as_ref().map(|l| l.at);
        for at in leader_at.into_iter().chain(p.reached.as_ref().map(|r| r.1)) {
            right = right.max(at);
        }
        // A little room either side so the first and last buckets are not on the frame.
        let x = (t.start.min(0.0) - 0.5, right + 1.0);
        let acks = t
            .writes
            .iter()
            .chain(t.reads.iter().flatten())
            .copied()
            .max()
            .unwrap_or(0);
        let mut stacked: Vec<Stacked> = Vec::new();
        for (i, e) in t.errors.iter().enumerate() {
            let below = stacked.last().map(|s| s.top.as_slice());
            let top = e
                .counts
                .iter()
                .enumerate()
                .map(|(b, c)| c + below.and_then(|s| s.get(b)).copied().unwrap_or(0))
                .collect();
            stacked.push(Stacked {
                top,
                colour: ERROR_COLOURS[i % ERROR_COLOURS.len()],
            });
        }
        let errors = stacked
            .last()
            .and_then(|s| s.top.iter().copied().max())
            .unwrap_or(0);

        let mut markers = vec![Marker {
            x: 0.0,
            tag: "fault".into(),
            colour: FAULT,
            row: 0,
        }];
        if let Some(NewLeader { node, at, .. }) = &p.leader {
            markers.push(Marker {
                x: *at,
                tag: format!("new leader {node}"),
                colour: LEADER,
                row: 0,
            });
        }
        if let Some((node, at)) = &p.reached {
            markers.push(Marker {
                x: *at,
                tag: format!("writes reach {node}"),
                colour: REACHED,
                row: 0,
            });
        }
        let px_per_s = plot_px / (x.1 - x.0);
        let tag_rows = place_tags(&mut markers, px_per_s, width);

        let mut legend = vec![(Swatch::Area(WRITES_FILL), "acknowledged writes".to_string())];
        if t.reads.is_some() {
            legend.push((Swatch::Line(READS), "answered reads".into()));
        }
        for (e, s) in t.errors.iter().zip(&stacked) {
            let side = match e.side {
                Side::Write => "write",
                Side::Read => "read",
            };
            legend.push((Swatch::Area(s.colour), format!("{side} error: {}", e.kind)));
        }
        legend.push((Swatch::Line(FAULT), format!("fault at 0 s: {}", p.fault)));
        if let Some(NewLeader { node, at, promoted }) = &p.leader {
            let when = if *promoted { "promoted" } else { "seen" };
            legend.push((
                Swatch::Line(LEADER),
                format!("new leader {node}, {when} at {at:+.2} s"),
            ));
        }
        if let Some((node, at)) = &p.reached {
            legend.push((
                Swatch::Line(REACHED),
                format!("first write on {node} at {at:+.2} s"),
            ));
        }
        legend.push((
            Swatch::Area(BAND),
            format!(
                "predicted write outage: {:.0}-{:.0} s",
                p.predicted.0, p.predicted.1
            ),
        ));

        Layout {
            x,
            // Headroom above the highest bucket so its top is not on the frame.
            y_acks: acks + 1,
            y_errors: errors.max(1) + 1,
            stacked,
            markers,
            tag_rows,
            legend: legend
                .into_iter()
                .map(|(swatch, label)| (swatch, wrap(&label, LEGEND_CHARS, LEGEND_LINES)))
                .collect(),
        }
    }
}

/// Puts each tag in the lowest row where it does not run into the tag before it, tags starting
/// at their marker; how many rows that takes.
fn place_tags(markers: &mut [Marker], px_per_s: f64, width: &dyn Fn(&str) -> f64) -> usize {
    /// Space kept between two tags in a row.
    const GAP: f64 = 12.0;
    markers.sort_by(|a, b| a.x.total_cmp(&b.x));
    // Where each row's last tag ends, in pixels from the axis' left end.
    let mut ends: Vec<f64> = Vec::new();
    for m in markers.iter_mut() {
        let from = m.x * px_per_s;
        let row = ends.iter().position(|end| *end + GAP <= from);
        let row = row.unwrap_or_else(|| {
            ends.push(f64::NEG_INFINITY);
            ends.len() - 1
        });
        ends[row] = from + width(&m.tag);
        m.row = row;
    }
    ends.len()
}

/// `text` in lines of at most `width` characters, broken between words, at most `lines` of
/// them; when text is left over (or a word is longer than a line) the last line ends in an
/// ellipsis.
fn wrap(text: &str, width: usize, lines: usize) -> Vec<String> {
    let len = |s: &str| s.chars().count();
    let mut out: Vec<String> = Vec::new();
    let mut line = String::new();
    let mut elided = false;
    for word in text.split_whitespace() {
        if !line.is_empty() && len(&line) + 1 + len(word) > width {
            out.push(std::mem::take(&mut line));
        }
        if out.len() == lines {
            elided = true;
            break;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        if len(&line) > width {
            line = line.chars().take(width).collect();
            elided = true;
            break;
        }
    }
    if !line.is_empty() {
        out.push(line);
    }
    if elided && let Some(last) = out.last_mut() {
        let cut: String = last.chars().take(width.saturating_sub(1)).collect();
        *last = format!("{}…", cut.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{ErrorSeries, Timeline};

    fn timeline() -> Timeline {
        Timeline {
            bucket: 0.1,
            start: -3.0,
            // 3 s before the fault, 5 s after.
            writes: (0..80)
                .map(|i| if (30..60).contains(&i) { 0 } else { 4 })
                .collect(),
            reads: None,
            errors: vec![
                ErrorSeries {
                    side: Side::Write,
                    kind: "connection refused".into(),
                    counts: (0..80).map(|i| u32::from(i == 31 || i == 32)).collect(),
                },
                ErrorSeries {
                    side: Side::Write,
                    kind: "the database system is shutting down (SQLSTATE 57P03) and a long tail"
                        .into(),
                    counts: (0..80).map(|i| 3 * u32::from(i == 32)).collect(),
                },
            ],
        }
    }

    fn picture(t: &Timeline) -> Picture<'_> {
        Picture {
            title: "lab t: switchover drill, async mode".into(),
            summary: "write downtime 1.00 s, predicted 3-22 s".into(),
            timeline: t,
            fault: "switchover from t1".into(),
            leader: Some(NewLeader {
                node: "t2".into(),
                at: 0.4,
                promoted: true,
            }),
            reached: Some(("t2".into(), 3.0)),
            predicted: (3.0, 22.0),
        }
    }

    /// About 8 px a character, as at the tags' size.
    fn chars(s: &str) -> f64 {
        s.chars().count() as f64 * 8.0
    }

    #[test]
    fn the_x_axis_spans_the_series_and_the_predicted_window() {
        let t = timeline();
        let l = Layout::of(&picture(&t), 900.0, &chars);
        // The window ends at 22 s, after the last bucket (5 s): the band is not cut off.
        assert_eq!(l.x, (-3.5, 23.0));
        assert_eq!(l.y_acks, 5);
        // Bucket 32 holds 1 + 3 stacked errors.
        assert_eq!(l.y_errors, 5);
        assert_eq!(l.stacked[0].top[32], 1);
        assert_eq!(l.stacked[1].top[32], 4);
        assert_eq!(l.stacked[1].top[31], 1);
    }

    #[test]
    fn tags_close_together_go_in_rows_of_their_own() {
        let t = timeline();
        // 900 px over 26.5 s: the fault (0 s) and the leader (0.4 s) are 14 px apart.
        let l = Layout::of(&picture(&t), 900.0, &chars);
        let rows: Vec<(&str, usize)> = l.markers.iter().map(|m| (m.tag.as_str(), m.row)).collect();
        assert_eq!(
            rows,
            [("fault", 0), ("new leader t2", 1), ("writes reach t2", 0)]
        );
        assert_eq!(l.tag_rows, 2);
        // Far apart, one row does.
        let mut far = picture(&t);
        far.leader = Some(NewLeader {
            node: "t2".into(),
            at: 10.0,
            promoted: false,
        });
        far.reached = Some(("t2".into(), 20.0));
        assert_eq!(Layout::of(&far, 900.0, &chars).tag_rows, 1);
    }

    #[test]
    fn the_legend_names_every_series_and_marker_and_fits_its_column() {
        let t = timeline();
        let l = Layout::of(&picture(&t), 900.0, &chars);
        let lines: Vec<Vec<&str>> = l
            .legend
            .iter()
            .map(|(_, s)| s.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(lines[0], ["acknowledged writes"]);
        assert_eq!(lines[1], ["write error: connection refused"]);
        // A long error wraps between words onto a second line, and what is left is elided.
        assert_eq!(
            lines[2],
            [
                "write error: the database system is shutting",
                "down (SQLSTATE 57P03) and a long tail",
            ]
        );
        assert_eq!(lines[3], ["fault at 0 s: switchover from t1"]);
        assert_eq!(lines[4], ["new leader t2, promoted at +0.40 s"]);
        assert_eq!(lines[5], ["first write on t2 at +3.00 s"]);
        assert_eq!(lines[6], ["predicted write outage: 3-22 s"]);
        assert!(
            lines
                .iter()
                .flatten()
                .all(|s| s.chars().count() <= LEGEND_CHARS)
        );
    }

    #[test]
    fn wrapping_breaks_between_words_and_elides_what_does_not_fit() {
        assert_eq!(wrap("a b c", 10, 2), ["a b c"]);
        assert_eq!(wrap("aaaa bbbb cccc", 9, 2), ["aaaa bbbb", "cccc"]);
        assert_eq!(wrap("aaaa bbbb cccc ddddd", 9, 2), ["aaaa bbbb", "cccc…"]);
        assert_eq!(wrap("abcdefghijkl", 5, 2), ["abcd…"]);
        assert_eq!(wrap("", 5, 2), Vec::<String>::new());
    }

    #[test]
    fn a_drill_without_errors_or_new_leader_still_has_axes() {
        let t = Timeline {
            bucket: 0.1,
            start: -0.2,
            writes: vec![4, 4, 4],
            reads: Some(vec![5, 0, 5]),
            errors: Vec::new(),
        };
        let p = Picture {
            leader: None,
            reached: None,
            predicted: (0.0, 1.0),
            ..picture(&t)
        };
        let l = Layout::of(&p, 900.0, &chars);
        assert_eq!((l.y_acks, l.y_errors), (6, 2));
        assert_eq!(l.markers.len(), 1);
        assert_eq!(l.legend[1].1, ["answered reads"]);
        assert!((l.x.0 - -0.7).abs() < 1e-9 && l.x.1 == 2.0, "{:?}", l.x);
    }
}
