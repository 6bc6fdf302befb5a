//! The layout of a job in Redis: the record as hash fields, history entries as JSON.

use std::collections::HashMap;
use std::str::FromStr;

use super::{JobId, JobRecord, JobState, Output, SignedUrl, StoreError, TraceContext, Transition};

/// Version of this layout, stored in field `v`, for future migrations.
const LAYOUT_VERSION: &str = "1";

/// Hash field names, shared with the patch code and the Lua scripts' arguments.
pub(super) mod field {
    pub(crate) const VERSION: &str = "v";
    pub(crate) const ID: &str = "id";
    pub(crate) const REQUEST: &str = "request";
    pub(crate) const OWNER: &str = "owner";
    pub(crate) const STATE: &str = "state";
    pub(crate) const IMG_UUID: &str = "img_uuid";
    pub(crate) const ATTEMPTS: &str = "attempts";
    pub(crate) const CREATED_AT: &str = "created_at";
    pub(crate) const UPDATED_AT: &str = "updated_at";
    pub(crate) const DEADLINE_AT: &str = "deadline_at";
    pub(crate) const ERROR: &str = "error";
    pub(crate) const RESULT_URL: &str = "result_url";
    pub(crate) const OUTPUT: &str = "output";
    pub(crate) const UPSTREAM_COST: &str = "upstream_cost";
    pub(crate) const UPSTREAM_REQUEST_ID: &str = "upstream_request_id";
    pub(crate) const TRACE: &str = "trace";
}

/// The hash fields of a record; optional fields that are `None` are left out.
pub(super) fn encode(record: &JobRecord) -> Result<Vec<(&'static str, String)>, StoreError> {
    let mut fields = vec![
        (field::VERSION, LAYOUT_VERSION.to_owned()),
        (field::ID, record.id.to_string()),
        (field::REQUEST, to_json(field::REQUEST, &record.request)?),
        (field::STATE, record.state.as_str().to_owned()),
        (field::ATTEMPTS, record.attempts.to_string()),
        (field::CREATED_AT, record.created_at.to_string()),
        (field::UPDATED_AT, record.updated_at.to_string()),
        (field::DEADLINE_AT, record.deadline_at.to_string()),
    ];
    let optional = [
        (field::OWNER, record.owner.clone()),
        (field::IMG_UUID, record.img_uuid.clone()),
        (field::ERROR, record.error.clone()),
        (
            field::RESULT_URL,
            record.result_url.as_ref().map(|u| u.expose().to_owned()),
        ),
        (
            field::OUTPUT,
            record
                .output
                .as_ref()
                .map(|o| to_json(field::OUTPUT, o))
                .transpose()?,
        ),
        (
            field::UPSTREAM_COST,
            record.upstream_cost.map(|c| c.to_string()),
        ),
        (
            field::UPSTREAM_REQUEST_ID,
            record.upstream_request_id.clone(),
        ),
        (
            field::TRACE,
            record
                .trace
                .as_ref()
                .map(|t| to_json(field::TRACE, t))
                .transpose()?,
        ),
    ];
    fields.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| (name, v))),
    );
    Ok(fields)
}

/// One history entry as stored in the history list.
pub(super) fn encode_transition(transition: &Transition) -> Result<String, StoreError> {
    to_json("history", transition)
}

pub(super) fn to_json<T: serde::Serialize>(name: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::invalid("record", format!("{name}: {e}")))
}

/// Decodes a record from its hash fields and history entries; `key` names the hash in errors.
pub(super) fn decode(
    key: &str,
    mut fields: HashMap<String, String>,
    history: Vec<String>,
) -> Result<JobRecord, StoreError> {
    let mut take = |name: &str| fields.remove(name);
    let required = |name: &str, value: Option<String>| {
        value.ok_or_else(|| StoreError::corrupt(key, name, "missing"))
    };
    let parse = |name: &str, value: String| -> Result<u64, StoreError> {
        value
            .parse::<u64>()
            .map_err(|e| StoreError::corrupt(key, name, format!("`{value}`: {e}")))
    };

    let id: JobId = parse_str(key, field::ID, required(field::ID, take(field::ID))?)?;
    let request_json = required(field::REQUEST, take(field::REQUEST))?;
    let request = serde_json::from_str(&request_json)
        .map_err(|e| StoreError::corrupt(key, field::REQUEST, e))?;
    let state: JobState = parse_str(
        key,
        field::STATE,
        required(field::STATE, take(field::STATE))?,
    )?;
    let attempts = parse(
        field::ATTEMPTS,
        required(field::ATTEMPTS, take(field::ATTEMPTS))?,
    )?;
    let attempts =
        u32::try_from(attempts).map_err(|e| StoreError::corrupt(key, field::ATTEMPTS, e))?;
    let created_at = parse(
        field::CREATED_AT,
        required(field::CREATED_AT, take(field::CREATED_AT))?,
    )?;
    let updated_at = parse(
        field::UPDATED_AT,
        required(field::UPDATED_AT, take(field::UPDATED_AT))?,
    )?;
    let deadline_at = parse(
        field::DEADLINE_AT,
        required(field::DEADLINE_AT, take(field::DEADLINE_AT))?,
    )?;
    let output = take(field::OUTPUT)
        .map(|text| {
            serde_json::from_str::<Output>(&text)
                .map_err(|e| StoreError::corrupt(key, field::OUTPUT, e))
        })
        .transpose()?;
    let upstream_cost = take(field::UPSTREAM_COST)
        .map(|text| parse_str::<f64>(key, field::UPSTREAM_COST, text))
        .transpose()?;
    // A trace context that does not decode is dropped, not an error: it only links spans.
    let trace =
        take(field::TRACE).and_then(|text| serde_json::from_str::<TraceContext>(&text).ok());
    let history = history
        .iter()
        .map(|entry| {
            serde_json::from_str::<Transition>(entry)
                .map_err(|e| StoreError::corrupt(key, "history", format!("`{entry}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;

    Ok(JobRecord {
        id,
        request,
        owner: take(field::OWNER),
        state,
        img_uuid: take(field::IMG_UUID),
        attempts,
        created_at,
        updated_at,
        deadline_at,
        error: take(field::ERROR),
        result_url: take(field::RESULT_URL).map(SignedUrl::new),
        output,
        upstream_cost,
        upstream_request_id: take(field::UPSTREAM_REQUEST_ID),
        history,
        trace,
    })
}

fn parse_str<T>(key: &str, name: &str, value: String) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value
        .parse::<T>()
        .map_err(|e| StoreError::corrupt(key, name, e))
}
