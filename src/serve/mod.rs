//! `lab serve`: the class on one web page, a front like `cli` and `watch`. The server's
//! setup, its routes and its end are here; `auth` decides who may have what, `hub` shares one
//! poller per watched lab, `rows` makes what the pages show, `api` answers the JSON API and
//! runs the instructor's actions, `pages` serves the HTML (the files under assets/serve,
//! carried in the binary).

mod api;
mod auth;
mod hub;
mod pages;
mod rows;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model;
use auth::Keys;
use hub::Hubs;

/// What `lab serve` was asked.
pub struct Options {
    pub listen: SocketAddr,
    /// The labs to show; empty: every lab on the engine.
    pub names: Vec<String>,
    pub token_file: Option<PathBuf>,
}

/// What every request's handler shares.
struct App {
    engine: Engine,
    keys: Keys,
    names: Vec<String>,
    hubs: Hubs,
    /// Fires when the server stops: the live streams end, so that it can.
    stop: watch::Receiver<bool>,
    /// The actions running (resets), waited for before the server ends.
    work: std::sync::Mutex<JoinSet<()>>,
}

type Shared = Arc<App>;

/// Serves until Ctrl-C; returns the exit code (130).
pub async fn serve(engine: &Engine, options: Options) -> Result<i32> {
    let open = options.listen.ip().is_loopback() && options.token_file.is_none();
    let (instructor, generated) = match &options.token_file {
        Some(path) => (read_token_file(path)?, false),
        None => (random_token()?, true),
    };
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| listen_error(options.listen, e))?;
    let (stopping, stop) = watch::channel(false);
    let app = Arc::new(App {
        engine: engine.clone(),
        keys: Keys::new(instructor, open),
        names: options.names,
        hubs: Hubs::new(engine),
        stop,
        work: std::sync::Mutex::new(JoinSet::new()),
    });
    announce(&app, options.listen, generated).await;
    let router = routes(Arc::clone(&app));
    let mut interrupt = crate::interrupt::Interrupt::listen();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        interrupt.pressed().await;
        // The live streams end, so that their connections close and the server can stop.
        let _ = stopping.send(true);
    });
    server
        .await
        .map_err(Error::io(format!("serve on {}", options.listen)))?;
    let mut work = std::mem::take(&mut *app.work.lock().unwrap_or_else(|e| e.into_inner()));
    if !work.is_empty() {
        eprintln!(
            "Ctrl-C: finishing the {} action(s) in progress first, so that no lab is left \
             halfway",
            work.len()
        );
        while work.join_next().await.is_some() {}
    }
    eprintln!("lab serve stopped");
    Ok(130)
}

fn routes(app: Shared) -> Router {
    Router::new()
        .route("/", get(pages::class))
        .route("/labs/{name}", get(pages::lab))
        .route("/t/{name}", get(pages::trainee))
        .route("/signin", get(pages::signin).post(pages::signin_post))
        .route("/signout", get(pages::signout))
        .route("/assets/{file}", get(pages::asset))
        .route("/api/labs", get(api::class_json))
        .route("/api/class/events", get(api::class_events))
        .route("/api/class/reset", post(api::reset_class))
        .route("/api/labs/{name}", get(api::lab))
        .route("/api/labs/{name}/events", get(api::lab_events))
        .route("/api/labs/{name}/course", get(api::course))
        .route("/api/labs/{name}/drill.svg", get(api::drill_svg))
        .route("/api/labs/{name}/reset", post(api::reset))
        .route("/api/labs/{name}/check", post(api::check))
        .fallback(pages::not_found)
        .with_state(app)
}

/// Says where the page is, the instructor's token when it was generated, and each lab's
/// trainee link.
async fn announce(app: &App, listen: SocketAddr, generated: bool) {
    let base = base_url(listen);
    println!("lab serve: the class page is at {base}/ (Ctrl-C stops it)");
    if !app.keys.open() {
        if generated {
            println!(
                "The instructor's token (sign in with it; it is shown only now): {}",
                app.keys.instructor()
            );
        } else {
            println!("Sign in with the instructor's token from the token file.");
        }
    }
    match labs(app).await {
        Ok(names) if names.is_empty() => {
            println!("There is no lab yet; the page lists each one once made.")
        }
        Ok(names) => {
            println!("Each trainee's own page (read-only):");
            for name in names {
                println!("  {name}: {base}{}", trainee_link(&app.keys, &name));
            }
        }
        Err(e) => println!("The labs could not be listed yet ({e}); the page says when they can."),
    }
}

/// The labs the page shows, in order.
async fn labs(app: &App) -> Result<Vec<String>> {
    let all: Vec<String> = model::all(&app.engine)
        .await?
        .into_iter()
        .map(|l| l.name)
        .collect();
    Ok(shown(all, &app.names))
}

/// Of the labs `all`, those `--name` asked for (all of them when none was).
fn shown(all: Vec<String>, names: &[String]) -> Vec<String> {
    all.into_iter()
        .filter(|l| names.is_empty() || names.contains(l))
        .collect()
}

/// The path of lab `name`'s trainee page, with its token.
fn trainee_link(keys: &Keys, name: &str) -> String {
    format!("/t/{name}?token={}", keys.trainee(name))
}

/// The page's address as a browser on another machine types it: the host's name when the
/// server listens on every address.
fn base_url(listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "THIS-HOST".into());
        format!("http://{host}:{}", listen.port())
    } else {
        format!("http://{listen}")
    }
}

/// 32 random bytes, as hex.
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| {
        Error::Failed(
            "lab serve could not get random bytes from the system for its token; give one with \
             --token-file FILE instead"
                .into(),
        )
    })?;
    Ok(auth::hex(&bytes))
}

/// The instructor's token from `path`: refused when others may read the file, or it holds
/// too short a token.
fn read_token_file(path: &Path) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(Error::io(format!("read the token file {shown}")))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::Invalid(format!(
            "the token file {shown} can be read by others (mode {:o}), so its token is no \
             secret. Make it its owner's only with `chmod 600 {shown}`, and give the token to \
             nobody else.",
            mode & 0o777
        )));
    }
    let text =
        std::fs::read_to_string(path).map_err(Error::io(format!("read the token file {shown}")))?;
    let token = text.trim().to_string();
    if token.len() < 16 || token.chars().any(char::is_whitespace) {
        return Err(Error::Invalid(format!(
            "the token file {shown} holds no usable token: it needs one word of at least 16 \
             characters, such as `openssl rand -hex 32` prints"
        )));
    }
    Ok(token)
}

/// A listen that failed, in one paragraph: which address, and what to do.
fn listen_error(listen: SocketAddr, e: std::io::Error) -> Error {
    let why = match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "{listen} is already in use by another program (another `lab serve`?). Stop that \
             program, or give lab serve another port with --listen {}:{}",
            listen.ip(),
            listen.port().wrapping_add(1).max(1024)
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "{listen} is not an address of this machine. Give one it has with --listen, such \
             as 127.0.0.1:{} or 0.0.0.0:{}",
            listen.port(),
            listen.port()
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "listening on {listen} is not allowed ({e}); ports below 1024 need root. Use a \
             port of 1024 or more with --listen"
        ),
        _ => format!("listening on {listen} failed: {e}. Try another address with --listen"),
    };
    Error::Failed(format!("lab serve cannot start: {why}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_given_keep_only_those_labs() {
        let all = || vec!["alice".to_string(), "bob".to_string()];
        assert_eq!(shown(all(), &[]), all());
        assert_eq!(shown(all(), &["bob".into(), "carol".into()]), vec!["bob"]);
    }

    #[test]
    fn a_port_in_use_says_which_and_what_to_do() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let e = listen_error(addr, std::io::ErrorKind::AddrInUse.into()).to_string();
        assert!(e.contains("127.0.0.1:8080 is already in use"), "{e}");
        assert!(e.contains("--listen 127.0.0.1:8081"), "{e}");
    }

    #[test]
    fn a_token_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_token_file(&path).unwrap_err().to_string();
        assert!(e.contains("can be read by others (mode 644)"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token_file(&path).unwrap(), "0123456789abcdef0123");
        std::fs::write(&path, "short").unwrap();
        assert!(read_token_file(&path).is_err());
    }
}
