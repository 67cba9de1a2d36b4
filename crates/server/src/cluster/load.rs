//! This process's CPU use between two heartbeats, from `/proc/self/stat` (Linux; elsewhere
//! it reads 0).

use std::sync::Mutex;
use std::time::Instant;

/// Clock ticks a second of `/proc/<pid>/stat`'s times (USER_HZ: 100 on every Linux ABI).
const TICKS_PER_SEC: f64 = 100.0;

#[derive(Default)]
pub(super) struct Sampler {
    last: Mutex<Option<(Instant, u64)>>,
}

impl Sampler {
    /// CPU time since the last call, in tenths of a percent of one core (0 at the first).
    pub(super) fn cpu_permille(&self) -> i64 {
        let Some(ticks) = process_ticks() else {
            return 0;
        };
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let out = match *last {
            Some((at, before)) => {
                let wall = now.duration_since(at).as_secs_f64();
                let cpu = ticks.saturating_sub(before) as f64 / TICKS_PER_SEC;
                if wall > 0.0 {
                    (cpu / wall * 1000.0).round() as i64
                } else {
                    0
                }
            }
            None => 0,
        };
        *last = Some((now, ticks));
        out
    }
}

/// utime + stime of this process, in clock ticks.
fn process_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_ticks(&stat)
}

/// Fields 14 and 15 of a `stat` line; the command name (field 2) may hold spaces and
/// parentheses, so the fields are counted after its last `)`.
fn parse_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stat_lines() {
        let line =
            "4242 (voice (connector)) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 37 0 0 20 0 9 0 1 0";
        assert_eq!(super::parse_ticks(line), Some(287));
        assert_eq!(super::parse_ticks("garbage"), None);
        assert!(super::process_ticks().is_some());
    }
}
