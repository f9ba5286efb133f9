//! Filter expressions (tcpdump's pcap-filter language) compiled to classic BPF by libpcap, the
//! language's own compiler. Here for Ethernet, the link type of a sliver veth's host end, so a
//! front end can refuse a bad filter with libpcap's message before any capture starts; the live
//! capture compiles the same expression again for its interface's link type ([`super::live`]).

use pcap::{BpfProgram, Capture, Linktype};

use super::CaptureError;

/// A filter compiled to classic BPF for Ethernet frames.
pub struct CompiledFilter {
    expr: String,
    program: BpfProgram,
}

impl std::fmt::Debug for CompiledFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledFilter")
            .field("expr", &self.expr)
            .field("instructions", &self.len())
            .finish()
    }
}

impl CompiledFilter {
    /// The expression this was compiled from.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.program.get_instructions().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The program, one `code jt jf k` line per instruction (what `tcpdump -ddd` prints after
    /// its count line).
    pub fn instructions(&self) -> Vec<String> {
        self.program
            .get_instructions()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Whether a whole Ethernet frame passes the filter (run in user space by libpcap's BPF
    /// interpreter; for tests and checks, the capture itself filters in the kernel).
    pub fn matches(&self, frame: &[u8]) -> bool {
        self.program.filter(frame)
    }
}

/// Compiles `expr` (empty: every packet) for Ethernet, optimised. A bad expression gives
/// [`CaptureError::Filter`] with libpcap's message.
pub fn compile_filter(expr: &str) -> Result<CompiledFilter, CaptureError> {
    let bad = |message: String| CaptureError::Filter {
        expr: expr.to_string(),
        message,
    };
    if expr.contains('\0') {
        return Err(bad("NUL character in filter".into()));
    }
    let dead = Capture::dead(Linktype::ETHERNET).map_err(|e| bad(e.to_string()))?;
    let program = dead.compile(expr, true).map_err(|e| bad(e.to_string()))?;
    Ok(CompiledFilter {
        expr: expr.to_string(),
        program,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + UDP frame from 10.0.0.2:4000 to 10.0.0.1:`dport`.
    fn udp_frame(dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]); // IPv4
        let payload = b"hello";
        let total = 20 + 8 + payload.len() as u16;
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8]);
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]); // id, DF, ttl, UDP, checksum
        f.extend_from_slice(&[10, 0, 0, 2, 10, 0, 0, 1]);
        f.extend_from_slice(&4000u16.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn filters_compile_to_bpf_that_matches_what_they_say() {
        let f = compile_filter("udp port 5001").expect("compiles");
        assert!(!f.is_empty());
        assert_eq!(f.instructions().len(), f.len());
        assert!(f.matches(&udp_frame(5001)));
        assert!(!f.matches(&udp_frame(5002)));
        let all = compile_filter("").expect("the empty filter compiles");
        assert!(all.matches(&udp_frame(5002)));
        let host = compile_filter("src host 10.0.0.2 and not tcp").expect("compiles");
        assert!(host.matches(&udp_frame(1)));
    }

    #[test]
    fn bad_filters_give_libpcap_s_message() {
        for bad in [
            "udp port",
            "port 99999999",
            "tcp and and",
            "ether host 1:2:3:4:5:6:7",
        ] {
            match compile_filter(bad) {
                Err(CaptureError::Filter { expr, message }) => {
                    assert_eq!(expr, bad);
                    assert!(!message.is_empty(), "{bad:?}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let e = compile_filter("udp port").unwrap_err().to_string();
        assert!(e.contains("syntax error"), "{e}");
        assert!(matches!(
            compile_filter("udp\0"),
            Err(CaptureError::Filter { .. })
        ));
    }
}
