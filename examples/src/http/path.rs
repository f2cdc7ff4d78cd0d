//! From a request target to a path below the document root.
//!
//! The target is split into segments on `/` *before* percent-decoding, and
//! each segment is decoded on its own. A decoded segment may not contain
//! `/`, `\` or NUL (so `%2f` cannot make a new separator), and a `..`
//! segment is refused whatever its spelling (`..`, `%2e%2e`, `.%2E`, …):
//! clients remove dot segments before sending (RFC 3986 §5.2.4), so one
//! that arrives is a probe, not a link. `.` and empty segments are dropped.
//! What remains is joined with `/`; it never starts with `/` and never
//! leaves the root. Symbolic links inside the root that point outside it
//! are caught later, by [`site`](super::site), on the canonical path.

use std::borrow::Cow;
use std::fmt;

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// A `..` segment, in any spelling: 403.
    Escape,
    /// Not an origin-form or absolute-form target, bad percent-encoding,
    /// an encoded separator, NUL, or not UTF-8: 400.
    Malformed(&'static str),
}

impl PathError {
    /// The status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            PathError::Escape => 403,
            PathError::Malformed(_) => 400,
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Escape => f.write_str("the path leads out of the document root"),
            PathError::Malformed(why) => f.write_str(why),
        }
    }
}

/// A resolved target: the path below the root (`""` for the root itself)
/// and whether the target named a directory (ended in `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Segments joined with `/`, without a leading `/`.
    pub path: String,
    /// The target ended with `/` (or was the root).
    pub directory: bool,
}

/// Resolves a request target (`/a/b.html?x=1`, or the absolute form
/// `http://host/a/b.html`).
pub fn resolve(target: &str) -> Result<Resolved, PathError> {
    let mut rest = target;
    for scheme in ["http://", "https://"] {
        // Compare bytes: slicing the str at the scheme's length could cut a
        // multi-byte character in two (the fuzzer found `GET /abcdeт`).
        if rest.as_bytes().get(..scheme.len()).is_some_and(|b| b.eq_ignore_ascii_case(scheme.as_bytes())) {
            let after = &rest[scheme.len()..];
            rest = after.find('/').map_or("/", |i| &after[i..]);
            break;
        }
    }
    if !rest.starts_with('/') {
        return Err(PathError::Malformed("the request target must start with /"));
    }
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let mut out = String::with_capacity(rest.len());
    let mut last_was_dir = true;
    for raw in rest.split('/') {
        let seg = decode(raw)?;
        if seg.is_empty() || seg == "." {
            last_was_dir = true;
            continue;
        }
        if seg == ".." {
            return Err(PathError::Escape);
        }
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(&seg);
        last_was_dir = false;
    }
    Ok(Resolved { directory: last_was_dir, path: out })
}

/// Percent-decodes one segment (a segment with nothing to decode is
/// borrowed: most are, and this runs for every request).
fn decode(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.bytes().any(|c| c == b'%' || c == b'\\' || c == 0) {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::Malformed("a % not followed by two hex digits"))?;
            let hi = hex_value(hex[0]);
            let lo = hex_value(hex[1]);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(PathError::Malformed("a % not followed by two hex digits")),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    if out.iter().any(|&c| c == b'/' || c == b'\\' || c == 0) {
        return Err(PathError::Malformed("an encoded /, \\ or NUL in the path"));
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| PathError::Malformed("the path is not UTF-8"))
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(t: &str) -> (String, bool) {
        let r = resolve(t).unwrap_or_else(|e| panic!("{t}: {e}"));
        (r.path, r.directory)
    }

    #[test]
    fn non_ascii_targets_do_not_panic() {
        // Regression: the scheme check sliced the target at byte 7, inside
        // the two-byte 'т' (found by fuzz/http_request).
        assert_eq!(ok("/abcdeт"), ("abcdeт".into(), false));
        assert_eq!(ok("/тттт"), ("тттт".into(), false));
        assert_eq!(ok("http://hoт/x"), ("x".into(), false));
    }

    #[test]
    fn plain_paths_resolve() {
        assert_eq!(ok("/"), (String::new(), true));
        assert_eq!(ok("/index.html"), ("index.html".into(), false));
        assert_eq!(ok("/a//b/./c.txt?x=1#frag"), ("a/b/c.txt".into(), false));
        assert_eq!(ok("/docs/"), ("docs".into(), true));
        assert_eq!(ok("/caf%C3%A9%20menu.txt"), ("café menu.txt".into(), false));
        assert_eq!(ok("http://example.invalid/x/y"), ("x/y".into(), false));
        assert_eq!(ok("HTTP://example.invalid"), (String::new(), true));
        assert_eq!(ok("/a/..b/c.."), ("a/..b/c..".into(), false));
    }

    #[test]
    fn dot_dot_is_refused_in_every_spelling() {
        for t in [
            "/..",
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/a/..",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/etc/passwd",
            "/.%2e/x",
            "/%2e./x",
            "/a/%2e%2e/%2e%2e/x",
            "http://h/../x",
            "/a/..?q",
        ] {
            assert_eq!(resolve(t), Err(PathError::Escape), "{t}");
        }
    }

    #[test]
    fn encoded_separators_nul_and_bad_escapes_are_malformed() {
        for t in [
            "/..%2fetc%2fpasswd",
            "/%2e%2e%2fetc",
            "/a%2f..%2f..%2fb",
            "/..%5cwindows",
            "/x%00.html",
            "/bad%zz",
            "/bad%4",
            "/%ff%fe",
            "relative/path",
            "*",
            "",
        ] {
            let r = resolve(t);
            assert!(matches!(r, Err(PathError::Malformed(_))), "{t}: {r:?}");
            assert_eq!(r.map_err(|e| e.status()), Err(400));
        }
    }
}
