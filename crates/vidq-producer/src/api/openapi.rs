//! The OpenAPI 3.1 document, generated from the handlers' annotations and the view types.

use utoipa::Modify;
use utoipa::OpenApi as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::batch::{BatchItem, BatchRefused, BatchRequest, BatchResponse};
use super::error::{ErrorBody, ErrorDetail};
use super::queues::{PauseChange, QueueList, QueueState};
use super::schema::{
    CreateJob, EventView, Health, JobList, JobView, OutputView, RequestView, Resolution, SseFrame,
    State, TransitionView, UpstreamStatus, UpstreamView,
};
use super::{batch, events, jobs, ops, queues, workers};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "vidq",
        description = "Durable GoEnhanceAI video-to-video jobs: enqueue, follow, cancel, download.",
    ),
    paths(
        jobs::create, batch::create, jobs::list, jobs::get, jobs::cancel, jobs::video, events::stream,
        workers::list, queues::list, queues::pause, queues::resume, ops::healthz, ops::readyz, ops::metrics, ops::openapi_json,
    ),
    components(schemas(
        CreateJob, JobView, JobList, RequestView, UpstreamView, UpstreamStatus, OutputView,
        TransitionView, EventView, SseFrame, State, Resolution, Health, ErrorBody, ErrorDetail,
        BatchRequest, BatchResponse, BatchRefused, BatchItem, QueueList, QueueState, PauseChange,
    )),
    modifiers(&Bearer),
    tags((name = "jobs"), (name = "ops")),
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI 3.1 document the API serves at `/openapi.json`.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
