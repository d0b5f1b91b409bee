//! Reading what a request carries (WSGI environ, ASGI scope) without copying, shared by the
//! recorder and both middlewares.

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

/// Set once a recording failure has been logged, so a broken getter cannot flood the logs.
static FAILURE_LOGGED: AtomicBool = AtomicBool::new(false);

/// A value of the environ if it is a string (read later as borrowed UTF-8, no copy).
pub(crate) fn environ_text<'py>(
    environ: &Bound<'py, PyDict>,
    key: &Bound<'py, PyString>,
) -> Option<Bound<'py, PyString>> {
    environ.get_item(key).ok()??.cast_into::<PyString>().ok()
}

/// Calls `f` with SCRIPT_NAME + PATH_INFO as the client sent them.
pub(crate) fn with_raw_path<R>(environ: &Bound<'_, PyDict>, f: impl FnOnce(&str) -> R) -> R {
    let py = environ.py();
    let script = environ_text(environ, intern!(py, "SCRIPT_NAME"));
    let path = environ_text(environ, intern!(py, "PATH_INFO"));
    let script = script.as_ref().and_then(|s| s.to_str().ok()).unwrap_or("");
    let path = path.as_ref().and_then(|s| s.to_str().ok()).unwrap_or("");
    if script.is_empty() && path.is_ascii() {
        return f(path);
    }
    let joined = format!("{script}{path}");
    // WSGI hands paths over as latin-1 decoded bytes: turn non-ASCII ones back into UTF-8.
    match joined
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
    {
        Some(bytes) => f(&String::from_utf8_lossy(&bytes)),
        None => f(&joined),
    }
}

/// A string value of a scope, if it is one.
pub(crate) fn scope_text(scope: &Bound<'_, PyDict>, key: &Bound<'_, PyString>) -> Option<String> {
    let value = scope.get_item(key).ok()??;
    value.cast::<PyString>().ok()?.to_str().ok().map(str::to_owned)
}

/// A header of an ASGI scope by its lower-case `name`: `headers` is an iterable of
/// `(bytes, bytes)` pairs.
pub(crate) fn scope_header<'py>(scope: &Bound<'py, PyDict>, name: &[u8]) -> Option<Bound<'py, PyBytes>> {
    let headers = scope.get_item(intern!(scope.py(), "headers")).ok()??;
    if let Ok(list) = headers.cast::<PyList>() {
        return list.iter().find_map(|pair| header_value(&pair, name));
    }
    headers
        .try_iter()
        .ok()?
        .flatten()
        .find_map(|pair| header_value(&pair, name))
}

/// Several headers of an ASGI scope in one pass over its `headers`: for each lower-case name of
/// `names` (an empty one is not looked for), the first value that is bytes.
pub(crate) fn scope_headers<'py, const N: usize>(
    scope: &Bound<'py, PyDict>,
    names: [&[u8]; N],
) -> [Option<Bound<'py, PyBytes>>; N] {
    let mut found: [Option<Bound<'py, PyBytes>>; N] = std::array::from_fn(|_| None);
    let Some(headers) = scope.get_item(intern!(scope.py(), "headers")).ok().flatten() else {
        return found;
    };
    let mut missing = names.iter().filter(|name| !name.is_empty()).count();
    let mut note = |pair: Bound<'py, PyAny>| {
        let Some((name, value)) = header_pair(&pair) else {
            return false;
        };
        let Ok(value) = value.cast_into::<PyBytes>() else {
            return false;
        };
        // Every slot of that name (the label's header may also be one of the others).
        for (slot, wanted) in found.iter_mut().zip(names) {
            if slot.is_none() && !wanted.is_empty() && name.as_bytes().eq_ignore_ascii_case(wanted) {
                *slot = Some(value.clone());
                missing -= 1;
            }
        }
        missing == 0
    };
    if let Ok(list) = headers.cast::<PyList>() {
        for pair in list.iter() {
            if note(pair) {
                break;
            }
        }
    } else if let Ok(pairs) = headers.try_iter() {
        for pair in pairs.flatten() {
            if note(pair) {
                break;
            }
        }
    }
    found
}

/// A header's `(name, value)`, if the pair is one with a bytes name.
fn header_pair<'py>(pair: &Bound<'py, PyAny>) -> Option<(Bound<'py, PyBytes>, Bound<'py, PyAny>)> {
    let (name, value) = match pair.cast::<PyTuple>() {
        Ok(pair) if pair.len() == 2 => (pair.get_item(0).ok()?, pair.get_item(1).ok()?),
        Ok(_) => return None,
        Err(_) => (pair.get_item(0).ok()?, pair.get_item(1).ok()?),
    };
    Some((name.cast_into::<PyBytes>().ok()?, value))
}

fn header_value<'py>(pair: &Bound<'py, PyAny>, wanted: &[u8]) -> Option<Bound<'py, PyBytes>> {
    let (name, value) = header_pair(pair)?;
    if name.as_bytes().eq_ignore_ascii_case(wanted) {
        value.cast_into::<PyBytes>().ok()
    } else {
        None
    }
}

/// The host of the scope's `server` pair, for requests without a Host header.
pub(crate) fn server_host(scope: &Bound<'_, PyDict>) -> Option<String> {
    let server = scope.get_item(intern!(scope.py(), "server")).ok()??;
    server.get_item(0).ok()?.extract::<String>().ok()
}

/// Logs, once per process, that a route could not be read (a broken getter must not flood the logs).
pub(crate) fn log_failure_once(py: Python<'_>, err: &PyErr) {
    if FAILURE_LOGGED.swap(true, Ordering::Relaxed) {
        return;
    }
    let message = format!("last9: could not read the route of a request, counting it as unmatched: {err}");
    let logged = py
        .import("logging")
        .and_then(|logging| logging.call_method1("getLogger", ("last9",)))
        .and_then(|logger| logger.call_method1("warning", (message,)));
    // Logging itself failing leaves nothing better to do than carry on.
    drop(logged);
}
