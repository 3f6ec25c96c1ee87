//! The copy itself: each table scanned page by page from the source and imported into the
//! target, progress saved after every page; then both stores counted.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::state::{self, CopyState};
use super::{CopyError, CopyOptions, Outcome};
use crate::storage::records::{ScanPage, Table};
use crate::storage::Store;

pub(super) struct Copier<'a> {
    pub source: Arc<dyn Store>,
    pub target: Arc<dyn Store>,
    pub options: &'a CopyOptions,
}

/// One line of the report on stdout. A closed stdout (`| head`) must not fail or panic a copy
/// that is otherwise going well, so write errors are ignored.
pub(super) fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// A bar on stderr, drawn only when stderr is a terminal (indicatif hides it otherwise).
fn bar(prefix: &str, position: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    // The template is constant and valid; a failure would only cost the layout.
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {prefix:<13} {human_pos} records  {per_sec}  {elapsed}",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(prefix.to_string());
    bar.set_position(position);
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

impl Copier<'_> {
    async fn scan(
        &self,
        store: &dyn Store,
        role: &'static str,
        table: Table,
        cursor: Option<&str>,
    ) -> Result<ScanPage, CopyError> {
        let page = store
            .scan(table, cursor, self.options.batch.max(1))
            .await
            .map_err(|source| CopyError::Store {
                op: "scanning",
                table: table.name(),
                role,
                source,
            })?
            .map_err(|_| CopyError::BadCursor {
                table: table.name(),
                path: self.options.state_file.clone(),
            })?;
        if page.next.is_some() && page.next.as_deref() == cursor {
            return Err(CopyError::Stuck(table.name()));
        }
        Ok(page)
    }

    /// A fresh copy goes into an empty store only: records already there would make the count
    /// check fail after a whole copy, so that is refused before copying anything.
    pub async fn check_target_empty(&self) -> Result<(), CopyError> {
        for table in Table::ALL {
            let page =
                self.target
                    .scan(table, None, 1)
                    .await
                    .map_err(|source| CopyError::Store {
                        op: "scanning",
                        table: table.name(),
                        role: "target",
                        source,
                    })?;
            if page.is_ok_and(|p| !p.records.is_empty()) {
                return Err(CopyError::TargetNotEmpty {
                    table: table.name(),
                });
            }
        }
        Ok(())
    }

    /// Copies from where `state` says, then checks the counts and removes the state file.
    pub async fn run(&self, mut state: CopyState) -> Result<Outcome, CopyError> {
        let path = &self.options.state_file;
        let mut pages = 0u64;
        let resume_at = state.table(path)?;
        for table in Table::ALL {
            let pending = resume_at.is_some_and(|at| table_index(table) >= table_index(at));
            if !pending {
                say(&format!(
                    "{:<13} {:>10} records imported (in an earlier run)",
                    table.name(),
                    state.copied(table)
                ));
                continue;
            }
            if self.copy_table(table, &mut state, &mut pages).await? && state.table.is_some() {
                say(&format!(
                    "stopped after {pages} pages as asked, at {}; progress is saved in {}: run \
                     again to resume",
                    state.position(),
                    path.display()
                ));
                return Ok(Outcome::Stopped { pages });
            }
        }
        self.check_counts().await?;
        state::remove(path)?;
        say(&format!("copy complete; {} removed", path.display()));
        Ok(Outcome::Done)
    }

    /// Copies the rest of `table`, saving progress after each page. Answers whether it stopped
    /// because `stop_after_pages` pages are done (in this table or, at its last page, before the
    /// next one).
    async fn copy_table(
        &self,
        table: Table,
        state: &mut CopyState,
        pages: &mut u64,
    ) -> Result<bool, CopyError> {
        let started = Instant::now();
        let before = state.copied(table);
        let progress = bar(table.name(), before);
        let budget_spent = |pages: u64| self.options.stop_after_pages.is_some_and(|m| pages >= m);
        loop {
            let page = self
                .scan(&*self.source, "source", table, state.cursor.as_deref())
                .await?;
            let n = page.records.len() as u64;
            if n > 0 {
                self.target
                    .import(&page.records)
                    .await
                    .map_err(|source| CopyError::Store {
                        op: "importing",
                        table: table.name(),
                        role: "target",
                        source,
                    })?;
            }
            state.add_copied(table, n);
            let finished = page.next.is_none();
            state.cursor = page.next;
            if finished {
                state.table = next_table(table).map(|t| t.name().to_string());
            }
            state::save(&self.options.state_file, state)?;
            progress.inc(n);
            *pages += 1;
            if finished {
                break;
            }
            if budget_spent(*pages) {
                progress.finish_and_clear();
                return Ok(true);
            }
        }
        progress.finish_and_clear();
        let total = state.copied(table);
        let secs = started.elapsed().as_secs_f64();
        say(&format!(
            "{:<13} {total:>10} records imported ({} in this run, {secs:.1} s, {:.0}/s)",
            table.name(),
            total - before,
            (total - before) as f64 / secs.max(0.001)
        ));
        Ok(budget_spent(*pages))
    }

    /// Every record of `table` in `store`, counted by scanning.
    async fn count(
        &self,
        store: &dyn Store,
        role: &'static str,
        table: Table,
        progress: &ProgressBar,
    ) -> Result<u64, CopyError> {
        let mut cursor = None;
        let mut n = 0u64;
        loop {
            let page = self.scan(store, role, table, cursor.as_deref()).await?;
            n += page.records.len() as u64;
            progress.inc(page.records.len() as u64);
            cursor = page.next;
            if cursor.is_none() {
                return Ok(n);
            }
        }
    }

    /// Scans both stores and compares their counts table by table: the check does not trust the
    /// copy's own tally, which a page imported twice (a copy killed between importing and
    /// saving) or a store written during the copy would put off.
    async fn check_counts(&self) -> Result<(), CopyError> {
        say("count check (every record of both stores scanned):");
        let mut differ = Vec::new();
        let mut total = 0u64;
        for table in Table::ALL {
            // One bar for both scans, which run side by side: it counts records of either.
            let progress = bar(&format!("check {}", table.name()), 0);
            let counted = tokio::try_join!(
                self.count(&*self.source, "source", table, &progress),
                self.count(&*self.target, "target", table, &progress)
            );
            progress.finish_and_clear();
            let (s, t) = counted?;
            let verdict = if s == t { "ok" } else { "DIFFERENT" };
            say(&format!(
                "  {:<13} source {s:>10}  target {t:>10}  {verdict}",
                table.name()
            ));
            if s != t {
                differ.push(format!("{} (source {s}, target {t})", table.name()));
            }
            total += s;
        }
        if !differ.is_empty() {
            return Err(CopyError::CountMismatch(differ.join(", ")));
        }
        say(&format!(
            "count check passed: {total} records in {} tables",
            Table::ALL.len()
        ));
        Ok(())
    }
}

fn table_index(table: Table) -> usize {
    Table::ALL
        .iter()
        .position(|t| *t == table)
        .unwrap_or(Table::ALL.len())
}

fn next_table(table: Table) -> Option<Table> {
    Table::ALL.get(table_index(table) + 1).copied()
}
