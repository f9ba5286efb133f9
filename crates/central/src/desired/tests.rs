use super::*;

fn slice(id: i64, nodes: &[i64]) -> SliceInputs {
    SliceInputs {
        id,
        name: format!("s_{id}"),
        expires: i64::MAX,
        enabled: true,
        site_id: 1,
        nodes: nodes.iter().map(|n| (*n, format!("n{n}.test"))).collect(),
        keys: Vec::new(),
        tags: Vec::new(),
    }
}

fn mark(ix: &mut Index, w: &Wake) -> u64 {
    // As `DesiredIndex::mark`, on a bare index.
    let d = DesiredIndex::new(false, Arc::new(Metrics::default()));
    *d.lock() = std::mem::take(ix);
    d.mark(w);
    *ix = std::mem::take(&mut *d.lock());
    ix.seq
}

fn slices_on(ix: &Index, node: i64) -> Vec<i64> {
    ix.by_node
        .get(&node)
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default()
}

#[test]
fn everything_is_read_first_then_only_marked_slices() {
    let mut ix = Index::default();
    assert!(matches!(ix.slice_read(), SliceRead::All));
    ix.install_all(vec![slice(1, &[10, 11]), slice(2, &[11])], 0);
    assert!(matches!(ix.slice_read(), SliceRead::Nothing));
    assert_eq!(slices_on(&ix, 11), [1, 2]);

    let m = mark(
        &mut ix,
        &Wake::Slices {
            slices: vec![1],
            hosts: vec![],
        },
    );
    assert!(matches!(ix.slice_read(), SliceRead::Some(ref v) if v == &[1]));
    // A read that began before the mark does not clear it.
    ix.install_one(1, Some(slice(1, &[10])), m - 1);
    assert!(matches!(ix.slice_read(), SliceRead::Some(_)));
    ix.install_one(1, Some(slice(1, &[11, 12])), m);
    assert!(matches!(ix.slice_read(), SliceRead::Nothing));
    assert_eq!(slices_on(&ix, 10), Vec::<i64>::new());
    assert_eq!(slices_on(&ix, 12), [1]);

    // A new slice (never read) is read once marked; a deleted one leaves its nodes.
    let m = mark(
        &mut ix,
        &Wake::Slices {
            slices: vec![3, 2],
            hosts: vec![],
        },
    );
    ix.install_one(3, Some(slice(3, &[10])), m);
    ix.install_one(2, None, m);
    assert!(matches!(ix.slice_read(), SliceRead::Nothing));
    assert_eq!(slices_on(&ix, 10), [3]);
    assert_eq!(slices_on(&ix, 11), [1]);
}

#[test]
fn a_node_wide_change_rereads_every_slice_and_reports_what_differs() {
    let mut ix = Index::default();
    ix.install_all(vec![slice(1, &[10]), slice(2, &[11])], 0);
    let m = mark(&mut ix, &Wake::Nodes(vec!["n10.test".into()]));
    assert!(matches!(ix.slice_read(), SliceRead::All));
    assert_eq!(ix.node_marks.get("n10.test"), Some(&m));
    // Slice 2 moved from node 11 to 12; slice 1 is the same.
    let changed = ix.install_all(vec![slice(1, &[10]), slice(2, &[12])], m);
    assert_eq!(
        changed.into_iter().collect::<Vec<_>>(),
        ["n11.test", "n12.test"]
    );
    assert!(matches!(ix.slice_read(), SliceRead::Nothing));
    assert_eq!(slices_on(&ix, 12), [2]);
    assert!(!ix.by_node.contains_key(&11));
}
