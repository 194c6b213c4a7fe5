use std::time::Duration;

use proptest::prelude::*;

use super::replay::Sim;
use super::*;
use crate::packet::{Authentication, AuthType};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn fast() -> Profile {
    Profile { transmit_interval: ms(100), receive_interval: ms(100), ..Profile::default() }
}

fn sends(actions: &[Action]) -> Vec<&ControlPacket> {
    actions.iter().filter_map(|a| if let Action::Send(p) = a { Some(p) } else { None }).collect()
}

/// What is on the wire: a control packet towards a side, or an echo
/// packet on its way back to the side that sent it.
#[derive(Clone, Debug)]
enum Wire {
    Control(ControlPacket),
    Echo(crate::echo::EchoPacket),
}

/// Two sessions joined by a link with a fixed one-way delay; `up` false
/// drops everything, `echo_up` false only the echo packets (a peer that
/// stops forwarding them). Steps the earliest of the timers and the
/// packets in flight, on one simulated clock.
struct Pair {
    a: Sim,
    b: Sim,
    flight: Vec<(Duration, bool, Wire)>,
    delay: Duration,
    up: bool,
    echo_up: bool,
    now: Duration,
}

impl Pair {
    fn new(pa: Profile, pb: Profile, seed: u64) -> Pair {
        let mut p = Pair {
            a: Sim::new(Session::new(11, pa, Hop::Single, seed)),
            b: Sim::new(Session::new(22, pb, Hop::Single, seed ^ 0x5555)),
            flight: Vec::new(),
            delay: ms(1),
            up: true,
            echo_up: true,
            now: Duration::ZERO,
        };
        for to_b in [false, true] {
            let acts = p.side(to_b).step(Event::AdminUp);
            p.queue(!to_b, &acts);
        }
        p
    }

    fn side(&mut self, b: bool) -> &mut Sim {
        if b { &mut self.b } else { &mut self.a }
    }

    /// Queues what `from_b`'s actions sent towards the other side.
    fn queue(&mut self, from_b: bool, actions: &[Action]) {
        if !self.up {
            return;
        }
        for a in actions {
            match a {
                Action::Send(p) => self.flight.push((self.now + self.delay, !from_b, Wire::Control(p.clone()))),
                // There and back through the other side's forwarding plane.
                Action::SendEcho(e) if self.echo_up => self.flight.push((self.now + self.delay * 2, from_b, Wire::Echo(*e))),
                _ => {}
            }
        }
    }

    fn run_until(&mut self, until: Duration) {
        loop {
            let packet_at = self.flight.iter().map(|f| f.0).min();
            let timer_at = self.a.due.iter().chain(&self.b.due).flatten().min().copied();
            let next = match (packet_at, timer_at) {
                (Some(p), Some(t)) => p.min(t),
                (p, t) => match p.or(t) {
                    Some(x) => x,
                    None => return,
                },
            };
            if next > until {
                self.now = until;
                return;
            }
            self.now = next;
            if packet_at == Some(next) {
                let i = self.flight.iter().position(|f| f.0 == next).expect("due packet");
                let (_, to_b, wire) = self.flight.remove(i);
                let sim = self.side(to_b);
                sim.now = next;
                let acts = sim.step(match wire {
                    Wire::Control(packet) => Event::Received { packet, ttl: 255 },
                    Wire::Echo(e) => Event::EchoReceived(e),
                });
                self.queue(to_b, &acts);
                continue;
            }
            for b in [false, true] {
                let sim = self.side(b);
                sim.now = next;
                if let Some(timer) = sim.next_timer(next) {
                    let acts = sim.step(timer.event());
                    self.queue(b, &acts);
                    break;
                }
            }
        }
    }
}

#[test]
fn two_sessions_come_up_with_fast_timers_and_detect_a_cut() {
    let mut pair = Pair::new(fast(), fast(), 3);
    pair.run_until(ms(5_000));
    assert_eq!((pair.a.session.state(), pair.b.session.state()), (State::Up, State::Up));
    assert!(!pair.a.session.polling() && !pair.b.session.polling(), "poll sequences ended");
    assert_eq!(pair.a.session.transmit_interval(), ms(100), "slow start left");
    assert_eq!(pair.a.session.detection_time(), ms(300));
    pair.up = false;
    pair.flight.clear();
    let cut = pair.now;
    pair.run_until(cut + ms(301));
    assert_eq!(pair.a.session.state(), State::Down);
    assert_eq!(pair.a.session.local_diag(), Diagnostic::ControlDetectionTimeExpired);
    assert_eq!(pair.a.session.transmit_interval(), SLOW_TX);
    pair.up = true;
    pair.run_until(cut + ms(10_000));
    assert_eq!((pair.a.session.state(), pair.b.session.state()), (State::Up, State::Up), "recovers");
}

#[test]
fn passive_side_waits_for_the_remote() {
    let passive = Profile { passive: true, ..fast() };
    let mut s = Session::new(5, passive.clone(), Hop::Single, 1);
    let acts = s.handle(Event::AdminUp);
    assert!(sends(&acts).is_empty() && !s.transmit_armed(), "{acts:?}");
    assert!(sends(&s.handle(Event::TransmitTimer)).is_empty());
    // Two passive sides never meet.
    let mut pair = Pair::new(passive.clone(), passive.clone(), 1);
    pair.run_until(ms(10_000));
    assert_eq!(pair.a.session.state(), State::Down);
    // One active side brings both up.
    let mut pair = Pair::new(passive, fast(), 1);
    pair.run_until(ms(10_000));
    assert_eq!((pair.a.session.state(), pair.b.session.state()), (State::Up, State::Up));
}

#[test]
fn profile_change_while_up_polls_without_flap() {
    let mut pair = Pair::new(fast(), fast(), 9);
    pair.run_until(ms(5_000));
    assert_eq!(pair.a.session.state(), State::Up);
    let slower = Profile { transmit_interval: ms(300), receive_interval: ms(300), ..Profile::default() };
    let acts = pair.a.step(Event::Profile(slower));
    let sent = sends(&acts);
    assert!(sent.len() == 1 && sent[0].poll && sent[0].desired_min_tx_us == 300_000, "{acts:?}");
    assert!(!acts.iter().any(|a| matches!(a, Action::StateChanged { .. })));
    // The increase waits for the Final.
    assert_eq!(pair.a.session.transmit_interval(), ms(100));
    pair.queue(false, &acts);
    pair.run_until(ms(6_000));
    assert!(!pair.a.session.polling());
    assert_eq!(pair.a.session.transmit_interval(), ms(300));
    assert_eq!(pair.b.session.detection_time(), ms(900));
    assert_eq!((pair.a.session.state(), pair.b.session.state()), (State::Up, State::Up));
}

#[test]
fn stateful_reception_checks() {
    let mut s = Session::new(5, fast(), Hop::Single, 1);
    s.handle(Event::AdminUp);
    let down = ControlPacket::new(State::Down, 9, 0);
    let acts = s.handle(Event::Received { packet: down.clone(), ttl: 254 });
    assert_eq!(acts, vec![Action::Discarded(Discard::Ttl { ttl: 254, min: 255 })]);
    let wrong = ControlPacket { your_discriminator: 6, ..down.clone() };
    assert_eq!(
        s.handle(Event::Received { packet: wrong, ttl: 255 }),
        vec![Action::Discarded(Discard::Discriminator { got: 6, ours: 5 })]
    );
    let auth = ControlPacket {
        auth: Some(Authentication { auth_type: AuthType::KeyedMd5, data: vec![0; 22] }),
        ..down.clone()
    };
    assert_eq!(s.handle(Event::Received { packet: auth, ttl: 255 }), vec![Action::Discarded(Discard::Authentication)]);
    assert_eq!(s.state(), State::Down);
    // Multi-hop accepts the profile's floor.
    let mut m = Session::new(5, Profile { minimum_ttl: 250, ..fast() }, Hop::Multi, 1);
    m.handle(Event::AdminUp);
    let acts = m.handle(Event::Received { packet: down, ttl: 251 });
    assert!(acts.contains(&Action::StateChanged { from: State::Down, to: State::Init, diag: Diagnostic::None }));
}

#[derive(Clone, Debug)]
enum Input {
    Packet { state: u8, your_ours: bool, poll: bool, final_: bool, tx_ms: u32, rx_ms: u32, mult: u8, ttl: u8 },
    Transmit,
    Detection,
    AdminUp,
    AdminDown,
    PathDown,
    Profile { tx_ms: u64, rx_ms: u64, mult: u8, passive: bool },
}

fn arb_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => (0u8..4, any::<bool>(), any::<bool>(), any::<bool>(), 0u32..2000, 0u32..2000, 1u8..5, 250u8..=255)
            .prop_map(|(state, your_ours, poll, final_, tx_ms, rx_ms, mult, ttl)| Input::Packet {
                state, your_ours, poll: poll && !final_, final_, tx_ms, rx_ms, mult, ttl
            }),
        2 => Just(Input::Transmit),
        2 => Just(Input::Detection),
        1 => Just(Input::AdminUp),
        1 => Just(Input::AdminDown),
        1 => Just(Input::PathDown),
        1 => (10u64..2000, 10u64..2000, 2u8..10, any::<bool>())
            .prop_map(|(tx_ms, rx_ms, mult, passive)| Input::Profile { tx_ms, rx_ms, mult, passive }),
    ]
}

fn to_event(input: &Input, session: &Session) -> Event {
    match input.clone() {
        Input::Packet { state, your_ours, poll, final_, tx_ms, rx_ms, mult, ttl } => {
            let state = match state {
                0 => State::AdminDown,
                1 => State::Down,
                2 => State::Init,
                _ => State::Up,
            };
            let your = if your_ours || !matches!(state, State::Down | State::AdminDown) { session.local_discr() } else { 0 };
            Event::Received {
                packet: ControlPacket {
                    poll,
                    final_,
                    detect_mult: mult,
                    desired_min_tx_us: tx_ms * 1000,
                    required_min_rx_us: rx_ms * 1000,
                    ..ControlPacket::new(state, 77, your)
                },
                ttl,
            }
        }
        Input::Transmit => Event::TransmitTimer,
        Input::Detection => Event::DetectionTimer,
        Input::AdminUp => Event::AdminUp,
        Input::AdminDown => Event::AdminDown,
        Input::PathDown => Event::PathDown,
        Input::Profile { tx_ms, rx_ms, mult, passive } => Event::Profile(Profile {
            transmit_interval: ms(tx_ms),
            receive_interval: ms(rx_ms),
            detect_multiplier: mult,
            passive,
            ..Profile::default()
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Invariants after every step of any input sequence: never Up or Init
    /// without having accepted a packet; the detection timer armed whenever
    /// Up; sent packets well-formed (decodable, not P and F, slow Desired
    /// Min TX unless Up, our discriminator); jitter within 75-100 %; a
    /// passive session silent until the remote has spoken.
    #[test]
    fn state_machine_invariants(
        passive in any::<bool>(),
        seed in any::<u64>(),
        inputs in proptest::collection::vec(arb_input(), 1..60),
    ) {
        let mut s = Session::new(5, Profile { passive, ..fast() }, Hop::Single, seed);
        s.handle(Event::AdminUp);
        let mut detection_armed = false;
        for input in &inputs {
            // Timers fire only when armed, as the executor guarantees.
            if matches!(input, Input::Detection) && !detection_armed {
                continue;
            }
            let event = to_event(input, &s);
            let acts = s.handle(event);
            for a in &acts {
                match a {
                    Action::Send(p) => {
                        prop_assert!(!(p.poll && p.final_));
                        prop_assert_eq!(p.my_discriminator, 5);
                        prop_assert_eq!(&ControlPacket::decode(&p.encode()), &Ok((*p).clone()));
                        if p.state != State::Up {
                            prop_assert!(p.desired_min_tx_us >= 1_000_000);
                        }
                        prop_assert!(!s.profile().passive || s.received_any(), "passive session spoke first");
                    }
                    Action::ArmTransmit(d) => {
                        let i = s.transmit_interval();
                        prop_assert!(*d <= i && *d >= i * 3 / 4, "jitter {d:?} of {i:?}");
                    }
                    Action::ArmDetection(_) => detection_armed = true,
                    Action::StopDetection => detection_armed = false,
                    _ => {}
                }
            }
            if matches!(input, Input::Detection) {
                detection_armed = acts.iter().any(|a| matches!(a, Action::ArmDetection(_)));
            }
            prop_assert_eq!(detection_armed, s.detection_armed());
            if matches!(s.state(), State::Up | State::Init) {
                prop_assert!(s.received_any(), "{:?} without hearing the remote", s.state());
            }
            if s.state() == State::Up {
                prop_assert!(s.detection_armed(), "Up without a detection timer");
            }
        }
    }
}

fn echo() -> Profile {
    Profile { echo_mode: true, echo_interval: ms(50), ..fast() }
}

#[test]
fn echo_runs_slows_control_and_detects_a_broken_echo_path() {
    let mut pair = Pair::new(echo(), echo(), 9);
    pair.run_until(ms(5_000));
    assert_eq!((pair.a.session.state(), pair.b.session.state()), (State::Up, State::Up));
    assert!(pair.a.session.echo_active() && pair.b.session.echo_active());
    assert!(!pair.a.session.polling() && !pair.b.session.polling(), "poll sequences ended");
    // Control packets only back echo up: asked for once a second.
    assert_eq!(pair.a.session.detection_time(), ms(3_000));
    assert_eq!(pair.a.session.transmit_interval(), ECHO_CONTROL_RX);
    assert_eq!(pair.a.session.echo_detection_time(), ms(150));
    // The peer stops looping echo: Down with diag 2 within the echo
    // detection time (after the last echo in flight, 2 ms), long before
    // the control detection time. Control packets still flow, so the
    // session is Up again a few milliseconds later (and falls again): the
    // speaker watches `falls`, not only the state.
    pair.echo_up = false;
    let cut = pair.now;
    let mut fell = None;
    for t in 1..=200 {
        pair.run_until(cut + ms(t));
        if pair.a.session.state() != State::Up {
            fell = Some((t, pair.a.session.local_diag()));
            break;
        }
    }
    // 150 ms after the last echo back, which came back 0-50 ms before the cut.
    let (after, diag) = fell.expect("fell");
    assert!((100..=152).contains(&after), "Down {after} ms after the cut");
    assert_eq!(diag, Diagnostic::EchoFunctionFailed);
    assert!(!pair.a.session.echo_active());
    // Echo back: both come Up again with echo.
    pair.echo_up = true;
    pair.run_until(cut + ms(10_000));
    assert_eq!((pair.a.session.state(), pair.b.session.state()), (State::Up, State::Up));
    assert!(pair.a.session.echo_active());
}

#[test]
fn echo_needs_both_sides_and_single_hop() {
    // The remote advertises no Required Min Echo RX: no echo, fast control.
    let mut pair = Pair::new(echo(), fast(), 4);
    pair.run_until(ms(5_000));
    assert_eq!(pair.a.session.state(), State::Up);
    assert!(!pair.a.session.echo_active());
    assert!(!pair.b.session.echo_active(), "b's profile has no echo");
    assert_eq!(pair.a.session.detection_time(), ms(300));
    // Multi-hop never advertises nor runs echo (RFC 5883 §3).
    let mut s = Session::new(3, echo(), Hop::Multi, 1);
    let acts = s.handle(Event::AdminUp);
    assert_eq!(sends(&acts)[0].required_min_echo_rx_us, 0);
    // Not loopable: nothing advertised.
    let mut s = Session::new(3, echo(), Hop::Single, 1);
    s.set_echo_loopable(false);
    assert_eq!(sends(&s.handle(Event::AdminUp))[0].required_min_echo_rx_us, 0);
}
