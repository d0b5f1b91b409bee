//! Route templates: each framework's own parameter syntax rewritten into one `{param}` form,
//! one small function per framework (Flask/Django path() angle brackets, Bottle, brace
//! templates of Starlette/FastAPI/Falcon/Pyramid, regexes of Tornado and Django re_path()).

use std::borrow::Cow;

use super::rewriter::Rewriter;

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
