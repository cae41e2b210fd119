//! `lab drill --plot`: a path that cannot take the picture is refused before anything runs;
//! after a switchover drill the SVG parses as XML and names the scenario and the new leader,
//! and the PNG of a second one (with a reader) decodes at the picture's size; the JSON report
//! carries the series the picture is drawn from. One three-node lab without HAProxy.

use serde_json::Value;

use crate::common::*;

const LAB: &str = "itplot";

/// A refusal of bad input: exit 2, `named` in the message with what `says`, no step of a drill
/// begun.
fn refused(args: &[&str], named: &str, says: &str) {
    let run = lab(args);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains(named), "{run}");
    assert!(run.stderr.contains(says), "{run}");
    // One paragraph, and nothing before it: no step of a drill was begun.
    assert!(run.stderr.starts_with("error: "), "{run}");
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run}");
}

/// A switchover drill's `--plot PATH` refused.
fn refused_plot(path: &str, says: &str) {
    refused(
        &["drill", "switchover", "--name", LAB, "--plot", path],
        path,
        says,
    );
}

#[tokio::test]
async fn a_drill_is_drawn_as_svg_or_png_and_a_picture_that_cannot_be_written_is_refused_first() {
    let (d, _sweep) = setup(&[LAB], None).await;
    let out = tempfile::tempdir().expect("a directory for the pictures");
    let dir = out.path().to_str().expect("a UTF-8 temporary path");

    // Refused before the lab is even looked up: there is no lab itplot yet.
    refused_plot(&format!("{dir}/x.jpg"), "SVG or PNG");
    refused_plot(&format!("{dir}/no/such/x.svg"), "does not exist");
    refused_plot(dir, "SVG or PNG");
    let a_dir = format!("{dir}/pictures.svg");
    std::fs::create_dir(&a_dir).unwrap();
    refused_plot(&a_dir, "is a directory");
    refused_plot("/proc/x.svg", "no file can be made");
    let pitr = ["drill", "pitr", "--name", LAB, "--plot", "x.svg"];
    refused(&pitr, "--plot", "pitr drill runs no workload");
    assert_eq!(labelled(&d, LAB).await, (0, 0, 0), "nothing was made");

    lab_ok(&[
        "create",
        "--name",
        LAB,
        "--nodes",
        "3",
        "--subnet",
        "10.252.0.0/24",
    ]);

    // SVG: XML, with the scenario and the new leader written in it.
    let svg = format!("{dir}/x.svg");
    let run = lab_ok(&[
        "drill",
        "switchover",
        "--name",
        LAB,
        "--plot",
        &svg,
        "--json",
    ]);
    assert!(run.stderr.contains(&svg), "{run}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run}"));
    let leader = report["leader"]["node"].as_str().expect("a new leader");
    let text = std::fs::read_to_string(&svg).expect("the SVG");
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let words: String = doc
        .descendants()
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(words.contains("switchover drill"), "{words}");
    assert!(words.contains(&format!("new leader {leader}")), "{words}");
    // The leader's line is Patroni's promotion, from its history, which comes before the drill
    // sees it.
    let promoted = report["leader"]["promoted"]
        .as_f64()
        .expect("the promotion's moment");
    let seen = report["leader"]["after"].as_f64().expect("the leader seen");
    assert!((-1.0..=seen + 0.5).contains(&promoted), "{report}");
    assert!(
        words.contains(&format!("new leader {leader}, promoted at")),
        "{words}"
    );
    assert!(words.contains("seconds after the fault"), "{words}");

    // The JSON keeps the series: every acknowledged write is in a bucket, the fault on an edge.
    let t = &report["timeline"];
    assert_eq!(t["bucket"], 0.1, "{t}");
    let start = t["start"].as_f64().expect("a start");
    assert!((-10.0..=0.0).contains(&start), "{t}");
    let sum = |v: &Value| -> u64 {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        sum(&t["writes"]),
        report["writes"]["acknowledged"].as_u64().unwrap()
    );
    assert!(t["reads"].is_null(), "{t}");

    // PNG, with a reader: it decodes, at the picture's size.
    let png = format!("{dir}/x.png");
    let run = lab_ok(&[
        "drill",
        "switchover",
        "--name",
        LAB,
        "--reader",
        "--plot",
        &png,
        "--json",
    ]);
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run}"));
    let reads = &report["timeline"]["reads"];
    assert_eq!(
        sum(reads),
        report["reads"]["acknowledged"].as_u64().unwrap()
    );
    let decoder = png::Decoder::new(std::fs::File::open(&png).expect("the PNG"));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).expect("the PNG's pixels");
    assert!(
        (800..=4000).contains(&frame.width) && (400..=3000).contains(&frame.height),
        "{}x{}",
        frame.width,
        frame.height
    );
    // Not a blank page: some pixels are neither white nor black.
    assert!(
        pixels[..frame.buffer_size()]
            .chunks(3)
            .any(|p| p[0] != p[1] || p[1] != p[2]),
        "a picture with colour"
    );

    // Only the pictures and the refused directory are left: no temporary file.
    let mut left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["pictures.svg", "x.png", "x.svg"]);
}
