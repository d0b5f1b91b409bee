//! A lazily edited copy of a string, shared by the path and route rewriting.

use std::borrow::Cow;

/// Builds an edited copy of `src` lazily: nothing is allocated until a replacement actually
/// changes the text, so input already in normal form comes back borrowed.
pub(super) struct Rewriter<'a> {
    src: &'a str,
    out: Option<String>,
    /// `src[..copied]` has been dealt with (copied or replaced) in `out`.
    copied: usize,
}

impl<'a> Rewriter<'a> {
    pub(super) fn new(src: &'a str) -> Self {
        Rewriter {
            src,
            out: None,
            copied: 0,
        }
    }

    /// Replaces `src[start..end]` by the concatenation of `pieces`. Calls must come in
    /// increasing, non-overlapping order, at char boundaries.
    pub(super) fn replace(&mut self, start: usize, end: usize, pieces: &[&str]) {
        // Callers only pass offsets of ASCII delimiters; `get` keeps a mistake from panicking.
        let Some(old) = self.src.get(start..end) else {
            return;
        };
        if self.out.is_none() && concat_equals(old, pieces) {
            return;
        }
        let src = self.src;
        let out = self
            .out
            .get_or_insert_with(|| String::with_capacity(src.len() + 8));
        out.push_str(src.get(self.copied..start).unwrap_or(""));
        for piece in pieces {
            out.push_str(piece);
        }
        self.copied = end;
    }

    /// Replaces `src[start..end]` by `{name}`.
    pub(super) fn param(&mut self, start: usize, end: usize, name: &str) {
        self.replace(start, end, &["{", name, "}"]);
    }

    /// Replaces `src[start..end]` by `{argN}` for the next anonymous parameter.
    pub(super) fn anonymous_param(&mut self, start: usize, end: usize, counter: &mut usize) {
        let number = counter.to_string();
        *counter += 1;
        self.replace(start, end, &["{arg", &number, "}"]);
    }

    pub(super) fn finish(self) -> Cow<'a, str> {
        match self.out {
            None => Cow::Borrowed(self.src),
            Some(mut out) => {
                out.push_str(self.src.get(self.copied..).unwrap_or(""));
                Cow::Owned(out)
            }
        }
    }
}

fn concat_equals(text: &str, pieces: &[&str]) -> bool {
    let mut rest = text;
    for piece in pieces {
        match rest.strip_prefix(piece) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    rest.is_empty()
}
