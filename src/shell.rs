//! Text for a POSIX shell: one word, whatever it holds, for the commands `lab` runs in a node
//! through bash and the ones it prints for a person to paste.

/// `text` in single quotes, as one shell word.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_text_is_one_word() {
        assert_eq!(quote("2026-12-03 12:34:56+00"), "'2026-12-03 12:34:56+00'");
        assert_eq!(quote("a'b"), r"'a'\''b'");
        assert_eq!(quote(""), "''");
    }
}
