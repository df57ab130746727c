//! A tool definition's content hash: SHA-256 of its canonical JSON, so that a tool changed
//! under an unchanged version can be told from the same tool re-announced.

use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ToolDef;

/// Lowercase hex SHA-256 of `tool`'s canonical JSON: object keys sorted at every level, no
/// whitespace, absent optional fields left out. Key order does not change the hash; anything
/// else does, array order included (a reordered `required` hashes differently, although
/// [`diff_tool`](super::diff_tool) finds no change in it).
pub fn tool_hash(tool: &ToolDef) -> String {
    // Cannot fail: every map key is a string. Were it to, all such tools would share a hash,
    // which reads as "unchanged" only between two equally unserializable tools.
    json_hash(&serde_json::to_value(tool).unwrap_or(Value::Null))
}

/// Lowercase hex SHA-256 of any JSON value's canonical text, as [`tool_hash`] hashes a tool:
/// what a prompt's or a resource's hash is in the catalog.
pub fn json_hash(value: &Value) -> String {
    let mut text = String::new();
    write_canonical(value, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Writes `value` as compact JSON with sorted keys. Sorted here rather than trusting the map's
/// order: serde_json's `preserve_order` feature, if anything in a build turns it on, keeps
/// insertion order instead.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
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
        Value::String(s) => write_string(s, out),
        // Null, booleans and numbers print the same whatever the map order.
        other => out.push_str(&other.to_string()),
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push_str(&Value::String(s.to_owned()).to_string());
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tool(value: Value) -> ToolDef {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn canonical_text_sorts_keys_at_every_level() {
        let mut out = String::new();
        write_canonical(
            &json!({"b": [{"z": 1, "a": "x\"y"}], "a": null, "c": {"y": true, "x": 1.5}}),
            &mut out,
        );
        assert_eq!(
            out,
            r#"{"a":null,"b":[{"a":"x\"y","z":1}],"c":{"x":1.5,"y":true}}"#
        );
    }

    #[test]
    fn hash_is_stable_under_key_order() {
        let a = tool(json!({
            "name": "lookup",
            "description": "Find a product.",
            "inputSchema": {"type": "object", "properties": {"sku": {"type": "string", "maxLength": 12}, "qty": {"type": "integer"}}, "required": ["sku"]},
            "annotations": {"readOnlyHint": true, "idempotentHint": true}
        }));
        let b = tool(json!({
            "annotations": {"idempotentHint": true, "readOnlyHint": true},
            "inputSchema": {"required": ["sku"], "properties": {"qty": {"type": "integer"}, "sku": {"maxLength": 12, "type": "string"}}, "type": "object"},
            "description": "Find a product.",
            "name": "lookup"
        }));
        assert_eq!(tool_hash(&a), tool_hash(&b));
        let hash = tool_hash(&a);
        assert_eq!(hash.len(), 64);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        // The same input, the same hash, on every run and machine: pinned.
        let empty = tool(json!({"name": "t", "inputSchema": {}}));
        assert_eq!(
            tool_hash(&empty),
            format!("{:x}", Sha256::digest(br#"{"inputSchema":{},"name":"t"}"#))
        );
    }

    #[test]
    fn hash_differs_on_any_change() {
        let base = json!({
            "name": "lookup",
            "title": "Lookup",
            "description": "Find a product.",
            "inputSchema": {"type": "object", "properties": {"sku": {"type": "string", "maxLength": 12}}, "required": ["sku"]},
            "outputSchema": {"type": "object", "properties": {"price": {"type": "number"}}},
            "annotations": {"readOnlyHint": true}
        });
        let variants = [
            ("/name", json!("lookup2")),
            ("/title", json!("Look up")),
            ("/description", json!("Find a product by SKU.")),
            ("/inputSchema/properties/sku/maxLength", json!(13)),
            (
                "/inputSchema/properties/sku/type",
                json!(["string", "null"]),
            ),
            ("/inputSchema/required", json!([])),
            ("/outputSchema/properties/price/type", json!("integer")),
            ("/annotations/readOnlyHint", json!(false)),
            ("/inputSchema/properties/sku/description", json!("The SKU.")),
        ];
        let base_hash = tool_hash(&tool(base.clone()));
        let mut seen = std::collections::BTreeSet::from([base_hash.clone()]);
        for (pointer, value) in variants {
            let mut changed = base.clone();
            match changed.pointer_mut(pointer) {
                Some(slot) => *slot = value,
                None => {
                    let (parent, key) = pointer.rsplit_once('/').unwrap();
                    changed
                        .pointer_mut(parent)
                        .unwrap()
                        .as_object_mut()
                        .unwrap()
                        .insert(key.to_owned(), value);
                }
            }
            let hash = tool_hash(&tool(changed));
            assert!(seen.insert(hash), "{pointer}: same hash as another variant");
        }
        // Optional fields absent and a tool without an output schema hash apart as well.
        let mut bare = base;
        bare.as_object_mut().unwrap().remove("outputSchema");
        assert!(seen.insert(tool_hash(&tool(bare))));
    }
}
