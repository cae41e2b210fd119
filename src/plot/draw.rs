//! Draws a laid-out drill picture with plotters onto any backend: the title, the marker tags,
//! the acknowledgements above, the errors by kind below, and the legend on the right. What
//! goes where is decided in `layout`; this only paints it.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::Picture;
use super::layout::{
    BAND, BAND_ALPHA, LEGEND_WIDTH, Layout, MARGIN_RIGHT, READS, Swatch, TAG_ROW, WRITES,
    WRITES_FILL, Y_LABELS,
};
use crate::timeline::Timeline;

/// The family the bundled font is registered under.
pub const FAMILY: &str = "sans-serif";
const TITLE: u32 = 24;
const TEXT: u32 = 15;
const TICKS: u32 = 13;
const X_LABELS: u32 = 40;

type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// How many pixels the x axis spans: the plots' width less the y labels and the margin.
pub fn plot_px() -> f64 {
    f64::from(super::layout::SIZE.0 - LEGEND_WIDTH - Y_LABELS - MARGIN_RIGHT)
}

/// How wide `text` is at the tags' size, as the font lays it out.
pub fn tag_width<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, text: &str) -> f64 {
    root.estimate_text_size(text, &(FAMILY, TEXT).into_font().into_text_style(root))
        .map_or(text.len() as f64 * f64::from(TEXT) * 0.6, |(w, _)| {
            f64::from(w)
        })
}

/// Paints `p` onto `root` as `l` lays it out.
pub fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &Picture,
    l: &Layout,
) -> Drawn<DB> {
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(64);
    title.draw(&Text::new(
        p.title.as_str(),
        (16, 10),
        (FAMILY, TITLE).into_font().color(&BLACK),
    ))?;
    title.draw(&Text::new(
        p.summary.as_str(),
        (16, 40),
        (FAMILY, TEXT).into_font().color(&BLACK.mix(0.7)),
    ))?;
    let (plots, legend) = body.split_horizontally(super::layout::SIZE.0 - LEGEND_WIDTH);
    let strip_px = l.tag_rows as u32 * TAG_ROW + 6;
    let (strip, panels) = plots.split_vertically(strip_px);
    let upper_px = panels.dim_in_pixel().1 * 3 / 5;
    let (upper, lower) = panels.split_vertically(upper_px);
    let (x0, x1) = l.x;
    let t = p.timeline;

    // Upper panel: what the client got done.
    let mut chart = ChartBuilder::on(&upper)
        .margin_right(MARGIN_RIGHT)
        .x_label_area_size(28)
        .y_label_area_size(Y_LABELS)
        .build_cartesian_2d(x0..x1, 0f64..f64::from(l.y_acks))?;
    chart
        .configure_mesh()
        .y_labels(l.y_acks as usize + 1)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_label_formatter(&tick)
        .y_desc(if t.reads.is_some() {
            "acknowledged per 100 ms"
        } else {
            "writes per 100 ms"
        })
        .label_style((FAMILY, TICKS))
        .axis_desc_style((FAMILY, TEXT))
        .light_line_style(WHITE)
        .draw()?;
    band(&mut chart, p, f64::from(l.y_acks))?;
    chart.draw_series(
        AreaSeries::new(steps(t, &t.writes), 0.0, WRITES_FILL.filled()).border_style(WRITES),
    )?;
    if let Some(reads) = &t.reads {
        chart.draw_series(LineSeries::new(steps(t, reads), READS))?;
    }
    markers(&mut chart, l, f64::from(l.y_acks))?;
    // The tags sit above the panel, over their markers, in the rows the layout gave them.
    let base = strip.get_base_pixel();
    let right_end = chart.backend_coord(&(x1, 0.0)).0;
    for m in &l.markers {
        let x = chart.backend_coord(&(m.x, 0.0)).0 - base.0;
        let y = strip_px as i32 - (m.row as i32 + 1) * TAG_ROW as i32;
        let width = tag_width(root, &m.tag) as i32;
        // A tag that would run off the right end ends at its marker instead.
        let x = if x + base.0 + 4 + width > right_end {
            x - 4 - width
        } else {
            x + 4
        };
        strip.draw(&Text::new(
            m.tag.as_str(),
            (x, y),
            (FAMILY, TEXT).into_font().color(&m.colour),
        ))?;
    }

    // Lower panel: what the client was told, kinds stacked.
    let mut chart = ChartBuilder::on(&lower)
        .margin_right(MARGIN_RIGHT)
        .margin_top(8)
        .x_label_area_size(X_LABELS)
        .y_label_area_size(Y_LABELS)
        .build_cartesian_2d(x0..x1, 0f64..f64::from(l.y_errors))?;
    chart
        .configure_mesh()
        .y_labels(l.y_errors.min(6) as usize + 1)
        .y_label_formatter(&|v| {
            // Whole counts only: a tick between two is left blank.
            if v.fract().abs() < 1e-9 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .x_label_formatter(&tick)
        .x_desc("seconds after the fault")
        .y_desc("errors per 100 ms")
        .label_style((FAMILY, TICKS))
        .axis_desc_style((FAMILY, TEXT))
        .light_line_style(WHITE)
        .draw()?;
    band(&mut chart, p, f64::from(l.y_errors))?;
    // Behind the bars here: an error at the fault's moment would hide under its line.
    markers(&mut chart, l, f64::from(l.y_errors))?;
    // Each kind's share of a bucket as a bar on the kinds' before it; nothing where it had none
    // (an area would draw a line of its colour along 0 there).
    for (k, s) in l.stacked.iter().enumerate() {
        let under = k.checked_sub(1).and_then(|j| l.stacked.get(j));
        chart.draw_series(s.top.iter().enumerate().filter_map(|(i, top)| {
            let base = under.and_then(|u| u.top.get(i)).copied().unwrap_or(0);
            (*top > base).then(|| {
                Rectangle::new(
                    [(t.at(i), f64::from(base)), (t.at(i + 1), f64::from(*top))],
                    s.colour.filled(),
                )
            })
        }))?;
    }
    if l.stacked.is_empty() {
        // Midway across, clear of the fault's line at 0, and between the grid's lines.
        chart.plotting_area().draw(&Text::new(
            "the client saw no errors",
            ((x0 + x1) / 2.0, f64::from(l.y_errors) * 0.75),
            (FAMILY, TEXT)
                .into_font()
                .color(&BLACK.mix(0.6))
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    }

    legend_column(&legend, l)?;
    root.present()
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The predicted window as a band behind the series.
fn band<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, p: &Picture, top: f64) -> Drawn<DB> {
    let (low, high) = p.predicted;
    chart.draw_series([Rectangle::new(
        [(low, 0.0), (high, top)],
        BAND.mix(BAND_ALPHA).filled(),
    )])?;
    Ok(())
}

/// The markers as vertical lines across a panel.
fn markers<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, l: &Layout, top: f64) -> Drawn<DB> {
    for m in &l.markers {
        chart.draw_series(LineSeries::new(
            [(m.x, 0.0), (m.x, top)],
            m.colour.stroke_width(2),
        ))?;
    }
    Ok(())
}

/// A tick's seconds: whole ones as such, a short drill's half seconds with their tenth.
fn tick(v: &f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A series as steps, flat over each bucket, so a bucket reads as a bar.
fn steps(t: &Timeline, counts: &[u32]) -> Vec<(f64, f64)> {
    counts
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            let c = f64::from(*c);
            [(t.at(i), c), (t.at(i + 1), c)]
        })
        .collect()
}

fn legend_column<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, l: &Layout) -> Drawn<DB> {
    /// One line of text, and the space between two entries.
    const LINE: i32 = 19;
    const GAP: i32 = 7;
    let mut y = 34;
    for (swatch, lines) in &l.legend {
        match swatch {
            Swatch::Area(c) => area.draw(&Rectangle::new(
                [(8, y + 3), (36, y + 15)],
                // The band as it looks over white in the plots.
                if *c == BAND {
                    c.mix(BAND_ALPHA).filled()
                } else {
                    c.filled()
                },
            ))?,
            Swatch::Line(c) => area.draw(&PathElement::new(
                [(8, y + 9), (36, y + 9)],
                c.stroke_width(3),
            ))?,
        }
        for line in lines {
            area.draw(&Text::new(
                line.as_str(),
                (44, y),
                (FAMILY, TEXT).into_font().color(&BLACK),
            ))?;
            y += LINE;
        }
        y += GAP;
    }
    Ok(())
}
