//! The reorder window on its own: what a [`Track`] writes for packets
//! out of order, lost, duplicated or from a new source.

use super::*;

fn push(t: &mut Track, seq: u16, pt: u8, ts: u32, payload: &[u8], out: &mut Vec<u8>) -> Pushed {
    t.push(7, seq, pt, ts, payload, out)
}

#[test]
fn track_crosses_sequence_wrap() {
    let mut t = Track::new(G711::Mulaw);
    let mut out = Vec::new();
    for (i, seq) in [65534u16, 65535, 1, 0, 2].into_iter().enumerate() {
        let ts = match seq {
            65534 => 0,
            65535 => 160,
            s => 320 + u32::from(s) * 160,
        };
        assert_eq!(
            push(&mut t, seq, 0, ts, &[i as u8; 160], &mut out),
            Pushed::Accepted
        );
    }
    t.flush(&mut out);
    let order: Vec<u8> = out.chunks(160).map(|c| c[0]).collect();
    assert_eq!(order, [0, 1, 3, 2, 4]);
}

#[test]
fn track_skips_events_without_loss_and_fills_their_time() {
    let mut t = Track::new(G711::Alaw);
    let mut out = Vec::new();
    push(&mut t, 1, 8, 0, &[1; 160], &mut out);
    // Two telephone-event packets hold seq 2 and 3; audio resumes at 480.
    assert_eq!(
        push(&mut t, 2, 101, 160, &[0; 4], &mut out),
        Pushed::Skipped
    );
    assert_eq!(
        push(&mut t, 3, 101, 160, &[0; 4], &mut out),
        Pushed::Skipped
    );
    push(&mut t, 4, 8, 480, &[4; 160], &mut out);
    // Written at once: the events left no hole in the sequence.
    assert_eq!(out.len(), 480 + 160);
    assert!(out[160..480].iter().all(|&b| b == 0xd5));
}

#[test]
fn track_caps_a_timestamp_jump_and_drops_duplicates() {
    let mut t = Track::new(G711::Mulaw);
    let mut out = Vec::new();
    push(&mut t, 1, 0, 0, &[1; 160], &mut out);
    push(&mut t, 2, 0, 1_000_000_000, &[2; 160], &mut out);
    assert_eq!(out.len(), 160 + MAX_FILL as usize + 160);
    assert_eq!(push(&mut t, 2, 0, 0, &[2; 160], &mut out), Pushed::Dropped);
    assert_eq!(push(&mut t, 1, 0, 0, &[2; 160], &mut out), Pushed::Dropped);
}

#[test]
fn track_gives_up_on_a_loss_after_the_window() {
    let mut t = Track::new(G711::Mulaw);
    let mut out = Vec::new();
    push(&mut t, 0, 0, 0, &[0; 160], &mut out);
    for seq in 2..=(REORDER_WINDOW as u16 + 1) {
        push(&mut t, seq, 0, u32::from(seq) * 160, &[0; 160], &mut out);
        assert_eq!(out.len(), 160, "held while the window has room");
    }
    push(&mut t, 20, 0, 20 * 160, &[0; 160], &mut out);
    // Packets 2..=9 plus the silence standing in for 1.
    assert_eq!(out.len(), 160 * (REORDER_WINDOW + 2));
    // The lost packet arriving now is too late.
    assert_eq!(
        push(&mut t, 1, 0, 160, &[0; 160], &mut out),
        Pushed::Dropped
    );
}

#[test]
fn track_restarts_on_a_new_source() {
    let mut t = Track::new(G711::Mulaw);
    let mut out = Vec::new();
    push(&mut t, 100, 0, 1000, &[1; 160], &mut out);
    // A new SSRC with an unrelated sequence and clock: no fill.
    assert_eq!(
        t.push(9, 5, 0, 99_999, &[2; 160], &mut out),
        Pushed::Accepted
    );
    t.flush(&mut out);
    assert_eq!(out.len(), 320);
}
