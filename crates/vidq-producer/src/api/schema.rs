//! The JSON the API speaks, as typed views of the job model: these types are what the
//! OpenAPI document describes and what the handlers serialize, so the two cannot drift.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use vidq_core::{JobRecord, JobState, Output, TransformRequest, Transition};

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    Queued,
    Submitting,
    Processing,
    Transferring,
    Succeeded,
    Failed,
    Canceled,
    Expired,
}

impl From<JobState> for State {
    fn from(s: JobState) -> Self {
        match s {
            JobState::Queued => State::Queued,
            JobState::Submitting => State::Submitting,
            JobState::Processing => State::Processing,
            JobState::Transferring => State::Transferring,
            JobState::Succeeded => State::Succeeded,
            JobState::Failed => State::Failed,
            JobState::Canceled => State::Canceled,
            JobState::Expired => State::Expired,
        }
    }
}

impl From<State> for JobState {
    fn from(s: State) -> Self {
        match s {
            State::Queued => JobState::Queued,
            State::Submitting => JobState::Submitting,
            State::Processing => JobState::Processing,
            State::Transferring => JobState::Transferring,
            State::Succeeded => JobState::Succeeded,
            State::Failed => JobState::Failed,
            State::Canceled => JobState::Canceled,
            State::Expired => JobState::Expired,
        }
    }
}

/// Output resolution.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub(crate) enum Resolution {
    #[serde(rename = "540p")]
    P540,
    #[serde(rename = "720p")]
    P720,
}

/// Order among the tenant's jobs waiting for submission (`high` before `normal` before `low`;
/// tenants share submissions fairly whatever their priorities).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Priority {
    High,
    Normal,
    Low,
}

/// `POST /v1/jobs` body. Unknown fields are refused; `null` counts as absent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // parsed by vidq_core's validation; this type only documents it
pub(crate) struct CreateJob {
    /// Absolute `https://` URL of the source video (MP4/MOV, up to 50 MB).
    #[schema(
        max_length = 2048,
        pattern = r"^https://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(/[A-Za-z0-9._~-]*)*$",
        example = "https://videos.example.com/in.mp4"
    )]
    reference_video_url: String,
    /// Upstream style id.
    #[schema(minimum = 1, maximum = 4294967295_i64, example = 2000)]
    model: i64,
    /// Seconds of video, 3 to 30; default 5.
    #[schema(minimum = 3, maximum = 30)]
    duration: Option<i64>,
    /// Upstream seed; -1 (default) asks for a random one.
    #[schema(minimum = -1)]
    seed: Option<i64>,
    /// Default `720p`.
    resolution: Option<Resolution>,
    /// At most 500 characters.
    #[schema(max_length = 500)]
    prompt: Option<String>,
    /// Further upstream arguments, passed through untouched; must not redefine a named one.
    #[schema(value_type = Option<Object>, additional_properties = true)]
    extra: Option<Map<String, Value>>,
    /// Where to POST the terminal event: absolute `http(s)://` URL.
    #[schema(
        max_length = 2048,
        pattern = r"^https?://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(/[A-Za-z0-9._~-]*)*$"
    )]
    callback_url: Option<String>,
    /// Your own labels: at most 32; keys 1 to 64 characters, values at most 512.
    #[schema(schema_with = metadata_schema)]
    metadata: Option<BTreeMap<String, String>>,
    /// Whether an identical earlier result may be reused (default true).
    reuse: Option<bool>,
    /// `high`, `normal` (the default) or `low`: order among your jobs waiting for submission.
    #[schema(inline)]
    priority: Option<Priority>,
}

fn metadata_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Object,
            Type::Null,
        ]))
        .max_properties(Some(32))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(64)),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(512))
                .into(),
        )))
        .build()
}

/// What was asked for, with defaults filled in.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RequestView {
    reference_video_url: String,
    model: u32,
    duration: u32,
    seed: i64,
    resolution: Resolution,
    prompt: Option<String>,
    #[schema(value_type = Object)]
    extra: Map<String, Value>,
    callback_url: Option<String>,
    metadata: BTreeMap<String, String>,
    reuse: bool,
    #[schema(inline)]
    priority: Priority,
}

impl From<&TransformRequest> for RequestView {
    fn from(r: &TransformRequest) -> Self {
        Self {
            reference_video_url: r.reference_video_url().to_string(),
            model: r.model(),
            duration: r.duration(),
            seed: r.seed(),
            resolution: match r.resolution() {
                vidq_core::Resolution::P540 => Resolution::P540,
                vidq_core::Resolution::P720 => Resolution::P720,
            },
            prompt: r.prompt().map(str::to_owned),
            extra: r.extra().clone(),
            callback_url: r.callback_url().map(ToString::to_string),
            metadata: r.metadata().clone(),
            reuse: r.reuse(),
            priority: match r.priority() {
                vidq_core::Priority::High => Priority::High,
                vidq_core::Priority::Normal => Priority::Normal,
                vidq_core::Priority::Low => Priority::Low,
            },
        }
    }
}

/// The upstream (GoEnhanceAI) side of a job.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UpstreamView {
    /// Upstream's job id, once it accepted the job.
    img_uuid: Option<String>,
    /// `not_submitted`, `running`, `success`, `failed` or `abandoned` (left to end on its own
    /// after a cancel or expiry; its result is discarded).
    status: UpstreamStatus,
    /// Credits charged, when upstream said.
    cost: Option<f64>,
    /// Upstream's request id of the submission.
    request_id: Option<String>,
}

/// Where the upstream job stands, as far as vidq knows.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum UpstreamStatus {
    NotSubmitted,
    Running,
    Success,
    Failed,
    Abandoned,
}

/// The stored video.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OutputView {
    bucket: String,
    key: String,
    bytes: u64,
    /// Lowercase hex sha256 of the video.
    sha256: String,
    content_type: String,
}

impl From<&Output> for OutputView {
    fn from(o: &Output) -> Self {
        Self {
            bucket: o.bucket.clone(),
            key: o.key.clone(),
            bytes: o.bytes,
            sha256: o.sha256.clone(),
            content_type: o.content_type.clone(),
        }
    }
}

/// One transition of a job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct TransitionView {
    from: State,
    to: State,
    /// Unix milliseconds.
    at_ms: u64,
    note: Option<String>,
}

impl From<&Transition> for TransitionView {
    fn from(t: &Transition) -> Self {
        Self {
            from: t.from.into(),
            to: t.to.into(),
            at_ms: t.at_ms,
            note: t.note.clone(),
        }
    }
}

/// A job.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobView {
    #[schema(example = "0190a5b2-7c4e-7d3a-9f1e-2b3c4d5e6f70")]
    id: String,
    state: State,
    /// The tenant owning the job (the name of the token that created it); `null` for jobs
    /// stored before jobs had owners (only `admin` tokens see those).
    tenant: Option<String>,
    request: RequestView,
    upstream: UpstreamView,
    /// Submission attempts so far.
    attempts: u32,
    /// Unix milliseconds.
    created_at: u64,
    /// Unix milliseconds.
    updated_at: u64,
    /// Unix milliseconds: the job ends `expired` if not finished by then.
    deadline_at: u64,
    /// Why the job failed.
    error: Option<String>,
    /// The stored video, once succeeded.
    output: Option<OutputView>,
    /// The newest transitions, oldest first.
    history: Vec<TransitionView>,
    /// The OpenTelemetry (W3C) trace id of the job's trace: its creating request's span and
    /// each of its tasks (from the request's `traceparent`, or a new trace when the API
    /// exports spans); `null` when it has none.
    #[schema(example = "4bf92f3577b34da6a3ce929d0e0e4736")]
    trace_id: Option<String>,
}

impl From<&JobRecord> for JobView {
    fn from(job: &JobRecord) -> Self {
        let status = match (job.state, &job.img_uuid) {
            (JobState::Succeeded | JobState::Transferring, _) => UpstreamStatus::Success,
            (_, None) => UpstreamStatus::NotSubmitted,
            (JobState::Failed, Some(_)) => UpstreamStatus::Failed,
            (JobState::Canceled | JobState::Expired, Some(_)) => UpstreamStatus::Abandoned,
            (_, Some(_)) => UpstreamStatus::Running,
        };
        Self {
            id: job.id.to_string(),
            state: job.state.into(),
            tenant: job.owner.clone(),
            request: (&job.request).into(),
            upstream: UpstreamView {
                img_uuid: job.img_uuid.clone(),
                status,
                cost: job.upstream_cost,
                request_id: job.upstream_request_id.clone(),
            },
            attempts: job.attempts,
            created_at: job.created_at,
            updated_at: job.updated_at,
            deadline_at: job.deadline_at,
            error: job.error.clone(),
            output: job.output.as_ref().map(Into::into),
            history: job.history.iter().map(Into::into).collect(),
            trace_id: job
                .trace
                .as_ref()
                .and_then(|t| t.trace_id())
                .map(str::to_owned),
        }
    }
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobList {
    pub(crate) jobs: Vec<JobView>,
    /// Pass as `cursor` to get the next page; `null` when the listing is complete.
    pub(crate) next_cursor: Option<String>,
}

/// `GET /v1/jobs` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // parsed by hand (repeated `metadata`); this type only documents it
pub(crate) struct ListQuery {
    /// Only jobs in this state.
    state: Option<State>,
    /// Only jobs carrying these labels, each `key:value` (repeatable). Filters within a page:
    /// a page may hold fewer jobs than `limit` and still have a `next_cursor`.
    #[param(pattern = "^[^:]+:.*$")]
    metadata: Option<Vec<String>>,
    /// Jobs per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(
        pattern = "^[0-9]{1,20}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )]
    cursor: Option<String>,
    /// Only this tenant's jobs. Other tokens than `admin` see only their own tenant's jobs
    /// anyway: naming another tenant lists nothing.
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$", min_length = 1, max_length = 64)]
    tenant: Option<String>,
}

/// One server-sent event of `GET /v1/jobs/{id}/events` (event name `state`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct EventView {
    #[schema(example = "0190a5b2-7c4e-7d3a-9f1e-2b3c4d5e6f70")]
    pub(crate) id: String,
    pub(crate) state: State,
    /// Unix milliseconds.
    pub(crate) at_ms: u64,
    pub(crate) note: Option<String>,
}

/// One frame of the `text/event-stream` of `GET /v1/jobs/{id}/events`.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // written by axum's SSE encoder; this type only documents it
pub(crate) struct SseFrame {
    /// Always `state`.
    event: String,
    /// An [`EventView`] as JSON: `{"id", "state", "at_ms", "note"}`.
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// `/healthz` and `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`.
    pub(crate) status: &'static str,
}
