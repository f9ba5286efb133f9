//! The node's services behind its SSH gateway, besides a shell in a sliver: the subsystems a
//! slice's persons may ask for (`ssh -s SLICE@NODE NAME`) and the admin context's capture.
//! Who may use them is decided by the gateway's login (`crate::ssh`).

pub mod capture;
