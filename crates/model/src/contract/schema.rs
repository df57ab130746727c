//! Compares two JSON Schemas keyword by keyword and says which way each difference moves the
//! set of accepted values. Sound where it answers, conservative where it cannot: combinators
//! and other keywords it does not model are compared for equality only, and any difference in
//! them is reported as [`ChangeKind::NotComparable`].
//!
//! Over 500 lines: one method per group of keywords (types, enums, bounds, objects, items),
//! each with the sentences it writes, and the unit tests of the limits (depth, `$ref` fan-out).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{ChangeKind, ChangeLocation, Effect, SchemaChange};

/// Deepest nesting compared (properties, items and `$ref` steps each count one); past it two
/// subschemas are only compared for equality. Bounds recursive `$ref`s as well.
const MAX_DEPTH: usize = 32;

/// Most subschema pairs compared in one schema: `$ref`s can make a small document a huge tree
/// (each definition using the next twice), and a server's catalog should not cost the registry
/// more than this. Past it, the rest counts as not comparable.
const MAX_NODES: usize = 10_000;

/// Assertion keywords the comparison does not model: a difference in any of them cannot be
/// classified.
const UNMODELED: &[&str] = &[
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "prefixItems",
    "additionalItems",
    "contains",
    "minContains",
    "maxContains",
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
    "$recursiveRef",
];

/// Keywords that bound a value from below: a larger number is tighter.
const LOWER_BOUNDS: &[&str] = &[
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
];
/// Keywords that bound a value from above: a smaller number is tighter.
const UPPER_BOUNDS: &[&str] = &[
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
];

/// Keywords compared elsewhere, or not at all (`$defs` are compared where a `$ref` reaches them).
const HANDLED: &[&str] = &[
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "pattern",
    "format",
    "multipleOf",
    "uniqueItems",
    "$ref",
    "$defs",
    "definitions",
];

/// The JSON types, `integer` being a subset of `number`.
const TYPES: &[&str] = &[
    "null", "boolean", "object", "array", "number", "integer", "string",
];

/// Every difference between `old` and `new`, two schemas of the part at `location`.
pub(super) fn compare(old: &Value, new: &Value, location: ChangeLocation) -> Vec<SchemaChange> {
    if old == new {
        return Vec::new();
    }
    let mut walker = Walker {
        old_root: old,
        new_root: new,
        location,
        changes: Vec::new(),
        refs_in_progress: Vec::new(),
        nodes: 0,
    };
    walker.node(old, new, "", 0);
    walker.changes
}

/// Escapes a property name for a JSON pointer (`~` → `~0`, `/` → `~1`).
pub(super) fn escape(name: &str) -> Cow<'_, str> {
    if name.contains(['~', '/']) {
        Cow::Owned(name.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(name)
    }
}

struct Walker<'a> {
    old_root: &'a Value,
    new_root: &'a Value,
    location: ChangeLocation,
    changes: Vec<SchemaChange>,
    /// The `$ref` pairs being compared further up: met again, they are a cycle whose
    /// differences the first visit reports.
    refs_in_progress: Vec<(Option<String>, Option<String>)>,
    /// Subschema pairs compared so far, against [`MAX_NODES`].
    nodes: usize,
}

/// A subschema with its `$ref` followed.
enum Resolved<'a> {
    /// No `$ref`.
    Plain(&'a Value),
    /// The target, with the `$ref`'s sibling keywords merged in (a sibling clashing with the
    /// target's keyword wins: rare, and in practice an annotation such as `description`).
    Followed(String, Value),
    /// A `$ref` this comparison cannot follow (not a local pointer, or pointing at nothing).
    Unresolvable(String),
}

fn resolve<'a>(schema: &'a Value, root: &Value) -> Resolved<'a> {
    let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
        return Resolved::Plain(schema);
    };
    let target = reference
        .strip_prefix('#')
        .and_then(|pointer| root.pointer(pointer));
    match target {
        Some(Value::Object(target)) => {
            let mut merged = target.clone();
            if let Some(siblings) = schema.as_object() {
                for (k, v) in siblings {
                    if k != "$ref" {
                        merged.insert(k.clone(), v.clone());
                    }
                }
            }
            Resolved::Followed(reference.to_owned(), Value::Object(merged))
        }
        Some(target @ Value::Bool(_)) => Resolved::Followed(reference.to_owned(), target.clone()),
        _ => Resolved::Unresolvable(reference.to_owned()),
    }
}

/// Collects the `$ref`s anywhere in `value`.
fn refs_in<'v>(value: &'v Value, out: &mut Vec<&'v str>) {
    match value {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                out.push(reference);
            }
            for v in map.values() {
                refs_in(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, out)),
        _ => {}
    }
}

/// The schema as an object: `true` is `{}`; `false` is `{"not": {}}`, which the comparison
/// treats as unmodeled.
fn as_object(schema: &Value) -> Option<Cow<'_, Map<String, Value>>> {
    match schema {
        Value::Object(map) => Some(Cow::Borrowed(map)),
        Value::Bool(true) => Some(Cow::Owned(Map::new())),
        Value::Bool(false) => {
            let mut map = Map::new();
            map.insert("not".to_owned(), Value::Object(Map::new()));
            Some(Cow::Owned(map))
        }
        _ => None,
    }
}

/// The types a schema's `type` names, `None` for any type.
fn types(schema: &Map<String, Value>) -> Option<Vec<&str>> {
    match schema.get("type")? {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

/// Whether a type set accepts every value of type `t` (`None` accepts everything).
fn accepts(set: Option<&[&str]>, t: &str) -> bool {
    set.is_none_or(|set| set.contains(&t) || (t == "integer" && set.contains(&"number")))
}

fn describe_types(set: Option<&[&str]>) -> String {
    match set {
        None => "any type".to_owned(),
        Some([]) => "no type".to_owned(),
        Some(set) => set.join(" or "),
    }
}

fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "unset".to_owned(), Value::to_string)
}

impl Walker<'_> {
    fn push(&mut self, kind: ChangeKind, effect: Effect, path: &str, message: String) {
        self.changes.push(SchemaChange::new(
            kind,
            effect,
            self.location,
            path.to_owned(),
            message,
        ));
    }

    /// How a message names the place, mid-sentence: `the input at `/properties/sku``, or
    /// `the input schema`.
    fn place(&self, path: &str) -> String {
        let side = match self.location {
            ChangeLocation::Input => "input",
            ChangeLocation::Output => "output",
            ChangeLocation::Tool => "tool",
        };
        if path.is_empty() {
            format!("the {side} schema")
        } else {
            format!("the {side} at `{path}`")
        }
    }

    /// [`Self::place`] starting a sentence.
    fn subject(&self, path: &str) -> String {
        let place = self.place(path);
        format!("T{}", place.strip_prefix('t').unwrap_or(&place))
    }

    fn not_comparable(&mut self, path: &str, what: &str) {
        let message = format!(
            "{}: {what} changed; compatibility could not be proven, so it counts as breaking.",
            self.subject(path)
        );
        self.push(ChangeKind::NotComparable, Effect::Both, path, message);
    }

    /// Whether two subschemas mean the same: equal as JSON, and every local `$ref` in them
    /// (followed transitively) reaching equal definitions on both sides.
    fn same(&self, old: &Value, new: &Value) -> bool {
        if old != new {
            return false;
        }
        let mut pending = Vec::new();
        refs_in(old, &mut pending);
        let mut seen: Vec<&str> = Vec::new();
        while let Some(reference) = pending.pop() {
            if seen.contains(&reference) {
                continue;
            }
            seen.push(reference);
            let Some(pointer) = reference.strip_prefix('#') else {
                // Not local: the same text names the same document.
                continue;
            };
            match (
                self.old_root.pointer(pointer),
                self.new_root.pointer(pointer),
            ) {
                (Some(a), Some(b)) if a == b => refs_in(a, &mut pending),
                (None, None) => {}
                _ => return false,
            }
        }
        true
    }

    fn node(&mut self, old: &Value, new: &Value, path: &str, depth: usize) {
        if self.same(old, new) {
            return;
        }
        self.nodes += 1;
        if self.nodes == MAX_NODES {
            self.not_comparable(
                path,
                &format!("a schema too large to compare (over {MAX_NODES} subschemas)"),
            );
        }
        if self.nodes >= MAX_NODES {
            return;
        }
        if depth > MAX_DEPTH {
            self.not_comparable(path, &format!("a schema nested over {MAX_DEPTH} levels"));
            return;
        }
        let (before, after) = (resolve(old, self.old_root), resolve(new, self.new_root));
        let (old_ref, new_ref) = match (&before, &after) {
            (Resolved::Plain(_), Resolved::Plain(_)) => (None, None),
            (Resolved::Unresolvable(_), _) | (_, Resolved::Unresolvable(_)) => {
                self.not_comparable(path, "a `$ref` the comparison cannot follow");
                return;
            }
            (b, a) => (ref_name(b), ref_name(a)),
        };
        if old_ref.is_some() || new_ref.is_some() {
            let pair = (old_ref, new_ref);
            if self.refs_in_progress.contains(&pair) {
                return;
            }
            self.refs_in_progress.push(pair);
            self.node(resolved(&before), resolved(&after), path, depth + 1);
            self.refs_in_progress.pop();
            return;
        }
        let (Some(o), Some(n)) = (as_object(old), as_object(new)) else {
            self.not_comparable(path, "a value that is not a schema");
            return;
        };
        self.annotations(&o, &n, path);
        self.types(&o, &n, path);
        self.enums(&o, &n, path);
        self.bounds(&o, &n, path);
        self.object(&o, &n, path, depth);
        self.items(&o, &n, path, depth);
        for keyword in UNMODELED {
            let same = match (o.get(*keyword), n.get(*keyword)) {
                (Some(a), Some(b)) => self.same(a, b),
                (a, b) => a == b,
            };
            if !same {
                self.not_comparable(&format!("{path}/{keyword}"), &format!("`{keyword}`"));
            }
        }
    }

    /// Keywords that describe rather than constrain, including unknown ones (JSON Schema
    /// ignores keywords it does not know).
    fn annotations(&mut self, o: &Map<String, Value>, n: &Map<String, Value>, path: &str) {
        let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let k = key.as_str();
            if HANDLED.contains(&k)
                || UNMODELED.contains(&k)
                || LOWER_BOUNDS.contains(&k)
                || UPPER_BOUNDS.contains(&k)
            {
                continue;
            }
            let (was, is) = (o.get(k), n.get(k));
            if was == is {
                continue;
            }
            let kind = match k {
                "title" => ChangeKind::TitleChanged,
                "description" => ChangeKind::DescriptionChanged,
                "default" => ChangeKind::DefaultChanged,
                _ => ChangeKind::AnnotationChanged,
            };
            let message = match kind {
                ChangeKind::DescriptionChanged => {
                    format!("{}: description changed.", self.subject(path))
                }
                _ => format!(
                    "{}: `{k}` changed from {} to {}.",
                    self.subject(path),
                    show(was),
                    show(is)
                ),
            };
            self.push(
                kind,
                Effect::None,
                &format!("{path}/{}", escape(k)),
                message,
            );
        }
    }

    fn types(&mut self, o: &Map<String, Value>, n: &Map<String, Value>, path: &str) {
        if o.get("type") == n.get("type") {
            return;
        }
        let (before, after) = (types(o), types(n));
        let all = TYPES.to_vec();
        let narrowed = before
            .as_deref()
            .unwrap_or(&all)
            .iter()
            .any(|t| !accepts(after.as_deref(), t));
        let widened = after
            .as_deref()
            .unwrap_or(&all)
            .iter()
            .any(|t| !accepts(before.as_deref(), t));
        let (kind, effect, verb) = match (narrowed, widened) {
            (true, true) => (ChangeKind::TypeChanged, Effect::Both, "changed"),
            (true, false) => (ChangeKind::TypeNarrowed, Effect::Narrows, "narrowed"),
            (false, true) => (ChangeKind::TypeWidened, Effect::Widens, "widened"),
            // The same set spelled another way (`["string","null"]` reordered).
            (false, false) => return,
        };
        let message = format!(
            "{}: type {verb} from {} to {}.",
            self.subject(path),
            describe_types(before.as_deref()),
            describe_types(after.as_deref())
        );
        self.push(kind, effect, path, message);
    }

    fn enums(&mut self, o: &Map<String, Value>, n: &Map<String, Value>, path: &str) {
        let (was, is) = (o.get("enum"), n.get("enum"));
        if was != is {
            let values = |v: Option<&Value>| v.and_then(Value::as_array).cloned();
            let (before, after) = (values(was), values(is));
            let lost: Vec<&Value> = match (&before, &after) {
                (Some(b), Some(a)) => b.iter().filter(|v| !a.contains(v)).collect(),
                _ => Vec::new(),
            };
            let gained: Vec<&Value> = match (&before, &after) {
                (Some(b), Some(a)) => a.iter().filter(|v| !b.contains(v)).collect(),
                _ => Vec::new(),
            };
            let narrowed = after.is_some() && (before.is_none() || !lost.is_empty());
            let widened = before.is_some() && (after.is_none() || !gained.is_empty());
            let list = |vs: &[&Value]| {
                vs.iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let subject = self.subject(path);
            let change = match (narrowed, widened) {
                (true, true) => Some((
                    ChangeKind::EnumChanged,
                    Effect::Both,
                    format!(
                        "{subject}: enum lost {} and gained {}.",
                        list(&lost),
                        list(&gained)
                    ),
                )),
                (true, false) if before.is_none() => Some((
                    ChangeKind::EnumNarrowed,
                    Effect::Narrows,
                    format!("{subject}: values are now limited to an enum."),
                )),
                (true, false) => Some((
                    ChangeKind::EnumNarrowed,
                    Effect::Narrows,
                    format!("{subject}: enum lost {}.", list(&lost)),
                )),
                (false, true) if after.is_none() => Some((
                    ChangeKind::EnumWidened,
                    Effect::Widens,
                    format!("{subject}: the enum was removed."),
                )),
                (false, true) => Some((
                    ChangeKind::EnumWidened,
                    Effect::Widens,
                    format!("{subject}: enum gained {}.", list(&gained)),
                )),
                // Reordered.
                (false, false) => None,
            };
            if let Some((kind, effect, message)) = change {
                self.push(kind, effect, &format!("{path}/enum"), message);
            }
        }
        let (was, is) = (o.get("const"), n.get("const"));
        if was != is {
            let effect = match (was, is) {
                (None, _) => Effect::Narrows,
                (_, None) => Effect::Widens,
                _ => Effect::Both,
            };
            let message = format!(
                "{}: const changed from {} to {}.",
                self.subject(path),
                show(was),
                show(is)
            );
            self.push(
                ChangeKind::ConstChanged,
                effect,
                &format!("{path}/const"),
                message,
            );
        }
    }

    fn bounds(&mut self, o: &Map<String, Value>, n: &Map<String, Value>, path: &str) {
        let numeric = LOWER_BOUNDS
            .iter()
            .map(|k| (*k, true))
            .chain(UPPER_BOUNDS.iter().map(|k| (*k, false)));
        for (keyword, lower) in numeric {
            let (was, is) = (o.get(keyword), n.get(keyword));
            if was == is {
                continue;
            }
            let effect = match (was, is) {
                (None, _) => Effect::Narrows,
                (_, None) => Effect::Widens,
                (Some(a), Some(b)) => match (a.as_f64(), b.as_f64()) {
                    // Draft 4's boolean `exclusiveMinimum` and the like: not ordered here.
                    (Some(a), Some(b)) if a == b => continue,
                    (Some(a), Some(b)) if (b > a) == lower => Effect::Narrows,
                    (Some(_), Some(_)) => Effect::Widens,
                    _ => Effect::Both,
                },
            };
            self.bound(keyword, effect, was, is, path);
        }
        for keyword in ["pattern", "format"] {
            let (was, is) = (o.get(keyword), n.get(keyword));
            if was != is {
                let effect = match (was, is) {
                    (None, _) => Effect::Narrows,
                    (_, None) => Effect::Widens,
                    _ => Effect::Both,
                };
                self.bound(keyword, effect, was, is, path);
            }
        }
        let (was, is) = (o.get("multipleOf"), n.get("multipleOf"));
        if was != is {
            let effect = match (was, is) {
                (None, _) => Effect::Narrows,
                (_, None) => Effect::Widens,
                (Some(a), Some(b)) => match (a.as_f64(), b.as_f64()) {
                    (Some(a), Some(b)) if a > 0.0 && b > 0.0 && (b / a).fract() == 0.0 => {
                        Effect::Narrows
                    }
                    (Some(a), Some(b)) if a > 0.0 && b > 0.0 && (a / b).fract() == 0.0 => {
                        Effect::Widens
                    }
                    _ => Effect::Both,
                },
            };
            self.bound("multipleOf", effect, was, is, path);
        }
        let unique = |m: &Map<String, Value>| m.get("uniqueItems").and_then(Value::as_bool);
        let (was, is) = (unique(o).unwrap_or(false), unique(n).unwrap_or(false));
        if was != is {
            let effect = if is { Effect::Narrows } else { Effect::Widens };
            self.bound(
                "uniqueItems",
                effect,
                o.get("uniqueItems"),
                n.get("uniqueItems"),
                path,
            );
        }
    }

    fn bound(
        &mut self,
        keyword: &str,
        effect: Effect,
        was: Option<&Value>,
        is: Option<&Value>,
        path: &str,
    ) {
        let (kind, verb) = match effect {
            Effect::Narrows => (ChangeKind::BoundTightened, "tightened"),
            Effect::Widens => (ChangeKind::BoundLoosened, "loosened"),
            Effect::Both | Effect::None => (ChangeKind::BoundChanged, "changed"),
        };
        let subject = self.subject(path);
        let message = match (was, is) {
            (None, Some(is)) => format!("{subject}: `{keyword}` {is} added."),
            (Some(was), None) => format!("{subject}: `{keyword}` {was} removed."),
            _ => format!(
                "{subject}: `{keyword}` {verb} from {} to {}.",
                show(was),
                show(is)
            ),
        };
        self.push(kind, effect, &format!("{path}/{keyword}"), message);
    }

    fn object(&mut self, o: &Map<String, Value>, n: &Map<String, Value>, path: &str, depth: usize) {
        let empty = Map::new();
        let props = |m: &Map<String, Value>| {
            m.get("properties")
                .and_then(Value::as_object)
                .unwrap_or(&empty)
                .clone()
        };
        let (before, after) = (props(o), props(n));
        let required = |m: &Map<String, Value>| -> Vec<String> {
            m.get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (was_required, is_required) = (required(o), required(n));
        let closed = n.get("additionalProperties") == Some(&Value::Bool(false));

        let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let at = format!("{path}/properties/{}", escape(name));
            match (before.get(name), after.get(name)) {
                (Some(was), Some(is)) => self.node(was, is, &at, depth + 1),
                (Some(was), None) => {
                    // A property the old schema never accepted was not part of its contract.
                    let effect = if *was == Value::Bool(false) {
                        Effect::None
                    } else {
                        Effect::Both
                    };
                    let why = match (self.location, closed) {
                        _ if effect == Effect::None => "its schema was `false`, it was never valid",
                        (ChangeLocation::Output, _) => "clients reading it no longer get it",
                        (_, true) => "the new schema rejects clients that send it",
                        _ => "clients that send it may have it ignored",
                    };
                    let message = format!(
                        "Property `{name}` was removed from {}: {why}.",
                        self.place(path)
                    );
                    self.push(ChangeKind::PropertyRemoved, effect, &at, message);
                }
                (None, Some(_)) => {
                    let message = format!("Property `{name}` was added to {}.", self.place(path));
                    self.push(ChangeKind::PropertyAdded, Effect::Narrows, &at, message);
                }
                (None, None) => {}
            }
        }

        for name in &is_required {
            if !was_required.contains(name) {
                let at = format!("{path}/properties/{}", escape(name));
                let message = format!("Property `{name}` of {} is now required.", self.place(path));
                self.push(ChangeKind::RequiredAdded, Effect::Narrows, &at, message);
            }
        }
        for name in &was_required {
            // A removed property's change already says it was removed.
            let removed = before.contains_key(name) && !after.contains_key(name);
            if !is_required.contains(name) && !removed {
                let at = format!("{path}/properties/{}", escape(name));
                let message = format!(
                    "Property `{name}` of {} is no longer required.",
                    self.place(path)
                );
                self.push(ChangeKind::RequiredRemoved, Effect::Widens, &at, message);
            }
        }

        self.additional(o, n, path, depth);
    }

    fn additional(
        &mut self,
        o: &Map<String, Value>,
        n: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) {
        /// `additionalProperties`: open (absent, `true`, `{}`), closed (`false`), or a schema.
        #[derive(PartialEq)]
        enum Extra<'a> {
            Open,
            Closed,
            Schema(&'a Value),
        }
        fn extra(m: &Map<String, Value>) -> Extra<'_> {
            match m.get("additionalProperties") {
                None | Some(Value::Bool(true)) => Extra::Open,
                Some(Value::Bool(false)) => Extra::Closed,
                Some(Value::Object(s)) if s.is_empty() => Extra::Open,
                Some(s) => Extra::Schema(s),
            }
        }
        let at = format!("{path}/additionalProperties");
        let (kind, effect, what) = match (extra(o), extra(n)) {
            (Extra::Schema(was), Extra::Schema(is)) => return self.node(was, is, &at, depth + 1),
            (was, is) if was == is => return,
            (Extra::Open, Extra::Closed) => (
                ChangeKind::AdditionalPropertiesRestricted,
                Effect::Narrows,
                "properties it does not name are now rejected",
            ),
            (Extra::Open, Extra::Schema(_)) => (
                ChangeKind::AdditionalPropertiesRestricted,
                Effect::Narrows,
                "properties it does not name must now match a schema",
            ),
            (Extra::Schema(_), Extra::Closed) => (
                ChangeKind::AdditionalPropertiesRestricted,
                Effect::Narrows,
                "properties it does not name are now rejected",
            ),
            (Extra::Closed, Extra::Schema(_)) => (
                ChangeKind::AdditionalPropertiesRelaxed,
                Effect::Widens,
                "properties it does not name are now accepted if they match a schema",
            ),
            _ => (
                ChangeKind::AdditionalPropertiesRelaxed,
                Effect::Widens,
                "properties it does not name are now accepted",
            ),
        };
        let message = format!("{}: {what}.", self.subject(path));
        self.push(kind, effect, &at, message);
    }

    fn items(&mut self, o: &Map<String, Value>, n: &Map<String, Value>, path: &str, depth: usize) {
        let (was, is) = (o.get("items"), n.get("items"));
        match (was, is) {
            (Some(a), Some(b)) if self.same(a, b) => return,
            (None, None) => return,
            _ => {}
        }
        let at = format!("{path}/items");
        let any = Value::Bool(true);
        match (was.unwrap_or(&any), is.unwrap_or(&any)) {
            // Draft 7 tuples: not modelled.
            (Value::Array(_), _) | (_, Value::Array(_)) => {
                self.not_comparable(&at, "a tuple `items`");
            }
            (was, is) => self.node(was, is, &at, depth + 1),
        }
    }
}

fn ref_name(resolved: &Resolved<'_>) -> Option<String> {
    match resolved {
        Resolved::Followed(name, _) | Resolved::Unresolvable(name) => Some(name.clone()),
        Resolved::Plain(_) => None,
    }
}

fn resolved<'v>(resolved: &'v Resolved<'_>) -> &'v Value {
    match resolved {
        Resolved::Plain(v) => v,
        Resolved::Followed(_, v) => v,
        // Not reached: callers return before following an unresolvable reference.
        Resolved::Unresolvable(_) => &Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kinds(old: &Value, new: &Value) -> Vec<ChangeKind> {
        compare(old, new, ChangeLocation::Input)
            .into_iter()
            .map(|c| c.kind)
            .collect()
    }

    #[test]
    fn nesting_past_the_limit_is_not_comparable() {
        let nest = |leaf: Value| {
            (0..40).fold(
                leaf,
                |inner, _| json!({"type": "object", "properties": {"a": inner}}),
            )
        };
        let changes = compare(
            &nest(json!({"type": "string"})),
            &nest(json!({"type": "integer"})),
            ChangeLocation::Input,
        );
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].kind, ChangeKind::NotComparable);
        assert!(changes[0].breaking);
        assert_eq!(
            changes[0].path.matches("/properties/a").count(),
            MAX_DEPTH + 1
        );
    }

    #[test]
    fn ref_fan_out_is_bounded() {
        // D0 uses D1 twice, D1 uses D2 twice, ...: 2^30 paths to the leaf.
        let defs = |leaf: &str| {
            let mut defs = Map::new();
            for i in 0..30 {
                let next = json!({"$ref": format!("#/$defs/D{}", i + 1)});
                defs.insert(
                    format!("D{i}"),
                    json!({"type": "object", "properties": {"l": next, "r": next}}),
                );
            }
            defs.insert("D30".to_owned(), json!({"type": leaf}));
            json!({"$ref": "#/$defs/D0", "$defs": defs})
        };
        let changes = compare(&defs("string"), &defs("integer"), ChangeLocation::Input);
        assert!(changes.len() < MAX_NODES, "{}", changes.len());
        assert!(changes.iter().any(|c| c.kind == ChangeKind::NotComparable));
        assert!(changes.iter().all(|c| c.breaking));
    }

    #[test]
    fn a_changed_definition_behind_an_unmodeled_keyword_is_seen() {
        let schema = |def: Value| json!({"anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}], "$defs": {"A": def}});
        assert_eq!(
            kinds(
                &schema(json!({"type": "string"})),
                &schema(json!({"type": "integer"}))
            ),
            [ChangeKind::NotComparable]
        );
        assert!(
            kinds(
                &schema(json!({"type": "string"})),
                &schema(json!({"type": "string"}))
            )
            .is_empty()
        );
    }

    #[test]
    fn draft4_boolean_exclusive_bounds_are_not_ordered() {
        let old = json!({"type": "number", "maximum": 5, "exclusiveMaximum": false});
        let new = json!({"type": "number", "maximum": 5, "exclusiveMaximum": true});
        let changes = compare(&old, &new, ChangeLocation::Input);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].kind, ChangeKind::BoundChanged);
        assert!(changes[0].breaking);
    }

    #[test]
    fn messages_keep_the_path_as_written() {
        let schema = |required: Value| {
            json!({"type": "object", "properties": {"billingAddress": {"type": "object",
                "properties": {"zipCode": {"type": "string"}}, "required": required}}})
        };
        let changes = compare(
            &schema(json!([])),
            &schema(json!(["zipCode"])),
            ChangeLocation::Input,
        );
        assert_eq!(
            changes[0].message,
            "Property `zipCode` of the input at `/properties/billingAddress` is now required."
        );
    }

    #[test]
    fn escape_follows_json_pointer() {
        assert_eq!(escape("a/b~c"), "a~1b~0c");
        assert_eq!(escape("sku"), "sku");
    }
}
