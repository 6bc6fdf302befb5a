//! `vidq enqueue`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Map, Value, json};
use vidq_core::TransformRequest;
use vidq_producer::{EnqueueOptions, Producer};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// A JSON request body (`-` for standard input). Flags given as well override its fields.
    #[arg(long, short)]
    file: Option<PathBuf>,
    /// HTTPS URL of the source video.
    #[arg(long)]
    url: Option<String>,
    /// Upstream style id, e.g. 2000.
    #[arg(long)]
    model: Option<i64>,
    /// Seconds of output video, 3 to 30.
    #[arg(long)]
    duration: Option<i64>,
    /// Seed; -1 asks for a random one.
    #[arg(long, allow_hyphen_values = true)]
    seed: Option<i64>,
    /// 540p or 720p.
    #[arg(long)]
    resolution: Option<String>,
    /// Text prompt, at most 500 characters.
    #[arg(long)]
    prompt: Option<String>,
    /// high, normal (the default) or low: order among the tenant's jobs waiting for submission.
    #[arg(long)]
    priority: Option<String>,
    /// Where to POST the terminal event.
    #[arg(long)]
    callback_url: Option<String>,
    /// A label, as key=value (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// The tenant owning the job (an API token's name): its tokens then see it. Without it
    /// the job has no owner and only admin tokens see it in the HTTP API.
    #[arg(long)]
    tenant: Option<String>,
    /// Print the job as JSON instead of its id.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(producer: &Producer, args: Args) -> anyhow::Result<ExitCode> {
    let body = request_body(&args)?;
    let request = TransformRequest::try_from(body)?;
    let options = EnqueueOptions {
        owner: args.tenant.clone(),
        ..EnqueueOptions::default()
    };
    let id = producer.enqueue_with(request, options).await?.job.id;
    if args.json {
        let record = producer.status(&id).await?;
        println!("{}", serde_json::to_string(&record)?);
    } else {
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}

fn request_body(args: &Args) -> anyhow::Result<Value> {
    let mut body = match &args.file {
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?
            };
            serde_json::from_str::<Value>(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?
        }
        None => json!({}),
    };
    let Some(fields) = body.as_object_mut() else {
        anyhow::bail!("the request must be a JSON object");
    };
    let mut set = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            fields.insert(name.to_owned(), value);
        }
    };
    set("reference_video_url", args.url.clone().map(Value::from));
    set("model", args.model.map(Value::from));
    set("duration", args.duration.map(Value::from));
    set("seed", args.seed.map(Value::from));
    set("resolution", args.resolution.clone().map(Value::from));
    set("prompt", args.prompt.clone().map(Value::from));
    set("priority", args.priority.clone().map(Value::from));
    set("callback_url", args.callback_url.clone().map(Value::from));
    if !args.metadata.is_empty() {
        let mut labels = Map::new();
        for pair in &args.metadata {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--meta {pair:?}: expected KEY=VALUE"))?;
            labels.insert(key.to_owned(), Value::from(value));
        }
        fields.insert("metadata".to_owned(), Value::Object(labels));
    }
    Ok(body)
}
