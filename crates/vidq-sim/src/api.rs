//! The simulated GoEnhanceAI endpoints: generate, job detail, tokens, model list.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::envelope::{self, code, vary};
use crate::files::signed_url;
use crate::state::{Job, Phase, Sim, unix_ms};
use crate::stats::bump;
use crate::validate;

pub(crate) const GENERATE_PATH: &str = "/api/v1/video2video/generate";
pub(crate) const DETAIL_PATH: &str = "/api/v1/jobs/detail";
pub(crate) const TOKENS_PATH: &str = "/api/v1/user/tokens";
pub(crate) const MODELLIST_PATH: &str = "/api/v1/video2video/modellist";

const JOB_TYPE: &str = "mx-v2v";

#[derive(Serialize)]
struct Submitted<'a> {
    img_uuid: &'a str,
    cost: i64,
}

/// `POST /api/v1/video2video/generate`.
pub(crate) async fn generate(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let submission = match validate::submission(&body) {
        Ok(s) => s,
        Err(msg) => {
            bump(&sim.counters.invalid_args);
            return envelope::invalid(msg);
        }
    };
    let img_uuid = Uuid::new_v4().to_string();
    let (processing, failed) = sim.decide(&img_uuid, sim.faults().rate_job_failed);
    let now = Instant::now();
    let cost = sim.config.cost_per_job;
    {
        let mut account = sim.account();
        let limit = sim.config.queue_limit as usize;
        account.running.retain(|end| *end > now);
        if limit > 0 && account.running.len() >= limit {
            drop(account);
            bump(&sim.counters.queue_limited);
            let msg = vary(&[
                "queue limit reached",
                "Queue limit reached, please try again later",
                "too many concurrent tasks",
            ]);
            return envelope::error(StatusCode::OK, code::LIMITED, msg);
        }
        if account.credits - cost < 0 {
            drop(account);
            bump(&sim.counters.insufficient_credits);
            let msg = vary(&[
                "insufficient credits",
                "Insufficient credits",
                "not enough tokens",
            ]);
            return envelope::error(StatusCode::OK, code::NO_CREDITS, msg);
        }
        account.credits -= cost;
        account.running.push(now + processing);
        sim.counters.peak_running.fetch_max(
            account.running.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    if failed {
        bump(&sim.counters.jobs_failed);
    }
    tracing::debug!(
        img_uuid,
        processing_ms = processing.as_millis() as u64,
        failed,
        "job accepted"
    );
    sim.insert_job(
        img_uuid.clone(),
        Job {
            reference_video_url: submission.reference_video_url,
            model: submission.model,
            submitted_at: now,
            submitted_unix_ms: unix_ms(SystemTime::now()),
            processing,
            failed,
            size: sim.config.result_size,
            status_requests: 0,
            downloads: 0,
            sha256: None,
        },
    );
    let request_id = Uuid::new_v4().simple().to_string();
    envelope::ok_with_request_id(
        Submitted {
            img_uuid: &img_uuid,
            cost,
        },
        Some(&request_id),
    )
}

#[derive(Deserialize)]
pub(crate) struct DetailQuery {
    img_uuid: Option<String>,
}

#[derive(Serialize)]
struct Output {
    r#type: &'static str,
    value: String,
}

#[derive(Serialize)]
struct Detail<'a> {
    img_uuid: &'a str,
    status: &'a str,
    json: Option<[Output; 1]>,
    start_time: u64,
    end_time: Option<u64>,
    model_id: String,
    r#type: &'static str,
    job_type: &'static str,
}

/// `GET /api/v1/jobs/detail?img_uuid=`.
pub(crate) async fn detail(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    query: Result<Query<DetailQuery>, QueryRejection>,
) -> Response {
    let Some(img_uuid) = query
        .ok()
        .and_then(|q| q.0.img_uuid)
        .filter(|id| !id.is_empty())
    else {
        bump(&sim.counters.invalid_args);
        return envelope::invalid("img_uuid is required".to_owned());
    };
    let now = Instant::now();
    let found = sim.with_job(&img_uuid, |job| {
        job.status_requests += 1;
        (
            job.phase(now),
            job.submitted_unix_ms,
            job.end_unix_ms(),
            job.model,
        )
    });
    let Some((phase, start_ms, end_ms, model)) = found else {
        bump(&sim.counters.unknown_job);
        let msg = vary(&["task not found", "Task not found", "job does not exist"]);
        return envelope::error(StatusCode::OK, code::NOT_FOUND, msg);
    };
    let faults = sim.faults();
    let status = match phase {
        Phase::Pending | Phase::Processing if sim.hit(faults.rate_unknown_status) => {
            bump(&sim.counters.unknown_status);
            "queued_v2"
        }
        Phase::Pending => "pending",
        Phase::Processing => "processing",
        Phase::Succeeded if faults.completed_status => "completed",
        Phase::Succeeded => "success",
        Phase::Failed => "failed",
    };
    let json = (phase == Phase::Succeeded).then(|| {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| sim.local_addr().to_string());
        [Output {
            r#type: "video",
            value: signed_url(&sim, &host, &img_uuid),
        }]
    });
    let done = matches!(phase, Phase::Succeeded | Phase::Failed);
    envelope::ok(Detail {
        img_uuid: &img_uuid,
        status,
        json,
        start_time: start_ms / 1000,
        end_time: done.then_some(end_ms / 1000),
        model_id: model.to_string(),
        r#type: JOB_TYPE,
        job_type: JOB_TYPE,
    })
}

/// `GET /api/v1/user/tokens`.
pub(crate) async fn tokens(State(sim): State<Arc<Sim>>) -> Response {
    bump(&sim.counters.token_requests);
    let count = sim.account().credits;
    envelope::ok(json!({"count": count, "queueLimit": sim.config.queue_limit}))
}

/// `GET /api/v1/video2video/modellist`.
pub(crate) async fn modellist(State(sim): State<Arc<Sim>>) -> Response {
    bump(&sim.counters.modellist_requests);
    let style = |label: &str, value: u32, version: &str, vip: bool| {
        json!({
            "label": label,
            "value": value,
            "version": version,
            "isVip": vip,
            "url": format!("https://cdn.goenhance.example/styles/{value}.webp"),
        })
    };
    envelope::ok(json!([
        {
            "label": "Anime",
            "value": 1,
            "list": [
                style("Japanese Anime", 2000, "v2", false),
                style("Ghibli Style", 2001, "v2", true),
                style("Cel Shading", 2002, "v1", false),
            ],
        },
        {
            "label": "Art",
            "value": 2,
            "list": [
                style("Oil Painting", 2100, "v2", false),
                style("Watercolor", 2101, "v1", false),
                style("Pixel Art", 2102, "v2", true),
            ],
        },
        {
            "label": "3D",
            "value": 3,
            "list": [
                style("Clay", 2200, "v2", false),
                style("Cartoon 3D", 2201, "v2", true),
            ],
        },
    ]))
}
