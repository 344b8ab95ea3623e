//! Applying one environment's redaction rules to decoded batches, before the WAL.
//!
//! Rules work on columns, after decoding, so one implementation covers every wire
//! format (Events API JSON and msgpack, OTLP attributes and bodies, stream
//! sources): nested fields are already flattened (`user.email`), arrays and deep
//! objects are JSON strings (masked like any string), and a value kept in a typed
//! sibling column (`user_id#string`) is selected by its field's name.
//!
//! The cost stays low: the patterns of all mask rules form one `RegexSet`, so a
//! string is scanned once to learn whether (and which) patterns need work, and
//! only the few values that match are rewritten; non-string columns are never
//! scanned.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;
use hmac::{Hmac, KeyInit, Mac};
use quarry_schema::fields;
use regex::{Regex, RegexSet, RegexSetBuilder};
use sha2::Sha256;

use super::patterns::{ALL_PATTERNS, BuiltinPattern};
use super::rules::{REGEX_SIZE_LIMIT, RedactAction, RedactionRule, compile_custom};

/// Columns that identify rows and are never masked: trace and span ids are hex
/// and must stay joinable, and `meta.` columns are Quarry's own.
const UNMASKED_COLUMNS: [&str; 5] = [
    fields::TRACE_ID,
    fields::SPAN_ID,
    fields::PARENT_ID,
    fields::LINK_TRACE_ID,
    fields::LINK_SPAN_ID,
];

/// The HMAC key of `hash` rules.
pub type HashKey = Hmac<Sha256>;

/// Builds the keyed hash from the server's secret (any length is a valid HMAC key).
pub fn hash_key(secret: &[u8]) -> HashKey {
    // HMAC accepts keys of every length, so this cannot fail.
    <HashKey as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!())
}

/// Which fields a rule selects.
#[derive(Debug, Clone)]
struct FieldSelector {
    exact: Vec<String>,
    /// Prefixes including their final dot (`user.` for `user.*`).
    prefixes: Vec<String>,
}

impl FieldSelector {
    fn new(fields: &[String]) -> Option<FieldSelector> {
        if fields.is_empty() {
            return None;
        }
        let mut selector = FieldSelector {
            exact: Vec::new(),
            prefixes: Vec::new(),
        };
        for field in fields {
            match field.strip_suffix('*') {
                Some(prefix) => selector.prefixes.push(prefix.to_owned()),
                None => selector.exact.push(field.clone()),
            }
        }
        Some(selector)
    }

    fn selects(&self, field: &str) -> bool {
        self.exact.iter().any(|exact| exact == field)
            || self
                .prefixes
                .iter()
                .any(|prefix| field.starts_with(prefix.as_str()))
    }
}

/// One regex of a mask rule.
#[derive(Debug)]
struct Masker {
    /// Index of the owning rule.
    rule: usize,
    regex: Regex,
    /// The built-in pattern, whose candidates are confirmed; none for a custom regex.
    builtin: Option<BuiltinPattern>,
    /// What a match becomes: `[email]`, `[redacted]`.
    replacement: String,
}

#[derive(Debug)]
struct CompiledRule {
    name: String,
    action: RedactAction,
    fields: Option<FieldSelector>,
    datasets: Vec<String>,
}

impl CompiledRule {
    fn applies_to(&self, dataset: &str) -> bool {
        self.datasets.is_empty() || self.datasets.iter().any(|name| name == dataset)
    }

    fn selects(&self, field: &str) -> bool {
        self.fields
            .as_ref()
            .is_none_or(|fields| fields.selects(field))
    }
}

/// An environment's redaction rules, compiled once when they are set.
pub struct Redactor {
    rules: Vec<CompiledRule>,
    maskers: Vec<Masker>,
    /// Every masker's regex, in `maskers` order.
    set: RegexSet,
    key: HashKey,
}

impl std::fmt::Debug for Redactor {
    // Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("rules", &self.rules)
            .field("maskers", &self.maskers)
            .finish_non_exhaustive()
    }
}

/// Redactions made, by rule name.
pub type RedactionCounts = HashMap<String, u64>;

/// Why a batch could not be redacted (it is then refused, never written as is).
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    #[error("redacting a batch failed: {0}")]
    Arrow(#[from] ArrowError),
}

impl Redactor {
    /// Compiles validated rules; `key` keys the hashes.
    pub fn new(rules: &[RedactionRule], key: HashKey) -> Result<Redactor, String> {
        let mut compiled = Vec::with_capacity(rules.len());
        let mut maskers = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            if rule.action == RedactAction::Mask {
                // Tokens before what they may contain (see ALL_PATTERNS).
                for pattern in ALL_PATTERNS.iter().filter(|p| rule.patterns.contains(p)) {
                    maskers.push(Masker {
                        rule: index,
                        regex: pattern.compile().map_err(|error| error.to_string())?,
                        builtin: Some(*pattern),
                        replacement: format!("[{}]", pattern.name()),
                    });
                }
                if let Some(regex) = &rule.regex {
                    maskers.push(Masker {
                        rule: index,
                        regex: compile_custom(regex)?,
                        builtin: None,
                        replacement: "[redacted]".to_owned(),
                    });
                }
            }
            compiled.push(CompiledRule {
                name: rule.name.clone(),
                action: rule.action,
                fields: FieldSelector::new(&rule.fields),
                datasets: rule.datasets.clone(),
            });
        }
        let set = RegexSetBuilder::new(maskers.iter().map(|masker| masker.regex.as_str()))
            .size_limit(REGEX_SIZE_LIMIT * 8)
            .build()
            .map_err(|error| error.to_string())?;
        Ok(Redactor {
            rules: compiled,
            maskers,
            set,
            key,
        })
    }

    /// Whether there is anything to do at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// `batch` of `dataset` with every rule applied; adds what was done to `counts`.
    pub fn redact(
        &self,
        dataset: &str,
        batch: RecordBatch,
        counts: &mut RedactionCounts,
    ) -> Result<RecordBatch, RedactError> {
        let rules: Vec<usize> = (0..self.rules.len())
            .filter(|&index| self.rules[index].applies_to(dataset))
            .collect();
        if rules.is_empty() {
            return Ok(batch);
        }
        let schema = batch.schema();
        let mut fields: Vec<Field> = Vec::with_capacity(batch.num_columns());
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        let mut changed = false;
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            let name = field.name();
            if name == quarry_schema::TIMESTAMP || name.starts_with(fields::META_PREFIX) {
                fields.push(field.as_ref().clone());
                columns.push(Arc::clone(column));
                continue;
            }
            // A value kept in a typed sibling (`user_id#string`) is its field's value.
            let base = name.split_once('#').map_or(name.as_str(), |(base, _)| base);
            match self.column_action(&rules, base) {
                Some((rule, RedactAction::Drop)) => {
                    *counts.entry(self.rules[rule].name.clone()).or_default() +=
                        (column.len() - column.null_count()) as u64;
                    changed = true;
                }
                Some((rule, RedactAction::Hash)) => {
                    let hashed = self.hash_column(column)?;
                    *counts.entry(self.rules[rule].name.clone()).or_default() +=
                        (column.len() - column.null_count()) as u64;
                    fields.push(Field::new(name, DataType::Utf8, true));
                    columns.push(hashed);
                    changed = true;
                }
                Some((_, RedactAction::Mask)) | None => {
                    if let Some(rule) = self.name_carries_pattern(&rules, name) {
                        // A key that is itself sensitive (`users.jane@example.com`)
                        // cannot be renamed safely (two keys could collide): drop it.
                        *counts.entry(self.rules[rule].name.clone()).or_default() += 1;
                        changed = true;
                        continue;
                    }
                    let masked = match column.data_type() {
                        DataType::Utf8 if !UNMASKED_COLUMNS.contains(&base) => {
                            self.mask_column(&rules, base, column.as_string::<i32>(), counts)
                        }
                        _ => None,
                    };
                    fields.push(field.as_ref().clone());
                    match masked {
                        Some(masked) => {
                            columns.push(Arc::new(masked));
                            changed = true;
                        }
                        None => columns.push(Arc::clone(column)),
                    }
                }
            }
        }
        if !changed {
            return Ok(batch);
        }
        let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    /// The first drop or hash rule selecting `field` (drop wins when both do, as
    /// it keeps less), else whether a mask rule does.
    fn column_action(&self, rules: &[usize], field: &str) -> Option<(usize, RedactAction)> {
        let mut found: Option<(usize, RedactAction)> = None;
        for &index in rules {
            let rule = &self.rules[index];
            if rule.action == RedactAction::Mask || !rule.selects(field) {
                continue;
            }
            match (found, rule.action) {
                (_, RedactAction::Drop) => return Some((index, RedactAction::Drop)),
                (None, action) => found = Some((index, action)),
                _ => {}
            }
        }
        found
    }

    /// A mask rule for every field whose patterns match the column's name itself.
    fn name_carries_pattern(&self, rules: &[usize], name: &str) -> Option<usize> {
        if self.maskers.is_empty() {
            return None;
        }
        self.set.matches(name).iter().find_map(|index| {
            let masker = &self.maskers[index];
            let rule = &self.rules[masker.rule];
            let applies = rules.contains(&masker.rule) && rule.fields.is_none();
            (applies && self.masker_finds(masker, name)).then_some(masker.rule)
        })
    }

    fn masker_finds(&self, masker: &Masker, text: &str) -> bool {
        masker
            .regex
            .find_iter(text)
            .any(|found| confirmed(masker, text, found.start(), found.end()))
    }

    /// Every value's HMAC-SHA256 in hex; non-string values are hashed as their text.
    fn hash_column(&self, column: &ArrayRef) -> Result<ArrayRef, RedactError> {
        let text = cast(column, &DataType::Utf8)?;
        let strings = text.as_string::<i32>();
        let hashed: StringArray = strings
            .iter()
            .map(|value| value.map(|value| self.hash(value)))
            .collect();
        Ok(Arc::new(hashed))
    }

    /// The keyed hash of one value, in lower-case hex.
    pub fn hash(&self, value: &str) -> String {
        let mut mac = self.key.clone();
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The column with every mask applied, or none when nothing matched.
    fn mask_column(
        &self,
        rules: &[usize],
        field: &str,
        column: &StringArray,
        counts: &mut RedactionCounts,
    ) -> Option<StringArray> {
        let active: Vec<usize> = (0..self.maskers.len())
            .filter(|&index| {
                let rule = self.maskers[index].rule;
                rules.contains(&rule) && self.rules[rule].selects(field)
            })
            .collect();
        if active.is_empty() {
            return None;
        }
        let mut out: Option<Vec<Option<String>>> = None;
        for (row, value) in column.iter().enumerate() {
            let Some(value) = value else { continue };
            let matches = self.set.matches(value);
            if !active.iter().any(|&index| matches.matched(index)) {
                continue;
            }
            let mut text = value.to_owned();
            let mut rewritten = false;
            for &index in active.iter().filter(|&&index| matches.matched(index)) {
                let masker = &self.maskers[index];
                let (masked, hits) = mask(masker, &text);
                if hits > 0 {
                    *counts
                        .entry(self.rules[masker.rule].name.clone())
                        .or_default() += hits;
                    text = masked;
                    rewritten = true;
                }
            }
            if rewritten {
                let values = out.get_or_insert_with(|| {
                    column
                        .iter()
                        .map(|value| value.map(str::to_owned))
                        .collect()
                });
                values[row] = Some(text);
            }
        }
        out.map(|values| values.into_iter().collect())
    }
}

/// `text` with the masker's confirmed matches replaced, and how many there were.
fn mask(masker: &Masker, text: &str) -> (String, u64) {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut hits = 0;
    for found in masker.regex.find_iter(text) {
        if !confirmed(masker, text, found.start(), found.end()) {
            continue;
        }
        out.push_str(&text[last..found.start()]);
        out.push_str(&masker.replacement);
        last = found.end();
        hits += 1;
    }
    out.push_str(&text[last..]);
    (out, hits)
}

/// Whether a candidate match really is what its built-in pattern looks for.
fn confirmed(masker: &Masker, text: &str, start: usize, end: usize) -> bool {
    match masker.builtin {
        None => true,
        // `std::fmt` holds `d::f`, a valid IPv6 address: an address stands apart
        // from the letters and digits around it.
        Some(BuiltinPattern::Ipv6) => {
            let before = text[..start].chars().next_back();
            let after = text[end..].chars().next();
            let apart = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric() && c != '_');
            apart(before) && apart(after) && BuiltinPattern::Ipv6.confirms(&text[start..end])
        }
        Some(pattern) => pattern.confirms(&text[start..end]),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, TimestampNanosecondArray};

    use super::*;
    use crate::pipeline::rules::EnvironmentRules;

    fn redactor(json: &str) -> Redactor {
        let rules = EnvironmentRules::from_json(json.as_bytes()).unwrap();
        Redactor::new(&rules.redaction, hash_key(b"test secret")).unwrap()
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let mut all: Vec<(&str, ArrayRef)> = vec![(
            "timestamp",
            Arc::new(
                TimestampNanosecondArray::from(vec![0; columns[0].1.len()]).with_timezone("UTC"),
            ),
        )];
        all.extend(columns);
        RecordBatch::try_from_iter(all).unwrap()
    }

    fn strings(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    fn column<'a>(batch: &'a RecordBatch, name: &str) -> Vec<Option<&'a str>> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .collect()
    }

    #[test]
    fn drop_hash_and_mask_each_do_their_part() {
        let redactor = redactor(
            r#"{"redaction": [
                {"name": "secrets", "action": "drop", "fields": ["password", "auth.*"]},
                {"name": "users", "action": "hash", "fields": ["user.email", "user.id"]},
                {"name": "pii", "action": "mask", "patterns": ["email", "card_number"]}
            ]}"#,
        );
        let input = batch(vec![
            ("password", strings(&[Some("hunter2"), None])),
            ("auth.token", strings(&[Some("t"), Some("u")])),
            (
                "user.email",
                strings(&[Some("a@b.example"), Some("a@b.example")]),
            ),
            ("user.id", Arc::new(Int64Array::from(vec![Some(7), None]))),
            (
                "body",
                strings(&[
                    Some("mail x@y.example card 4111 1111 1111 1111"),
                    Some("fine"),
                ]),
            ),
            ("trace.trace_id", strings(&[Some("4111111111111111"), None])),
        ]);
        let mut counts = RedactionCounts::new();
        let out = redactor.redact("shop", input, &mut counts).unwrap();
        assert!(out.column_by_name("password").is_none());
        assert!(out.column_by_name("auth.token").is_none());
        let emails = column(&out, "user.email");
        assert_eq!(emails[0], emails[1]);
        assert_eq!(emails[0].unwrap().len(), 64);
        assert_ne!(emails[0], Some("a@b.example"));
        let ids = column(&out, "user.id");
        assert_eq!(ids[0], Some(redactor.hash("7").as_str()));
        assert_eq!(ids[1], None);
        assert_eq!(
            column(&out, "body"),
            [Some("mail [email] card [card_number]"), Some("fine")]
        );
        assert_eq!(column(&out, "trace.trace_id")[0], Some("4111111111111111"));
        assert_eq!(counts["secrets"], 3);
        assert_eq!(counts["users"], 3);
        assert_eq!(counts["pii"], 2);
    }

    #[test]
    fn rules_apply_to_their_datasets_and_sibling_columns() {
        let redactor = redactor(
            r#"{"redaction": [{"name": "ids", "action": "drop", "fields": ["user_id"], "datasets": ["shop"]}]}"#,
        );
        let input = batch(vec![
            ("user_id", strings(&[Some("a")])),
            ("user_id#string", strings(&[Some("b")])),
        ]);
        let mut counts = RedactionCounts::new();
        let other = redactor
            .redact("other", input.clone(), &mut counts)
            .unwrap();
        assert_eq!(other.num_columns(), 3);
        let shop = redactor.redact("shop", input, &mut counts).unwrap();
        assert_eq!(shop.num_columns(), 1);
    }

    #[test]
    fn a_field_named_by_a_sensitive_value_is_dropped() {
        let redactor = redactor(
            r#"{"redaction": [{"name": "pii", "action": "mask", "patterns": ["email"]}]}"#,
        );
        let input = batch(vec![
            ("visits.jane@example.com", strings(&[Some("1")])),
            ("ok", strings(&[Some("std::fmt and ::1")])),
        ]);
        let mut counts = RedactionCounts::new();
        let out = redactor.redact("d", input, &mut counts).unwrap();
        assert!(out.column_by_name("visits.jane@example.com").is_none());
        assert_eq!(column(&out, "ok"), [Some("std::fmt and ::1")]);
        let ipv6 = self::redactor(
            r#"{"redaction": [{"name": "ip", "action": "mask", "patterns": ["ipv6"]}]}"#,
        );
        let input = batch(vec![("ok", strings(&[Some("std::fmt and ::1")]))]);
        let out = ipv6.redact("d", input, &mut counts).unwrap();
        assert_eq!(column(&out, "ok"), [Some("std::fmt and [ipv6]")]);
    }

    #[test]
    fn a_custom_regex_masks_its_matches() {
        let redactor = redactor(
            r#"{"redaction": [{"name": "orders", "action": "mask", "regex": "ORD-[0-9]{4}", "fields": ["note"]}]}"#,
        );
        let input = batch(vec![
            ("note", strings(&[Some("ORD-1234 and ORD-5678")])),
            ("other", strings(&[Some("ORD-1234")])),
        ]);
        let mut counts = RedactionCounts::new();
        let out = redactor.redact("d", input, &mut counts).unwrap();
        assert_eq!(column(&out, "note"), [Some("[redacted] and [redacted]")]);
        assert_eq!(column(&out, "other"), [Some("ORD-1234")]);
        assert_eq!(counts["orders"], 2);
    }
}
