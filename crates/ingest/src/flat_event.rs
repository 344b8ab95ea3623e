//! One event's fields after flattening: the value model both wire formats decode into.
//!
//! Nested objects are flattened with `.` up to [`MAX_DEPTH`] levels of keys; deeper
//! objects, and arrays at any level, are kept as compact JSON strings. Nulls are
//! skipped (a field that is null is absent). Strings longer than the limit are cut at
//! a char boundary and flagged. Names and strings live in two reusable arenas, so a
//! decoder flattening many events allocates only while the buffers grow.

use quarry_schema::FieldType;

use crate::Limits;

/// Deepest key path kept as separate columns: `a.b.c.d.e` has depth 5; an object
/// nested below it is stored as one JSON string at `a.b.c.d.e`.
pub(crate) const MAX_DEPTH: usize = 5;

/// A flattened value; strings are byte ranges into [`FlatEvent`]'s string arena.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str { start: usize, end: usize },
}

impl Scalar {
    /// The column type this value would create.
    pub(crate) fn field_type(self) -> FieldType {
        match self {
            Scalar::Bool(_) => FieldType::Bool,
            Scalar::Int(_) => FieldType::Int,
            Scalar::Float(_) => FieldType::Float,
            Scalar::Str { .. } => FieldType::String,
        }
    }

    /// The value when it is an int (the placement rule needs its magnitude).
    pub(crate) fn int_value(self) -> Option<i64> {
        match self {
            Scalar::Int(value) => Some(value),
            _ => None,
        }
    }
}

/// One flattened field: its full dotted name and its value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlatField {
    name_start: usize,
    name_end: usize,
    /// The value.
    pub(crate) value: Scalar,
    /// Whether the string value was cut to the size limit.
    pub(crate) truncated: bool,
    /// Whether the name is one of Quarry's own `meta.` columns, written by a decoder
    /// (OTLP's `meta.signal_type`); user fields with reserved names are renamed.
    pub(crate) own: bool,
}

/// The state of a [`FlatEvent`] to return to: fields recorded before it are kept.
///
/// OTLP decoders flatten a resource's and a scope's attributes once, then restore
/// to this point before each span, log record or data point of that scope.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checkpoint {
    names: usize,
    strings: usize,
    fields: usize,
    field_count: usize,
}

/// Position in the key path to return to after a nested key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathMark(usize);

/// The flattened fields of one event, in reusable buffers.
#[derive(Debug)]
pub(crate) struct FlatEvent {
    max_fields: usize,
    max_string_bytes: usize,
    /// The dotted key path of the value being decoded (`a.b.` inside `a.b`).
    path: String,
    names: String,
    strings: String,
    fields: Vec<FlatField>,
    /// Non-null leaves seen, kept counting past `max_fields` for the error message.
    field_count: usize,
    json: Vec<u8>,
}

impl FlatEvent {
    /// An empty event buffer enforcing `limits`.
    pub(crate) fn new(limits: &Limits) -> Self {
        FlatEvent {
            max_fields: limits.max_fields_per_event,
            max_string_bytes: limits.max_string_bytes,
            path: String::new(),
            names: String::new(),
            strings: String::new(),
            fields: Vec::new(),
            field_count: 0,
            json: Vec::new(),
        }
    }

    /// Forgets the previous event, keeping the buffers' capacity.
    pub(crate) fn clear(&mut self) {
        self.path.clear();
        self.names.clear();
        self.strings.clear();
        self.fields.clear();
        self.field_count = 0;
    }

    /// The current state, to [`FlatEvent::restore`] later.
    pub(crate) fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            names: self.names.len(),
            strings: self.strings.len(),
            fields: self.fields.len(),
            field_count: self.field_count,
        }
    }

    /// Forgets every field recorded since `checkpoint` was taken.
    pub(crate) fn restore(&mut self, checkpoint: Checkpoint) {
        self.path.clear();
        self.names.truncate(checkpoint.names);
        self.strings.truncate(checkpoint.strings);
        self.fields.truncate(checkpoint.fields);
        self.field_count = checkpoint.field_count;
    }

    /// Records a field of Quarry's own (`meta.signal_type`) at the top level; it is
    /// not renamed the way a user field with a reserved name is.
    pub(crate) fn own_string(&mut self, name: &str, value: &str) {
        let before = self.fields.len();
        let mark = self.enter(name);
        self.string(value);
        self.leave(mark);
        self.mark_own(before);
    }

    /// Records a float field of Quarry's own, like [`FlatEvent::own_string`].
    pub(crate) fn own_float(&mut self, name: &str, value: f64) {
        let before = self.fields.len();
        let mark = self.enter(name);
        self.float(value);
        self.leave(mark);
        self.mark_own(before);
    }

    /// Flags the field recorded since there were `before` fields (none if the
    /// field limit dropped it) as Quarry's own.
    fn mark_own(&mut self, before: usize) {
        if self.fields.len() > before
            && let Some(field) = self.fields.last_mut()
        {
            field.own = true;
        }
    }

    /// Records `bytes` as lower-case hex text at the current path (trace and span ids).
    ///
    /// Written by hand because it writes straight into the string arena: no
    /// allocation per id, and ids are on every row of a trace.
    pub(crate) fn hex(&mut self, bytes: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        if self.field_count >= self.max_fields {
            self.field_count += 1;
            return;
        }
        let start = self.strings.len();
        self.strings.reserve(bytes.len() * 2);
        for byte in bytes {
            self.strings
                .push(char::from(DIGITS[usize::from(byte >> 4)]));
            self.strings
                .push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        let end = self.strings.len();
        self.leaf(Scalar::Str { start, end }, false);
    }

    /// The fields, in input order (duplicates included; later ones win).
    pub(crate) fn fields(&self) -> &[FlatField] {
        &self.fields
    }

    /// The full dotted name of `field`.
    pub(crate) fn name(&self, field: &FlatField) -> &str {
        self.names
            .get(field.name_start..field.name_end)
            .unwrap_or("")
    }

    /// The text of a string value.
    pub(crate) fn text(&self, start: usize, end: usize) -> &str {
        self.strings.get(start..end).unwrap_or("")
    }

    /// Non-null fields seen, including any beyond the limit.
    #[cfg(test)]
    pub(crate) fn field_count(&self) -> usize {
        self.field_count
    }

    /// Whether the event has more fields than the limit allows.
    pub(crate) fn too_many_fields(&self) -> Option<crate::IngestError> {
        (self.field_count > self.max_fields).then_some(crate::IngestError::TooManyFields {
            count: self.field_count,
            limit: self.max_fields,
        })
    }

    /// Descends into key `key` of the current object.
    pub(crate) fn enter(&mut self, key: &str) -> PathMark {
        let mark = PathMark(self.path.len());
        self.path.push_str(key);
        mark
    }

    /// Descends into a key that is not a string (msgpack allows any key type).
    pub(crate) fn enter_display(&mut self, key: impl std::fmt::Display) -> PathMark {
        use std::fmt::Write;
        let mark = PathMark(self.path.len());
        // Writing to a String cannot fail.
        let _ = write!(self.path, "{key}");
        mark
    }

    /// Makes the current key a prefix for the keys of a nested object.
    pub(crate) fn open_object(&mut self) {
        self.path.push('.');
    }

    /// Returns to the path before the matching [`FlatEvent::enter`].
    pub(crate) fn leave(&mut self, mark: PathMark) {
        self.path.truncate(mark.0);
    }

    /// Records a boolean at the current path.
    pub(crate) fn bool(&mut self, value: bool) {
        self.leaf(Scalar::Bool(value), false);
    }

    /// Records a signed integer at the current path.
    pub(crate) fn int(&mut self, value: i64) {
        self.leaf(Scalar::Int(value), false);
    }

    /// Records an unsigned integer; beyond `i64::MAX` it becomes a float.
    pub(crate) fn uint(&mut self, value: u64) {
        match i64::try_from(value) {
            Ok(value) => self.int(value),
            // The nearest float: a u64 this large cannot be an Int64 column value.
            Err(_) => self.float(value as f64),
        }
    }

    /// Records a float at the current path.
    pub(crate) fn float(&mut self, value: f64) {
        self.leaf(Scalar::Float(value), false);
    }

    /// Records a string, truncating it to the limit at a char boundary.
    pub(crate) fn string(&mut self, value: &str) {
        if self.field_count >= self.max_fields {
            // Over the field limit the event is rejected: count, store nothing.
            self.field_count += 1;
            return;
        }
        let (kept, truncated) = if value.len() > self.max_string_bytes {
            (
                &value[..value.floor_char_boundary(self.max_string_bytes)],
                true,
            )
        } else {
            (value, false)
        };
        let start = self.strings.len();
        self.strings.push_str(kept);
        let end = self.strings.len();
        self.leaf(Scalar::Str { start, end }, truncated);
    }

    /// A cleared buffer to write a compact JSON value into; then call [`FlatEvent::json_done`].
    pub(crate) fn json_buffer(&mut self) -> &mut Vec<u8> {
        self.json.clear();
        &mut self.json
    }

    /// Records the JSON written into [`FlatEvent::json_buffer`] as a string value.
    pub(crate) fn json_done(&mut self) {
        let json = std::mem::take(&mut self.json);
        // serde_json writes UTF-8; the check costs little on this rare path.
        if let Ok(text) = std::str::from_utf8(&json) {
            self.string(text);
        }
        self.json = json;
    }

    /// Records a compact JSON string of `value` (arrays and too-deep objects).
    pub(crate) fn json_value(&mut self, value: &serde_json::Value) {
        let buffer = self.json_buffer();
        if serde_json::to_writer(&mut *buffer, value).is_ok() {
            self.json_done();
        }
    }

    fn leaf(&mut self, value: Scalar, truncated: bool) {
        self.field_count += 1;
        if self.field_count > self.max_fields {
            return;
        }
        let name_start = self.names.len();
        self.names.push_str(&self.path);
        self.fields.push(FlatField {
            name_start,
            name_end: self.names.len(),
            value,
            truncated,
            own: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value as Json;

    fn limits(max_fields: usize, max_string_bytes: usize) -> Limits {
        Limits {
            max_fields_per_event: max_fields,
            max_string_bytes,
            ..Limits::default()
        }
    }

    #[test]
    fn paths_nest_and_unwind() {
        let mut event = FlatEvent::new(&Limits::default());
        let a = event.enter("a");
        event.open_object();
        let b = event.enter("b");
        event.int(1);
        event.leave(b);
        let c = event.enter_display(7);
        event.string("x");
        event.leave(c);
        event.leave(a);
        let d = event.enter("d");
        event.uint(u64::MAX);
        event.leave(d);
        let names: Vec<&str> = event.fields().iter().map(|f| event.name(f)).collect();
        assert_eq!(names, ["a.b", "a.7", "d"]);
        assert_eq!(event.fields()[2].value, Scalar::Float(u64::MAX as f64));
    }

    #[test]
    fn long_strings_are_cut_at_a_char_boundary() {
        let mut event = FlatEvent::new(&limits(10, 5));
        let mark = event.enter("s");
        event.string("héllo wörld"); // 'é' is 2 bytes: "héll" is 5 bytes
        event.leave(mark);
        let field = event.fields()[0];
        let Scalar::Str { start, end } = field.value else {
            panic!("not a string")
        };
        assert_eq!(event.text(start, end), "héll");
        assert!(field.truncated);
        // Cutting inside a multi-byte char backs off to its start.
        let mut event = FlatEvent::new(&limits(10, 2));
        event.enter("s");
        event.string("héllo");
        let Scalar::Str { start, end } = event.fields()[0].value else {
            panic!("not a string")
        };
        assert_eq!(event.text(start, end), "h");
    }

    #[test]
    fn fields_beyond_the_limit_are_counted_not_stored() {
        let mut event = FlatEvent::new(&limits(2, 100));
        for key in ["a", "b", "c", "d"] {
            let mark = event.enter(key);
            event.string("v");
            event.leave(mark);
        }
        assert_eq!(event.fields().len(), 2);
        assert_eq!(event.field_count(), 4);
        assert!(matches!(
            event.too_many_fields(),
            Some(crate::IngestError::TooManyFields { count: 4, limit: 2 })
        ));
        event.clear();
        assert_eq!(event.field_count(), 0);
        assert!(event.too_many_fields().is_none());
    }

    /// A flattened value as the tests compare it.
    #[derive(Debug, Clone, PartialEq)]
    enum Leaf {
        Bool(bool),
        Int(i64),
        Float(f64),
        Str(String),
    }

    /// The fields of `event` as (name, value, truncated).
    fn flattened(event: &FlatEvent) -> Vec<(String, Leaf, bool)> {
        event
            .fields()
            .iter()
            .map(|field| {
                let value = match field.value {
                    Scalar::Bool(b) => Leaf::Bool(b),
                    Scalar::Int(i) => Leaf::Int(i),
                    Scalar::Float(f) => Leaf::Float(f),
                    Scalar::Str { start, end } => Leaf::Str(event.text(start, end).to_owned()),
                };
                (event.name(field).to_owned(), value, field.truncated)
            })
            .collect()
    }

    /// The documented rule, written independently of the decoders: objects flatten
    /// with `.` up to [`MAX_DEPTH`] keys, deeper objects and all arrays become
    /// compact JSON, nulls vanish, u64 beyond i64 becomes a float.
    fn reference(
        object: &serde_json::Map<String, Json>,
        prefix: &str,
        depth: usize,
        out: &mut Vec<(String, Leaf)>,
    ) {
        for (key, value) in object {
            let path = format!("{prefix}{key}");
            let leaf = match value {
                Json::Null => continue,
                Json::Bool(b) => Leaf::Bool(*b),
                Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                    (Some(i), _, _) => Leaf::Int(i),
                    (None, Some(u), _) => Leaf::Float(u as f64),
                    (_, _, f) => Leaf::Float(f.unwrap()),
                },
                Json::String(text) => Leaf::Str(text.clone()),
                Json::Object(inner) if depth + 1 < MAX_DEPTH => {
                    reference(inner, &format!("{path}."), depth + 1, out);
                    continue;
                }
                Json::Object(_) | Json::Array(_) => Leaf::Str(value.to_string()),
            };
            out.push((path, leaf));
        }
    }

    /// Applies the string limit to the reference: cut at a char boundary, flagged.
    fn truncate(fields: Vec<(String, Leaf)>, max_string_bytes: usize) -> Vec<(String, Leaf, bool)> {
        fields
            .into_iter()
            .map(|(name, leaf)| match leaf {
                Leaf::Str(text) if text.len() > max_string_bytes => {
                    let kept = text[..text.floor_char_boundary(max_string_bytes)].to_owned();
                    (name, Leaf::Str(kept), true)
                }
                leaf => (name, leaf, false),
            })
            .collect()
    }

    /// Scalars JSON and msgpack both carry exactly: floats are short dyadic
    /// fractions, so their decimal text parses back to the same bits.
    fn json_leaf() -> impl Strategy<Value = Json> {
        prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::from),
            (i64::MAX as u64 + 1..=u64::MAX).prop_map(Json::from),
            ((-1i32 << 20)..(1 << 20), 1..4i32)
                .prop_map(|(m, k)| Json::from(f64::from(m) / 2f64.powi(k) + 0.5)),
            "\\PC{0,12}".prop_map(Json::String),
        ]
    }

    /// Event objects nested deeper than [`MAX_DEPTH`], with arrays and empty objects.
    fn json_object() -> impl Strategy<Value = serde_json::Map<String, Json>> {
        let value = json_leaf().prop_recursive(8, 96, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Json::Array),
                prop::collection::vec(("[a-z]{1,2}", inner), 0..4)
                    .prop_map(|entries| Json::Object(entries.into_iter().collect())),
            ]
        });
        // Chains of one-key objects around MAX_DEPTH deep, which random trees
        // rarely reach, so the depth rule is always exercised.
        let chain = (
            prop::collection::vec("[a-z]{1,2}", MAX_DEPTH - 2..MAX_DEPTH + 3),
            value.clone(),
        )
            .prop_map(|(keys, leaf)| {
                keys.iter().rev().fold(leaf, |inner, key| {
                    Json::Object(std::iter::once((key.clone(), inner)).collect())
                })
            });
        let entries = prop_oneof![value, chain];
        prop::collection::vec(("[a-z_]{1,3}", entries), 0..8)
            .prop_map(|entries| entries.into_iter().collect())
    }

    fn to_msgpack(value: &Json) -> rmpv::Value {
        match value {
            Json::Null => rmpv::Value::Nil,
            Json::Bool(b) => rmpv::Value::from(*b),
            Json::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => rmpv::Value::from(i),
                (None, Some(u)) => rmpv::Value::from(u),
                _ => rmpv::Value::F64(n.as_f64().unwrap()),
            },
            Json::String(text) => rmpv::Value::from(text.as_str()),
            Json::Array(items) => rmpv::Value::Array(items.iter().map(to_msgpack).collect()),
            Json::Object(entries) => rmpv::Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| (rmpv::Value::from(k.as_str()), to_msgpack(v)))
                    .collect(),
            ),
        }
    }

    fn flatten_json(body: &[u8], limits: &Limits) -> FlatEvent {
        let mut event = FlatEvent::new(limits);
        crate::json::flatten_event(body, &mut event).unwrap();
        event
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn json_flattens_to_dotted_names_each_leaf_once(object in json_object()) {
            let body = serde_json::to_vec(&object).unwrap();
            let event = flatten_json(&body, &Limits::default());
            let mut expected = Vec::new();
            reference(&object, "", 0, &mut expected);
            prop_assert_eq!(flattened(&event), truncate(expected.clone(), usize::MAX));
            prop_assert_eq!(event.field_count(), expected.len());
            // Keys hold no dots, so every path names one leaf.
            let mut names: Vec<&str> = expected.iter().map(|(name, _)| name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            prop_assert_eq!(names.len(), expected.len());
            prop_assert!(names.iter().all(|name| name.split('.').count() <= MAX_DEPTH));
        }

        #[test]
        fn flattening_is_deterministic_and_forgets_the_last_event(
            first in json_object(),
            second in json_object(),
        ) {
            let limits = Limits::default();
            let body = serde_json::to_vec(&second).unwrap();
            let fresh = flattened(&flatten_json(&body, &limits));
            // The same buffers, reused after another event.
            let mut event = flatten_json(&serde_json::to_vec(&first).unwrap(), &limits);
            event.clear();
            crate::json::flatten_event(&body, &mut event).unwrap();
            prop_assert_eq!(flattened(&event), fresh);
        }

        #[test]
        fn msgpack_flattens_like_json(object in json_object()) {
            let limits = Limits::default();
            let json = flattened(&flatten_json(&serde_json::to_vec(&object).unwrap(), &limits));
            let mut body = Vec::new();
            rmpv::encode::write_value(&mut body, &to_msgpack(&Json::Object(object))).unwrap();
            let mut event = FlatEvent::new(&limits);
            crate::msgpack::flatten_event(&body, &mut event).unwrap();
            prop_assert_eq!(flattened(&event), json);
        }

        #[test]
        fn limits_cut_strings_and_count_fields(
            object in json_object(),
            max_fields in 0..12usize,
            max_string_bytes in 0..10usize,
        ) {
            let limits = limits(max_fields, max_string_bytes);
            let event = flatten_json(&serde_json::to_vec(&object).unwrap(), &limits);
            let mut expected = Vec::new();
            reference(&object, "", 0, &mut expected);
            let count = expected.len();
            let mut expected = truncate(expected, max_string_bytes);
            // Fields past the limit are counted, not stored; the event is refused.
            expected.truncate(max_fields);
            prop_assert_eq!(flattened(&event), expected);
            prop_assert_eq!(event.field_count(), count);
            match event.too_many_fields() {
                None => prop_assert!(count <= max_fields),
                Some(crate::IngestError::TooManyFields { count: seen, limit }) => {
                    prop_assert_eq!((seen, limit), (count, max_fields));
                    prop_assert!(count > max_fields);
                }
                Some(other) => prop_assert!(false, "unexpected {}", other),
            }
        }
    }
}
