//! `vidq status` and `vidq cancel`.

use std::process::ExitCode;

use vidq_core::{JobId, JobRecord};
use vidq_producer::{CancelOutcome, Producer};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The job id.
    id: JobId,
    /// Print the whole record as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(producer: &Producer, args: Args) -> anyhow::Result<ExitCode> {
    let Some(job) = producer.status(&args.id).await? else {
        anyhow::bail!("no job {}", args.id);
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&job)?);
    } else {
        print!("{}", describe(&job));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn cancel(producer: &Producer, id: JobId) -> anyhow::Result<ExitCode> {
    match producer.cancel(&id).await? {
        CancelOutcome::Canceled => println!("{id} canceled"),
        CancelOutcome::AlreadyFinished(state) => println!("{id} had already finished: {state}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn retry(producer: &Producer, id: JobId) -> anyhow::Result<ExitCode> {
    let state = producer.retry(&id).await?;
    println!("{id} retried: {state} again");
    Ok(ExitCode::SUCCESS)
}

/// A few human lines about a job.
pub(crate) fn describe(job: &JobRecord) -> String {
    let mut out = format!("job      {}\nstate    {}\n", job.id, job.state);
    if let Some(img) = &job.img_uuid {
        out.push_str(&format!("upstream {img}\n"));
    }
    if let Some(o) = &job.output {
        out.push_str(&format!(
            "video    s3://{}/{} ({} bytes, sha256 {})\n",
            o.bucket, o.key, o.bytes, o.sha256
        ));
    }
    if let Some(err) = &job.error {
        out.push_str(&format!("error    {err}\n"));
    }
    for t in &job.history {
        out.push_str(&format!("  {} {} → {}\n", t.at_ms, t.from, t.to));
    }
    out
}
