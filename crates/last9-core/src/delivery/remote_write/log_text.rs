//! Text from the receiver (an error body, a transport error) made safe for the app's log.
//!
//! A receiver is another party: its answer may hold ANSI escapes or line breaks that forge log
//! lines, and one that echoes the request's headers hands back our credentials. So before
//! anything it says is logged: the configured secrets and anything shaped like credentials
//! (`Authorization: …`, `Bearer …`, `Basic …`) are replaced by `[redacted]`, control and
//! invisible formatting characters are escaped (`\u{1b}`, `\n`), and the result is cut to
//! [`MAX_LOGGED`] bytes.

/// Longest receiver text logged, in bytes after escaping.
pub const MAX_LOGGED: usize = 512;

const REDACTED: &str = "[redacted]";

/// `text` redacted, escaped and cut for a log line. `secrets` are the configured password,
/// bearer token and the base64 of basic auth's `user:password`, each redacted wherever it shows.
pub fn loggable(text: &str, secrets: &[String]) -> String {
    let mut text = text.trim().to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), REDACTED);
    }
    let text = redact_credentials(&text);
    let mut out = String::with_capacity(text.len().min(MAX_LOGGED) + 16);
    for c in text.chars() {
        let start = out.len();
        if c.is_control() || is_invisible_format(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        if out.len() > MAX_LOGGED {
            out.truncate(start);
            out.push_str("… (cut)");
            break;
        }
    }
    out
}

/// Characters that change how a terminal or viewer shows the text around them (bidi
/// overrides, zero-width marks, line and paragraph separators).
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
}

/// Replaces what follows `Authorization` (to the end of its line) and the token after `Bearer`
/// or `Basic` (any case) with `[redacted]`.
fn redact_credentials(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        let found = ["authorization", "bearer", "basic"]
            .iter()
            .filter_map(|word| lower[at..].find(word).map(|i| (at + i, word.len())))
            .min();
        let Some((start, len)) = found else { break };
        let word_end = start + len;
        let rest = &text[word_end..];
        let value_end = if lower[start..].starts_with("authorization") {
            // `Authorization: Basic …`, `"authorization":"…"`: the rest of the line.
            word_end + rest.find(['\n', '\r']).unwrap_or(rest.len())
        } else {
            // `Bearer abc`, `Basic abc=`: the next word (separated by spaces).
            let spaces = rest.len() - rest.trim_start_matches([' ', '\t']).len();
            if spaces == 0 {
                out.push_str(&text[at..word_end]);
                at = word_end;
                continue;
            }
            let token = &rest[spaces..];
            word_end
                + spaces
                + token
                    .find(|c: char| c.is_whitespace() || c == '"' || c == ',')
                    .unwrap_or(token.len())
        };
        out.push_str(&text[at..word_end]);
        if value_end > word_end {
            out.push(' ');
            out.push_str(REDACTED);
        }
        at = value_end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let logged = loggable("bad\x1b[31m red\r\nlast9: forged line\u{202e}", &[]);
        assert_eq!(logged, "bad\\u{1b}[31m red\\r\\nlast9: forged line\\u{202e}");
    }

    #[test]
    fn echoed_credentials_are_redacted() {
        let secrets = ["dXNlcjpwYXNz".to_string(), "pass".to_string()];
        let body = "bad request; you sent Authorization: Basic dXNlcjpwYXNz\nand bearer  abc.def-ghi, \
                    BASIC Zm9v and {\"authorization\":\"Bearer xyz\"} and pass";
        let logged = loggable(body, &secrets);
        for secret in ["dXNlcjpwYXNz", "abc.def", "Zm9v", "xyz", "pass"] {
            assert!(!logged.contains(secret), "{secret} in {logged}");
        }
        assert!(
            logged.starts_with("bad request; you sent Authorization [redacted]\\nand bearer [redacted],"),
            "{logged}"
        );
    }

    #[test]
    fn words_that_merely_contain_the_keywords_stay() {
        assert_eq!(loggable("basically fine", &[]), "basically fine");
        assert_eq!(loggable("unknown series", &[]), "unknown series");
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let logged = loggable(&"é\x07".repeat(1000), &[]);
        assert!(logged.len() <= MAX_LOGGED + "… (cut)".len());
        assert!(logged.ends_with("… (cut)"));
    }
}
