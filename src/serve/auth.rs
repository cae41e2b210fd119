//! Who may see and do what on `lab serve`, pure: the instructor's token, each trainee's token
//! (an HMAC-SHA256 of the server's secret and the lab's name, so a secret read from a file gives
//! the same links at every start), and the decision for one request. Tokens are compared in
//! constant time. The effects (random bytes, the token file, cookies) are in `mod.rs` and
//! `api.rs`.

use ring::hmac;

/// What a trainee's token is derived from besides the lab's name: a token for one purpose is
/// never valid for another.
const TRAINEE: &[u8] = b"pgha-lab serve trainee\0";

/// The server's tokens.
pub struct Keys {
    /// The instructor's token, as typed and printed.
    instructor: String,
    key: hmac::Key,
    /// On a loopback address with no token file: a request with no token is the instructor's.
    open: bool,
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Who {
    Instructor,
    /// The trainee of this lab.
    Trainee(String),
    Nobody,
}

/// What a request asks for, as far as access goes (the sign-in page and the page's CSS and
/// JS are open to all, and ask no one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Route<'a> {
    /// The class page, its API, and the actions on the class.
    Class,
    /// One lab: `trainee` where that lab's trainee may look too (their page and its read-only
    /// API); `write` for an action.
    Lab {
        name: &'a str,
        trainee: bool,
        write: bool,
    },
}

/// The answer to a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Allow,
    /// No token, or one that is nobody's: 401 and the sign-in page.
    SignIn,
    /// A trainee's token for something that is not theirs: 403.
    Forbidden,
}

impl Keys {
    /// `instructor` is the instructor's token and the secret the trainees' tokens are derived
    /// from; `open`, whether a request without a token is taken as the instructor's.
    pub fn new(instructor: String, open: bool) -> Keys {
        let key = hmac::Key::new(hmac::HMAC_SHA256, instructor.as_bytes());
        Keys {
            instructor,
            key,
            open,
        }
    }

    pub fn instructor(&self) -> &str {
        &self.instructor
    }

    pub fn open(&self) -> bool {
        self.open
    }

    /// Whether `token` is the instructor's own.
    pub fn is_instructor(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| same(t.as_bytes(), self.instructor.as_bytes()))
    }

    /// Lab `lab`'s trainee token: 64 hex digits.
    pub fn trainee(&self, lab: &str) -> String {
        hex(hmac::sign(&self.key, &message(lab)).as_ref())
    }

    /// Who presents `token` for something about `lab` (None: about no lab in particular).
    pub fn who(&self, token: Option<&str>, lab: Option<&str>) -> Who {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return if self.open {
                Who::Instructor
            } else {
                Who::Nobody
            };
        };
        if same(token.as_bytes(), self.instructor.as_bytes()) {
            return Who::Instructor;
        }
        match (lab, unhex(token)) {
            // ring's verify compares in constant time.
            (Some(lab), Some(tag)) if hmac::verify(&self.key, &message(lab), &tag).is_ok() => {
                Who::Trainee(lab.to_string())
            }
            // A token given that opens nothing here counts as none, even on loopback: a
            // trainee's link is a trainee's, whatever else they try.
            _ if self.open && !looks_like_token(token) => Who::Instructor,
            _ => Who::Nobody,
        }
    }
}

/// Whether `who` may have `route`.
pub fn decide(who: &Who, route: Route<'_>) -> Decision {
    match (route, who) {
        (_, Who::Instructor) => Decision::Allow,
        (_, Who::Nobody) => Decision::SignIn,
        (
            Route::Lab {
                name,
                trainee: true,
                write: false,
            },
            Who::Trainee(own),
        ) if name == own => Decision::Allow,
        (_, Who::Trainee(_)) => Decision::Forbidden,
    }
}

/// Whether a POST may be taken: sent by the page itself, not by another site's form or
/// script. The page sends `X-Lab: 1`, which a cross-site form cannot and a cross-site script
/// may only after a CORS preflight this server never grants; an Origin given must be this
/// server's own host.
pub fn same_origin(origin: Option<&str>, host: Option<&str>, marked: bool) -> bool {
    if !marked {
        return false;
    }
    match (origin, host) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            let origin = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            origin.is_some_and(|o| o.eq_ignore_ascii_case(host))
        }
        (Some(_), None) => false,
    }
}

/// Whether a request's Host names this machine's loopback (127.0.0.0/8, ::1, localhost), with
/// or without a port. An open server takes requests without a token only for such a Host: a
/// page elsewhere that has its own name resolve to 127.0.0.1 (DNS rebinding) gets nothing.
pub fn loopback_host(host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn message(lab: &str) -> Vec<u8> {
    [TRAINEE, lab.as_bytes()].concat()
}

/// Whether `token` has the shape of a token (hex, at least 32 digits): on an open server a
/// stray cookie of another shape does not lock the instructor out.
fn looks_like_token(token: &str) -> bool {
    token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Equal, in a time that depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_trainee_token_is_stable_for_a_secret_and_differs_per_lab_and_secret() {
        let keys = Keys::new(SECRET.into(), false);
        let alice = keys.trainee("alice");
        assert_eq!(alice.len(), 64);
        assert_eq!(alice, Keys::new(SECRET.into(), false).trainee("alice"));
        assert_ne!(alice, keys.trainee("bob"));
        assert_ne!(
            alice,
            Keys::new("another secret".into(), false).trainee("alice")
        );
    }

    #[test]
    fn tokens_say_who_comes() {
        let keys = Keys::new(SECRET.into(), false);
        let alice = keys.trainee("alice");
        assert_eq!(keys.who(Some(SECRET), None), Who::Instructor);
        assert!(keys.is_instructor(Some(SECRET)));
        assert!(!keys.is_instructor(Some(&alice)) && !keys.is_instructor(None));
        assert_eq!(keys.who(Some(SECRET), Some("bob")), Who::Instructor);
        assert_eq!(
            keys.who(Some(&alice), Some("alice")),
            Who::Trainee("alice".into())
        );
        assert_eq!(keys.who(Some(&alice), Some("bob")), Who::Nobody);
        assert_eq!(keys.who(Some(&alice), None), Who::Nobody);
        assert_eq!(keys.who(None, Some("alice")), Who::Nobody);
        assert_eq!(keys.who(Some("x"), None), Who::Nobody);
        assert_eq!(keys.who(Some("zz"), Some("alice")), Who::Nobody);
        // Open (loopback): no token is the instructor; a trainee's token stays a trainee's.
        let open = Keys::new(SECRET.into(), true);
        assert_eq!(open.who(None, None), Who::Instructor);
        assert_eq!(
            open.who(Some(&alice), Some("alice")),
            Who::Trainee("alice".into())
        );
        assert_eq!(open.who(Some(&alice), Some("bob")), Who::Nobody);
    }

    #[test]
    fn decisions_keep_trainees_to_their_own_lab_and_out_of_actions() {
        let lab = |name, trainee, write| Route::Lab {
            name,
            trainee,
            write,
        };
        let alice = Who::Trainee("alice".into());
        assert_eq!(decide(&alice, lab("alice", true, false)), Decision::Allow);
        assert_eq!(decide(&alice, lab("bob", true, false)), Decision::Forbidden);
        assert_eq!(
            decide(&alice, lab("alice", false, false)),
            Decision::Forbidden
        );
        assert_eq!(
            decide(&alice, lab("alice", true, true)),
            Decision::Forbidden
        );
        assert_eq!(decide(&alice, Route::Class), Decision::Forbidden);
        assert_eq!(decide(&Who::Nobody, Route::Class), Decision::SignIn);
        assert_eq!(
            decide(&Who::Instructor, lab("bob", false, true)),
            Decision::Allow
        );
    }

    #[test]
    fn only_the_pages_own_posts_are_taken() {
        let host = Some("127.0.0.1:8080");
        assert!(same_origin(None, host, true));
        assert!(same_origin(Some("http://127.0.0.1:8080"), host, true));
        assert!(!same_origin(Some("http://127.0.0.1:8080"), host, false));
        assert!(!same_origin(Some("http://evil.example"), host, true));
        assert!(!same_origin(Some("null"), host, true));
        assert!(!same_origin(Some("http://127.0.0.1:8080"), None, true));
    }

    #[test]
    fn only_loopback_names_are_loopback_hosts() {
        for host in [
            "127.0.0.1:8080",
            "127.0.0.2",
            "localhost:8080",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(loopback_host(Some(host)), "{host}");
        }
        for host in [
            "evil.example:8080",
            "10.0.0.1:8080",
            "0.0.0.0:80",
            "[::2]:1",
            "",
        ] {
            assert!(!loopback_host(Some(host)), "{host}");
        }
        assert!(!loopback_host(None));
    }

    #[test]
    fn hex_goes_both_ways_and_refuses_what_is_not() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000fff"), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é0"), None);
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
