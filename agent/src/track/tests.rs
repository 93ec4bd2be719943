//! keepalived's tracking rules, one test each.

use super::*;

fn dep(weight: i32, reverse: bool) -> Dep {
    Dep {
        id: TrackerId::Script(0),
        name: "chk".into(),
        weight,
        reverse,
    }
}

#[test]
fn keepalived_positive_weight_adds_while_up() {
    assert_eq!(
        dep(2, false).contribution(Status::Up(true)),
        Contribution::Weight(2)
    );
    assert_eq!(
        dep(2, false).contribution(Status::Up(false)),
        Contribution::Weight(0)
    );
    // reverse: the same weight is taken off while up.
    assert_eq!(
        dep(2, true).contribution(Status::Up(true)),
        Contribution::Weight(-2)
    );
    assert_eq!(
        dep(2, true).contribution(Status::Up(false)),
        Contribution::Weight(0)
    );
}

#[test]
fn keepalived_negative_weight_subtracts_while_down() {
    assert_eq!(
        dep(-20, false).contribution(Status::Up(false)),
        Contribution::Weight(-20)
    );
    assert_eq!(
        dep(-20, false).contribution(Status::Up(true)),
        Contribution::Weight(0)
    );
    assert_eq!(
        dep(-20, true).contribution(Status::Up(false)),
        Contribution::Weight(20)
    );
}

#[test]
fn keepalived_weight_zero_is_fault_while_down_or_up_with_reverse() {
    assert_eq!(
        dep(0, false).contribution(Status::Up(false)),
        Contribution::Fault
    );
    assert_eq!(
        dep(0, false).contribution(Status::Up(true)),
        Contribution::Weight(0)
    );
    assert_eq!(
        dep(0, true).contribution(Status::Up(true)),
        Contribution::Fault
    );
    assert_eq!(
        dep(0, true).contribution(Status::Up(false)),
        Contribution::Weight(0)
    );
}

#[test]
fn keepalived_pending_script_holds_fault_only_when_unweighted() {
    assert_eq!(
        dep(0, false).contribution(Status::Pending),
        Contribution::Fault
    );
    assert_eq!(
        dep(5, false).contribution(Status::Pending),
        Contribution::Weight(0)
    );
    assert_eq!(
        dep(-5, false).contribution(Status::Pending),
        Contribution::Weight(0)
    );
}

#[test]
fn keepalived_track_file_value_times_weight_limited_to_253_and_minus_254_is_fault() {
    let d = dep(1, false);
    assert_eq!(d.contribution(Status::Value(10)), Contribution::Weight(10));
    assert_eq!(
        d.contribution(Status::Value(-10)),
        Contribution::Weight(-10)
    );
    assert_eq!(
        d.contribution(Status::Value(1000)),
        Contribution::Weight(253)
    );
    assert_eq!(d.contribution(Status::Value(-254)), Contribution::Fault);
    assert_eq!(d.contribution(Status::Value(i64::MIN)), Contribution::Fault);
    assert_eq!(
        dep(-2, false).contribution(Status::Value(10)),
        Contribution::Weight(-20)
    );
    assert_eq!(
        dep(2, true).contribution(Status::Value(10)),
        Contribution::Weight(-20)
    );
    // Weight 0: any non-zero value is FAULT (zero is, with reverse).
    assert_eq!(
        dep(0, false).contribution(Status::Value(3)),
        Contribution::Fault
    );
    assert_eq!(
        dep(0, false).contribution(Status::Value(0)),
        Contribution::Weight(0)
    );
    assert_eq!(
        dep(0, true).contribution(Status::Value(0)),
        Contribution::Fault
    );
}

#[test]
fn keepalived_effective_priority_is_clamped_and_the_owner_never_moves() {
    let v = |delta| Verdict { delta, fault: None };
    assert_eq!(v(2).priority(101), 103);
    assert_eq!(v(-200).priority(100), 1);
    assert_eq!(v(200).priority(100), 254);
    assert_eq!(v(-50).priority(255), 255);
}

#[test]
fn verdict_sums_weights_and_names_the_first_fault() {
    let deps = vec![
        Dep {
            id: TrackerId::Script(0),
            name: "a".into(),
            weight: 10,
            reverse: false,
        },
        Dep {
            id: TrackerId::Interface(7),
            name: "eth1".into(),
            weight: 0,
            reverse: false,
        },
        Dep {
            id: TrackerId::File(0),
            name: "f".into(),
            weight: -3,
            reverse: false,
        },
    ];
    let v = Verdict::of(&deps, |id| match id {
        TrackerId::Script(_) => Status::Up(true),
        TrackerId::Interface(_) => Status::Up(true),
        _ => Status::Value(2),
    });
    assert_eq!(
        v,
        Verdict {
            delta: 4,
            fault: None
        }
    );
    let v = Verdict::of(&deps, |id| match id {
        TrackerId::Interface(_) => Status::Up(false),
        _ => Status::Up(true),
    });
    assert_eq!(v.fault.as_deref(), Some("eth1"));
}

#[test]
fn keepalived_the_first_result_decides_whatever_rise_and_fall() {
    let mut c = Counter::new(3, 3);
    assert_eq!(c.up(), None);
    assert_eq!(c.record(true), Some(true));
    let mut c = Counter::new(3, 3);
    assert_eq!(c.record(false), Some(false));
    assert_eq!(c.up(), Some(false));
}

#[test]
fn keepalived_fall_failures_in_a_row_bring_it_down() {
    let mut c = Counter::new(2, 3);
    assert_eq!(c.record(true), Some(true));
    assert_eq!(c.record(false), None);
    assert_eq!(c.record(false), None);
    // A success in between resets to fully up.
    assert_eq!(c.record(true), None);
    assert_eq!(c.record(false), None);
    assert_eq!(c.record(false), None);
    assert_eq!(c.record(false), Some(false));
    assert_eq!(c.up(), Some(false));
}

#[test]
fn keepalived_rise_successes_in_a_row_bring_it_up() {
    let mut c = Counter::new(3, 1);
    assert_eq!(c.record(false), Some(false));
    assert_eq!(c.record(true), None);
    assert_eq!(c.record(true), None);
    // A failure in between starts the count again.
    assert_eq!(c.record(false), None);
    assert_eq!(c.record(true), None);
    assert_eq!(c.record(true), None);
    assert_eq!(c.record(true), Some(true));
    assert_eq!(c.record(false), Some(false));
}

#[test]
fn init_fail_starts_down_and_needs_rise_successes() {
    let mut c = Counter::failed(2, 2);
    assert_eq!(c.up(), Some(false));
    assert_eq!(
        c.record(false),
        None,
        "already down: no transition to report"
    );
    assert_eq!(c.record(true), None);
    assert_eq!(c.record(true), Some(true));
}

#[test]
fn a_flapping_script_is_held_by_rise_and_fall() {
    let mut c = Counter::new(2, 2);
    c.record(true);
    for _ in 0..50 {
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(true), None);
    }
    assert_eq!(c.up(), Some(true));
}
