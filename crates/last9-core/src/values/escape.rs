//! Escaping of label values, shared by the encoders and the store's merge.

/// Escapes a label value for both formats: backslash, double quote and line feed.
pub fn escape_label_value(out: &mut String, value: &str) {
    if !value.contains(['\\', '"', '\n']) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}
