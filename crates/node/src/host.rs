//! Figures about the machine itself read from `/proc`, shared by the health report (`daemon`),
//! the node reserve (`cgroup`) and the node's own usage sample (`accounting`). The parsers are
//! pure and unit-tested.

use std::fs;

/// Memory figures of `/proc/meminfo`, in bytes; 0 when a line is missing or unreadable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub total: u64,
    pub available: u64,
}

impl MemInfo {
    /// Memory in use: total minus what could be given to a new process without swapping.
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }

    /// Parses the text of `/proc/meminfo` (`MemTotal:  16314072 kB` lines).
    pub fn parse(text: &str) -> MemInfo {
        let kb = |key: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(0, |v| v.saturating_mul(1024))
        };
        MemInfo {
            total: kb("MemTotal:"),
            available: kb("MemAvailable:"),
        }
    }

    /// This machine's, now.
    pub fn read() -> MemInfo {
        MemInfo::parse(&fs::read_to_string("/proc/meminfo").unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_in_bytes() {
        let m = MemInfo::parse(
            "MemTotal:       16314072 kB\nMemFree:          512000 kB\nMemAvailable:    8157036 kB\n",
        );
        assert_eq!(m.total, 16_314_072 * 1024);
        assert_eq!(m.available, 8_157_036 * 1024);
        assert_eq!(m.used(), (16_314_072 - 8_157_036) * 1024);
        assert_eq!(MemInfo::parse(""), MemInfo::default());
        assert_eq!(MemInfo::parse("MemTotal: x kB\n").total, 0);
    }
}
