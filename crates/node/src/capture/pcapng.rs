//! The pcapng stream (pcap-file's writer): a Section Header Block, one Interface Description Block
//! (link type, snap length, the interface's name, nanosecond timestamps), then one Enhanced Packet
//! Block per packet. Counts what it wrote, so the capture can stop before a size bound.

use std::borrow::Cow;
use std::io::{self, BufWriter, Write};
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, PcapError};

/// Why a write failed: the stream went away (the client), or the block could not be encoded.
#[derive(Debug)]
pub(super) enum WriteFailed {
    Io,
    Encode(String),
}

impl From<PcapError> for WriteFailed {
    fn from(e: PcapError) -> Self {
        match e {
            PcapError::IoError(_) => WriteFailed::Io,
            other => WriteFailed::Encode(other.to_string()),
        }
    }
}

/// Bytes an Enhanced Packet Block without options takes for `caplen` captured bytes.
pub(super) fn packet_block_len(caplen: u32) -> u64 {
    32 + u64::from(caplen).div_ceil(4) * 4
}

/// A pcapng stream over `out` with one interface. pcap-file writes a block field by field:
/// a buffer turns that into one write per [`flush`](Self::flush) (or per 64 KiB).
pub(super) struct PcapNgOut<'w> {
    writer: PcapNgWriter<Counting<BufWriter<&'w mut dyn Write>>>,
}

impl<'w> PcapNgOut<'w> {
    /// Writes the section and interface headers.
    pub(super) fn start(
        out: &'w mut dyn Write,
        linktype: u32,
        snaplen: u32,
        ifname: &str,
    ) -> Result<Self, WriteFailed> {
        let section = SectionHeaderBlock {
            endianness: Endianness::native(),
            options: vec![SectionHeaderOption::UserApplication(Cow::Borrowed(
                "slicelab capture",
            ))],
            ..Default::default()
        };
        let counting = Counting {
            out: BufWriter::with_capacity(64 << 10, out),
            bytes: 0,
        };
        let mut writer = PcapNgWriter::with_section_header(counting, section)?;
        writer.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::from(linktype),
            snaplen,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(ifname.to_string())),
                // pcap-file writes Enhanced Packet Block timestamps in nanoseconds.
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        })?;
        Ok(Self { writer })
    }

    /// Appends one packet: `data` is what was captured of a packet `original_len` long.
    pub(super) fn packet(
        &mut self,
        timestamp: Duration,
        original_len: u32,
        data: &[u8],
    ) -> Result<(), WriteFailed> {
        self.writer.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp,
            original_len,
            data: Cow::Borrowed(data),
            options: vec![],
        })?;
        Ok(())
    }

    pub(super) fn flush(&mut self) -> Result<(), WriteFailed> {
        self.writer.get_mut().flush().map_err(|_| WriteFailed::Io)
    }

    /// Bytes written so far.
    pub(super) fn bytes(&self) -> u64 {
        self.writer.get_ref().bytes
    }
}

struct Counting<W> {
    out: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_counted_and_read_back() {
        let mut buf = Vec::new();
        let written = {
            let mut w = PcapNgOut::start(&mut buf, 1, 262_144, "sl-pl_web").expect("header");
            let header = w.bytes();
            w.packet(Duration::new(1_700_000_000, 123_456_789), 60, &[0xab; 42])
                .expect("packet");
            assert_eq!(w.bytes() - header, packet_block_len(42));
            w.flush().expect("flush");
            w.bytes()
        };
        assert_eq!(written, buf.len() as u64);
        let mut r = pcap_file::pcapng::PcapNgReader::new(&buf[..]).expect("reads");
        let mut epbs = 0;
        while let Some(block) = r.next_block() {
            if let pcap_file::pcapng::Block::EnhancedPacket(p) = block.expect("block") {
                assert_eq!(p.original_len, 60);
                assert_eq!(p.data.len(), 42);
                assert_eq!(p.timestamp, Duration::new(1_700_000_000, 123_456_789));
                epbs += 1;
            }
        }
        assert_eq!(epbs, 1);
        assert_eq!(packet_block_len(0), 32);
        assert_eq!(packet_block_len(1), 36);
        assert_eq!(packet_block_len(4), 36);
    }
}
