//! Direct checks of the rules; the replay files cover whole scenarios.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::text::parse_script;
use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn setup(script: &str) -> Announcer {
    let mut a = Announcer::new(Timing::default());
    for (at, input) in parse_script(script).expect("script") {
        a.handle(at, input);
    }
    a
}

const LINKS: &str = "@0 interfaces
  2 eth0 02:00:00:00:00:11 up carrier broadcast ll=fe80::ff:fe00:11
  3 eth1 02:00:00:00:00:12 up carrier broadcast ll=fe80::ff:fe00:12
";

fn announce(a: &mut Announcer, at: u64, ips: &[&str]) -> Vec<Output> {
    let set: BTreeMap<IpAddr, InterfaceScope> = ips.iter().map(|s| (ip(s), InterfaceScope::All)).collect();
    a.handle(ms(at), Input::SetAnnounced(set))
}

fn gratuitous_rounds(outs: &[Output]) -> usize {
    outs.iter().filter(|o| matches!(o, Output::Count(Count::GratuitousSent(..)))).count()
}

/// Drives ticks at each deadline up to `until`; returns (time, outputs) per tick.
fn run_until(a: &mut Announcer, until: u64) -> Vec<(Duration, Vec<Output>)> {
    let mut all = Vec::new();
    while let Some(d) = a.next_deadline().filter(|d| *d <= ms(until)) {
        all.push((d, a.handle(d, Input::Tick)));
    }
    all
}

#[test]
fn one_confirmation_gives_five_rounds_at_1100ms_steps() {
    let mut a = setup(LINKS);
    let first = announce(&mut a, 0, &["198.51.100.200"]);
    // one link-level round per interface (2 interfaces) at t=0
    assert_eq!(gratuitous_rounds(&first), 2);
    let times: Vec<u64> = run_until(&mut a, 9000)
        .into_iter()
        .filter(|(_, o)| gratuitous_rounds(o) > 0)
        .map(|(t, _)| t.as_millis() as u64)
        .collect();
    assert_eq!(times, vec![1100, 2200, 3300, 4400]);
}

#[test]
fn reconfirming_inside_the_window_extends_it_without_an_immediate_round() {
    let mut a = setup(LINKS);
    announce(&mut a, 0, &["198.51.100.200"]);
    run_until(&mut a, 3000);
    let again = announce(&mut a, 3000, &["198.51.100.200"]);
    assert_eq!(gratuitous_rounds(&again), 0);
    let times: Vec<u64> = run_until(&mut a, 20000)
        .into_iter()
        .filter(|(_, o)| gratuitous_rounds(o) > 0)
        .map(|(t, _)| t.as_millis() as u64)
        .collect();
    // window now ends at 8000
    assert_eq!(times, vec![3300, 4400, 5500, 6600, 7700]);
    // after the window closed, a confirmation sends at once again
    assert_eq!(gratuitous_rounds(&announce(&mut a, 20000, &["198.51.100.200"])), 2);
}

#[test]
fn withdrawal_stops_everything_at_once() {
    let mut a = setup(LINKS);
    announce(&mut a, 0, &["198.51.100.200", "2001:db8::200"]);
    let outs = announce(&mut a, 500, &[]);
    assert!(outs.contains(&Output::Withdrawn(ip("198.51.100.200"))));
    assert!(outs.contains(&Output::LeaveGroup { ifindex: 2, group: "ff02::1:ff00:200".parse().expect("ip") }));
    assert!(!outs.iter().any(|o| matches!(o, Output::Send { .. })));
    assert_eq!(a.next_deadline(), None);
    let (_, req) = text::parse_input_line(
        "@600 arp 2 sha=02:00:00:00:00:01 spa=198.51.100.1 tpa=198.51.100.200",
    )
    .expect("line");
    assert!(a.handle(ms(600), req).is_empty());
}

#[test]
fn solicited_node_groups_are_shared_between_addresses() {
    let mut a = setup(LINKS);
    // same low 24 bits -> same group
    let outs = announce(&mut a, 0, &["2001:db8:1::200", "2001:db8:2::200"]);
    let joins = outs.iter().filter(|o| matches!(o, Output::JoinGroup { .. })).count();
    assert_eq!(joins, 2, "one group on each of 2 links: {outs:?}");
    let outs = announce(&mut a, 10, &["2001:db8:2::200"]);
    assert!(!outs.iter().any(|o| matches!(o, Output::LeaveGroup { .. } | Output::JoinGroup { .. })));
    let outs = announce(&mut a, 20, &[]);
    assert_eq!(outs.iter().filter(|o| matches!(o, Output::LeaveGroup { .. })).count(), 2);
}

#[test]
fn scope_limits_the_interfaces() {
    let mut a = setup(LINKS);
    let set = [(ip("198.51.100.200"), InterfaceScope::Only(["eth1".to_string()].into()))].into();
    let outs = a.handle(ms(0), Input::SetAnnounced(set));
    assert!(outs.iter().all(|o| !matches!(o, Output::Send { ifindex: 2, .. })));
    assert!(outs.iter().any(|o| matches!(o, Output::Send { ifindex: 3, .. })));
}

#[test]
fn next_deadline_is_none_when_nothing_is_owned() {
    assert_eq!(setup(LINKS).next_deadline(), None);
}
