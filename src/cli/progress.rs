//! A progress line on stderr with rate and ETA; silent when stderr is not a terminal.

use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Progress {
    label: &'static str,
    start: Instant,
    on: bool,
    drawn: bool,
}

impl Progress {
    pub fn new(label: &'static str) -> Self {
        Progress {
            label,
            start: Instant::now(),
            on: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// `done` of `total` units; `items` is shown as the work count.
    pub fn update(&mut self, done: usize, total: usize, items: usize) {
        if !self.on {
            return;
        }
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 {
            (total.saturating_sub(done)) as f64 / rate
        } else {
            0.0
        };
        let width = 30;
        let filled = (done * width).checked_div(total).unwrap_or(width);
        let bar: String = "#".repeat(filled) + &" ".repeat(width - filled.min(width));
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{} [{bar}] {done}/{total} files, {items} items, {rate:.1}/s, ETA {eta:.0}s   ",
            self.label
        );
        let _ = err.flush();
        self.drawn = true;
    }

    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
        }
    }
}
