//! CPU time of another process (the server under load), from `/proc/<pid>/stat`.

use quarry_datagen::DatagenError;

/// Clock ticks per second of `/proc` times (`USER_HZ`): 100 on every Linux
/// architecture this tool runs on.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU seconds `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64, DatagenError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&stat).ok_or_else(|| {
        DatagenError::InvalidConfig(format!("cannot read CPU times from /proc/{pid}/stat"))
    })
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in seconds.
fn parse_stat(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces; the fields after it do not.
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = after_name.split_ascii_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / CLOCK_TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse() {
        let line = "1234 (quarry serve) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(parse_stat(line), Some(3.0));
        assert_eq!(parse_stat("garbage"), None);
        assert!(cpu_seconds(std::process::id()).is_ok());
    }
}
