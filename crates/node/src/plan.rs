//! The reconciler's brain: a pure function from desired and observed slivers to actions.
//!
//! No I/O and no clock (callers pass `now`), so every rule is unit-tested without root.

use std::collections::BTreeMap;

use slicelab_model::SliverSpec;

/// A sliver as the runtime found it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedSliver {
    pub slice_name: String,
    /// The spec it was created/last updated with; `None` if its state was lost or half-written
    /// (a crash during create or destroy), in which case it is recreated or destroyed.
    pub spec: Option<SliverSpec>,
    /// Its init is alive.
    pub running: bool,
    /// The last start failed with this reason.
    pub failure: Option<String>,
    /// Unix seconds before which a failed sliver is not retried (back-off).
    pub retry_after: i64,
    /// For reports only; the planner ignores it.
    pub address: Option<std::net::Ipv4Addr>,
    /// Detail for people (e.g. a bandwidth throttle); for reports only.
    pub note: Option<String>,
    /// Limits hit so far; for reports only.
    pub limits: slicelab_model::sliver::LimitCounts,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Make the sliver exist (state, writable layer, address); does not start it.
    Create(SliverSpec),
    /// Record a new spec; limits and ports are applied live if it runs.
    Update(SliverSpec),
    Start(String),
    Stop(String),
    /// Stop it and remove everything it has, writable layer included.
    Destroy(String),
}

impl Action {
    pub fn slice(&self) -> &str {
        match self {
            Action::Create(s) | Action::Update(s) => &s.slice_name,
            Action::Start(n) | Action::Stop(n) | Action::Destroy(n) => n,
        }
    }
}

/// Changes that a running sliver cannot take live: its root filesystem, its service, or whether
/// its writable layer lives on a quota filesystem (the files move between the two). Every limit
/// (CPU, memory, tasks, egress rate, daily cap, a changed `disk_max` size) is applied live.
fn needs_restart(old: &SliverSpec, new: &SliverSpec) -> bool {
    old.resources.image != new.resources.image
        || old.image_digest != new.image_digest
        || old.resources.initscript != new.resources.initscript
        || old.resources.disk_max.is_some() != new.resources.disk_max.is_some()
}

/// What to do so that the node matches `desired`. Destroys come first so that addresses and
/// ports they hold are free for slivers created in the same round.
pub fn plan(desired: &[SliverSpec], observed: &[ObservedSliver], now: i64) -> Vec<Action> {
    // Expired slivers are treated as not desired: a central that cannot be reached must not keep
    // an expired slice alive.
    let desired: BTreeMap<&str, &SliverSpec> = desired
        .iter()
        .filter(|d| d.expires > now)
        .map(|d| (d.slice_name.as_str(), d))
        .collect();
    let observed: BTreeMap<&str, &ObservedSliver> = observed
        .iter()
        .map(|o| (o.slice_name.as_str(), o))
        .collect();

    let mut destroys = Vec::new();
    let mut rest = Vec::new();
    for name in observed.keys() {
        if !desired.contains_key(name) {
            destroys.push(Action::Destroy(name.to_string()));
        }
    }
    for (name, d) in &desired {
        match observed.get(name) {
            None => {
                rest.push(Action::Create((*d).clone()));
                if d.run {
                    rest.push(Action::Start(name.to_string()));
                }
            }
            Some(o) => {
                let mut running = o.running;
                // A new spec may fix what failed, so it is tried at once.
                let may_start =
                    o.failure.is_none() || now >= o.retry_after || o.spec.as_ref() != Some(*d);
                match &o.spec {
                    None => rest.push(Action::Create((*d).clone())),
                    Some(old) if old != *d => {
                        if running && needs_restart(old, d) {
                            rest.push(Action::Stop(name.to_string()));
                            running = false;
                        }
                        rest.push(Action::Update((*d).clone()));
                    }
                    Some(_) => {}
                }
                if d.run && !running && may_start {
                    rest.push(Action::Start(name.to_string()));
                } else if !d.run && running {
                    rest.push(Action::Stop(name.to_string()));
                }
            }
        }
    }
    destroys.extend(rest);
    destroys
}

#[cfg(test)]
mod tests {
    use super::*;
    use slicelab_model::Resources;

    fn spec(name: &str, run: bool) -> SliverSpec {
        SliverSpec {
            slice_id: 1,
            slice_name: name.into(),
            expires: 1_000,
            run,
            keys: vec![],
            resources: Resources::default(),
            image_digest: None,
        }
    }

    fn obs(s: &SliverSpec, running: bool) -> ObservedSliver {
        ObservedSliver {
            slice_name: s.slice_name.clone(),
            spec: Some(s.clone()),
            running,
            failure: None,
            retry_after: 0,
            address: None,
            note: None,
            limits: Default::default(),
        }
    }

    #[test]
    fn new_sliver_is_created_and_started() {
        let d = spec("pl_a", true);
        assert_eq!(
            plan(std::slice::from_ref(&d), &[], 10),
            vec![Action::Create(d), Action::Start("pl_a".into())]
        );
    }

    #[test]
    fn new_stopped_sliver_is_only_created() {
        let d = spec("pl_a", false);
        assert_eq!(
            plan(std::slice::from_ref(&d), &[], 10),
            vec![Action::Create(d)]
        );
    }

    #[test]
    fn converged_state_plans_nothing() {
        let a = spec("pl_a", true);
        let b = spec("pl_b", false);
        assert!(plan(
            &[a.clone(), b.clone()],
            &[obs(&a, true), obs(&b, false)],
            10
        )
        .is_empty());
    }

    #[test]
    fn removed_and_expired_slivers_are_destroyed_first() {
        let a = spec("pl_a", true);
        let mut b = spec("pl_b", true);
        b.expires = 5;
        let c = spec("pl_c", true);
        let p = plan(&[b.clone(), c.clone()], &[obs(&a, true), obs(&b, true)], 10);
        assert_eq!(
            p,
            vec![
                Action::Destroy("pl_a".into()),
                Action::Destroy("pl_b".into()),
                Action::Create(c),
                Action::Start("pl_c".into()),
            ]
        );
    }

    #[test]
    fn crashed_sliver_is_restarted_and_disabled_one_stopped() {
        let a = spec("pl_a", true);
        let b = spec("pl_b", false);
        let p = plan(
            &[a.clone(), b.clone()],
            &[obs(&a, false), obs(&b, true)],
            10,
        );
        assert_eq!(
            p,
            vec![Action::Start("pl_a".into()), Action::Stop("pl_b".into())]
        );
    }

    #[test]
    fn limit_change_updates_live_but_initscript_change_restarts() {
        let old = spec("pl_a", true);
        let mut limits = old.clone();
        limits.resources.mem_max = Some(64 << 20);
        assert_eq!(
            plan(&[limits.clone()], &[obs(&old, true)], 10),
            vec![Action::Update(limits)]
        );
        let mut rate = old.clone();
        rate.resources.net_max_rate = Some(5_000_000);
        rate.resources.cpu_share = Some(3);
        rate.resources.net_max_kbyte = Some(100);
        assert_eq!(
            plan(&[rate.clone()], &[obs(&old, true)], 10),
            vec![Action::Update(rate)]
        );
        let mut disk = old.clone();
        disk.resources.disk_max = Some(50 << 20);
        assert_eq!(plan(&[disk.clone()], &[obs(&old, true)], 10).len(), 3);
        let mut bigger = disk.clone();
        bigger.resources.disk_max = Some(80 << 20);
        assert_eq!(
            plan(&[bigger.clone()], &[obs(&disk, true)], 10),
            vec![Action::Update(bigger)]
        );
        let mut republished = old.clone();
        republished.image_digest = Some(format!("sha256:{}", "c".repeat(64)));
        assert_eq!(
            plan(&[republished.clone()], &[obs(&old, true)], 10),
            vec![
                Action::Stop("pl_a".into()),
                Action::Update(republished),
                Action::Start("pl_a".into())
            ]
        );
        let mut script = old.clone();
        script.resources.initscript = Some("sleep 1".into());
        assert_eq!(
            plan(&[script.clone()], &[obs(&old, true)], 10),
            vec![
                Action::Stop("pl_a".into()),
                Action::Update(script),
                Action::Start("pl_a".into())
            ]
        );
    }

    #[test]
    fn failed_sliver_waits_for_back_off() {
        let a = spec("pl_a", true);
        let mut o = obs(&a, false);
        o.failure = Some("no such image".into());
        o.retry_after = 20;
        assert!(plan(std::slice::from_ref(&a), std::slice::from_ref(&o), 10).is_empty());
        assert_eq!(plan(&[a], &[o], 20), vec![Action::Start("pl_a".into())]);
    }

    #[test]
    fn half_created_sliver_is_recreated_or_destroyed() {
        let a = spec("pl_a", true);
        let lost = ObservedSliver {
            slice_name: "pl_a".into(),
            spec: None,
            running: false,
            failure: None,
            retry_after: 0,
            address: None,
            note: None,
            limits: Default::default(),
        };
        assert_eq!(
            plan(std::slice::from_ref(&a), std::slice::from_ref(&lost), 10),
            vec![Action::Create(a), Action::Start("pl_a".into())]
        );
        assert_eq!(plan(&[], &[lost], 10), vec![Action::Destroy("pl_a".into())]);
    }

    #[test]
    fn plan_is_idempotent_once_applied() {
        // Applying a plan to a model of the node and planning again yields nothing.
        let desired = vec![spec("pl_a", true), spec("pl_b", false), spec("pl_c", true)];
        let mut node: BTreeMap<String, ObservedSliver> = BTreeMap::new();
        node.insert("pl_x".into(), obs(&spec("pl_x", true), true));
        for _ in 0..2 {
            let observed: Vec<_> = node.values().cloned().collect();
            for a in plan(&desired, &observed, 10) {
                match a {
                    Action::Create(s) | Action::Update(s) => {
                        let running = node.get(&s.slice_name).is_some_and(|o| o.running);
                        node.insert(s.slice_name.clone(), obs(&s, running));
                    }
                    Action::Start(n) => node.get_mut(&n).unwrap().running = true,
                    Action::Stop(n) => node.get_mut(&n).unwrap().running = false,
                    Action::Destroy(n) => {
                        node.remove(&n);
                    }
                }
            }
        }
        let observed: Vec<_> = node.values().cloned().collect();
        assert!(plan(&desired, &observed, 10).is_empty());
        assert_eq!(node.len(), 3);
        assert!(node["pl_a"].running && !node["pl_b"].running);
    }
}
