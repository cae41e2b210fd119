//! `lab drill --plot FILE`: a drill's client timeline as a picture, SVG or PNG by the file's
//! extension. The path is checked before the drill starts, so a drill is never run for a
//! picture that cannot be written; the picture is drawn in memory and written atomically, so a
//! failed drill or write leaves no half file. Text uses the DejaVu Sans the binary carries
//! (assets/fonts), so a machine without fonts or fontconfig draws the same picture.

mod draw;
mod layout;
mod typeset;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::error::{Error, Result};
use crate::timeline::Timeline;
use layout::{Layout, SIZE};

/// DejaVu Sans (Bitstream Vera licence, assets/fonts/LICENSE).
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// What a picture shows, borrowed from a drill's report; times in seconds after the fault.
pub struct Picture<'a> {
    pub title: String,
    /// One line under the title: the outcome in numbers.
    pub summary: String,
    pub timeline: &'a Timeline,
    /// What the fault was, as the report says it.
    pub fault: String,
    /// The new leader; None when the leader stayed.
    pub leader: Option<NewLeader>,
    /// The new leader and when the first write through the entry landed on it.
    pub reached: Option<(String, f64)>,
    /// The predicted write outage, low and high.
    pub predicted: (f64, f64),
}

/// A drill's new leader, and when it came.
pub struct NewLeader {
    pub node: String,
    /// Seconds after the fault.
    pub at: f64,
    /// `at` is Patroni's promotion; otherwise only when the drill saw Patroni name it.
    pub promoted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

/// A picture's file, checked: its format, and a directory that takes new files.
#[derive(Debug)]
pub struct Target {
    path: PathBuf,
    dir: PathBuf,
    format: Format,
}

impl Target {
    /// Refuses, as bad input, a path that cannot take a picture: an extension other than .svg
    /// or .png, a directory, or a directory that is missing or takes no new file. Trying a
    /// temporary file is the only sure test of the last: permissions, read-only mounts and
    /// root's privileges all decide it.
    pub fn check(path: &Path) -> Result<Target> {
        let format = format_of(path)?;
        let shown = path.display();
        if path.is_dir() {
            return Err(Error::Invalid(format!(
                "--plot {shown} is a directory; give it a file's name, such as {}, and lab \
                 draws the drill there",
                path.join("drill.svg").display()
            )));
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(Error::Invalid(format!(
                "lab cannot write --plot {shown}: the directory {} does not exist; make it first \
                 (mkdir -p {}) or give a path in a directory that exists. Nothing was done to \
                 the lab.",
                dir.display(),
                dir.display()
            )));
        }
        temporary(&dir).map_err(|e| {
            Error::Invalid(format!(
                "lab cannot write --plot {shown}: no file can be made in {} ({e}); give a path \
                 in a directory you can write to. Nothing was done to the lab.",
                dir.display()
            ))
        })?;
        Ok(Target {
            path: path.to_path_buf(),
            dir,
            format,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Draws `p` and puts it at the path in one step: written beside it, then renamed over it.
    pub fn write(&self, p: &Picture) -> Result<()> {
        let bytes = render(p, self.format)?;
        let shown = self.path.display();
        let mut file = temporary(&self.dir).map_err(Error::io(format!(
            "make a temporary file in {} for {shown}",
            self.dir.display()
        )))?;
        file.write_all(&bytes)
            .and_then(|()| file.as_file().sync_all())
            .map_err(Error::io(format!("write {shown}")))?;
        file.persist(&self.path)
            .map_err(|e| Error::io(format!("put the picture at {shown}"))(e.error))?;
        Ok(())
    }
}

/// A file in `dir` that is removed unless persisted; readable by others, as a new file is.
fn temporary(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt as _;
    tempfile::Builder::new()
        .prefix(".lab-plot-")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
}

/// The format a path asks for, by its extension, in any case.
fn format_of(path: &Path) -> Result<Format> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => Err(Error::Invalid(format!(
            "lab cannot draw --plot {}: it draws SVG or PNG, chosen by the file's extension; \
             name the file such as drill.svg or drill.png. Nothing was done to the lab.",
            path.display()
        ))),
    }
}

/// The picture's bytes in `format`.
pub fn render(p: &Picture, format: Format) -> Result<Vec<u8>> {
    font()?;
    let failed = |e: &dyn std::fmt::Display| {
        Error::Failed(format!("the drill's picture could not be drawn: {e}"))
    };
    let (w, h) = SIZE;
    match format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
                let l = Layout::of(p, draw::plot_px(), &|s| draw::tag_width(&root, s));
                draw::draw(&root, p, &l).map_err(|e| failed(&e))?;
            }
            Ok(svg.into_bytes())
        }
        Format::Png => {
            let mut rgb = vec![0u8; w as usize * h as usize * 3];
            {
                let bitmap = BitMapBackend::with_buffer(&mut rgb, SIZE);
                let root = typeset::Typeset::new(bitmap, FONT)?.into_drawing_area();
                let l = Layout::of(p, draw::plot_px(), &|s| draw::tag_width(&root, s));
                draw::draw(&root, p, &l).map_err(|e| failed(&e))?;
            }
            let mut png = Vec::new();
            let mut encoder = png::Encoder::new(&mut png, w, h);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            encoder
                .write_header()
                .and_then(|mut writer| writer.write_image_data(&rgb))
                .map_err(|e| failed(&e))?;
            Ok(png)
        }
    }
}

/// Registers the bundled font with plotters, once; plotters draws no text without it.
fn font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok =
        *REGISTERED.get_or_init(|| register_font(draw::FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Failed(
            "the font lab carries for its pictures could not be read; this binary is damaged, \
             reinstall it"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{ErrorSeries, Side};

    fn timeline() -> Timeline {
        Timeline {
            bucket: 0.1,
            start: -1.0,
            writes: (0..60)
                .map(|i| if (10..30).contains(&i) { 0 } else { 4 })
                .collect(),
            reads: Some(vec![5; 60]),
            errors: vec![ErrorSeries {
                side: Side::Write,
                kind: "connection refused".into(),
                counts: (0..60).map(|i| u32::from((11..29).contains(&i))).collect(),
            }],
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
                at: 1.2,
                promoted: true,
            }),
            reached: Some(("t2".into(), 2.0)),
            predicted: (3.0, 22.0),
        }
    }

    #[test]
    fn extensions_choose_the_format_in_any_case_and_others_are_refused() {
        assert_eq!(format_of(Path::new("a/b.svg")).unwrap(), Format::Svg);
        assert_eq!(format_of(Path::new("B.PNG")).unwrap(), Format::Png);
        for bad in ["drill.jpg", "drill", "svg", ".svg.txt"] {
            let e = format_of(Path::new(bad)).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn paths_that_cannot_take_the_file_are_refused_as_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let e = Target::check(dir.path()).unwrap_err();
        // A directory named like a picture is still a directory.
        let named = dir.path().join("x.svg");
        std::fs::create_dir(&named).unwrap();
        let e2 = Target::check(&named).unwrap_err();
        assert!(e2.to_string().contains("is a directory"), "{e2}");
        assert_eq!(e.exit_code(), 2);
        let missing = dir.path().join("no/such/x.png");
        let e = Target::check(&missing).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("does not exist"), "{e}");
        // /proc takes no new files, not even root's.
        let e = Target::check(Path::new("/proc/x.svg")).unwrap_err();
        assert!(
            e.to_string().contains("no file can be made in /proc"),
            "{e}"
        );
        // The check leaves nothing behind.
        let ok = Target::check(&dir.path().join("x.PNG")).unwrap();
        assert_eq!(ok.format, Format::Png);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_svg_is_xml_with_its_text_and_written_whole() {
        let t = timeline();
        let dir = tempfile::tempdir().unwrap();
        let target = Target::check(&dir.path().join("d.svg")).unwrap();
        target.write(&picture(&t)).unwrap();
        let svg = std::fs::read_to_string(target.path()).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        for text in [
            "switchover drill",
            "new leader t2, promoted at +1.20 s",
            "seconds after the fault",
            "errors per 100 ms",
            "write error: connection refused",
            "predicted write outage: 3-22 s",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        // Only the picture is there: the temporary file became it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_png_has_the_picture_s_size_and_ink() {
        let t = timeline();
        let bytes = render(&picture(&t), Format::Png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        // Width and height, big-endian, in the IHDR chunk.
        let be =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        assert_eq!((be(16), be(20)), SIZE);
    }
}
