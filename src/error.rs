//! The errors `lab` reports to people: each one says what happened, to which object, and what to
//! do next, in one paragraph. Nothing here is ever shown as a Debug dump.

/// Everything that can stop a `lab` command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Docker Engine cannot be reached at all; the text says why and how to fix it.
    #[error("{0}")]
    DockerUnavailable(String),

    /// The Engine answered a request with an error.
    #[error("Docker could not {action}: {message}")]
    Docker { action: String, message: String },

    /// The user asked for something that cannot be done as asked; the text says what to change.
    #[error("{0}")]
    Invalid(String),

    /// Something went wrong while doing what was asked; the text says what and where to look.
    #[error("{0}")]
    Failed(String),

    /// The lab image is not on this engine.
    #[error(
        "the lab image {image} is not on this Docker Engine. Build it with `lab image build` \
         (about two minutes, once), or name another image with --image."
    )]
    ImageMissing { image: String },

    /// Building the lab image failed.
    #[error("the image build failed while {step}: {message}")]
    ImageBuild { step: String, message: String },

    /// A bootstrap stage did not reach its goal on a node.
    #[error("{stage} failed on {node}: {message}{}", log_section(log))]
    Stage {
        stage: String,
        node: String,
        message: String,
        log: Option<(String, String)>,
    },

    /// A local file or program could not be used.
    #[error("could not {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },

    /// Another command is changing the lab; the text names it and says how to wait for it.
    #[error("{0}")]
    Busy(String),
    /// The user pressed Ctrl-C.
    #[error("interrupted by Ctrl-C")]
    Interrupted,

    /// The user pressed Ctrl-C, and the step in progress was finished first; the text says
    /// where the lab stands.
    #[error("interrupted by Ctrl-C after {0}")]
    InterruptedAfter(String),
}

fn log_section(log: &Option<(String, String)>) -> String {
    match log {
        Some((path, tail)) if !tail.trim().is_empty() => {
            format!("\n\nThe end of {path}:\n{}", tail.trim_end())
        }
        _ => String::new(),
    }
}

impl Error {
    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let action = action.into();
        move |source| Error::Io { action, source }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted | Error::InterruptedAfter(_) => 130,
            Error::Invalid(_) | Error::Busy(_) => 2,
            _ => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_errors_carry_the_log_tail() {
        let e = Error::Stage {
            stage: "etcd".into(),
            node: "pgha2".into(),
            message: "member did not become healthy within 30 s".into(),
            log: Some((
                "/var/log/etcd/etcd-standalone.log".into(),
                "line 1\nline 2\n".into(),
            )),
        };
        let text = e.to_string();
        assert!(text.starts_with("etcd failed on pgha2: member did not"));
        assert!(text.ends_with("The end of /var/log/etcd/etcd-standalone.log:\nline 1\nline 2"));
    }

    #[test]
    fn an_empty_log_tail_is_left_out() {
        let e = Error::Stage {
            stage: "patroni".into(),
            node: "pgha1".into(),
            message: "no primary".into(),
            log: Some(("/x".into(), " \n".into())),
        };
        assert_eq!(e.to_string(), "patroni failed on pgha1: no primary");
    }
}
