//! `vidq queue pause|resume|status`: stop and restart the claiming of one queue's tasks, e.g.
//! pause `submit` during an upstream incident or when credits run out while the polls and
//! transfers of running jobs go on.

use std::process::ExitCode;

use vidq_core::TaskKind;
use vidq_producer::Producer;

use super::dead::parse_kind;

#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Stop workers from claiming this queue's tasks (its depth still counts; tasks running
    /// now finish).
    Pause {
        /// The queue: submit, poll, transfer or notify.
        #[arg(value_parser = parse_kind)]
        queue: TaskKind,
    },
    /// Let workers claim this queue's tasks again (idle workers are woken at once).
    Resume {
        /// The queue: submit, poll, transfer or notify.
        #[arg(value_parser = parse_kind)]
        queue: TaskKind,
    },
    /// Each queue: paused or running, and its due, scheduled, leased and dead tasks.
    Status,
}

pub(crate) async fn run(producer: &Producer, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Pause { queue } => {
            if producer.pause(queue).await? {
                println!("paused queue {queue}");
            } else {
                println!("queue {queue} was already paused");
            }
        }
        Command::Resume { queue } => {
            if producer.resume(queue).await? {
                println!("resumed queue {queue}");
            } else {
                println!("queue {queue} was not paused");
            }
        }
        Command::Status => {
            println!("queue\tstate\tdue\tscheduled\tleased\tdead");
            for &kind in Producer::kinds() {
                let depth = producer.depth(kind).await?;
                let state = if depth.paused { "paused" } else { "running" };
                println!(
                    "{kind}\t{state}\t{}\t{}\t{}\t{}",
                    depth.due, depth.scheduled, depth.leased, depth.dead
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
