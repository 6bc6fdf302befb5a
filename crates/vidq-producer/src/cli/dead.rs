//! `vidq dead list|retry|purge`: tasks that exhausted their retries or crashed their worker.

use std::process::ExitCode;
use std::time::UNIX_EPOCH;

use vidq_core::TaskKind;
use vidq_producer::Producer;

#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// List dead tasks, newest first.
    List {
        /// Only this queue: submit, poll, transfer or notify.
        #[arg(long, value_parser = parse_kind)]
        queue: Option<TaskKind>,
        /// Most tasks per queue.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Put dead tasks back in their queue.
    Retry {
        /// The queue: submit, poll, transfer or notify.
        #[arg(long, value_parser = parse_kind)]
        queue: TaskKind,
        /// One task id; without it, every dead task of the queue.
        task: Option<String>,
    },
    /// Delete every dead task of a queue for good (they are not retried).
    Purge {
        /// The queue: submit, poll, transfer or notify.
        #[arg(long, value_parser = parse_kind)]
        queue: TaskKind,
    },
}

pub(super) fn parse_kind(s: &str) -> Result<TaskKind, String> {
    Producer::kinds()
        .iter()
        .copied()
        .find(|k| k.queue_name() == s)
        .ok_or_else(|| format!("unknown queue {s:?}: expected submit, poll, transfer or notify"))
}

pub(crate) async fn run(producer: &Producer, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List { queue, limit } => {
            let kinds: Vec<TaskKind> = match queue {
                Some(k) => vec![k],
                None => Producer::kinds().to_vec(),
            };
            for kind in kinds {
                for task in producer.dead_tasks(kind, 0, limit).await? {
                    let at = task
                        .died_at
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_millis())
                        .unwrap_or_default();
                    let payload = String::from_utf8_lossy(&task.payload);
                    println!("{kind}\t{}\t{at}\t{}\t{payload}", task.id, task.reason);
                }
            }
        }
        Command::Retry { queue, task } => match task {
            Some(id) => {
                if !producer.retry_dead(queue, &id).await? {
                    anyhow::bail!("no dead task {id} in queue {queue}");
                }
                println!("requeued {id}");
            }
            None => {
                let n = producer.retry_all_dead(queue).await?;
                println!("requeued {n} dead tasks of queue {queue}");
            }
        },
        Command::Purge { queue } => {
            let n = producer.purge_dead(queue).await?;
            println!("deleted {n} dead tasks of queue {queue}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
