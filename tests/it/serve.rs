//! `lab serve` driven as an instructor and a trainee would, in headless Chromium through
//! chromedriver (WebDriver), on one class of two labs: a finished lab and one stopped at an
//! earlier stage. The class table lists both with their course step; a killed primary's
//! successor shows on the lab's page within 3 s of the lab's own status naming it, without a
//! reload, and its course step is judged again; the reset button (confirmed) resets the lab,
//! and a lab whose lock another command holds answers 409 with that message on the page; a
//! trainee's link opens their own lab only, and cannot reset; a server on a non-loopback
//! address answers 401 to the page and the API without a token; a lab no page shows is not
//! polled. With LAB_SERVE_SHOTS=DIR the pages' screenshots are kept there.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::common::*;

const A: &str = "itserve-a";
const B: &str = "itserve-b";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `lab serve` on `listen`, for the class; once it listens.
async fn serve(listen: &str) -> Proc {
    let server = Proc::start(
        env!("CARGO_BIN_EXE_lab"),
        &["serve", "--listen", listen, "-n", A, "-n", B],
    );
    server.line(20, "the class page is at").await;
    server
}

/// A request on 127.0.0.1:`port`: its status and body.
fn http(port: u16, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the server answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("the request goes");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP answer: {answer}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The lab's leader as `lab status --json` says; None too when it fails (a node dying under
/// its exec).
fn status_leader(name: &str) -> Option<String> {
    let run = lab(&["status", "--name", name, "--json"]);
    let status: serde_json::Value = serde_json::from_str(&run.stdout).ok()?;
    status["nodes"].as_array()?.iter().find_map(|n| {
        (n["state"] == "running" && n["patroni"]["role"] == "primary")
            .then(|| n["name"].as_str().unwrap_or_default().to_string())
    })
}

/// The first step `lab check` has not done, or "✓ done".
fn check_step(name: &str) -> String {
    let run = lab(&["check", "--name", name, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("check JSON");
    report["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["done"] == false))
        .map_or("✓ done".to_string(), |s| {
            s["step"].as_str().unwrap_or_default().to_string()
        })
}

/// How many `docker exec`s lab `name`'s containers started over the next `secs` seconds, as
/// the Engine's events count them.
async fn execs_over(d: &bollard::Docker, name: &str, secs: u64) -> usize {
    use futures_util::StreamExt;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock")
            .as_secs()
    };
    let since = now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let until = now();
    let filters = std::collections::HashMap::from([
        ("label".to_string(), vec![format!("io.pgha-lab.lab={name}")]),
        ("event".to_string(), vec!["exec_start".to_string()]),
    ]);
    let options = bollard::query_parameters::EventsOptions {
        since: Some(since.to_string()),
        until: Some(until.to_string()),
        filters: Some(filters),
    };
    d.events(Some(options))
        .filter(|e| std::future::ready(e.is_ok()))
        .count()
        .await
}

/// The text of the element `css`, once it contains `text`.
async fn shows(c: &Client, css: &str, secs: u64, text: &str) -> String {
    eventually(secs, &format!("{css} showing {text:?}"), || async {
        let found = c.find(Locator::Css(css)).await.ok()?;
        let said = found.text().await.ok()?;
        said.contains(text).then_some(said)
    })
    .await
}

/// Keeps a screenshot of the page as `name`.png when LAB_SERVE_SHOTS names a directory.
async fn shot(c: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("LAB_SERVE_SHOTS") {
        let png = c.screenshot().await.expect("a screenshot");
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png)
            .expect("the screenshot is written");
    }
}

async fn browser(port: u16) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900"]
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    // fantoccini's rustls needs a process-wide provider: ring, as lab's own TLS uses.
    let _ = rustls::crypto::ring::default_provider().install_default();
    eventually(20, "chromedriver to answer", || async {
        ClientBuilder::rustls()
            .ok()?
            .capabilities(caps.clone())
            .connect(&url)
            .await
            .ok()
    })
    .await
}

#[tokio::test]
async fn serve_shows_the_class_live_resets_a_lab_and_keeps_trainees_and_strangers_out() {
    let (d, _sweep) = setup(&[A, B], None).await;
    lab_ok(&[
        "create",
        "--name",
        A,
        "--topology",
        "colocated",
        "--subnet",
        "10.221.0.0/24",
    ]);
    lab_ok(&[
        "create",
        "--name",
        B,
        "--topology",
        "colocated",
        "--subnet",
        "10.221.1.0/24",
        "--stage",
        "etcd",
    ]);
    let driver_port = free_port();
    let _driver = Proc::start("chromedriver", &[&format!("--port={driver_port}")]);
    let port = free_port();
    let server = serve(&format!("127.0.0.1:{port}")).await;
    let c = browser(driver_port).await;
    let base = format!("http://127.0.0.1:{port}");

    // The class: both labs, each with its course step as `lab check` judges it.
    c.goto(&format!("{base}/")).await.expect("the class page");
    for lab in [A, B] {
        let step = check_step(lab);
        let row = format!("tr[data-lab='{lab}'] td.step");
        shows(&c, &row, 90, &step).await;
    }
    assert_ne!(check_step(B), "✓ done", "{B} stopped at the etcd stage");
    shows(&c, &format!("tr[data-lab='{A}']"), 10, "healthy").await;
    shot(&c, "class").await;

    // A killed primary: the new leader shows without a reload, within 3 s of the lab's own
    // status naming it.
    c.goto(&format!("{base}/labs/{A}"))
        .await
        .expect("the lab page");
    let old = eventually(30, "a leader before the kill", || async {
        status_leader(A)
    })
    .await;
    shows(&c, "#title", 20, &format!("leader {old}")).await;
    c.execute("window.notReloaded = true;", vec![])
        .await
        .expect("a mark on the page");
    let killing = {
        let old = old.clone();
        std::thread::spawn(move || lab(&["kill", "--name", A, &old]))
    };
    let new = eventually(90, "a new leader in lab status", || async {
        status_leader(A).filter(|l| *l != old)
    })
    .await;
    let named = Instant::now();
    let title = shows(&c, "#title", 5, &format!("leader {new}")).await;
    let after = named.elapsed();
    assert!(
        after <= Duration::from_secs(3),
        "the page showed {new} {after:?} after lab status did: {title}"
    );
    let mark = c
        .execute("return window.notReloaded === true;", vec![])
        .await
        .expect("the mark read");
    assert_eq!(mark, serde_json::Value::Bool(true), "the page was reloaded");
    shows(&c, "#events", 10, &format!("-> {new}")).await;
    // The course is judged again once the failover's events settle: a node is down.
    shows(&c, "#course", 60, "next:").await;
    shot(&c, "lab-after-kill").await;
    assert!(killing.join().expect("lab kill ran").ok());

    // Reset, confirmed: the lab comes back with its first leader, the class notes when.
    c.find(Locator::Id("reset-lab"))
        .await
        .expect("the reset button")
        .click()
        .await
        .expect("a click");
    c.accept_alert().await.expect("the confirmation");
    shows(&c, "#action", 240, "back to the state it was created in").await;
    assert_eq!(status_leader(A).as_deref(), Some(old.as_str()));
    shows(&c, "#last-reset", 20, "ago").await;

    // A lab another command is changing: 409, its message on the page.
    let engine = pgha_lab::engine::Engine::connect()
        .await
        .expect("the engine answers");
    let lock = pgha_lab::lock::lab_if_free(&engine, B)
        .await
        .expect("the lock can be asked for")
        .expect("nobody holds it");
    c.goto(&format!("{base}/labs/{B}"))
        .await
        .expect("lab B's page");
    c.find(Locator::Id("reset-lab"))
        .await
        .expect("the reset button")
        .click()
        .await
        .expect("a click");
    c.accept_alert().await.expect("the confirmation");
    let banner = shows(&c, "#banner", 10, "Busy:").await;
    assert!(banner.contains(&format!("lab {B} is busy")), "{banner}");
    drop(lock);

    // Unknown lab, malformed name.
    let (code, body) = http(port, "GET", "/labs/nosuch", &[]);
    assert_eq!(code, 404, "{body}");
    assert!(
        body.contains("no lab called nosuch") && body.contains(A),
        "{body}"
    );
    let (code, body) = http(port, "GET", "/api/labs/No_Such", &[]);
    assert_eq!(code, 400, "{body}");
    // A POST from elsewhere (no X-Lab mark, or another origin) is refused.
    let (code, _) = http(port, "POST", &format!("/api/labs/{B}/check"), &[]);
    assert_eq!(code, 403);
    let (code, _) = http(
        port,
        "POST",
        &format!("/api/labs/{B}/check"),
        &["X-Lab: 1", "Origin: http://elsewhere.example"],
    );
    assert_eq!(code, 403);
    // Nothing is polled for a page nobody watches: the lab's nodes see no exec once the last
    // page has gone (a lab page open asks each node once per 2 s).
    c.goto(&format!("{base}/labs/{B}"))
        .await
        .expect("lab B's page");
    shows(&c, "#etcd", 20, "up").await;
    assert!(execs_over(&d, B, 6).await > 0, "lab B's page polls it");
    c.goto("about:blank").await.expect("a blank page");
    // The server finds the page gone at its stream's next heartbeat (1 s), and the poller stops.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        execs_over(&d, B, 8).await,
        0,
        "lab B polled with no page open"
    );
    drop(server);

    // On every address: nothing without a token; a trainee's link opens their lab only.
    let port = free_port();
    let server = serve(&format!("0.0.0.0:{port}")).await;
    let base = format!("http://127.0.0.1:{port}");
    for path in [
        "/",
        "/api/labs",
        &format!("/labs/{A}"),
        &format!("/api/labs/{A}"),
    ] {
        let (code, body) = http(port, "GET", path, &[]);
        assert_eq!(code, 401, "{path}: {body}");
    }
    let (code, _) = http(port, "GET", "/signin", &[]);
    assert_eq!(code, 200);
    let line = server.line(5, "instructor's token").await;
    let token = line.rsplit(' ').next().expect("the token").to_string();
    let (code, _) = http(
        port,
        "GET",
        "/api/labs",
        &[&format!("Authorization: Bearer {token}")],
    );
    assert_eq!(code, 200);
    let link = server.line(5, &format!("  {A}: ")).await;
    let link = link
        .split(": ")
        .nth(1)
        .expect("the link")
        .trim()
        .to_string();
    let path = &link[link.find("/t/").expect("a trainee path")..];
    c.goto(&format!("{base}{path}"))
        .await
        .expect("the trainee page");
    shows(&c, "#steps", 60, "✓").await;
    shot(&c, "trainee").await;
    c.goto(&format!("{base}/t/{B}")).await.expect("another lab");
    shows(&c, "main", 10, "needs a token").await;
    c.goto(&format!("{base}/labs/{A}"))
        .await
        .expect("the instructor's lab page");
    shows(&c, "main", 10, "one trainee's own lab page only").await;
    let trainee = &path[path.find("token=").expect("a token") + 6..];
    let (code, body) = http(
        port,
        "POST",
        &format!("/api/labs/{A}/reset"),
        &["X-Lab: 1", &format!("Cookie: lab_token={trainee}")],
    );
    assert_eq!(code, 403, "{body}");
    let (code, _) = http(
        port,
        "GET",
        &format!("/api/labs/{A}"),
        &[&format!("Cookie: lab_token={trainee}")],
    );
    assert_eq!(code, 200);
    let _ = c.close().await;
}
