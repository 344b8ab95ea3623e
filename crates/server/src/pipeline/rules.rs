//! The pipeline's rules as an operator writes them (JSON over the API, persisted
//! as JSON), and their validation: every problem names the field at fault
//! (`redaction[2].regex: ...`).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

pub use super::invalid::InvalidRule;
use super::invalid::invalid;
use super::patterns::BuiltinPattern;
use super::sampling::rules::SamplingRules;

/// Longest custom regex accepted, in bytes (a guard against pathological rules).
const MAX_REGEX_BYTES: usize = 1024;
/// Compiled size limit of a custom regex, in bytes.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Most redaction rules per environment.
const MAX_RULES: usize = 100;

/// Every environment's rules, as persisted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineRules {
    /// Environment name -> its rules.
    pub environments: BTreeMap<String, EnvironmentRules>,
}

/// One environment's rules: redaction, quotas and tail sampling.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvironmentRules {
    /// Applied in order to every event before it is written.
    pub redaction: Vec<RedactionRule>,
    /// Limits of the environment's ingest and storage.
    pub quota: Quota,
    /// Tail sampling of the environment's traces (none: every span is kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<SamplingRules>,
}

/// What a redaction rule does to a field it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactAction {
    /// Remove the field from the event.
    Drop,
    /// Replace the value by its HMAC-SHA256 under the server's key (hex), so equal
    /// values stay equal (group by, joins) without being readable.
    Hash,
    /// Replace each match of the patterns inside string values by `[name]`.
    Mask,
}

/// One redaction rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionRule {
    /// Unique within the environment; the rule's label on `/metrics`.
    pub name: String,
    /// What to do to the selected fields.
    pub action: RedactAction,
    /// Fields the rule applies to: exact flattened names (`user.email`) or a
    /// prefix ending in `.*` (`user.*`). `drop` and `hash` need at least one;
    /// a `mask` rule without fields applies to every string field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Datasets the rule applies to; none means every dataset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<String>,
    /// `mask`: built-in patterns to mask.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<BuiltinPattern>,
    /// `mask`: a regular expression of your own to mask (Rust `regex` syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// Limits of one environment; an absent limit is no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quota {
    /// Sustained events (rows) per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_per_second: Option<u64>,
    /// Events that may arrive at once above the rate (default: one second's worth).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_burst: Option<u64>,
    /// Sustained request body bytes per second (as sent, before decompression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<u64>,
    /// Bytes that may arrive at once above the rate (default: one second's worth).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_burst: Option<u64>,
    /// Most bytes the environment may keep stored (segments and buffers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_bytes: Option<u64>,
}

impl EnvironmentRules {
    /// Parses rules from JSON; a shape error names its field.
    pub fn from_json(body: &[u8]) -> Result<EnvironmentRules, InvalidRule> {
        let deserializer = &mut serde_json::Deserializer::from_slice(body);
        let rules: EnvironmentRules =
            serde_path_to_error::deserialize(deserializer).map_err(|error| {
                let path = error.path().to_string();
                let field = if path == "." { "body".to_owned() } else { path };
                invalid(field, error.into_inner().to_string())
            })?;
        rules.validate()?;
        Ok(rules)
    }

    /// Checks what the shape alone does not.
    pub fn validate(&self) -> Result<(), InvalidRule> {
        if self.redaction.len() > MAX_RULES {
            return Err(invalid(
                "redaction",
                format!("at most {MAX_RULES} rules per environment"),
            ));
        }
        let mut names = HashSet::new();
        for (index, rule) in self.redaction.iter().enumerate() {
            rule.validate(&format!("redaction[{index}]"))?;
            if !names.insert(rule.name.as_str()) {
                return Err(invalid(
                    format!("redaction[{index}].name"),
                    format!("{:?} is used by an earlier rule", rule.name),
                ));
            }
        }
        self.quota.validate()?;
        if let Some(sampling) = &self.sampling {
            sampling.validate("sampling")?;
        }
        Ok(())
    }
}

impl RedactionRule {
    fn validate(&self, at: &str) -> Result<(), InvalidRule> {
        if self.name.trim().is_empty() || self.name.len() > 100 {
            return Err(invalid(
                format!("{at}.name"),
                "must be 1 to 100 bytes and not blank",
            ));
        }
        for (index, field) in self.fields.iter().enumerate() {
            let prefix = field.strip_suffix(".*").unwrap_or(field);
            if prefix.is_empty() || prefix.contains('*') {
                return Err(invalid(
                    format!("{at}.fields[{index}]"),
                    "must be a field name, or a prefix followed by .*",
                ));
            }
            if field == quarry_schema::TIMESTAMP || field.starts_with(quarry_schema::META_PREFIX) {
                return Err(invalid(
                    format!("{at}.fields[{index}]"),
                    "timestamp and meta. fields are Quarry's own and cannot be redacted",
                ));
            }
        }
        for (index, dataset) in self.datasets.iter().enumerate() {
            if crate::names::dataset_name(dataset).is_err() {
                return Err(invalid(
                    format!("{at}.datasets[{index}]"),
                    format!("{dataset:?} is not a dataset name"),
                ));
            }
        }
        match self.action {
            RedactAction::Drop | RedactAction::Hash => {
                if self.fields.is_empty() {
                    return Err(invalid(
                        format!("{at}.fields"),
                        "drop and hash rules need at least one field",
                    ));
                }
                if !self.patterns.is_empty() {
                    return Err(invalid(
                        format!("{at}.patterns"),
                        "only mask rules take patterns",
                    ));
                }
                if self.regex.is_some() {
                    return Err(invalid(
                        format!("{at}.regex"),
                        "only mask rules take a regex",
                    ));
                }
            }
            RedactAction::Mask => {
                if self.patterns.is_empty() && self.regex.is_none() {
                    return Err(invalid(
                        format!("{at}.patterns"),
                        "a mask rule needs patterns or a regex",
                    ));
                }
                if let Some(regex) = &self.regex {
                    compile_custom(regex)
                        .map_err(|problem| invalid(format!("{at}.regex"), problem))?;
                }
            }
        }
        Ok(())
    }
}

/// Compiles a rule's own regex within the size limits; the error says why not.
pub fn compile_custom(regex: &str) -> Result<regex::Regex, String> {
    if regex.is_empty() {
        return Err("must not be empty".into());
    }
    if regex.len() > MAX_REGEX_BYTES {
        return Err(format!("longer than {MAX_REGEX_BYTES} bytes"));
    }
    let compiled = regex::RegexBuilder::new(regex)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|error| error.to_string())?;
    if compiled.is_match("") {
        return Err("matches the empty string".into());
    }
    Ok(compiled)
}

impl Quota {
    fn validate(&self) -> Result<(), InvalidRule> {
        let pairs = [
            ("events", self.events_per_second, self.events_burst),
            ("bytes", self.bytes_per_second, self.bytes_burst),
        ];
        for (unit, rate, burst) in pairs {
            if rate == Some(0) {
                return Err(invalid(
                    format!("quota.{unit}_per_second"),
                    "must be greater than 0 (leave it out for no limit)",
                ));
            }
            match (rate, burst) {
                (_, Some(0)) => {
                    return Err(invalid(
                        format!("quota.{unit}_burst"),
                        "must be greater than 0",
                    ));
                }
                (None, Some(_)) => {
                    return Err(invalid(
                        format!("quota.{unit}_burst"),
                        format!("needs quota.{unit}_per_second"),
                    ));
                }
                _ => {}
            }
        }
        if self.storage_bytes == Some(0) {
            return Err(invalid(
                "quota.storage_bytes",
                "must be greater than 0 (leave it out for no limit)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(json: &str) -> InvalidRule {
        EnvironmentRules::from_json(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn good_rules_parse() {
        let rules = EnvironmentRules::from_json(
            br#"{"redaction": [
                {"name": "secrets", "action": "drop", "fields": ["password", "auth.*"]},
                {"name": "users", "action": "hash", "fields": ["user.email"], "datasets": ["shop"]},
                {"name": "pii", "action": "mask", "patterns": ["email", "card_number", "ipv6"]},
                {"name": "orders", "action": "mask", "regex": "ORD-[0-9]{6}", "fields": ["body"]}
            ], "quota": {"events_per_second": 100, "bytes_per_second": 1000, "bytes_burst": 5000}}"#,
        )
        .unwrap();
        assert_eq!(rules.redaction.len(), 4);
        assert_eq!(rules.quota.events_per_second, Some(100));
    }

    #[test]
    fn errors_name_the_bad_field() {
        let cases = [
            (
                r#"{"redaction": [{"name": "a", "action": "explode", "fields": ["x"]}]}"#,
                "redaction[0].action",
            ),
            (
                r#"{"redaction": [{"name": "a", "action": "drop"}]}"#,
                "redaction[0].fields",
            ),
            (
                r#"{"redaction": [{"name": "a", "action": "mask"}]}"#,
                "redaction[0].patterns",
            ),
            (
                r#"{"redaction": [{"name": "a", "action": "mask", "patterns": ["emial"]}]}"#,
                "redaction[0].patterns[0]",
            ),
            (
                r#"{"redaction": [{"name": "a", "action": "mask", "regex": "("}]}"#,
                "redaction[0].regex",
            ),
            (
                r#"{"redaction": [{"name": "a", "action": "mask", "regex": "x*"}]}"#,
                "redaction[0].regex",
            ),
            (
                r#"{"redaction": [{"name": "a", "action": "hash", "fields": ["a*b"]}]}"#,
                "redaction[0].fields[0]",
            ),
            (
                r#"{"redaction": [{"name": "a", "action": "drop", "fields": ["meta.sample_rate"]}]}"#,
                "redaction[0].fields[0]",
            ),
            (
                r#"{"redaction": [{"name": "a", "action": "drop", "fields": ["x"], "datasets": ["a/b"]}]}"#,
                "redaction[0].datasets[0]",
            ),
            (
                r#"{"redaction": [{"name": "a", "action": "drop", "fields": ["x"], "regex": "y"}]}"#,
                "redaction[0].regex",
            ),
            (
                r#"{"redaction": [{"name": "a", "action": "drop", "fields": ["x"]}, {"name": "a", "action": "drop", "fields": ["y"]}]}"#,
                "redaction[1].name",
            ),
            (
                r#"{"redaction": [{"name": "a", "action": "drop", "fields": ["x"], "colour": 1}]}"#,
                "redaction[0]",
            ),
            (
                r#"{"quota": {"events_per_second": 0}}"#,
                "quota.events_per_second",
            ),
            (r#"{"quota": {"bytes_burst": 10}}"#, "quota.bytes_burst"),
            (r#"{"quota": {"storage_bytes": -1}}"#, "quota.storage_bytes"),
            (r#"{"quotas": {}}"#, "quotas"),
            (
                r#"{"sampling": {"rules": [{"name": "a"}]}}"#,
                "sampling.rules[0].sample_rate",
            ),
            (
                r#"{"sampling": {"rules": [{"name": "a", "drop": true, "sample_rate": 2}]}}"#,
                "sampling.rules[0].sample_rate",
            ),
            (
                r#"{"sampling": {"rules": [{"name": "a", "sample_rate": 0}]}}"#,
                "sampling.rules[0].sample_rate",
            ),
            (
                r#"{"sampling": {"decision_wait_ms": 5000, "trace_timeout_ms": 1000, "rules": []}}"#,
                "sampling.trace_timeout_ms",
            ),
            (
                r#"{"sampling": {"rules": [{"name": "a", "drop": true, "conditions": [{"field": "x", "op": ">", "value": "y"}]}]}}"#,
                "sampling.rules[0].conditions[0].value",
            ),
            (
                r#"{"sampling": {"rules": [{"name": "a", "drop": true, "conditions": [{"field": "x", "op": "~"}]}]}}"#,
                "sampling.rules[0].conditions[0].op",
            ),
            (
                r#"{"sampling": {"rules": [{"name": "a", "dynamic": {"key_fields": [], "target_per_second": 5}}]}}"#,
                "sampling.rules[0].dynamic.key_fields",
            ),
            (
                r#"{"sampling": {"rules": [{"name": "a", "dynamic": {"key_fields": ["k"], "target_per_second": 0}}]}}"#,
                "sampling.rules[0].dynamic.target_per_second",
            ),
            (
                r#"{"sampling": {"rules": [{"name": "a", "drop": true, "min_duration_ms": -1}]}}"#,
                "sampling.rules[0].min_duration_ms",
            ),
            (
                r#"{"sampling": {"rules": [{"name": "a", "drop": true}, {"name": "a", "drop": true}]}}"#,
                "sampling.rules[1].name",
            ),
            (
                r#"{"sampling": {"rules": [{"name": "a", "drop": true, "datasets": ["a/b"]}]}}"#,
                "sampling.rules[0].datasets[0]",
            ),
            (
                r#"{"sampling": {"rules": [{"name": "a", "drop": true, "keep": 1}]}}"#,
                "sampling.rules[0]",
            ),
        ];
        for (json, field) in cases {
            let error = error_of(json);
            assert!(error.field.starts_with(field), "{json}: {error}");
        }
    }
}
