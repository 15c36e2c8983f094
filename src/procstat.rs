//! Reading fields of `/proc/PID/stat`, which the sandbox (who are my children?) and the run
//! directory sweep (is this owner still the same process?) both need.

/// Field `n` of `/proc/PID/stat`, numbered as in proc(5) (4 is the parent pid, 22 the start
/// time), for fields after the command name. The command name is parenthesised and may
/// itself contain spaces and parentheses, so fields are counted after its last `)`.
pub fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split(' ').nth(n.checked_sub(3)?).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_parent_and_start_time() {
        let me = std::process::id();
        assert_eq!(
            stat_field(me, 4),
            Some(nix::unistd::getppid().as_raw().to_string())
        );
        // The state (field 3) is whatever our main thread is doing: only check it is one.
        assert!(stat_field(me, 3).is_some_and(|s| s.len() == 1));
        assert!(stat_field(me, 22).is_some_and(|s| s.parse::<u64>().is_ok()));
        assert_eq!(stat_field(me, 2), None);
    }
}
