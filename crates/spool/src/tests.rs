//! The spool's rules on a temporary directory: numbering, acknowledgement, crash leftovers,
//! renumbering.

use super::*;

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn names_sort_by_number_and_parse_back() {
    assert!(batch_file_name(9) < batch_file_name(10));
    assert_eq!(parse_batch_name(&batch_file_name(42)), Some((42, false)));
    assert_eq!(
        parse_batch_name(&format!("{}.corrupt", batch_file_name(7))),
        Some((7, true))
    );
    assert_eq!(parse_batch_name("batch-x.json"), None);
    assert_eq!(parse_batch_name(&batch_file_name(0)), None);
    assert_eq!(parse_batch_name("state.json"), None);
}

#[test]
fn push_read_ack_and_reopen() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path()).unwrap();
    assert_eq!((s.next_seq(), s.last_issued(), s.last_acked()), (1, 0, 0));
    assert_eq!(s.push(b"one").unwrap(), 1);
    assert_eq!(s.push(b"two!").unwrap(), 2);
    assert_eq!(s.pending(), vec![1, 2]);
    assert_eq!(s.pending_bytes(), 7);
    assert_eq!(s.read(2).unwrap(), b"two!");
    drop(s);

    let mut s = Spool::open(d.path()).unwrap();
    assert_eq!(s.pending(), vec![1, 2]);
    assert_eq!(s.oldest(), Some(1));
    s.ack(1).unwrap();
    assert_eq!(s.pending(), vec![2]);
    s.ack(1).unwrap(); // repeated: harmless
    s.ack(2).unwrap();
    assert!(s.pending().is_empty());
    drop(s);

    // Everything acknowledged and deleted: numbering still goes on.
    let mut s = Spool::open(d.path()).unwrap();
    assert_eq!(s.last_acked(), 2);
    assert_eq!(s.push(b"three").unwrap(), 3);
    assert_eq!(
        files(d.path()),
        vec!["acked".to_string(), batch_file_name(3)]
    );
}

#[test]
fn ack_beyond_what_was_written_does_not_skip_numbers() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path()).unwrap();
    s.push(b"a").unwrap();
    s.ack(1000).unwrap();
    assert_eq!(s.last_acked(), 1);
    assert_eq!(s.push(b"b").unwrap(), 2);
}

#[test]
fn crash_leftovers_are_cleaned_at_open_and_numbers_never_reused() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path()).unwrap();
    for b in [b"1", b"2", b"3"] {
        s.push(b).unwrap();
    }
    s.set_aside(3).unwrap();
    drop(s);
    // A push that crashed before its rename; an ack written but its batches not yet deleted;
    // the torn temp file of the ack after it; someone else's file.
    fs::write(d.path().join(format!("{}.tmp", batch_file_name(4))), b"4").unwrap();
    fs::write(d.path().join("acked"), b"1").unwrap();
    fs::write(d.path().join("acked.tmp"), b"").unwrap();
    fs::write(d.path().join("state.json"), b"{}").unwrap();

    let mut s = Spool::open(d.path()).unwrap();
    assert_eq!(s.pending(), vec![2]);
    assert_eq!(
        files(d.path()),
        vec![
            "acked".to_string(),
            batch_file_name(2),
            format!("{}.corrupt", batch_file_name(3)),
            "state.json".to_string(),
        ]
    );
    // Not even the damaged batch's number comes back.
    assert_eq!(s.push(b"5").unwrap(), 4);
}

#[test]
fn garbage_acked_file_is_an_error_not_a_reset() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("acked"), b"twelve").unwrap();
    assert!(matches!(
        Spool::open(d.path()),
        Err(SpoolError::BadAcked { .. })
    ));
}

#[test]
fn discarded_batches_keep_their_number() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path()).unwrap();
    s.push(b"abc").unwrap();
    s.push(b"de").unwrap();
    assert_eq!(s.discard(2).unwrap(), 2);
    assert_eq!(s.pending(), vec![1]);
    assert_eq!(s.push(b"f").unwrap(), 3);
}

#[test]
fn issue_after_moves_the_numbering_up_only() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path()).unwrap();
    s.issue_after(9);
    assert_eq!(s.push(b"x").unwrap(), 10);
    s.issue_after(3);
    assert_eq!(s.next_seq(), 11);
    drop(s);
    assert_eq!(Spool::open(d.path()).unwrap().next_seq(), 11);
}

#[test]
fn renumbering_moves_pending_batches_above_the_floor() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path()).unwrap();
    s.push(b"1").unwrap();
    s.push(b"unreadable").unwrap();
    s.push(b"3").unwrap();
    s.renumber_after(40, |seq, old| {
        (old != b"unreadable").then(|| format!("{seq}:{}", String::from_utf8_lossy(old)).into())
    })
    .unwrap();
    assert_eq!(s.pending(), vec![41, 42]);
    assert_eq!(s.read(41).unwrap(), b"41:1");
    assert_eq!(s.read(42).unwrap(), b"42:3");
    drop(s);
    let s = Spool::open(d.path()).unwrap();
    assert_eq!((s.last_acked(), s.last_issued()), (40, 42));
}

#[test]
fn write_atomic_replaces_whole_files() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("state.json");
    write_atomic(&p, b"first").unwrap();
    write_atomic(&p, b"second").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"second");
    assert_eq!(files(d.path()), vec!["state.json".to_string()]);
}
