//! `lab serve`'s HTML: the class page, a lab's page, a trainee's page, the sign-in page and
//! the error pages, all one template (assets/serve/page.html) filled here; the page's script
//! (assets/serve/app.js) draws the data from the API. Every file is carried in the binary.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api::{COOKIE, Caller, Refusal, guard, known};
use super::auth::{Route, Who};
use super::{Shared, labs};

const PAGE: &str = include_str!("../../assets/serve/page.html");
const CSS: &str = include_str!("../../assets/serve/app.css");
const JS: &str = include_str!("../../assets/serve/app.js");

/// Only the page's own files run: no inline script, nothing from elsewhere.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                      frame-ancestors 'none'; form-action 'self'";

/// The page `kind` (class, lab, trainee, signin, error) titled `title`, with `body`.
fn page(status: StatusCode, kind: &str, lab: &str, title: &str, body: &str) -> Response {
    let html = PAGE
        .replace("{{kind}}", kind)
        .replace("{{lab}}", &escape(lab))
        .replace("{{title}}", &escape(title))
        .replace("{{body}}", body);
    let mut response = (status, axum::response::Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An error page: what, and the labs there are when a lab was not found.
pub fn error(status: StatusCode, message: &str, labs: &[String]) -> Response {
    let mut body = format!("<p class=\"error-text\">{}</p>", escape(message));
    if status == StatusCode::UNAUTHORIZED {
        body.push_str("<p><a href=\"/signin\">Sign in</a></p>");
    }
    if !labs.is_empty() {
        body.push_str("<p>The labs:</p><ul>");
        for lab in labs {
            let lab = escape(lab);
            body.push_str(&format!("<li><a href=\"/labs/{lab}\">{lab}</a></li>"));
        }
        body.push_str("</ul>");
    }
    body.push_str("<p><a href=\"/\">The class</a></p>");
    let title = status.canonical_reason().unwrap_or("error");
    page(status, "error", "", title, &body)
}

/// A page for whoever may see it, the token given in its link kept as a cookie.
fn with_cookie(mut response: Response, caller: &Caller) -> Response {
    if caller.from_query
        && let Some(token) = &caller.token
        && let Ok(value) = HeaderValue::from_str(&cookie(token))
    {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The cookie that keeps `token`: not for scripts, not sent by other sites.
fn cookie(token: &str) -> String {
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")
}

/// GET /: the class.
pub async fn class(State(app): State<Shared>, caller: Caller) -> Response {
    if let Err(refusal) = guard(&app, &caller, Route::Class, false) {
        return refusal.into_response();
    }
    let body = include_str!("../../assets/serve/class.html");
    with_cookie(
        page(StatusCode::OK, "class", "", "The class", body),
        &caller,
    )
}

/// GET /labs/NAME: one lab, for the instructor.
pub async fn lab(State(app): State<Shared>, Path(name): Path<String>, caller: Caller) -> Response {
    let route = Route::Lab {
        name: &name,
        trainee: false,
        write: false,
    };
    if let Err(refusal) = guard(&app, &caller, route, false) {
        return refusal.into_response();
    }
    if let Err(refusal) = known(&app, &name, false).await {
        return refusal.into_response();
    }
    let link = escape(&super::trainee_link(&app.keys, &name));
    let body = include_str!("../../assets/serve/lab.html").replace("{{link}}", &link);
    let title = format!("lab {name}");
    with_cookie(page(StatusCode::OK, "lab", &name, &title, &body), &caller)
}

/// GET /t/NAME: a trainee's own lab, read-only.
pub async fn trainee(
    State(app): State<Shared>,
    Path(name): Path<String>,
    caller: Caller,
) -> Response {
    let route = Route::Lab {
        name: &name,
        trainee: true,
        write: false,
    };
    if let Err(refusal) = guard(&app, &caller, route, false) {
        return refusal.into_response();
    }
    if let Err(refusal) = known(&app, &name, false).await {
        return refusal.into_response();
    }
    let body = include_str!("../../assets/serve/trainee.html");
    let title = format!("Your lab: {name}");
    with_cookie(
        page(StatusCode::OK, "trainee", &name, &title, body),
        &caller,
    )
}

const SIGNIN: &str = "<form class=\"signin\" method=\"post\" action=\"/signin\">\
    <label for=\"token\">Token</label> <input id=\"token\" name=\"token\" type=\"password\" \
    autocomplete=\"off\" autofocus> <button type=\"submit\">Sign in</button></form>\
    <p class=\"hint\">The instructor's token is the one <code>lab serve</code> printed at start \
    (or the one in its --token-file); a trainee opens their own link instead.</p>";

/// GET /signin: the form that takes a token.
pub async fn signin() -> Response {
    page(StatusCode::OK, "signin", "", "Sign in", SIGNIN)
}

/// POST /signin: a token that opens something here is kept as a cookie, and the page it opens
/// shown; any other is refused (401).
pub async fn signin_post(
    State(app): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let token = form.get("token").map(|t| t.trim()).unwrap_or_default();
    let mut to = None;
    if app.keys.who(Some(token), None) == Who::Instructor && !token.is_empty() {
        to = Some("/".to_string());
    } else if let Ok(names) = labs(&app).await {
        to = names
            .into_iter()
            .find(|n| app.keys.who(Some(token), Some(n)) == Who::Trainee(n.clone()))
            .map(|n| format!("/t/{n}"));
    }
    let Some(to) = to else {
        let body = format!("<p class=\"error-text\">That token opens nothing here.</p>{SIGNIN}");
        return page(StatusCode::UNAUTHORIZED, "signin", "", "Sign in", &body);
    };
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie(token)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// GET /signout: forgets the token.
pub async fn signout() -> Response {
    let gone = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/signin")]).into_response();
    if let Ok(value) = HeaderValue::from_str(&gone) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// GET /assets/FILE: the page's style and script.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (kind, body) = match file.as_str() {
        "app.css" => ("text/css; charset=utf-8", CSS),
        "app.js" => ("text/javascript; charset=utf-8", JS),
        _ => return not_found_text(&format!("/assets/{file}")),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// Any other path: 404, as JSON under /api.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    not_found_text(uri.path())
}

fn not_found_text(path: &str) -> Response {
    let message = format!("there is no page {path} here; the class is at /");
    Refusal::new(StatusCode::NOT_FOUND, message, path.starts_with("/api/")).into_response()
}

/// Text made safe inside HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_is_escaped_and_the_cookie_kept_from_scripts_and_other_sites() {
        assert_eq!(
            super::escape("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
        let c = super::cookie("abc");
        assert!(c.starts_with("lab_token=abc;"));
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
    }
}
