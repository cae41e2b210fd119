//! The PNG's text, set with ab_glyph at sub-pixel places on plotters' bitmap backend. Plotters'
//! own ab_glyph text rounds every glyph's place down to a whole pixel and sits each glyph by its
//! own outline: at the picture's 13-15 px, letters came out unevenly spaced ("an swered") and
//! full stops floated. Everything but text is the bitmap backend's own.

use ab_glyph::{Font as _, FontRef, PxScale, ScaleFont as _, point};
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};

use crate::error::{Error, Result};

/// A bitmap backend whose text is drawn with `font`.
pub struct Typeset<'a> {
    bitmap: BitMapBackend<'a>,
    font: FontRef<'static>,
}

impl<'a> Typeset<'a> {
    pub fn new(bitmap: BitMapBackend<'a>, font: &'static [u8]) -> Result<Typeset<'a>> {
        let font = FontRef::try_from_slice(font).map_err(|_| {
            Error::Failed(
                "the font lab carries for its pictures could not be read; this binary is \
                 damaged, reinstall it"
                    .into(),
            )
        })?;
        Ok(Typeset { bitmap, font })
    }

    /// Where each glyph of `text` goes at `size` px, from the box's top left; and the box's
    /// width and height.
    fn layout(&self, text: &str, size: f64) -> (Vec<ab_glyph::Glyph>, f32, f32) {
        let scale = PxScale::from(size as f32);
        let font = self.font.as_scaled(scale);
        let mut caret = 0.0;
        let mut before = None;
        let mut glyphs = Vec::new();
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(b) = before {
                caret += font.kern(b, id);
            }
            glyphs.push(id.with_scale_and_position(scale, point(caret, font.ascent())));
            caret += font.h_advance(id);
            before = Some(id);
        }
        (glyphs, caret, font.ascent() - font.descent())
    }
}

type Drawn<E> = std::result::Result<(), DrawingErrorKind<E>>;

impl DrawingBackend for Typeset<'_> {
    type ErrorType = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.bitmap.get_size()
    }

    fn ensure_prepared(&mut self) -> Drawn<Self::ErrorType> {
        self.bitmap.ensure_prepared()
    }

    fn present(&mut self) -> Drawn<Self::ErrorType> {
        self.bitmap.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Drawn<Self::ErrorType> {
        self.bitmap.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Drawn<Self::ErrorType> {
        self.bitmap.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Drawn<Self::ErrorType> {
        self.bitmap.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Drawn<Self::ErrorType> {
        self.bitmap.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> std::result::Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let (_, width, height) = self.layout(text, style.size());
        Ok((width.ceil() as u32, height.ceil() as u32))
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Drawn<Self::ErrorType> {
        let colour = style.color();
        let (glyphs, width, height) = self.layout(text, style.size());
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0.0,
            VPos::Center => -height / 2.0,
            VPos::Bottom => -height,
        };
        let turn = style.transform();
        let (w, h) = self.get_size();
        let mut pixels = Vec::new();
        for glyph in glyphs {
            let Some(outline) = self.font.outline_glyph(glyph) else {
                continue; // a space
            };
            let from = outline.px_bounds().min;
            outline.draw(|x, y, coverage| {
                let x = (from.x + x as f32 + dx).round() as i32;
                let y = (from.y + y as f32 + dy).round() as i32;
                pixels.push((turn.transform(x, y), coverage));
            });
        }
        for ((x, y), coverage) in pixels {
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h && coverage > 0.0 {
                let alpha = colour.alpha * f64::from(coverage.min(1.0));
                self.bitmap
                    .draw_pixel((x, y), BackendColor { alpha, ..colour })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::RangeInclusive;

    use crate::plot::FONT;

    /// The columns and rows with ink in them.
    type Ink = (RangeInclusive<usize>, RangeInclusive<usize>);

    /// Where `text` drawn at (10, 10) in black leaves ink.
    fn ink(text: &str) -> Ink {
        let (w, h) = (200usize, 60usize);
        let mut rgb = vec![255u8; w * h * 3];
        {
            let bitmap = BitMapBackend::with_buffer(&mut rgb, (w as u32, h as u32));
            let mut set = Typeset::new(bitmap, FONT).unwrap();
            let style = TextStyle::from(("sans-serif", 20).into_font()).color(&BLACK);
            set.draw_text(text, &style, (10, 10)).unwrap();
        }
        let dark: Vec<(usize, usize)> = (0..w * h)
            .filter(|i| rgb[i * 3] < 128)
            .map(|i| (i % w, i / w))
            .collect();
        let xs = dark.iter().map(|p| p.0);
        let ys = dark.iter().map(|p| p.1);
        (
            xs.clone().min().unwrap()..=xs.max().unwrap(),
            ys.clone().min().unwrap()..=ys.max().unwrap(),
        )
    }

    #[test]
    fn glyphs_sit_on_one_baseline_inside_the_box_the_layout_reports() {
        let (_, capital) = ink("H");
        let (_, stop) = ink(".");
        // A full stop sits on the line, not halfway up the letters.
        assert_eq!(stop.end(), capital.end());
        assert!(*stop.start() > capital.start() + 8, "{stop:?} {capital:?}");
        // The ink stays inside the box the layout reports, from where the text was put.
        let mut pixel = [0u8; 3];
        let set = Typeset::new(BitMapBackend::with_buffer(&mut pixel, (1, 1)), FONT).unwrap();
        let style = TextStyle::from(("sans-serif", 20).into_font());
        let (w, h) = set.estimate_text_size("Hx.H", &style).unwrap();
        let (cols, rows) = ink("Hx.H");
        assert!(*cols.end() <= 10 + w as usize && *rows.end() <= 10 + h as usize);
        assert!(*cols.start() >= 10 && *rows.start() >= 10);
    }
}
