//! `lab serve`'s JSON API under /api, which the pages use too: the class and each lab as JSON
//! and as live streams (server-sent events), and the instructor's actions, which call the
//! same library functions as `lab reset` and `lab check` under the lab's lock (a lab another
//! command is changing answers 409 with the lock's message). Also who a request comes from
//! (`Caller`) and the refusals every handler shares.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::watch;

use super::auth::{self, Decision, Route, Who};
use super::rows::{self, Action, LabView, Row};
use super::{Shared, labs, trainee_link};
use crate::error::Error;
use crate::lab;
use crate::lock;
use crate::progress::Progress;
use crate::spec;

/// How long a class stream waits after a change before it sends, so that a burst of answers
/// goes as one message.
const CLASS_SETTLE: Duration = Duration::from_millis(500);
/// How often a class stream lists the labs again, to see one made or destroyed.
const RELIST_EVERY: Duration = Duration::from_secs(15);
/// How long a one-off GET waits for the labs' first answers.
const FIRST_WITHIN: Duration = Duration::from_secs(10);
/// How often a live stream says it is there.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// The cookie the token is kept in once given.
pub const COOKIE: &str = "lab_token";

/// The token a request carries, and where from.
pub struct Caller {
    pub token: Option<String>,
    /// Given in the URL (a trainee's link): the page sets it as a cookie.
    pub from_query: bool,
    origin: Option<String>,
    host: Option<String>,
    /// The page's own mark on its POSTs (`X-Lab: 1`).
    marked: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Infallible> {
        let headers = &parts.headers;
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let bearer = text(header::AUTHORIZATION)
            .and_then(|a| a.strip_prefix("Bearer ").map(|t| t.trim().to_string()));
        let query = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|Query(q)| q.get("token").cloned());
        let cookie = text(header::COOKIE).and_then(|c| cookie(&c));
        let from_query = bearer.is_none() && query.is_some();
        Ok(Caller {
            token: bearer.or(query).or(cookie),
            from_query,
            origin: text(header::ORIGIN),
            host: text(header::HOST),
            marked: headers.get("x-lab").is_some_and(|v| v == "1"),
        })
    }
}

/// The token in a Cookie header.
fn cookie(header: &str) -> Option<String> {
    header.split(';').find_map(|c| {
        let (name, value) = c.trim().split_once('=')?;
        (name == COOKIE).then(|| value.to_string())
    })
}

/// A refusal or failure, as JSON for the API and as a page for a browser's request.
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    /// The labs there are, for a 404 about one that is not.
    pub labs: Vec<String>,
    pub json: bool,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    labs: &'a [String],
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        if self.json {
            let body = ErrorBody {
                error: &self.message,
                labs: &self.labs,
            };
            (self.status, Json(body)).into_response()
        } else {
            super::pages::error(self.status, &self.message, &self.labs)
        }
    }
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>, json: bool) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            labs: Vec::new(),
            json,
        }
    }

    /// An error from the library, with the status it calls for.
    fn of(e: &Error, json: bool) -> Refusal {
        let status = match e {
            Error::Busy(_) => StatusCode::CONFLICT,
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::DockerUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Refusal::new(status, e.to_string(), json)
    }
}

/// Lets the request through when `route` is the caller's, saying who they are.
pub fn guard(app: &Shared, caller: &Caller, route: Route<'_>, json: bool) -> Result<Who, Refusal> {
    let lab = match route {
        Route::Lab { name, .. } => Some(name),
        _ => None,
    };
    let token = caller.token.as_deref();
    let who = match app.keys.who(token, lab) {
        // Open to loopback only: without the instructor's own token, a request whose Host is
        // not a loopback name is nobody's.
        Who::Instructor
            if !auth::loopback_host(caller.host.as_deref()) && !app.keys.is_instructor(token) =>
        {
            Who::Nobody
        }
        who => who,
    };
    match auth::decide(&who, route) {
        Decision::Allow => Ok(who),
        Decision::SignIn => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "this page needs a token: sign in with the instructor's token that `lab serve` \
             printed at start, or open a trainee's link",
            json,
        )),
        Decision::Forbidden => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "this token opens one trainee's own lab page only, to look at; the class, other \
             labs and the actions need the instructor's token",
            json,
        )),
    }
}

/// Refuses a POST that the page itself did not send (another site's form or script).
fn posted_here(caller: &Caller) -> Result<(), Refusal> {
    if auth::same_origin(
        caller.origin.as_deref(),
        caller.host.as_deref(),
        caller.marked,
    ) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "this action must come from lab serve's own page (it sends the header X-Lab: 1 \
             from the same origin); a request from another site, or without that header, is \
             refused",
            true,
        ))
    }
}

/// Lab `name`, when it is one the page shows: 400 for a name no lab can have, 404 naming
/// the labs there are, 503 when the engine does not answer.
pub async fn known(app: &Shared, name: &str, json: bool) -> Result<(), Refusal> {
    if let Err(e) = spec::validate_name(name) {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, e.to_string(), json));
    }
    let names = labs(app).await.map_err(|e| Refusal::of(&e, json))?;
    if names.iter().any(|n| n == name) {
        return Ok(());
    }
    let shown = if names.is_empty() {
        "there is no lab at all yet (`lab create` makes one)".to_string()
    } else {
        format!("the labs shown are: {}", names.join(", "))
    };
    Err(Refusal {
        status: StatusCode::NOT_FOUND,
        message: format!("there is no lab called {name} here; {shown}"),
        labs: names,
        json,
    })
}

/// The class: one row per lab.
#[derive(Serialize)]
pub struct Class {
    pub labs: Vec<Row>,
    /// Why the labs could not be listed, when they could not (the engine is down).
    pub error: Option<String>,
    /// How many labs this server polls now (those some page shows).
    pub polled: usize,
}

/// The class's rows from the views, with each trainee's link.
fn class(
    app: &Shared,
    views: &mut [(String, watch::Receiver<LabView>)],
    error: Option<String>,
) -> Class {
    let labs = views
        .iter_mut()
        .map(|(name, rx)| {
            let mut row = rows::row(&rx.borrow_and_update());
            row.link = Some(trainee_link(&app.keys, name));
            row
        })
        .collect();
    Class {
        labs,
        error,
        polled: app.hubs.polled(),
    }
}

/// Waits until every view has its first snapshot, or FIRST_WITHIN.
async fn first_answers(views: &mut [(String, watch::Receiver<LabView>)]) {
    let all = async {
        for (_, rx) in views.iter_mut() {
            let _ = rx
                .wait_for(|v| {
                    v.snapshot.is_some() && (v.course.is_some() || v.course_error.is_some())
                })
                .await;
        }
    };
    let _ = tokio::time::timeout(FIRST_WITHIN, all).await;
}

/// GET /api/labs: the class's rows, once the labs have answered.
pub async fn class_json(State(app): State<Shared>, caller: Caller) -> Result<Json<Class>, Refusal> {
    guard(&app, &caller, Route::Class, true)?;
    let names = labs(&app).await.map_err(|e| Refusal::of(&e, true))?;
    let mut views: Vec<_> = names
        .into_iter()
        .map(|n| {
            let rx = app.hubs.subscribe(&n);
            (n, rx)
        })
        .collect();
    first_answers(&mut views).await;
    Ok(Json(class(&app, &mut views, None)))
}

/// GET /api/class/events: the class, again at every change.
pub async fn class_events(
    State(app): State<Shared>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Refusal> {
    guard(&app, &caller, Route::Class, true)?;
    let state = ClassStream {
        app: Arc::clone(&app),
        views: Vec::new(),
        listed: None,
        error: None,
        sent: String::new(),
        stop: app.stop.clone(),
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        let json = s.next().await?;
        Some((Ok(Event::default().data(json)), s))
    });
    Ok(Sse::new(stream).keep_alive(heartbeat()))
}

/// A class stream's state: the labs it follows, and what it sent last.
struct ClassStream {
    app: Shared,
    views: Vec<(String, watch::Receiver<LabView>)>,
    listed: Option<Instant>,
    error: Option<String>,
    sent: String,
    stop: watch::Receiver<bool>,
}

impl ClassStream {
    /// The next message: the class once it differs from the last one sent; None once the
    /// server stops.
    async fn next(&mut self) -> Option<String> {
        loop {
            if self.listed.is_none_or(|at| at.elapsed() >= RELIST_EVERY) {
                self.relist().await;
            } else {
                let wait = RELIST_EVERY
                    .saturating_sub(self.listed.map_or(Duration::ZERO, |at| at.elapsed()));
                let changed = async {
                    if self.views.is_empty() {
                        std::future::pending::<()>().await;
                    }
                    let waits = self.views.iter_mut().map(|(_, rx)| Box::pin(rx.changed()));
                    let _ = futures_util::future::select_all(waits).await;
                };
                tokio::select! {
                    () = changed => tokio::time::sleep(CLASS_SETTLE).await,
                    () = tokio::time::sleep(wait) => continue,
                    () = stopped(&mut self.stop) => return None,
                }
            }
            let class = class(&self.app, &mut self.views, self.error.clone());
            let json = serde_json::to_string(&class).unwrap_or_default();
            if json != self.sent {
                self.sent = json.clone();
                return Some(json);
            }
        }
    }

    /// Follows the labs there are now; the views of labs still there are kept.
    async fn relist(&mut self) {
        self.listed = Some(Instant::now());
        match labs(&self.app).await {
            Ok(names) => {
                self.error = None;
                let mut old: HashMap<String, watch::Receiver<LabView>> =
                    std::mem::take(&mut self.views).into_iter().collect();
                self.views = names
                    .into_iter()
                    .map(|n| {
                        let rx = old
                            .remove(&n)
                            .unwrap_or_else(|| self.app.hubs.subscribe(&n));
                        (n, rx)
                    })
                    .collect();
            }
            // The labs last seen stay, each saying what its own poller sees.
            Err(e) => self.error = Some(e.to_string()),
        }
    }
}

/// A comment sent on every live stream each second: writing is how the server finds that a
/// page has gone (a closed connection fails the next write), so that its lab's poller stops
/// within a couple of seconds rather than at the next change.
fn heartbeat() -> KeepAlive {
    KeepAlive::new().interval(HEARTBEAT)
}

/// Returns once the server stops.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard wait_for gives is let go here, before any other await.
    let _ = stop.wait_for(|stopped| *stopped).await.is_ok();
}

/// Who may have a lab's read-only API: the instructor, and that lab's trainee.
fn reading(name: &str) -> Route<'_> {
    Route::Lab {
        name,
        trainee: true,
        write: false,
    }
}

/// GET /api/labs/NAME: the lab's view, once it has answered.
pub async fn lab(
    State(app): State<Shared>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<Json<LabView>, Refusal> {
    guard(&app, &caller, reading(&name), true)?;
    known(&app, &name, true).await?;
    let mut views = vec![(name.clone(), app.hubs.subscribe(&name))];
    first_answers(&mut views).await;
    let view = views[0].1.borrow().clone();
    Ok(Json(view))
}

/// GET /api/labs/NAME/events: the lab's view, again at every change.
pub async fn lab_events(
    State(app): State<Shared>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Refusal> {
    guard(&app, &caller, reading(&name), true)?;
    known(&app, &name, true).await?;
    // The lab's own page (or its trainee's): asked at the close pace while it is open.
    let (rx, close) = app.hubs.subscribe_close(&name);
    let stream = futures_util::stream::unfold(
        (rx, app.stop.clone(), true, close),
        |(mut rx, mut stop, first, close)| async move {
            if !first {
                tokio::select! {
                    changed = rx.changed() => changed.ok()?,
                    () = stopped(&mut stop) => return None,
                }
            }
            let json = serde_json::to_string(&*rx.borrow_and_update()).unwrap_or_default();
            Some((Ok(Event::default().data(json)), (rx, stop, false, close)))
        },
    );
    Ok(Sse::new(stream).keep_alive(heartbeat()))
}

/// GET /api/labs/NAME/course: `lab check`'s report, judged now.
pub async fn course(
    State(app): State<Shared>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<Json<lab::CheckReport>, Refusal> {
    guard(&app, &caller, reading(&name), true)?;
    known(&app, &name, true).await?;
    let report = lab::check(&app.engine, &name)
        .await
        .map_err(|e| Refusal::of(&e, true))?;
    Ok(Json(report))
}

/// GET /api/labs/NAME/drill.svg: the last drill's timeline, as `lab drill --plot` draws it.
pub async fn drill_svg(
    State(app): State<Shared>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<Response, Refusal> {
    guard(&app, &caller, reading(&name), true)?;
    known(&app, &name, true).await?;
    let mut picture = app.hubs.picture(&name);
    if picture.is_none() {
        app.hubs.read_records(&name).await;
        picture = app.hubs.picture(&name);
    }
    let Some(svg) = picture else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!(
                "lab {name} has had no drill yet; `lab drill kill-primary --name {name}` runs one"
            ),
            true,
        ));
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("image/svg+xml"),
    );
    Ok((headers, svg.as_str().to_string()).into_response())
}

/// Who may run an action on lab `name`: the instructor only.
fn acting(name: &str) -> Route<'_> {
    Route::Lab {
        name,
        trainee: false,
        write: true,
    }
}

/// Takes lab `name`'s lock for `purpose`; a lab another command changes is 409, its message
/// naming that command.
async fn take(app: &Shared, name: &str, purpose: &str) -> Result<lock::LabLock, Refusal> {
    match lock::lab_if_free(&app.engine, name).await {
        Ok(Ok(lock)) => Ok(lock),
        Ok(Err(holder)) => Err(Refusal::new(
            StatusCode::CONFLICT,
            format!(
                "lab {name} is busy: {holder} is changing it right now, so {purpose} is \
                 refused rather than spoil both. Try again once that ends."
            ),
            true,
        )),
        Err(e) => Err(Refusal::of(&e, true)),
    }
}

fn started(what: &str, message: String) -> Action {
    Action {
        what: what.into(),
        running: true,
        ok: None,
        message,
        started: lab::unix_now(),
    }
}

/// POST /api/labs/NAME/reset: starts the reset under the lab's lock (202), its progress and
/// result on the lab's view.
pub async fn reset(
    State(app): State<Shared>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<(StatusCode, Json<Action>), Refusal> {
    guard(&app, &caller, acting(&name), true)?;
    posted_here(&caller)?;
    known(&app, &name, true).await?;
    let lock = take(&app, &name, "a reset").await?;
    let action = started("reset", format!("resetting lab {name}"));
    app.hubs.act(&name, action.clone());
    spawn_resets(&app, vec![lock]);
    Ok((StatusCode::ACCEPTED, Json(action)))
}

/// Resets the labs whose locks are given, one after the other (the machine's cores are
/// shared by every lab), each lock let go as its reset ends.
fn spawn_resets(app: &Shared, locks: Vec<lock::LabLock>) {
    let task_app = Arc::clone(app);
    let work = async move {
        let app = task_app;
        for lock in locks {
            let name = lock.lab().to_string();
            let began = Instant::now();
            let progress = Progress::new().for_lab(&name);
            let mut action = started("reset", format!("resetting lab {name}"));
            app.hubs.act(&name, action.clone());
            let done = lab::reset(&app.engine, &progress, &lock).await;
            drop(lock);
            action.running = false;
            action.ok = Some(done.is_ok());
            action.message = match done {
                Ok(()) => format!(
                    "lab {name} is back to the state it was created in ({:.0} s)",
                    began.elapsed().as_secs_f64()
                ),
                Err(e) => e.to_string(),
            };
            app.hubs.act(&name, action);
            app.hubs.refresh(&name).await;
        }
    };
    let mut running = app.work.lock().unwrap_or_else(|e| e.into_inner());
    // Those that ended are let go, so that only those running are waited for at the end.
    while running.try_join_next().is_some() {}
    running.spawn(work);
}

/// POST /api/labs/NAME/check: `lab check` now, its report in the answer and on the lab's view.
/// Not while another command changes the lab: it would judge it halfway.
pub async fn check(
    State(app): State<Shared>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<Json<lab::CheckReport>, Refusal> {
    guard(&app, &caller, acting(&name), true)?;
    posted_here(&caller)?;
    known(&app, &name, true).await?;
    let lock = take(&app, &name, "a check (it would judge the lab halfway)").await?;
    app.hubs
        .act(&name, started("check", format!("checking lab {name}")));
    let course = super::hub::course(&app.engine, &name).await;
    drop(lock);
    let (ok, message, report) = match course {
        Ok(c) => {
            let step = rows::step(&c.report);
            let said = match &step.next {
                None => "every step of the course is done".to_string(),
                Some(next) => format!("{} of {} steps done; next: {next}", step.done, step.total),
            };
            let report = c.report.clone();
            app.hubs.update(&name, |v| {
                v.course = Some(c);
                v.course_error = None;
            });
            (true, said, Some(report))
        }
        Err(e) => (false, e, None),
    };
    let mut action = started("check", message.clone());
    action.running = false;
    action.ok = Some(ok);
    app.hubs.act(&name, action);
    report
        .map(Json)
        .ok_or_else(|| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, message, true))
}

/// What POST /api/class/reset started, and which labs it left because they are busy.
#[derive(Serialize)]
pub struct ClassReset {
    pub started: Vec<String>,
    pub busy: Vec<Busy>,
}

#[derive(Serialize)]
pub struct Busy {
    pub lab: String,
    pub message: String,
}

/// POST /api/class/reset: resets every lab shown that no other command is changing, one after
/// the other; the busy ones are named (409 when every lab is).
pub async fn reset_class(
    State(app): State<Shared>,
    caller: Caller,
) -> Result<(StatusCode, Json<ClassReset>), Refusal> {
    guard(&app, &caller, Route::Class, true)?;
    posted_here(&caller)?;
    let names = labs(&app).await.map_err(|e| Refusal::of(&e, true))?;
    let mut locks = Vec::new();
    let mut answer = ClassReset {
        started: Vec::new(),
        busy: Vec::new(),
    };
    for name in names {
        match take(&app, &name, "a reset").await {
            Ok(lock) => {
                app.hubs.act(
                    &name,
                    started("reset", format!("waiting to reset lab {name}")),
                );
                answer.started.push(name);
                locks.push(lock);
            }
            Err(refusal) => answer.busy.push(Busy {
                lab: name,
                message: refusal.message,
            }),
        }
    }
    let status = if locks.is_empty() && !answer.busy.is_empty() {
        StatusCode::CONFLICT
    } else {
        StatusCode::ACCEPTED
    };
    spawn_resets(&app, locks);
    Ok((status, Json(answer)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_token_cookie_is_found_among_others() {
        assert_eq!(
            super::cookie("a=1; lab_token=abc; b=2").as_deref(),
            Some("abc")
        );
        assert_eq!(super::cookie("a=1"), None);
        assert_eq!(super::cookie("lab_token_x=1"), None);
    }
}
