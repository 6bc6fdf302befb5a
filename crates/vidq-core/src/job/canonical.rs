//! Stable JSON text: object keys sorted at every depth, no whitespace.

use serde_json::Value;

/// Appends the canonical JSON text of `value` to `out`. Sorting here, rather than relying on
/// `serde_json::Map` being a `BTreeMap`, keeps the text stable even when another crate in
/// the build turns on serde_json's `preserve_order`.
pub(crate) fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_at_every_depth() {
        let value =
            serde_json::json!({"b": 1, "a": {"z": [true, {"y": null, "x": "s"}], "c": 2.5}});
        let mut out = String::new();
        write_canonical(&value, &mut out);
        assert_eq!(
            out,
            r#"{"a":{"c":2.5,"z":[true,{"x":"s","y":null}]},"b":1}"#
        );
    }
}
