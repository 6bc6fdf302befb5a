//! Building a `TransformRequest` from JSON: each field's JSON type is checked here, so a
//! wrong type is reported against its field rather than as a bare serde error.

use std::collections::BTreeMap;

use serde_json::Value;

use super::request::{FIELDS, MAX_METADATA_ENTRIES};
use super::{TransformRequest, TransformRequestInput, ValidationError};

impl TryFrom<Value> for TransformRequest {
    type Error = ValidationError;

    /// Checks each field's JSON type itself, so a wrong type is reported against its field.
    fn try_from(value: Value) -> Result<Self, Self::Error> {
        let Value::Object(map) = value else {
            return Err(ValidationError::new("request", "must be a JSON object"));
        };
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            let shown: String = unknown.chars().take(64).collect();
            return Err(ValidationError::new(shown, "unknown field"));
        }
        let get = |name: &str| map.get(name).filter(|v| !v.is_null());
        let string = |name: &str| -> Result<Option<String>, ValidationError> {
            get(name)
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| ValidationError::new(name, "must be a string"))
                })
                .transpose()
        };
        let integer = |name: &str, reason: &str| -> Result<Option<i64>, ValidationError> {
            get(name)
                .map(|v| v.as_i64().ok_or_else(|| ValidationError::new(name, reason)))
                .transpose()
        };
        let extra = get("extra")
            .map(|v| match v {
                Value::Object(m) => Ok(m.clone()),
                _ => Err(ValidationError::new("extra", "must be a JSON object")),
            })
            .transpose()?;
        let metadata = get("metadata").map(metadata_from_json).transpose()?;
        let reuse = get("reuse")
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| ValidationError::new("reuse", "must be true or false"))
            })
            .transpose()?;
        Self::try_from(TransformRequestInput {
            reference_video_url: string("reference_video_url")?,
            model: integer("model", "must be a positive integer")?,
            duration: integer("duration", "must be 3 to 30 seconds")?,
            seed: integer("seed", "must be -1 (random) or a non-negative integer")?,
            resolution: string("resolution")?,
            prompt: string("prompt")?,
            extra,
            callback_url: string("callback_url")?,
            metadata,
            reuse,
            priority: string("priority")?,
        })
    }
}

fn metadata_from_json(value: &Value) -> Result<BTreeMap<String, String>, ValidationError> {
    let Value::Object(map) = value else {
        return Err(ValidationError::new(
            "metadata",
            "must be a JSON object of strings",
        ));
    };
    if map.len() > MAX_METADATA_ENTRIES {
        return Err(ValidationError::new(
            "metadata",
            "must have at most 32 entries",
        ));
    }
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(ValidationError::new(
                format!("metadata.{}", k.chars().take(64).collect::<String>()),
                "must be a string",
            )),
        })
        .collect()
}
