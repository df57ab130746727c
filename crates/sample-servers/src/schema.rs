//! Tool schemas in standard JSON Schema: schemars marks Rust integers with formats of its own
//! (`uint32`, `uint64`, `int32`, `double` …), which JSON Schema does not define and clients
//! warn about (the TypeScript SDK printed ~66 warnings for the samples). Here they become an
//! integer's bounds.

use schemars::Schema;
use schemars::transform::transform_subschemas;
use serde_json::Value;

/// The `format` values JSON Schema (2020-12) defines.
pub const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// The bounds a schemars integer format stands for: (minimum, maximum).
fn bounds(format: &str) -> Option<(Value, Option<Value>)> {
    Some(match format {
        "uint8" => (0.into(), Some(u8::MAX.into())),
        "uint16" => (0.into(), Some(u16::MAX.into())),
        "uint32" => (0.into(), Some(u32::MAX.into())),
        "uint64" | "uint" | "uint128" => (0.into(), None),
        "int8" => (i8::MIN.into(), Some(i8::MAX.into())),
        "int16" => (i16::MIN.into(), Some(i16::MAX.into())),
        "int32" => (i32::MIN.into(), Some(i32::MAX.into())),
        "int64" | "int" => (i64::MIN.into(), Some(i64::MAX.into())),
        _ => return None,
    })
}

/// A schemars transform (`#[schemars(transform = standard_formats)]`): drops every `format`
/// JSON Schema does not define, giving integers their range as `minimum`/`maximum` instead.
pub fn standard_formats(schema: &mut Schema) {
    if let Some(obj) = schema.as_object_mut() {
        let format = obj.get("format").and_then(Value::as_str).map(str::to_owned);
        if let Some(format) = format.filter(|f| !STANDARD_FORMATS.contains(&f.as_str())) {
            obj.remove("format");
            if let Some((min, max)) = bounds(&format) {
                obj.entry("minimum").or_insert(min);
                if let Some(max) = max {
                    obj.entry("maximum").or_insert(max);
                }
            }
        }
    }
    transform_subschemas(&mut standard_formats, schema);
}
