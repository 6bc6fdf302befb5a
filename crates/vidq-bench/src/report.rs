//! Results: one [`Section`] per scenario, printed as a Markdown table and gathered into
//! RESULTS.md with the machine's description and the exact command.

use crate::ctx::Ctx;

/// One scenario's results.
pub(crate) struct Section {
    pub(crate) title: String,
    pub(crate) rows: Vec<Row>,
    pub(crate) notes: Vec<String>,
}

/// One measured figure: vidq's, the peer's (if any) and the target.
pub(crate) struct Row {
    pub(crate) metric: String,
    pub(crate) vidq: String,
    pub(crate) peer: String,
    pub(crate) target: String,
}

impl Section {
    pub(crate) fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Add a row; `peer` and `target` may be empty.
    pub(crate) fn row(
        &mut self,
        metric: impl Into<String>,
        vidq: impl Into<String>,
        peer: impl Into<String>,
        target: impl Into<String>,
    ) {
        self.rows.push(Row {
            metric: metric.into(),
            vidq: vidq.into(),
            peer: peer.into(),
            target: target.into(),
        });
    }

    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub(crate) fn markdown(&self) -> String {
        let mut out = format!("### {}\n\n", self.title);
        out.push_str("| metric | vidq | peer | target |\n| --- | ---: | ---: | --- |\n");
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                r.metric, r.vidq, r.peer, r.target
            ));
        }
        for n in &self.notes {
            out.push_str(&format!("\n- {n}"));
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        out
    }
}

/// The whole RESULTS.md.
pub(crate) async fn document(ctx: &Ctx, command: &str, sections: &[Section]) -> String {
    let mut out = String::from("# vidq benchmark results\n\n");
    if ctx.quick {
        out.push_str(
            "> **Quick run** (`--quick`: small sizes, seconds per scenario). It shows the harness \
             works and gives the load-independent figures (Redis commands, script calls and bytes \
             per task); speeds from a quick run, on a shared machine, are not the results. Run \
             `scripts/bench` without `--quick` on a quiet machine for those.\n\n",
        );
    }
    out.push_str(&format!(
        "Command: `{command}`\n\n## Machine\n\n{}\n\n## Results\n\n",
        crate::machine::describe(ctx).await
    ));
    for s in sections {
        out.push_str(&s.markdown());
        out.push('\n');
    }
    out
}
