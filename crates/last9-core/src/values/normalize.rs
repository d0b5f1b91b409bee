//! Turning request data into bounded, low-cardinality label values.
//!
//! Route templates are rewritten from each framework's own syntax into one `{param}` form, raw
//! paths of apps without a router have their ids collapsed, and the Host header and method are
//! reduced to a small set of plausible values. Every function here takes arbitrary text from a
//! client, so none of them may panic, and each returns its input borrowed when it is already in
//! normal form so the hot path does not allocate.

use std::borrow::Cow;

/// How a framework spells route parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteSyntax {
    /// `<name>`, `<conv:name>`, `<conv(args):name>`: Flask/Werkzeug, Django path().
    Angle,
    /// `<name>`, `<name:filter>`, `<name:filter:config>` and legacy `:name`: Bottle.
    AngleNameFirst,
    /// `{name}`, `{name:anything}`, `{name:int(min=1)}`, Pyramid `*stararg`: Starlette, FastAPI, Falcon, Pyramid.
    Brace,
    /// A regular expression: Tornado, Django re_path(). Named groups `(?P<name>..)` → `{name}`,
    /// unnamed capturing groups → `{arg0}`, `{arg1}`, … in order of appearance.
    Regex,
    /// Django's `ResolverMatch.route`: path() pieces (`<int:id>`) and re_path() regexes, joined
    /// by `include()` into one string without a leading `/` (`api/<int:v>/archive/(?P<y>\d+)/$`).
    Django,
}

/// Converts a route template in a framework's own syntax into `{param}` form:
/// `/name/<name>` → `/name/{name}`, `/item/<int:id>` → `/item/{id}`, Bottle `/x/<id:int>` → `/x/{id}`,
/// `/u/{id:int}` → `/u/{id}`, Pyramid `/static/*subpath` → `/static/{subpath}` (and Pyramid's
/// relative `api/items/{id}` → `/api/items/{id}`: brace templates always start with `/`),
/// regex `^/user/(?P<uid>[0-9]+)/posts/([a-z]+)/?$` → `/user/{uid}/posts/{arg0}/`.
///
/// For regexes: anchors (`^ $ \A \Z \z \b`) are dropped, escaped punctuation (`\.` `\/` `\-`) is
/// unescaped, a `?` after a literal is dropped, quantifiers after a group are dropped,
/// non-capturing groups `(?:...)` are replaced by their converted content, lookarounds, inline
/// flags and comments are dropped; anything else (classes, `\d`, `.*`) is kept literally. This is
/// best effort, but always some string, never a panic.
///
/// Bottle's anonymous wildcards (`<>`, `<:re:...>`) become `{arg0}`, `{arg1}`, … like unnamed
/// regex groups.
///
/// Django routes get both treatments and a leading `/`:
/// `api/<int:v>/archive/(?P<year>[0-9]{4})/$` → `/api/{v}/archive/{year}/`.
///
/// Returns Borrowed when nothing changes. Malformed input (an unclosed `<`, `{` or `(`) is returned
/// with the unclosed part kept literally.
pub fn route_template(raw: &str, syntax: RouteSyntax) -> Cow<'_, str> {
    match syntax {
        RouteSyntax::Angle => angle_template(raw),
        RouteSyntax::AngleNameFirst => bottle_template(raw),
        RouteSyntax::Brace => brace_template(raw),
        RouteSyntax::Regex => regex_template(raw),
        RouteSyntax::Django => django_template(raw),
    }
}

/// Segments of a raw path kept before the rest is folded into `/{rest}`.
const MAX_SEGMENTS: usize = 16;

/// Segments longer than this are never meaningful words, whatever they contain.
const MAX_SEGMENT_LEN: usize = 64;

/// For apps with no router: a raw URL path with ids collapsed so that `/user/123` and `/user/456` give one value.
///
/// Per `/`-separated segment (empty segments and a trailing slash are kept as they are):
/// - all ASCII digits, or an integer with sign or a decimal number (`-5`, `3.14`) → `{id}`;
/// - a UUID (8-4-4-4-12 hex, any case, optionally in braces) → `{uuid}`;
/// - an ISO date `2024-01-02` (optionally followed by a `T…` time) → `{date}`;
/// - hex of 16+ chars, or hex of 8+ chars containing at least one digit → `{hex}`;
/// - a token of 20+ chars from the base64/base64url alphabet (`A-Za-z0-9+/=_-`, also `.` for
///   JWT-like) that mixes letters and digits → `{token}`;
/// - a segment containing `@` → `{id}`;
/// - any other segment longer than 64 bytes → `{token}`;
/// - anything else (words like `users`, `v2`, `api`, `static`, `favicon.ico`) kept as is.
///
/// Bounds: at most 16 segments are kept; deeper paths end in `/{rest}`. Control characters (C0,
/// DEL and C1) are replaced by `_` before a segment is classified. A query string or fragment (from the first `?` or `#`) is dropped.
/// The result always starts with `/`: an empty path gives `/`, a path not starting with `/` gets
/// one prepended (`*` for OPTIONS → `/*`).
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    // The query string is never part of the route, and is the easiest way to explode cardinality.
    let path = match path.find(['?', '#']) {
        Some(end) => &path[..end],
        None => path,
    };
    if path.is_empty() {
        return Cow::Borrowed("/");
    }
    let mut rw = Rewriter::new(path);
    let mut start = match path.strip_prefix('/') {
        Some(_) => 1,
        None => {
            rw.replace(0, 0, &["/"]);
            0
        }
    };
    let mut index = 0;
    loop {
        let end = path[start..].find('/').map_or(path.len(), |i| start + i);
        let segment = &path[start..end];
        if index == MAX_SEGMENTS {
            let trailing_slash = segment.is_empty() && end == path.len();
            if !trailing_slash {
                // `start > 0` here: MAX_SEGMENTS segments and their slashes come before it.
                rw.replace(start - 1, path.len(), &["/{rest}"]);
            }
            break;
        }
        if segment.chars().any(char::is_control) {
            // Classify the cleaned text, so normalising twice gives the same result.
            let clean: String = segment
                .chars()
                .map(|c| if c.is_control() { '_' } else { c })
                .collect();
            let placeholder = classify_segment(&clean);
            rw.replace(start, end, &[placeholder.unwrap_or(&clean)]);
        } else if let Some(placeholder) = classify_segment(segment) {
            rw.replace(start, end, &[placeholder]);
        }
        if end == path.len() {
            break;
        }
        start = end + 1;
        index += 1;
    }
    rw.finish()
}

/// The `domain` label from a Host header (or SERVER_NAME): lower-cased, port dropped (`Example.COM:8080` →
/// `example.com`; `[::1]:8000` → `[::1]`), a trailing dot dropped. Returns None when the value is not a plausible host
/// name (empty after trimming, longer than 253 bytes, characters outside `a-z0-9.-_` for names or outside hex/`:`/`.`
/// inside IPv6 brackets, no letter or digit at all, a non-numeric port): the caller then counts it under one fixed
/// value.
pub fn normalize_host(host: &str) -> Option<Cow<'_, str>> {
    let host = host.trim();
    let (name, port) = if host.starts_with('[') {
        let close = host.find(']')?;
        (&host[..=close], &host[close + 1..])
    } else {
        match host.find(':') {
            Some(colon) => (&host[..colon], &host[colon..]),
            None => (host, ""),
        }
    };
    if !port.is_empty() && !port.strip_prefix(':')?.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let plausible = if let Some(inner) = name.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        inner
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    };
    if !plausible || name.len() > 253 || !name.bytes().any(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(name.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(name))
    }
}

/// The `method` label: one of the nine standard methods exactly as sent (`GET`, `HEAD`, `POST`, `PUT`, `DELETE`,
/// `CONNECT`, `OPTIONS`, `TRACE`, `PATCH`), anything else (including lower-case `get`) → `_OTHER`.
pub fn normalize_method(method: &str) -> &'static str {
    METHODS[method_index(method)]
}

/// The nine standard methods, then the value every other method is counted under.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];

/// The position of a method's label value in [`METHODS`].
#[inline]
pub fn method_index(method: &str) -> usize {
    METHODS[..9].iter().position(|m| *m == method).unwrap_or(9)
}

/// Builds an edited copy of `src` lazily: nothing is allocated until a replacement actually
/// changes the text, so input already in normal form comes back borrowed.
struct Rewriter<'a> {
    src: &'a str,
    out: Option<String>,
    /// `src[..copied]` has been dealt with (copied or replaced) in `out`.
    copied: usize,
}

impl<'a> Rewriter<'a> {
    fn new(src: &'a str) -> Self {
        Rewriter {
            src,
            out: None,
            copied: 0,
        }
    }

    /// Replaces `src[start..end]` by the concatenation of `pieces`. Calls must come in
    /// increasing, non-overlapping order, at char boundaries.
    fn replace(&mut self, start: usize, end: usize, pieces: &[&str]) {
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
    fn param(&mut self, start: usize, end: usize, name: &str) {
        self.replace(start, end, &["{", name, "}"]);
    }

    /// Replaces `src[start..end]` by `{argN}` for the next anonymous parameter.
    fn anonymous_param(&mut self, start: usize, end: usize, counter: &mut usize) {
        let number = counter.to_string();
        *counter += 1;
        self.replace(start, end, &["{arg", &number, "}"]);
    }

    fn finish(self) -> Cow<'a, str> {
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

/// Byte length of the identifier (`[A-Za-z_][A-Za-z0-9_]*`, Unicode letters allowed) at the
/// start of `s`; 0 when there is none.
fn ident_len(s: &str) -> usize {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, c)) if c.is_alphabetic() || c == '_' => {}
        _ => return 0,
    }
    chars
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
        .map_or(s.len(), |(i, _)| i)
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && ident_len(s) == s.len()
}

/// Flask/Werkzeug and Django path(): the parameter name is the last part.
fn angle_template(raw: &str) -> Cow<'_, str> {
    let mut rw = Rewriter::new(raw);
    let mut from = 0;
    while let Some(offset) = raw[from..].find('<') {
        let open = from + offset;
        match parse_angle(raw, open) {
            Some((name, end)) => {
                rw.param(open, end, name);
                from = end;
            }
            // Not a parameter: the `<` is literal text.
            None => from = open + 1,
        }
    }
    rw.finish()
}

/// Parses `<name>`, `<conv:name>` or `<conv(args):name>` at `open`; returns the name and the
/// offset just past `>`.
fn parse_angle(raw: &str, open: usize) -> Option<(&str, usize)> {
    let inner = &raw[open + 1..];
    let first = ident_len(inner);
    if first == 0 {
        return None;
    }
    let mut name = &inner[..first];
    let mut rest = &inner[first..];
    if let Some(args) = rest.strip_prefix('(') {
        // Werkzeug ends the arguments at the first `):`, whatever they contain.
        let close = args.find("):")?;
        rest = &args[close + 1..];
    }
    if let Some(after) = rest.strip_prefix(':') {
        let len = ident_len(after);
        if len == 0 {
            return None;
        }
        name = &after[..len];
        rest = &after[len..];
    }
    rest.starts_with('>').then(|| (name, raw.len() - rest.len() + 1))
}

/// Django: the regex parts (from re_path()) are converted first, then the `<conv:name>` parts
/// (from path()), and a leading `/` is added (`articles/<int:year>/` → `/articles/{year}/`).
///
/// A route goes through the regex pass only when it holds `^ $ ( \ ?`: re_path() regexes almost
/// always do, and path() routes almost never (Django's check `urls.W001` flags a path() route
/// with `(?P<`, a leading `^` or a trailing `$`), so a literal `.` or `+` of a path() route stays.
fn django_template(raw: &str) -> Cow<'_, str> {
    let unregexed = if raw.contains(['^', '$', '(', '\\', '?']) {
        regex_template(raw)
    } else {
        Cow::Borrowed(raw)
    };
    let angled = match angle_template(&unregexed) {
        Cow::Owned(converted) => Some(converted),
        Cow::Borrowed(_) => None,
    };
    let converted = match angled {
        Some(converted) => Cow::Owned(converted),
        None => unregexed,
    };
    if converted.starts_with('/') {
        return converted;
    }
    let mut rooted = String::with_capacity(converted.len() + 1);
    rooted.push('/');
    rooted.push_str(&converted);
    Cow::Owned(rooted)
}

/// Bottle: `<name:filter:config>` with the name first, legacy `:name`, and `\` escaping both.
fn bottle_template(raw: &str) -> Cow<'_, str> {
    let mut rw = Rewriter::new(raw);
    let mut anonymous = 0;
    let last_close = raw.rfind('>');
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if matches!(bytes.get(i + 1), Some(b'<' | b':')) => {
                rw.replace(i, i + 2, &[&raw[i + 1..i + 2]]);
                i += 2;
            }
            b'<' => match parse_bottle_angle(raw, i) {
                Some((name, end)) => {
                    if name.is_empty() {
                        rw.anonymous_param(i, end, &mut anonymous);
                    } else {
                        rw.param(i, end, name);
                    }
                    i = end;
                }
                // Unclosed: the rest is kept literally, legacy `:name` included.
                None if !matches!(last_close, Some(close) if close > i) => break,
                None => i += 1,
            },
            b':' => {
                let len = ident_len(&raw[i + 1..]);
                if len == 0 {
                    // A bare colon is kept literally, e.g. `/time/12:30`.
                    i += 1;
                    continue;
                }
                let name = &raw[i + 1..i + 1 + len];
                let mut end = i + 1 + len;
                // Legacy syntax may carry a regex: `:name#[0-9]+#`.
                if raw[end..].starts_with('#') {
                    if let Some(close) = raw[end + 1..].find('#') {
                        end += close + 2;
                    }
                }
                rw.param(i, end, name);
                i = end;
            }
            _ => i += 1,
        }
    }
    rw.finish()
}

/// Parses Bottle's `<name>`, `<name:filter>` or `<name:filter:config>` (name may be empty) at
/// `open`; returns the name and the offset just past `>`.
fn parse_bottle_angle(raw: &str, open: usize) -> Option<(&str, usize)> {
    let inner = &raw[open + 1..];
    let len = ident_len(inner);
    let name = &inner[..len];
    let mut rest = &inner[len..];
    if let Some(after) = rest.strip_prefix(':') {
        let filter_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphabetic() || *b == b'_')
            .count();
        rest = &after[filter_len..];
        if let Some(config) = rest.strip_prefix(':') {
            // The config runs to the first `>` not escaped by a backslash.
            let mut chars = config.char_indices();
            let mut close = None;
            while let Some((j, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '>' => {
                        close = Some(j);
                        break;
                    }
                    _ => {}
                }
            }
            rest = &config[close?..];
        }
    }
    rest.starts_with('>').then(|| (name, raw.len() - rest.len() + 1))
}

/// Starlette, FastAPI, Falcon and Pyramid: `{name...}` plus Pyramid's trailing `*name`.
fn brace_template(raw: &str) -> Cow<'_, str> {
    let mut rw = Rewriter::new(raw);
    if !raw.starts_with('/') {
        // Pyramid keeps patterns as written, and strips the slashes off a route prefix:
        // `config.add_route("x", "items/{id}")` or `route_prefix="api"` give `api/items/{id}`.
        rw.replace(0, 0, &["/"]);
    }
    let star = pyramid_star(raw);
    let body_end = star.unwrap_or(raw.len());
    let mut from = 0;
    while let Some(offset) = raw[from..body_end].find('{') {
        let open = from + offset;
        // Unclosed: the rest is kept literally.
        let Some(close) = matching_brace(&raw[..body_end], open) else {
            break;
        };
        let inner = &raw[open + 1..close];
        let name = inner.split(':').next().unwrap_or("").trim();
        if is_ident(name) {
            rw.param(open, close + 1, name);
        }
        from = close + 1;
    }
    if let Some(star) = star {
        rw.param(star, raw.len(), &raw[star + 1..]);
    }
    rw.finish()
}

/// Offset of a trailing `*name` (Pyramid's "match the rest of the path").
fn pyramid_star(raw: &str) -> Option<usize> {
    let star = raw.rfind('*')?;
    is_ident(&raw[star + 1..]).then_some(star)
}

/// Offset of the `}` closing the `{` at `open`, counting nested braces (Pyramid's `{id:\d{4}}`).
fn matching_brace(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in s.bytes().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// What an open regex group becomes when it closes.
enum GroupKind<'a> {
    /// Replaced by `{name}` or `{argN}`.
    Capture(Option<&'a str>),
    /// Replaced by its converted content.
    Inline,
    /// Dropped with its content: lookarounds, backreferences.
    Drop,
}

struct Group<'a> {
    kind: GroupKind<'a>,
    /// Offset of the `(` in the regex.
    raw_start: usize,
    /// Length of the output when the group opened.
    out_start: usize,
}

/// Tornado and Django re_path(): a single pass with a stack of open groups (no recursion, so
/// deep nesting cannot overflow the stack).
fn regex_template(raw: &str) -> Cow<'_, str> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut groups: Vec<Group<'_>> = Vec::new();
    // Open groups whose output will be thrown away; captures inside them get no number.
    let mut hidden = 0usize;
    let mut anonymous = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i = push_escape(raw, i, &mut out),
            b'[' => {
                let end = class_end(bytes, i).unwrap_or(bytes.len());
                out.push_str(&raw[i..end]);
                i = end;
            }
            b'(' if raw[i..].starts_with("(?#") => {
                // A comment ends at the first `)`; unclosed, it is kept literally.
                match raw[i..].find(')') {
                    Some(close) => i += close + 1,
                    None => {
                        out.push_str(&raw[i..]);
                        i = bytes.len();
                    }
                }
            }
            b'(' => {
                let (kind, body) = group_opener(raw, i);
                match kind {
                    None => {} // inline flags like `(?i)`
                    Some(kind) => {
                        if !matches!(kind, GroupKind::Inline) {
                            hidden += 1;
                        }
                        groups.push(Group {
                            kind,
                            raw_start: i,
                            out_start: out.len(),
                        });
                    }
                }
                i = body;
            }
            b')' if !groups.is_empty() => {
                if let Some(group) = groups.pop() {
                    match group.kind {
                        GroupKind::Inline => {}
                        GroupKind::Drop => {
                            hidden -= 1;
                            out.truncate(group.out_start);
                        }
                        GroupKind::Capture(name) => {
                            hidden -= 1;
                            out.truncate(group.out_start);
                            if hidden == 0 {
                                push_capture(&mut out, name, &mut anonymous);
                            }
                        }
                    }
                }
                i = skip_quantifier(bytes, i + 1);
            }
            // Anchors, and `?` after a literal (`/?$`): the template shows the literal.
            b'^' | b'$' | b'?' => i += 1,
            _ => {
                let len = raw[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&raw[i..i + len]);
                i += len;
            }
        }
    }
    if let Some(unclosed) = groups.first() {
        out.truncate(unclosed.out_start);
        out.push_str(&raw[unclosed.raw_start..]);
    }
    if out == raw {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(out)
    }
}

fn push_capture(out: &mut String, name: Option<&str>, anonymous: &mut usize) {
    out.push('{');
    match name {
        Some(name) => out.push_str(name),
        None => {
            out.push_str("arg");
            out.push_str(&anonymous.to_string());
            *anonymous += 1;
        }
    }
    out.push('}');
}

/// Classifies the group opening at `open`; returns its kind (None for inline flags, which
/// vanish) and the offset where its body starts.
fn group_opener(raw: &str, open: usize) -> (Option<GroupKind<'_>>, usize) {
    let Some(ext) = raw[open + 1..].strip_prefix('?') else {
        return (Some(GroupKind::Capture(None)), open + 1);
    };
    let after = |rest: &str| raw.len() - rest.len();
    if let Some(rest) = ext
        .strip_prefix("P<")
        .or_else(|| ext.strip_prefix('<').filter(|r| ident_len(r) > 0))
    {
        let len = ident_len(rest);
        return match rest[len..].strip_prefix('>') {
            Some(body) if len > 0 => (Some(GroupKind::Capture(Some(&rest[..len]))), after(body)),
            // A malformed name: still a capture, its content is dropped anyway.
            _ => (Some(GroupKind::Capture(None)), after(rest)),
        };
    }
    for prefix in ["=", "!", "<=", "<!", "P="] {
        if let Some(body) = ext.strip_prefix(prefix) {
            return (Some(GroupKind::Drop), after(body));
        }
    }
    // Flags: `(?i)` vanishes, `(?i:...)` is a non-capturing group.
    let flags = ext
        .bytes()
        .take_while(|b| b.is_ascii_alphabetic() || *b == b'-')
        .count();
    let rest = &ext[flags..];
    if let Some(body) = rest.strip_prefix(')') {
        return (None, after(body));
    }
    if let Some(body) = rest.strip_prefix(':') {
        return (Some(GroupKind::Inline), after(body));
    }
    // Anything else (`(?>`, `(?(1)`): treat as non-capturing, best effort.
    (Some(GroupKind::Inline), after(ext))
}

/// Handles the escape at `i` and returns the offset after it.
fn push_escape(raw: &str, i: usize, out: &mut String) -> usize {
    let Some(c) = raw[i + 1..].chars().next() else {
        out.push('\\');
        return i + 1;
    };
    let end = i + 1 + c.len_utf8();
    match c {
        // Zero-width assertions.
        'A' | 'Z' | 'z' | 'b' | 'B' | 'G' => {}
        // Escaped punctuation is just the character.
        c if c.is_ascii_punctuation() => out.push(c),
        // Classes like `\d` and anything else: kept as written.
        _ => out.push_str(&raw[i..end]),
    }
    end
}

/// Offset just past the `]` closing the character class at `open`.
fn class_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut j = open + 1;
    if bytes.get(j) == Some(&b'^') {
        j += 1;
    }
    // A `]` first in the class is literal.
    if bytes.get(j) == Some(&b']') {
        j += 1;
    }
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b']' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// Skips a quantifier (`*`, `+`, `?`, `{m,n}`, with a lazy `?` or possessive `+`) at `i`.
fn skip_quantifier(bytes: &[u8], i: usize) -> usize {
    let end = match bytes.get(i) {
        Some(b'*' | b'+' | b'?') => i + 1,
        Some(b'{') => {
            let len = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit() || **b == b',')
                .count();
            if len > 0 && bytes.get(i + 1 + len) == Some(&b'}') {
                i + len + 2
            } else {
                return i;
            }
        }
        _ => return i,
    };
    match bytes.get(end) {
        Some(b'?' | b'+') => end + 1,
        _ => end,
    }
}

/// The placeholder replacing a path segment, or None to keep it.
fn classify_segment(segment: &str) -> Option<&'static str> {
    if segment.is_empty() {
        None
    } else if is_number(segment) || segment.contains('@') {
        Some("{id}")
    } else if is_uuid(segment) {
        Some("{uuid}")
    } else if is_date(segment) {
        Some("{date}")
    } else if is_hex_id(segment) {
        Some("{hex}")
    } else if is_token(segment) || segment.len() > MAX_SEGMENT_LEN {
        Some("{token}")
    } else {
        None
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `123`, `-5`, `+7`, `3.14`, `-0.5`.
fn is_number(s: &str) -> bool {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    match unsigned.split_once('.') {
        Some((whole, fraction)) => is_digits(whole) && is_digits(fraction),
        None => is_digits(unsigned),
    }
}

/// 8-4-4-4-12 hex digits, any case, optionally in braces.
fn is_uuid(s: &str) -> bool {
    let s = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')).unwrap_or(s);
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// `2024-01-02`, optionally followed by a time such as `T10:20:30.5+02:00`.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 10 {
        return false;
    }
    let (date, time) = b.split_at(10);
    let shape = date.iter().enumerate().all(|(i, &c)| match i {
        4 | 7 => c == b'-',
        _ => c.is_ascii_digit(),
    });
    if !shape {
        return false;
    }
    let two_digits = |i: usize| (date[i] - b'0') * 10 + (date[i + 1] - b'0');
    let time_ok = match time {
        [] => true,
        [b'T', first, rest @ ..] => {
            first.is_ascii_digit() && rest.iter().all(|c| c.is_ascii_digit() || b":.,+-Z".contains(c))
        }
        _ => false,
    };
    (1..=12).contains(&two_digits(5)) && (1..=31).contains(&two_digits(8)) && time_ok
}

/// Hex of 16+ chars, or of 8+ chars with a digit (so words like `deadbeef` or `facade` stay).
fn is_hex_id(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
        && (s.len() >= 16 || (s.len() >= 8 && s.bytes().any(|b| b.is_ascii_digit())))
}

/// Base64, base64url or JWT-like text of 20+ chars mixing letters and digits (so long slugs of
/// plain words stay).
fn is_token(s: &str) -> bool {
    s.len() >= 20
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=_-.".contains(&b))
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && s.bytes().any(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn route(raw: &str, syntax: RouteSyntax) -> String {
        route_template(raw, syntax).into_owned()
    }

    /// A small deterministic generator, so failures reproduce.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn string(&mut self, alphabet: &[char], len: usize) -> String {
            (0..len).map(|_| alphabet[self.below(alphabet.len())]).collect()
        }
    }

    const HOSTILE_ALPHABET: &[char] = &[
        '/', '/', 'a', 'Z', '0', '9', '<', '>', '{', '}', '(', ')', '[', ']', '\\', ':', '?', '*', '+', '^',
        '$', '#', '|', '.', '-', '_', '@', '=', 'P', '\u{0}', '\u{7f}', '\u{85}', 'é', '☃', '🦀', ' ', '\n',
        '%',
    ];

    fn hostile_inputs() -> Vec<String> {
        let mut inputs: Vec<String> = [
            "",
            "/",
            "<",
            ">",
            "{",
            "}",
            "(",
            ")",
            "[",
            "]",
            "\\",
            ":",
            "*",
            "?",
            "(?",
            "(?P",
            "(?P<",
            "(?P<a",
            "(?P<a>",
            "(?#",
            "[^",
            "[]",
            "<:",
            "<a:",
            "<a:b:",
            "<a:b:\\",
            "{:}",
            "{{}}",
            "\u{0}\u{7f}é",
            "/\u{0}/\u{7f}/é",
            "\\é",
            "(?P<é>x)",
            "<é>",
            "{é}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for piece in [
            "<", "(", "{", "[", "\\", ")", "}", "/", "(?:", "(?P<x>", ":a", "<a(", "<>", "()",
        ] {
            inputs.push(piece.repeat(10_000 / piece.len()));
        }
        inputs.push("/".repeat(10_000));
        inputs.push(format!("{}>", "<".repeat(10_000)));
        inputs.push(format!("/{}", "é".repeat(5_000)));
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        for _ in 0..1000 {
            let len = rng.below(40);
            inputs.push(rng.string(HOSTILE_ALPHABET, len));
        }
        inputs
    }

    // route_template: Angle (Flask/Werkzeug, Django path())

    #[test]
    fn angle_parameters_become_braces() {
        let a = RouteSyntax::Angle;
        assert_eq!(route("/name/<name>", a), "/name/{name}");
        assert_eq!(route("/name/<int:name>", a), "/name/{name}");
        assert_eq!(route("/item/<int:id>", a), "/item/{id}");
        assert_eq!(route("/files/<path:rest>", a), "/files/{rest}");
        assert_eq!(route("/<lang>/<slug:slug>/", a), "/{lang}/{slug}/");
        assert_eq!(
            route("articles/<int:year>/<int:month>/", a),
            "articles/{year}/{month}/"
        );
    }

    #[test]
    fn angle_converter_arguments_are_skipped() {
        let a = RouteSyntax::Angle;
        assert_eq!(route("/p/<any(about, help):page>", a), "/p/{page}");
        assert_eq!(route("/n/<int(min=1, max=9):n>", a), "/n/{n}");
        assert_eq!(route(r#"/c/<regex("[a-z]{3}>"):code>/x"#, a), "/c/{code}/x");
    }

    #[test]
    fn angle_unchanged_template_is_borrowed() {
        let result = route_template("/static/about", RouteSyntax::Angle);
        assert!(matches!(result, Cow::Borrowed(_)));
        let result = route_template("/u/{id}", RouteSyntax::Angle);
        assert!(matches!(result, Cow::Borrowed(_)));
    }

    #[test]
    fn angle_malformed_parts_stay_literal() {
        let a = RouteSyntax::Angle;
        assert_eq!(route("/a/<id", a), "/a/<id");
        assert_eq!(route("/a/<>", a), "/a/<>");
        assert_eq!(route("/a/<1x>", a), "/a/<1x>");
        assert_eq!(route("/a<b/<id>", a), "/a<b/{id}");
        assert_eq!(route("/a/<int:>", a), "/a/<int:>");
        assert_eq!(route("/a/<f(x:id>", a), "/a/<f(x:id>");
    }

    // route_template: AngleNameFirst (Bottle)

    #[test]
    fn bottle_name_comes_first() {
        let b = RouteSyntax::AngleNameFirst;
        assert_eq!(route("/x/<id:int>", b), "/x/{id}");
        assert_eq!(route("/hello/<name>", b), "/hello/{name}");
        assert_eq!(route("/static/<filepath:path>", b), "/static/{filepath}");
        assert_eq!(route("/r/<code:re:[a-z]{3}>/x", b), "/r/{code}/x");
        assert_eq!(route(r"/r/<code:re:a\>b>/x", b), "/r/{code}/x");
        assert_eq!(route("/r/<v:float:>", b), "/r/{v}");
    }

    #[test]
    fn bottle_legacy_colon_names() {
        let b = RouteSyntax::AngleNameFirst;
        assert_eq!(route("/object/:id", b), "/object/{id}");
        assert_eq!(route("/object/:id/edit", b), "/object/{id}/edit");
        assert_eq!(route("/object/:id#[0-9]+#/edit", b), "/object/{id}/edit");
        assert_eq!(route("/time/12:30", b), "/time/12:30");
    }

    #[test]
    fn bottle_anonymous_wildcards_are_numbered() {
        let b = RouteSyntax::AngleNameFirst;
        assert_eq!(route("/a/<>/b/<:re:[0-9]+>", b), "/a/{arg0}/b/{arg1}");
    }

    #[test]
    fn bottle_escapes_are_literal() {
        let b = RouteSyntax::AngleNameFirst;
        assert_eq!(route(r"/a\:b/\<c>", b), "/a:b/<c>");
        assert_eq!(route(r"/a\b", b), r"/a\b");
    }

    #[test]
    fn bottle_unchanged_and_malformed() {
        let b = RouteSyntax::AngleNameFirst;
        assert!(matches!(route_template("/plain/path", b), Cow::Borrowed(_)));
        assert!(matches!(route_template("/u/{id}", b), Cow::Borrowed(_)));
        assert_eq!(route("/a/<id", b), "/a/<id");
        assert_eq!(route("/a/<id:re:[0-9]", b), "/a/<id:re:[0-9]");
    }

    // route_template: Brace (Starlette, FastAPI, Falcon, Pyramid)

    #[test]
    fn brace_converters_are_dropped() {
        let br = RouteSyntax::Brace;
        assert_eq!(route("/u/{id:int}", br), "/u/{id}");
        assert_eq!(route("/files/{path:path}", br), "/files/{path}");
        assert_eq!(route("/n/{n:int(min=1)}", br), "/n/{n}");
        assert_eq!(route(r"/y/{year:\d{4}}/{slug}", br), "/y/{year}/{slug}");
        assert_eq!(route("/f/{name}.{ext}", br), "/f/{name}.{ext}");
    }

    #[test]
    fn brace_already_normal_is_borrowed() {
        let result = route_template("/users/{user_id}/items/{item_id}", RouteSyntax::Brace);
        assert_eq!(result, "/users/{user_id}/items/{item_id}");
        assert!(matches!(result, Cow::Borrowed(_)));
        assert!(matches!(
            route_template("/", RouteSyntax::Brace),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn pyramid_star_matches_the_rest() {
        let br = RouteSyntax::Brace;
        assert_eq!(route("/static/*subpath", br), "/static/{subpath}");
        assert_eq!(route("/{a}/*rest", br), "/{a}/{rest}");
        assert_eq!(route("/static/*", br), "/static/*");
        assert_eq!(route("/a*b/c", br), "/a*b/c");
    }

    #[test]
    fn pyramid_relative_patterns_get_a_leading_slash() {
        let br = RouteSyntax::Brace;
        assert_eq!(route("api/items/{id:\\d+}", br), "/api/items/{id}");
        assert_eq!(route("static/*subpath", br), "/static/{subpath}");
        assert_eq!(route("", br), "/");
        assert_eq!(route("{a}", br), "/{a}");
    }

    #[test]
    fn brace_malformed_parts_stay_literal() {
        let br = RouteSyntax::Brace;
        assert_eq!(route("/u/{id", br), "/u/{id");
        assert_eq!(route("/u/{id:int}/{x", br), "/u/{id}/{x");
        assert_eq!(route("/u/{}", br), "/u/{}");
        assert_eq!(route("/u/{1}", br), "/u/{1}");
    }

    // route_template: Regex (Tornado, Django re_path())

    #[test]
    fn regex_groups_become_params() {
        let r = RouteSyntax::Regex;
        assert_eq!(
            route(r"^/user/(?P<uid>[0-9]+)/posts/([a-z]+)/?$", r),
            "/user/{uid}/posts/{arg0}/"
        );
        assert_eq!(route(r"/static/(.*)", r), "/static/{arg0}");
        assert_eq!(route(r"/(\w+)/(\d+)/(\d+)", r), "/{arg0}/{arg1}/{arg2}");
        assert_eq!(
            route(r"^articles/(?P<year>[0-9]{4})/(?P<slug>[\w-]+)/$", r),
            "articles/{year}/{slug}/"
        );
    }

    #[test]
    fn regex_anchors_and_escapes() {
        let r = RouteSyntax::Regex;
        assert_eq!(route(r"\A/a\.b\/c\-d\Z", r), "/a.b/c-d");
        assert_eq!(route(r"^/feed\.xml$", r), "/feed.xml");
        assert_eq!(route(r"^/x\b/y\z", r), "/x/y");
        assert_eq!(route(r"^/num/\d+$", r), r"/num/\d+");
    }

    #[test]
    fn regex_non_capturing_groups_keep_their_content() {
        let r = RouteSyntax::Regex;
        assert_eq!(route(r"^/(?:api)/v1$", r), "/api/v1");
        assert_eq!(route(r"^/list(?:/page)?/?$", r), "/list/page/");
        assert_eq!(route(r"^/a(?:/(?P<id>\d+))?$", r), "/a/{id}");
        assert_eq!(route(r"^/(?i:Hello)$", r), "/Hello");
    }

    #[test]
    fn regex_nested_captures_count_once() {
        let r = RouteSyntax::Regex;
        assert_eq!(route(r"^/(?P<a>(x|y)+)/(z)$", r), "/{a}/{arg0}");
        assert_eq!(route(r"^/((a)(b))/(c)$", r), "/{arg0}/{arg1}");
    }

    #[test]
    fn regex_quantifiers_after_groups_are_dropped() {
        let r = RouteSyntax::Regex;
        assert_eq!(
            route(r"^/(\d+)?/(x)*/(y){2,3}/(z)+?$", r),
            "/{arg0}/{arg1}/{arg2}/{arg3}"
        );
    }

    #[test]
    fn regex_lookarounds_flags_and_comments_vanish() {
        let r = RouteSyntax::Regex;
        assert_eq!(route(r"(?i)^/a(?=b)(?!c)(?<=a)(?<!z)/b$", r), "/a/b");
        assert_eq!(route(r"^/a(?#a comment (with parens)/b$", r), "/a/b");
        assert_eq!(route(r"^/a(?#comment)/b$", r), "/a/b");
        assert_eq!(route(r"^/(?P<x>a)/(?P=x)$", r), "/{x}/");
    }

    #[test]
    fn regex_escapes_and_classes_do_not_open_groups() {
        let r = RouteSyntax::Regex;
        assert_eq!(route(r"^/a\(b\)/([)(])$", r), "/a(b)/{arg0}");
        assert_eq!(route(r"^/[(]x[]]/$", r), "/[(]x[]]/");
        assert_eq!(route(r"^/([^]/]+)$", r), "/{arg0}");
    }

    #[test]
    fn regex_unclosed_parts_stay_literal() {
        let r = RouteSyntax::Regex;
        assert_eq!(route(r"^/a/(\d+", r), r"/a/(\d+");
        assert_eq!(route(r"^/a/(?:x(\d+)", r), r"/a/(?:x(\d+)");
        assert_eq!(route(r"^/a/[0-9", r), "/a/[0-9");
        assert_eq!(route(r"^/a)b$", r), "/a)b");
        assert_eq!(route(r"/a\", r), r"/a\");
    }

    #[test]
    fn regex_plain_text_is_borrowed() {
        let result = route_template("/plain/path", RouteSyntax::Regex);
        assert!(matches!(result, Cow::Borrowed(_)));
    }

    // route_template: Django (path() and re_path(), joined by include())

    #[test]
    fn django_path_routes_get_braces_and_a_leading_slash() {
        let d = RouteSyntax::Django;
        assert_eq!(route("", d), "/");
        assert_eq!(route("about/", d), "/about/");
        assert_eq!(route("name/<name>/", d), "/name/{name}/");
        assert_eq!(
            route("api/v1/users/<uuid:user_id>/orders/<int:order_id>/", d),
            "/api/v1/users/{user_id}/orders/{order_id}/"
        );
        assert_eq!(route("files/<path:subpath>", d), "/files/{subpath}");
        assert_eq!(route("<yyyy:year>/report.v2+final", d), "/{year}/report.v2+final");
        assert_eq!(route("/already/rooted/<slug:s>", d), "/already/rooted/{s}");
    }

    #[test]
    fn django_re_path_routes_are_regexes() {
        let d = RouteSyntax::Django;
        assert_eq!(
            route(r"^articles/(?P<year>[0-9]{4})/(?P<slug>[-\w]+)/$", d),
            "/articles/{year}/{slug}/"
        );
        assert_eq!(route(r"^$", d), "/");
        assert_eq!(route(r"^legacy/(\d+)/(\d+)/$", d), "/legacy/{arg0}/{arg1}/");
        assert_eq!(route(r"^feed\.xml$", d), "/feed.xml");
    }

    #[test]
    fn django_includes_mix_both_syntaxes() {
        let d = RouteSyntax::Django;
        // path() prefix, re_path() leaf: Django drops the leaf's `^` when it joins them.
        assert_eq!(
            route(r"api/v1/archive/(?P<year>[0-9]{4})/(\d+)/$", d),
            "/api/v1/archive/{year}/{arg0}/"
        );
        // re_path() prefix, path() leaf.
        assert_eq!(
            route(r"^shop/(?P<version>v[12])/items/<int:pk>/", d),
            "/shop/{version}/items/{pk}/"
        );
        assert_eq!(route(r"^tag/<(?P<name>\w+)>/$", d), "/tag/<{name}>/");
    }

    #[test]
    fn route_template_survives_hostile_input() {
        let syntaxes = [
            RouteSyntax::Angle,
            RouteSyntax::AngleNameFirst,
            RouteSyntax::Brace,
            RouteSyntax::Regex,
            RouteSyntax::Django,
        ];
        for input in hostile_inputs() {
            for syntax in syntaxes {
                let out = route_template(&input, syntax);
                // At worst `()` becomes `{arg12}`: the output stays proportional to the input.
                assert!(
                    out.len() <= 5 * input.len() + 16,
                    "{syntax:?} {input:?} → {out:?}"
                );
            }
        }
    }

    // normalize_path

    #[test]
    fn numeric_segments_become_id() {
        assert_eq!(normalize_path("/user/123"), "/user/{id}");
        assert_eq!(normalize_path("/user/456"), "/user/{id}");
        assert_eq!(normalize_path("/t/-5/3.14/+7/-0.5"), "/t/{id}/{id}/{id}/{id}");
        assert_eq!(normalize_path("/v/1.2.3"), "/v/1.2.3");
        assert_eq!(normalize_path("/v/-/+/."), "/v/-/+/.");
    }

    #[test]
    fn uuids_in_any_case_become_uuid() {
        assert_eq!(
            normalize_path("/o/123e4567-e89b-12d3-a456-426614174000"),
            "/o/{uuid}"
        );
        assert_eq!(
            normalize_path("/o/123E4567-E89B-12D3-A456-426614174000/x"),
            "/o/{uuid}/x"
        );
        assert_eq!(
            normalize_path("/o/{123e4567-e89b-12d3-a456-426614174000}"),
            "/o/{uuid}"
        );
        // Dashes in the wrong places: a long token-like segment instead.
        assert_eq!(
            normalize_path("/o/123e4567e-89b-12d3-a456-426614174000"),
            "/o/{token}"
        );
    }

    #[test]
    fn iso_dates_become_date() {
        assert_eq!(normalize_path("/d/2024-01-02"), "/d/{date}");
        assert_eq!(normalize_path("/d/2024-01-02T10:20:30Z"), "/d/{date}");
        assert_eq!(normalize_path("/d/2024-12-31T10:20:30.123+05:30"), "/d/{date}");
        assert_eq!(normalize_path("/d/2024-13-02"), "/d/2024-13-02");
        assert_eq!(normalize_path("/d/2024-01-02Tea"), "/d/2024-01-02Tea");
    }

    #[test]
    fn hex_ids_become_hex() {
        assert_eq!(normalize_path("/c/5f2b9c1e"), "/c/{hex}");
        assert_eq!(normalize_path("/c/d41d8cd98f00b204e9800998ecf8427e"), "/c/{hex}");
        assert_eq!(normalize_path("/c/abcdefabcdefabcd"), "/c/{hex}");
        // Hex-looking words stay.
        assert_eq!(normalize_path("/c/deadbeef/facade/add"), "/c/deadbeef/facade/add");
        assert_eq!(normalize_path("/c/abc1234"), "/c/abc1234");
    }

    #[test]
    fn tokens_become_token() {
        assert_eq!(normalize_path("/t/dGhpcyBpcyBhIHRva2VuMTIz"), "/t/{token}");
        assert_eq!(normalize_path("/t/aB3_-xY9zQ12wE45rT67yU"), "/t/{token}");
        assert_eq!(
            normalize_path("/t/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc123XYZ"),
            "/t/{token}"
        );
        // Long slugs of plain words stay.
        assert_eq!(
            normalize_path("/blog/a-long-article-slug-about-rust"),
            "/blog/a-long-article-slug-about-rust"
        );
    }

    #[test]
    fn long_segments_become_token() {
        let long_word = "x".repeat(65);
        assert_eq!(normalize_path(&format!("/x/{long_word}/y")), "/x/{token}/y");
        let max_word = "x".repeat(64);
        let path = format!("/x/{max_word}");
        assert_eq!(normalize_path(&path), path);
    }

    #[test]
    fn segments_with_at_become_id() {
        assert_eq!(normalize_path("/u/someone@example.com/p"), "/u/{id}/p");
        assert_eq!(normalize_path("/@handle"), "/{id}");
    }

    #[test]
    fn words_are_kept_and_borrowed() {
        for path in [
            "/",
            "/users",
            "/api/v2/users/",
            "/static/favicon.ico",
            "//a//b/",
            "/user/{id}",
        ] {
            let result = normalize_path(path);
            assert_eq!(result, path);
            assert!(matches!(result, Cow::Borrowed(_)), "{path}");
        }
    }

    #[test]
    fn empty_segments_and_trailing_slash_are_kept() {
        assert_eq!(normalize_path("//123//"), "//{id}//");
        assert_eq!(normalize_path("/a/123/"), "/a/{id}/");
    }

    #[test]
    fn result_always_starts_with_slash() {
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("*"), "/*");
        assert_eq!(normalize_path("a/123"), "/a/{id}");
        assert_eq!(normalize_path("123"), "/{id}");
    }

    #[test]
    fn query_and_fragment_are_dropped_without_copying() {
        let result = normalize_path("/search?q=123");
        assert_eq!(result, "/search");
        assert!(matches!(result, Cow::Borrowed(_)));
        assert_eq!(normalize_path("/a/1#top"), "/a/{id}");
        assert_eq!(normalize_path("?x"), "/");
    }

    #[test]
    fn deep_paths_end_in_rest() {
        let sixteen: String = (0..16).map(|i| format!("/s{i}")).collect();
        assert_eq!(normalize_path(&sixteen), sixteen);
        assert_eq!(normalize_path(&format!("{sixteen}/")), format!("{sixteen}/"));
        assert_eq!(
            normalize_path(&format!("{sixteen}/s16/s17")),
            format!("{sixteen}/{{rest}}")
        );
        assert_eq!(
            normalize_path(&format!("{sixteen}/s16/")),
            format!("{sixteen}/{{rest}}")
        );
    }

    #[test]
    fn control_characters_become_underscores() {
        assert_eq!(normalize_path("/a\u{0}b/\u{7f}/é\n"), "/a_b/_/é_");
        assert_eq!(normalize_path("\u{0}\u{7f}é"), "/__é");
    }

    #[test]
    fn ten_thousand_slashes_are_bounded() {
        let path = "/".repeat(10_000);
        assert_eq!(normalize_path(&path), format!("{}/{{rest}}", "/".repeat(16)));
    }

    #[test]
    fn ten_kilobyte_paths_are_bounded() {
        let one_segment = format!("/{}", "x".repeat(10_000));
        assert_eq!(normalize_path(&one_segment), "/{token}");
        let many_words = "/word".repeat(2_000);
        assert_eq!(
            normalize_path(&many_words),
            format!("{}/{{rest}}", "/word".repeat(16))
        );
    }

    #[test]
    fn normalize_path_is_idempotent_and_bounded_on_hostile_input() {
        for input in hostile_inputs() {
            let once = normalize_path(&input);
            assert!(once.starts_with('/'), "{input:?} → {once:?}");
            assert!(
                once.len() <= MAX_SEGMENTS * (MAX_SEGMENT_LEN + 1) + 8,
                "{input:?}"
            );
            assert!(!once.chars().any(char::is_control), "{input:?} → {once:?}");
            let twice = normalize_path(&once);
            assert_eq!(twice, once, "{input:?}");
            assert!(matches!(twice, Cow::Borrowed(_)), "{input:?}");
        }
    }

    #[test]
    fn paths_differing_only_in_ids_give_few_values() {
        let mut rng = XorShift(88_172_645_463_325_252);
        let hex: Vec<char> = "0123456789abcdef".chars().collect();
        let base64: Vec<char> = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            .chars()
            .collect();
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let n = rng.next() % 1_000_000_000;
            let uuid = format!(
                "{}-{}-{}-{}-{}",
                rng.string(&hex, 8),
                rng.string(&hex, 4),
                rng.string(&hex, 4),
                rng.string(&hex, 4),
                rng.string(&hex, 12)
            );
            let date = format!(
                "{}-{:02}-{:02}",
                1970 + rng.below(100),
                1 + rng.below(12),
                1 + rng.below(28)
            );
            // A digit and a letter up front, so the token rule always applies.
            let token = format!("a1{}", rng.string(&base64, 30));
            let sha = rng.string(&hex, 40);
            let path = match rng.below(6) {
                0 => format!("/users/{n}"),
                1 => format!("/users/{n}/orders/{uuid}"),
                2 => format!("/api/v2/reports/{date}/{n}.{}", rng.below(100)),
                3 => format!("/commits/{sha}/"),
                4 => format!("/reset/{token}"),
                _ => format!("/u/user{n}@example.com/profile"),
            };
            seen.insert(normalize_path(&path).into_owned());
        }
        let mut seen: Vec<_> = seen.into_iter().collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                "/api/v2/reports/{date}/{id}",
                "/commits/{hex}/",
                "/reset/{token}",
                "/u/{id}/profile",
                "/users/{id}",
                "/users/{id}/orders/{uuid}",
            ]
        );
    }

    // normalize_host

    #[test]
    fn host_is_lower_cased_without_port() {
        assert_eq!(normalize_host("Example.COM:8080").unwrap(), "example.com");
        assert_eq!(normalize_host("example.com.").unwrap(), "example.com");
        assert_eq!(normalize_host("  api.example.com  ").unwrap(), "api.example.com");
        assert_eq!(normalize_host("my_host-1").unwrap(), "my_host-1");
        assert_eq!(normalize_host("127.0.0.1:8000").unwrap(), "127.0.0.1");
        assert_eq!(normalize_host("example.com:").unwrap(), "example.com");
    }

    #[test]
    fn ipv6_hosts_keep_brackets() {
        assert_eq!(normalize_host("[::1]:8000").unwrap(), "[::1]");
        assert_eq!(normalize_host("[::1]").unwrap(), "[::1]");
        assert_eq!(normalize_host("[::1]:").unwrap(), "[::1]");
        assert_eq!(normalize_host("[2001:DB8::1]").unwrap(), "[2001:db8::1]");
        assert_eq!(normalize_host("[::ffff:1.2.3.4]:1").unwrap(), "[::ffff:1.2.3.4]");
    }

    #[test]
    fn normal_hosts_are_borrowed() {
        assert!(matches!(normalize_host("example.com"), Some(Cow::Borrowed(_))));
        assert!(matches!(normalize_host("example.com:80"), Some(Cow::Borrowed(_))));
        assert!(matches!(normalize_host("Example.com"), Some(Cow::Owned(_))));
    }

    #[test]
    fn implausible_hosts_are_rejected() {
        let too_long = format!("{}.com", "a".repeat(250));
        for host in [
            "",
            "   ",
            ".",
            "-",
            ":8080",
            "example.com:http",
            "example.com:80:90",
            "exa mple.com",
            "exa/mple.com",
            "évil.com",
            "a\u{0}b",
            "::1",
            "[::1",
            "[::g]",
            "[]",
            "[::1]x",
            "[::1]:port",
            "[fe80::1%eth0]",
            too_long.as_str(),
        ] {
            assert_eq!(normalize_host(host), None, "{host:?}");
        }
    }

    #[test]
    fn normalize_host_survives_hostile_input() {
        for input in hostile_inputs() {
            if let Some(host) = normalize_host(&input) {
                assert!(host.len() <= 253);
                assert!(host
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-[]:".contains(&b)));
            }
        }
    }

    // normalize_method

    #[test]
    fn standard_methods_are_kept() {
        for method in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ] {
            assert_eq!(normalize_method(method), method);
        }
    }

    #[test]
    fn other_methods_are_other() {
        for method in ["get", "Get", "PROPFIND", "", " GET", "GET ", "G\u{0}ET", "🦀"] {
            assert_eq!(normalize_method(method), "_OTHER", "{method:?}");
        }
    }
}
