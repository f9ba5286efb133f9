//! nftables over nfnetlink: adding and removing elements of the node table's sets (a sliver's
//! anti-spoofing entries), and finding and deleting rules by comment (its port forwards and
//! site-cap mark). The table, chains and sets themselves are made once at node start by `nft`.

use std::io;

use super::{attrs, Msg, Socket, NETLINK_NETFILTER, NLM_F_CREATE};

pub(super) const NFNL_MSG_BATCH_BEGIN: u16 = 16;
pub(super) const NFNL_MSG_BATCH_END: u16 = 17;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_DATA_VALUE: u16 = 1;
/// libnftnl's user-data tag of a rule's comment.
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;

/// Bytes of an `ifname` key: IFNAMSIZ, NUL-padded.
const IFNAMSIZ: usize = 16;

/// `struct nfgenmsg`: family, version 0, resource id (big endian).
fn nfgen(family: u8, res_id: u16) -> [u8; 4] {
    let r = res_id.to_be_bytes();
    [family, 0, r[0], r[1]]
}

pub(super) fn batch_marker(ty: u16) -> Msg {
    let mut m = Msg::new(ty, 0);
    m.raw(&nfgen(libc::AF_UNSPEC as u8, NFNL_SUBSYS_NFTABLES));
    m
}

fn nft_msg(ty: u16, flags: u16) -> Msg {
    let mut m = Msg::new((NFNL_SUBSYS_NFTABLES << 8) | ty, flags);
    m.raw(&nfgen(NFPROTO_INET, 0));
    m
}

/// A set element's key, built from typed parts as nft concatenates them (each part padded to
/// 4 bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Key(Vec<u8>);

impl Key {
    pub fn ifname(mut self, name: &str) -> Self {
        let mut b = [0u8; IFNAMSIZ];
        let n = name.len().min(IFNAMSIZ - 1);
        b[..n].copy_from_slice(&name.as_bytes()[..n]);
        self.0.extend_from_slice(&b);
        self
    }

    pub fn ipv4(mut self, a: std::net::Ipv4Addr) -> Self {
        self.0.extend_from_slice(&a.octets());
        self
    }
}

/// One change to a set of table `table`.
pub(crate) struct Elem<'a> {
    pub set: &'a str,
    pub key: Key,
}

fn elem_msg(ty: u16, flags: u16, table: &str, e: &Elem) -> Msg {
    let mut m = nft_msg(ty, flags);
    m.str(NFTA_SET_ELEM_LIST_TABLE, table)
        .str(NFTA_SET_ELEM_LIST_SET, e.set)
        .nest(NFTA_SET_ELEM_LIST_ELEMENTS)
        .nest(NFTA_LIST_ELEM)
        .nest(NFTA_SET_ELEM_KEY)
        .attr(NFTA_DATA_VALUE, &e.key.0)
        .end()
        .end()
        .end();
    m
}

/// A rule of the table, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub chain: String,
    pub handle: u64,
    pub comment: String,
}

pub(crate) struct Nft(Socket);

impl Nft {
    pub fn open() -> io::Result<Self> {
        Socket::open(NETLINK_NETFILTER).map(Self)
    }

    /// Whether `e` is in its set (a query, no transaction).
    pub fn has_elem(&mut self, table: &str, e: &Elem) -> io::Result<bool> {
        match self.0.query(elem_msg(NFT_MSG_GETSETELEM, 0, table, e)) {
            Ok(_) => Ok(true),
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Removes the existing ones of `remove`, then adds `add`, in one transaction. Elements are
    /// looked up first: a failing message would abort the transaction, and an abort costs the
    /// kernel an RCU grace period (milliseconds).
    pub fn replace_elems(&mut self, table: &str, remove: &[Elem], add: &[Elem]) -> io::Result<()> {
        let mut msgs = Vec::new();
        for e in remove {
            if self.has_elem(table, e)? {
                msgs.push(elem_msg(NFT_MSG_DELSETELEM, 0, table, e));
            }
        }
        for e in add {
            msgs.push(elem_msg(NFT_MSG_NEWSETELEM, NLM_F_CREATE, table, e));
        }
        if msgs.is_empty() {
            return Ok(());
        }
        self.0.batch(msgs)
    }

    /// Every rule of `table` (none if the table does not exist).
    pub fn rules(&mut self, table: &str) -> io::Result<Vec<Rule>> {
        let mut m = nft_msg(NFT_MSG_GETRULE, 0);
        m.str(NFTA_RULE_TABLE, table);
        let replies = match self.0.dump(m) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(vec![]),
            r => r?,
        };
        Ok(replies
            .iter()
            .filter(|r| r.ty == (NFNL_SUBSYS_NFTABLES << 8) | 6)
            .filter_map(|r| parse_rule(r.payload.get(4..)?))
            .collect())
    }

    /// Deletes `rules` of `table` in one transaction.
    pub fn delete_rules(&mut self, table: &str, rules: &[Rule]) -> io::Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let msgs = rules
            .iter()
            .map(|r| {
                let mut m = nft_msg(NFT_MSG_DELRULE, 0);
                m.str(NFTA_RULE_TABLE, table)
                    .str(NFTA_RULE_CHAIN, &r.chain)
                    .attr(NFTA_RULE_HANDLE, &r.handle.to_be_bytes());
                m
            })
            .collect();
        self.0.batch(msgs)
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn parse_rule(b: &[u8]) -> Option<Rule> {
    let (mut chain, mut handle, mut comment) = (None, None, String::new());
    for (ty, v) in attrs(b) {
        match ty {
            NFTA_RULE_CHAIN => chain = Some(cstr(v)),
            NFTA_RULE_HANDLE => handle = Some(u64::from_be_bytes(v.try_into().ok()?)),
            NFTA_RULE_USERDATA => comment = udata_comment(v).unwrap_or_default(),
            _ => {}
        }
    }
    Some(Rule {
        chain: chain?,
        handle: handle?,
        comment,
    })
}

/// The comment in a rule's user data (type-length-value records of one byte each).
fn udata_comment(mut b: &[u8]) -> Option<String> {
    while b.len() >= 2 {
        let (ty, len) = (b[0], usize::from(b[1]));
        let v = b.get(2..2 + len)?;
        if ty == NFTNL_UDATA_RULE_COMMENT {
            return Some(cstr(v));
        }
        b = &b[2 + len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_concatenate_like_nft() {
        let k = Key::default()
            .ifname("sl-pl_a")
            .ipv4(std::net::Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(k.0.len(), 20);
        assert_eq!(&k.0[..8], b"sl-pl_a\0");
        assert_eq!(&k.0[16..], &[10, 0, 0, 2]);
    }

    #[test]
    fn rules_are_read_with_their_comment() {
        let mut m = Msg::new(0, 0);
        m.str(NFTA_RULE_TABLE, "t")
            .str(NFTA_RULE_CHAIN, "prerouting")
            .attr(NFTA_RULE_HANDLE, &7u64.to_be_bytes())
            .attr(NFTA_RULE_USERDATA, &[0, 6, b's', b'l', b'-', b'a', b'b', 0]);
        let b = m.finish(1);
        let r = parse_rule(&b[16..]).unwrap();
        assert_eq!(
            r,
            Rule {
                chain: "prerouting".into(),
                handle: 7,
                comment: "sl-ab".into()
            }
        );
    }
}
