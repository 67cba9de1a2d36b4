//! CPU time and resident memory of a process from Linux `/proc` (proc(5)): `stat` fields
//! 14 and 15 (utime, stime, in clock ticks of USER_HZ = 100 on Linux) and `status` VmRSS.

use std::path::PathBuf;

/// Linux reports `/proc/<pid>/stat` times in USER_HZ, which is 100 on every architecture
/// the kernel exports to user space (proc(5), `sysconf(_SC_CLK_TCK)`).
const USER_HZ: f64 = 100.0;

/// One sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcSample {
    /// User + system CPU seconds since the process started.
    pub cpu_s: f64,
    /// Resident set size in KiB.
    pub rss_kib: u64,
}

/// CPU seconds from the text of `/proc/<pid>/stat`.
pub fn parse_stat(text: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: fields start after the
    // last ')'.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// VmRSS in KiB from the text of `/proc/<pid>/status`.
pub fn parse_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Samples `pid`, or this process when `None`.
pub fn sample(pid: Option<u32>) -> Option<ProcSample> {
    let dir = PathBuf::from("/proc").join(pid.map_or("self".to_string(), |p| p.to_string()));
    let cpu_s = parse_stat(&std::fs::read_to_string(dir.join("stat")).ok()?)?;
    let rss_kib = parse_rss(&std::fs::read_to_string(dir.join("status")).ok()?)?;
    Some(ProcSample { cpu_s, rss_kib })
}

/// The sum of the samples of `pids` (CPU seconds and RSS); `None` when `pids` is empty or
/// one of them is gone.
pub fn sample_sum(pids: &[u32]) -> Option<ProcSample> {
    let mut sum = ProcSample {
        cpu_s: 0.0,
        rss_kib: 0,
    };
    if pids.is_empty() {
        return None;
    }
    for p in pids {
        let s = sample(Some(*p))?;
        sum.cpu_s += s.cpu_s;
        sum.rss_kib += s.rss_kib;
    }
    Some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat =
            "1234 (voice (conn) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_stat(stat), Some(3.0));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn parses_vmrss_and_samples_itself() {
        assert_eq!(parse_rss("Name:\tx\nVmRSS:\t  51234 kB\n"), Some(51234));
        let me = sample(None).unwrap();
        assert!(me.rss_kib > 0);
        let pid = std::process::id();
        let twice = sample_sum(&[pid, pid]).unwrap();
        assert!(twice.rss_kib >= me.rss_kib);
        assert_eq!(sample_sum(&[]), None);
    }
}
