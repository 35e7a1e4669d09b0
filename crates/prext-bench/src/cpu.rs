//! CPU time spent by the processes of a measurement, read from `/proc`.
//!
//! On a small machine the benchmark client, prext and the database share the cores, so
//! throughput at high concurrency is set by the CPU each write costs them all. CPU seconds per
//! write do not depend on what else the machine runs, unlike throughput, which is why the run
//! reports them beside it: for prext, its server process and the database; for the reference,
//! the benchmark process (raw SQLite runs inside it) and the database.

use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat` (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const TICKS: f64 = 100.0;

/// `utime + stime` (and, with `children`, `cutime + cstime`: children that exited) of `pid`.
fn stat_cpu(pid: &str, children: bool) -> Option<(Duration, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let mut ticks = field(11) + field(12);
    if children {
        ticks += field(13) + field(14);
    }
    let ppid = f.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    Some((Duration::from_secs_f64(ticks as f64 / TICKS), ppid))
}

/// CPU time of one process.
pub fn process(pid: u32) -> Duration {
    stat_cpu(&pid.to_string(), false).map_or(Duration::ZERO, |(d, _)| d)
}

/// CPU time of this process (the benchmark's clients, and raw SQLite).
pub fn this_process() -> Duration {
    process(std::process::id())
}

/// CPU time of a process and its children, living or exited (a PostgreSQL postmaster and
/// its backends).
pub fn tree(root: u32) -> Duration {
    let mut total = stat_cpu(&root.to_string(), true).map_or(Duration::ZERO, |(d, _)| d);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return total;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        if let Some((cpu, ppid)) = stat_cpu(pid, false) {
            if ppid == root {
                total += cpu;
            }
        }
    }
    total
}

/// CPU used between two readings, in milliseconds per operation.
pub fn per_op_ms(before: Duration, after: Duration, ops: usize) -> f64 {
    after.saturating_sub(before).as_secs_f64() * 1e3 / ops.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_burns_measurable_cpu() {
        let before = this_process();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let own = this_process();
        assert!(own > before, "a busy loop of 100 ms shows in /proc");
        // Read after `own`: CPU time only grows, and the tree holds the process itself.
        assert!(tree(std::process::id()) >= own);
        assert_eq!(
            per_op_ms(Duration::from_secs(1), Duration::from_secs(3), 4),
            500.0
        );
    }
}
