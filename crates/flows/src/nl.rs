//! The ctnetlink wire format: netlink message framing, the `nfgenmsg` header and the conntrack
//! attributes we need. Pure code over byte slices, so it is unit-tested with crafted buffers.
//!
//! Everything here treats its input as untrusted: a length that points outside the buffer, an
//! attribute too short for its type or an unknown attribute never panics. A malformed *message*
//! becomes an `Err` for that message only; a malformed *frame* (netlink header lengths that do not
//! add up) ends the parse of that datagram, because the next header's position is unknown.
//!
//! Byte order: netlink headers are host order; ctnetlink attribute *values* are network order
//! (big endian), as the kernel's `nla_put_be32` & co. write them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

pub const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLA_HDRLEN: usize = 4;

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
/// Set on a `CT_NEW` event for a brand-new entry (absent on updates).
pub const NLM_F_CREATE: u16 = 0x400;

pub const NFNL_SUBSYS_CTNETLINK: u16 = 1;
pub const IPCTNL_MSG_CT_NEW: u16 = 0;
pub const IPCTNL_MSG_CT_GET: u16 = 1;
pub const IPCTNL_MSG_CT_DELETE: u16 = 2;

/// Multicast groups of `NETLINK_NETFILTER` (enum nfnetlink_groups).
pub const NFNLGRP_CONNTRACK_NEW: u32 = 1;
pub const NFNLGRP_CONNTRACK_UPDATE: u32 = 2;
pub const NFNLGRP_CONNTRACK_DESTROY: u32 = 3;

// enum ctattr_type
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_COUNTERS_ORIG: u16 = 9;
const CTA_COUNTERS_REPLY: u16 = 10;
const CTA_ID: u16 = 12;
const CTA_TIMESTAMP: u16 = 20;
// enum ctattr_tuple
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
// enum ctattr_ip
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
// enum ctattr_l4proto
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTO_ICMP_ID: u16 = 4;
const CTA_PROTO_ICMPV6_ID: u16 = 7;
// enum ctattr_counters
const CTA_COUNTERS_PACKETS: u16 = 1;
const CTA_COUNTERS_BYTES: u16 = 2;
const CTA_COUNTERS32_PACKETS: u16 = 3;
const CTA_COUNTERS32_BYTES: u16 = 4;
// enum ctattr_tstamp
const CTA_TIMESTAMP_START: u16 = 1;
const CTA_TIMESTAMP_STOP: u16 = 2;

/// NLA_F_NESTED | NLA_F_NET_BYTEORDER: flag bits above the attribute type.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Why one message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("netlink header: {0}")]
    Frame(&'static str),
    #[error("message too short for nfgenmsg")]
    ShortNfgen,
    #[error("attribute {attr}: {why}")]
    Attr {
        attr: &'static str,
        why: &'static str,
    },
    #[error("conntrack message without an original tuple")]
    NoOrigTuple,
}

/// One endpoint pair of a conntrack entry (`CTA_TUPLE_ORIG` or `CTA_TUPLE_REPLY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// Ports for TCP/UDP/SCTP/…; for ICMP the id is in `sport` and `dport` is 0.
    pub sport: u16,
    pub dport: u16,
}

/// Packet and byte counters of one direction (`nf_conntrack_acct=1`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// A decoded conntrack entry, from an event or a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conntrack {
    pub id: u32,
    pub orig: Tuple,
    pub reply: Option<Tuple>,
    pub status: u32,
    pub counters_orig: Option<Counters>,
    pub counters_reply: Option<Counters>,
    /// Nanoseconds since the Unix epoch (`nf_conntrack_timestamp=1`).
    pub start_ns: Option<u64>,
    pub stop_ns: Option<u64>,
}

/// What a ctnetlink message says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A new entry (event with NLM_F_CREATE).
    New,
    /// A changed entry (event without NLM_F_CREATE).
    Update,
    /// The entry is gone; carries the final counters and the stop timestamp.
    Destroy,
    /// One entry of a table dump we asked for.
    Dumped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Conntrack(EventKind, Box<Conntrack>),
    /// End of a multipart dump.
    Done,
    /// NLMSG_ERROR: `errno` 0 is an acknowledgement.
    Error {
        errno: i32,
        seq: u32,
    },
    /// Anything else (other subsystems, overrun notices…): skipped.
    Other(u16),
}

/// Splits one received datagram into netlink messages and decodes each. A broken frame yields
/// one final `Err` and stops, since the position of the next message cannot be trusted.
pub fn parse_datagram(mut buf: &[u8]) -> Vec<Result<Message, ParseError>> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < NLMSG_HDRLEN {
            out.push(Err(ParseError::Frame("length shorter than the header")));
            break;
        }
        if len > buf.len() {
            out.push(Err(ParseError::Frame("length beyond the datagram")));
            break;
        }
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        let flags = u16::from_ne_bytes([buf[6], buf[7]]);
        let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        out.push(parse_message(ty, flags, seq, &buf[NLMSG_HDRLEN..len]));
        // Messages are 4-byte aligned; the last one may omit its padding.
        let next = align4(len).min(buf.len());
        buf = &buf[next..];
    }
    if !buf.is_empty() && out.is_empty() {
        out.push(Err(ParseError::Frame("datagram shorter than a header")));
    }
    out
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

fn parse_message(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Result<Message, ParseError> {
    match ty {
        NLMSG_DONE => return Ok(Message::Done),
        NLMSG_ERROR => {
            // struct nlmsgerr { int error; struct nlmsghdr msg; } — the errno is negative.
            let b = payload
                .get(..4)
                .ok_or(ParseError::Frame("short NLMSG_ERROR"))?;
            let err = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            return Ok(Message::Error {
                errno: err.saturating_neg(),
                seq,
            });
        }
        _ => {}
    }
    if ty >> 8 != NFNL_SUBSYS_CTNETLINK {
        return Ok(Message::Other(ty));
    }
    let kind = match ty & 0xff {
        IPCTNL_MSG_CT_NEW if flags & NLM_F_MULTI != 0 => EventKind::Dumped,
        IPCTNL_MSG_CT_NEW if flags & NLM_F_CREATE != 0 => EventKind::New,
        IPCTNL_MSG_CT_NEW => EventKind::Update,
        IPCTNL_MSG_CT_DELETE => EventKind::Destroy,
        _ => return Ok(Message::Other(ty)),
    };
    let attrs = payload.get(NFGENMSG_LEN..).ok_or(ParseError::ShortNfgen)?;
    Ok(Message::Conntrack(kind, Box::new(parse_conntrack(attrs)?)))
}

/// Iterates over `(type, value)` of a run of netlink attributes.
struct Attrs<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let err = |why| {
            Some(Err(ParseError::Attr {
                attr: self.what,
                why,
            }))
        };
        if self.buf.len() < NLA_HDRLEN {
            self.buf = &[];
            return err("truncated header");
        }
        let len = u16::from_ne_bytes([self.buf[0], self.buf[1]]) as usize;
        let ty = u16::from_ne_bytes([self.buf[2], self.buf[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > self.buf.len() {
            self.buf = &[];
            return err("bad length");
        }
        let value = &self.buf[NLA_HDRLEN..len];
        let next = align4(len).min(self.buf.len());
        self.buf = &self.buf[next..];
        Some(Ok((ty, value)))
    }
}

fn attrs<'a>(buf: &'a [u8], what: &'static str) -> Attrs<'a> {
    Attrs { buf, what }
}

fn be_u16(v: &[u8], attr: &'static str) -> Result<u16, ParseError> {
    let b: [u8; 2] = v
        .get(..2)
        .and_then(|s| s.try_into().ok())
        .ok_or(ParseError::Attr {
            attr,
            why: "shorter than 2 bytes",
        })?;
    Ok(u16::from_be_bytes(b))
}

fn be_u32(v: &[u8], attr: &'static str) -> Result<u32, ParseError> {
    let b: [u8; 4] = v
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(ParseError::Attr {
            attr,
            why: "shorter than 4 bytes",
        })?;
    Ok(u32::from_be_bytes(b))
}

fn be_u64(v: &[u8], attr: &'static str) -> Result<u64, ParseError> {
    let b: [u8; 8] = v
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or(ParseError::Attr {
            attr,
            why: "shorter than 8 bytes",
        })?;
    Ok(u64::from_be_bytes(b))
}

fn ip4(v: &[u8], attr: &'static str) -> Result<IpAddr, ParseError> {
    let b: [u8; 4] = v
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(ParseError::Attr {
            attr,
            why: "IPv4 address shorter than 4 bytes",
        })?;
    Ok(IpAddr::V4(Ipv4Addr::from(b)))
}

fn ip6(v: &[u8], attr: &'static str) -> Result<IpAddr, ParseError> {
    let b: [u8; 16] = v
        .get(..16)
        .and_then(|s| s.try_into().ok())
        .ok_or(ParseError::Attr {
            attr,
            why: "IPv6 address shorter than 16 bytes",
        })?;
    Ok(IpAddr::V6(Ipv6Addr::from(b)))
}

fn parse_conntrack(buf: &[u8]) -> Result<Conntrack, ParseError> {
    let mut ct = Conntrack {
        id: 0,
        orig: Tuple {
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            proto: 0,
            sport: 0,
            dport: 0,
        },
        reply: None,
        status: 0,
        counters_orig: None,
        counters_reply: None,
        start_ns: None,
        stop_ns: None,
    };
    let mut have_orig = false;
    for a in attrs(buf, "conntrack") {
        let (ty, v) = a?;
        match ty {
            CTA_TUPLE_ORIG => {
                ct.orig = parse_tuple(v)?;
                have_orig = true;
            }
            CTA_TUPLE_REPLY => ct.reply = Some(parse_tuple(v)?),
            CTA_STATUS => ct.status = be_u32(v, "CTA_STATUS")?,
            CTA_ID => ct.id = be_u32(v, "CTA_ID")?,
            CTA_COUNTERS_ORIG => ct.counters_orig = Some(parse_counters(v)?),
            CTA_COUNTERS_REPLY => ct.counters_reply = Some(parse_counters(v)?),
            CTA_TIMESTAMP => {
                for t in attrs(v, "CTA_TIMESTAMP") {
                    let (tt, tv) = t?;
                    match tt {
                        CTA_TIMESTAMP_START => {
                            ct.start_ns = Some(be_u64(tv, "CTA_TIMESTAMP_START")?)
                        }
                        // The kernel sends 0 until the entry dies.
                        CTA_TIMESTAMP_STOP => {
                            ct.stop_ns = Some(be_u64(tv, "CTA_TIMESTAMP_STOP")?).filter(|&s| s != 0)
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if !have_orig {
        return Err(ParseError::NoOrigTuple);
    }
    Ok(ct)
}

fn parse_tuple(buf: &[u8]) -> Result<Tuple, ParseError> {
    let (mut src, mut dst) = (None, None);
    let (mut proto, mut sport, mut dport) = (None, 0, 0);
    for a in attrs(buf, "tuple") {
        let (ty, v) = a?;
        match ty {
            CTA_TUPLE_IP => {
                for ip in attrs(v, "CTA_TUPLE_IP") {
                    let (it, iv) = ip?;
                    match it {
                        CTA_IP_V4_SRC => src = Some(ip4(iv, "CTA_IP_V4_SRC")?),
                        CTA_IP_V4_DST => dst = Some(ip4(iv, "CTA_IP_V4_DST")?),
                        CTA_IP_V6_SRC => src = Some(ip6(iv, "CTA_IP_V6_SRC")?),
                        CTA_IP_V6_DST => dst = Some(ip6(iv, "CTA_IP_V6_DST")?),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for p in attrs(v, "CTA_TUPLE_PROTO") {
                    let (pt, pv) = p?;
                    match pt {
                        CTA_PROTO_NUM => {
                            proto = Some(*pv.first().ok_or(ParseError::Attr {
                                attr: "CTA_PROTO_NUM",
                                why: "empty",
                            })?)
                        }
                        CTA_PROTO_SRC_PORT => sport = be_u16(pv, "CTA_PROTO_SRC_PORT")?,
                        CTA_PROTO_DST_PORT => dport = be_u16(pv, "CTA_PROTO_DST_PORT")?,
                        CTA_PROTO_ICMP_ID | CTA_PROTO_ICMPV6_ID => {
                            sport = be_u16(pv, "CTA_PROTO_ICMP_ID")?
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let missing = |attr| ParseError::Attr {
        attr,
        why: "missing",
    };
    Ok(Tuple {
        src: src.ok_or(missing("tuple source address"))?,
        dst: dst.ok_or(missing("tuple destination address"))?,
        proto: proto.ok_or(missing("CTA_PROTO_NUM"))?,
        sport,
        dport,
    })
}

fn parse_counters(buf: &[u8]) -> Result<Counters, ParseError> {
    let mut c = Counters::default();
    for a in attrs(buf, "counters") {
        let (ty, v) = a?;
        match ty {
            CTA_COUNTERS_PACKETS => c.packets = be_u64(v, "CTA_COUNTERS_PACKETS")?,
            CTA_COUNTERS_BYTES => c.bytes = be_u64(v, "CTA_COUNTERS_BYTES")?,
            CTA_COUNTERS32_PACKETS => c.packets = be_u32(v, "CTA_COUNTERS32_PACKETS")?.into(),
            CTA_COUNTERS32_BYTES => c.bytes = be_u32(v, "CTA_COUNTERS32_BYTES")?.into(),
            _ => {}
        }
    }
    Ok(c)
}

/// A request to dump the whole conntrack table (both address families).
pub fn dump_request(seq: u32) -> Vec<u8> {
    let len = (NLMSG_HDRLEN + NFGENMSG_LEN) as u32;
    let mut b = Vec::with_capacity(len as usize);
    b.extend_from_slice(&len.to_ne_bytes());
    b.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET).to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel fills in ours
                                              // nfgenmsg: AF_UNSPEC = every family, NFNETLINK_V0, res_id 0.
    b.extend_from_slice(&[0, 0, 0, 0]);
    b
}

/// Test helpers that build ctnetlink messages the way the kernel does, shared with the tracker
/// tests.
#[cfg(test)]
pub(crate) mod build {
    use super::*;

    pub fn attr(ty: u16, value: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&((NLA_HDRLEN + value.len()) as u16).to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(value);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        b
    }

    pub fn nested(ty: u16, parts: &[Vec<u8>]) -> Vec<u8> {
        attr(ty | 0x8000, &parts.concat())
    }

    pub fn tuple(ty: u16, t: &Tuple) -> Vec<u8> {
        let ip = match (t.src, t.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => vec![
                attr(CTA_IP_V4_SRC, &s.octets()),
                attr(CTA_IP_V4_DST, &d.octets()),
            ],
            (IpAddr::V6(s), IpAddr::V6(d)) => vec![
                attr(CTA_IP_V6_SRC, &s.octets()),
                attr(CTA_IP_V6_DST, &d.octets()),
            ],
            _ => panic!("mixed families"),
        };
        nested(
            ty,
            &[
                nested(CTA_TUPLE_IP, &ip),
                nested(
                    CTA_TUPLE_PROTO,
                    &[
                        attr(CTA_PROTO_NUM, &[t.proto]),
                        attr(CTA_PROTO_SRC_PORT, &t.sport.to_be_bytes()),
                        attr(CTA_PROTO_DST_PORT, &t.dport.to_be_bytes()),
                    ],
                ),
            ],
        )
    }

    pub fn counters(ty: u16, c: Counters) -> Vec<u8> {
        nested(
            ty,
            &[
                attr(CTA_COUNTERS_PACKETS, &c.packets.to_be_bytes()),
                attr(CTA_COUNTERS_BYTES, &c.bytes.to_be_bytes()),
            ],
        )
    }

    pub fn conntrack_attrs(ct: &Conntrack) -> Vec<u8> {
        let mut parts = vec![tuple(CTA_TUPLE_ORIG, &ct.orig)];
        if let Some(r) = &ct.reply {
            parts.push(tuple(CTA_TUPLE_REPLY, r));
        }
        parts.push(attr(CTA_STATUS, &ct.status.to_be_bytes()));
        parts.push(attr(CTA_ID, &ct.id.to_be_bytes()));
        if let Some(c) = ct.counters_orig {
            parts.push(counters(CTA_COUNTERS_ORIG, c));
        }
        if let Some(c) = ct.counters_reply {
            parts.push(counters(CTA_COUNTERS_REPLY, c));
        }
        if ct.start_ns.is_some() || ct.stop_ns.is_some() {
            parts.push(nested(
                CTA_TIMESTAMP,
                &[
                    attr(CTA_TIMESTAMP_START, &ct.start_ns.unwrap_or(0).to_be_bytes()),
                    attr(CTA_TIMESTAMP_STOP, &ct.stop_ns.unwrap_or(0).to_be_bytes()),
                ],
            ));
        }
        parts.concat()
    }

    pub fn message(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(payload);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        b
    }

    /// A ctnetlink message (event or dump entry) for `ct`.
    pub fn ct_message(msg: u16, flags: u16, ct: &Conntrack) -> Vec<u8> {
        let mut payload = vec![2, 0, 0, 0]; // nfgenmsg: AF_INET
        payload.extend(conntrack_attrs(ct));
        message((NFNL_SUBSYS_CTNETLINK << 8) | msg, flags, 0, &payload)
    }

    pub fn sample() -> Conntrack {
        Conntrack {
            id: 0xdead_beef,
            orig: Tuple {
                src: "10.77.0.2".parse().unwrap(),
                dst: "192.0.2.2".parse().unwrap(),
                proto: 6,
                sport: 40000,
                dport: 9000,
            },
            reply: Some(Tuple {
                src: "192.0.2.2".parse().unwrap(),
                dst: "192.0.2.1".parse().unwrap(),
                proto: 6,
                sport: 9000,
                dport: 40001,
            }),
            status: 0x18e,
            counters_orig: Some(Counters {
                packets: 10,
                bytes: 1_000_520,
            }),
            counters_reply: Some(Counters {
                packets: 8,
                bytes: 416,
            }),
            start_ns: Some(1_700_000_000_123_456_789),
            stop_ns: Some(1_700_000_005_000_000_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    #[test]
    fn decodes_a_destroy_event_with_counters_and_timestamps() {
        let ct = sample();
        let buf = ct_message(IPCTNL_MSG_CT_DELETE, 0, &ct);
        let msgs = parse_datagram(&buf);
        assert_eq!(
            msgs,
            vec![Ok(Message::Conntrack(EventKind::Destroy, Box::new(ct)))]
        );
    }

    #[test]
    fn tells_new_update_and_dump_apart() {
        let ct = sample();
        let mut buf = ct_message(IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL, &ct);
        buf.extend(ct_message(IPCTNL_MSG_CT_NEW, 0, &ct));
        buf.extend(ct_message(IPCTNL_MSG_CT_NEW, NLM_F_MULTI, &ct));
        buf.extend(message(NLMSG_DONE, NLM_F_MULTI, 0, &[0, 0, 0, 0]));
        let kinds: Vec<_> = parse_datagram(&buf)
            .into_iter()
            .map(|m| match m {
                Ok(Message::Conntrack(k, _)) => Some(k),
                Ok(Message::Done) => None,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                Some(EventKind::New),
                Some(EventKind::Update),
                Some(EventKind::Dumped),
                None
            ]
        );
    }
    const NLM_F_EXCL: u16 = 0x200;

    #[test]
    fn decodes_ipv6_and_32_bit_counters_and_skips_unknown_attributes() {
        let t = Tuple {
            src: "fd00::2".parse().unwrap(),
            dst: "2001:db8::1".parse().unwrap(),
            proto: 17,
            sport: 5353,
            dport: 53,
        };
        let payload = [
            vec![10, 0, 0, 0],
            attr(999, b"future attribute"),
            tuple(CTA_TUPLE_ORIG, &t),
            nested(
                CTA_COUNTERS_ORIG,
                &[
                    attr(CTA_COUNTERS32_PACKETS, &3u32.to_be_bytes()),
                    attr(CTA_COUNTERS32_BYTES, &300u32.to_be_bytes()),
                ],
            ),
        ]
        .concat();
        let buf = message(IPCTNL_MSG_CT_DELETE | 0x100, 0, 0, &payload);
        let [Ok(Message::Conntrack(EventKind::Destroy, ct))] = &parse_datagram(&buf)[..] else {
            panic!("not one destroy");
        };
        assert_eq!(ct.orig, t);
        assert_eq!(
            ct.counters_orig,
            Some(Counters {
                packets: 3,
                bytes: 300
            })
        );
        assert_eq!(ct.reply, None);
    }

    #[test]
    fn errors_and_acks_and_foreign_messages() {
        let mut buf = message(NLMSG_ERROR, 0, 7, &(-105i32).to_ne_bytes());
        buf.extend(message(NLMSG_ERROR, 0, 8, &0i32.to_ne_bytes()));
        buf.extend(message(0x0201, 0, 0, &[0, 0, 0, 0])); // another nfnetlink subsystem
        assert_eq!(
            parse_datagram(&buf),
            vec![
                Ok(Message::Error { errno: 105, seq: 7 }),
                Ok(Message::Error { errno: 0, seq: 8 }),
                Ok(Message::Other(0x0201)),
            ]
        );
    }

    #[test]
    fn a_bad_frame_stops_the_datagram_without_panicking() {
        let good = ct_message(IPCTNL_MSG_CT_DELETE, 0, &sample());
        // Length field larger than what was received.
        let mut b = good.clone();
        b[0..4].copy_from_slice(&((good.len() + 100) as u32).to_ne_bytes());
        assert!(matches!(
            &parse_datagram(&b)[..],
            [Err(ParseError::Frame(_))]
        ));
        // Length field smaller than a header: cannot advance, must not loop forever.
        let mut b = good.clone();
        b[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(matches!(
            &parse_datagram(&b)[..],
            [Err(ParseError::Frame(_))]
        ));
        // A good message followed by a few stray bytes: the message survives.
        let mut b = good.clone();
        b.extend([1, 2, 3]);
        let r = parse_datagram(&b);
        assert!(matches!(r[0], Ok(Message::Conntrack(..))));
        // Too short for anything.
        assert!(matches!(
            &parse_datagram(&[1, 2, 3])[..],
            [Err(ParseError::Frame(_))]
        ));
        assert!(parse_datagram(&[]).is_empty());
    }

    #[test]
    fn malformed_attributes_fail_only_their_message() {
        let ct = sample();
        let good = ct_message(IPCTNL_MSG_CT_DELETE, 0, &ct);
        let payload = &good[NLMSG_HDRLEN..];
        let ty = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
        let bads: Vec<Vec<u8>> = vec![
            // nfgenmsg cut short
            vec![2, 0],
            // attribute length 2 (< header)
            [vec![2, 0, 0, 0], vec![2, 0, 1, 0]].concat(),
            // attribute length pointing past the end
            [vec![2, 0, 0, 0], vec![200, 0, 1, 0, 0, 0, 0, 0]].concat(),
            // truncated attribute header
            [vec![2, 0, 0, 0], vec![8, 0]].concat(),
            // CTA_ID of 2 bytes
            [vec![2, 0, 0, 0], attr(CTA_ID, &[1, 2])].concat(),
            // no original tuple
            [vec![2, 0, 0, 0], attr(CTA_ID, &[0, 0, 0, 1])].concat(),
            // IPv4 address of 3 bytes
            [
                vec![2, 0, 0, 0],
                nested(
                    CTA_TUPLE_ORIG,
                    &[nested(CTA_TUPLE_IP, &[attr(CTA_IP_V4_SRC, &[10, 0, 0])])],
                ),
            ]
            .concat(),
            // tuple without protocol
            [
                vec![2, 0, 0, 0],
                nested(
                    CTA_TUPLE_ORIG,
                    &[nested(
                        CTA_TUPLE_IP,
                        &[
                            attr(CTA_IP_V4_SRC, &[10, 0, 0, 1]),
                            attr(CTA_IP_V4_DST, &[10, 0, 0, 2]),
                        ],
                    )],
                ),
            ]
            .concat(),
            // counters with a 4-byte 64-bit value
            [
                payload.to_vec(),
                nested(
                    CTA_COUNTERS_ORIG,
                    &[attr(CTA_COUNTERS_BYTES, &[0, 0, 0, 1])],
                ),
            ]
            .concat(),
            // empty protocol number
            [
                vec![2, 0, 0, 0],
                nested(CTA_TUPLE_ORIG, &[nested(CTA_TUPLE_PROTO, &[attr(1, &[])])]),
            ]
            .concat(),
        ];
        for (i, bad) in bads.iter().enumerate() {
            let mut buf = message(ty, 0, 0, bad);
            buf.extend(&good);
            let r = parse_datagram(&buf);
            assert_eq!(r.len(), 2, "case {i}: {r:?}");
            assert!(r[0].is_err(), "case {i} parsed: {:?}", r[0]);
            assert!(
                matches!(r[1], Ok(Message::Conntrack(..))),
                "case {i}: {:?}",
                r[1]
            );
        }
    }

    #[test]
    fn fuzzed_prefixes_and_bit_flips_never_panic() {
        let mut buf = ct_message(IPCTNL_MSG_CT_DELETE, 0, &sample());
        buf.extend(ct_message(IPCTNL_MSG_CT_NEW, NLM_F_MULTI, &sample()));
        for cut in 0..buf.len() {
            let _ = parse_datagram(&buf[..cut]);
        }
        // A cheap deterministic "fuzzer": flip every byte to a few values.
        for i in 0..buf.len() {
            for v in [0u8, 1, 3, 0x7f, 0x80, 0xff] {
                let mut b = buf.clone();
                b[i] = v;
                let _ = parse_datagram(&b);
            }
        }
    }

    #[test]
    fn dump_request_is_a_ctnetlink_get_dump() {
        let b = dump_request(42);
        assert_eq!(b.len(), 20);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 20);
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), 0x0101);
        assert_eq!(u16::from_ne_bytes(b[6..8].try_into().unwrap()), 0x301);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 42);
    }
}
