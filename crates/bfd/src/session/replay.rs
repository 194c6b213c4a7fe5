//! A line format for the session's inputs and outputs, and a simulated
//! clock that fires its timers: the replay tests (tests/replay/*.in ->
//! *.out) and the fuzz target run scripts through it.
//!
//! A script, one item per line, `#` starts a comment. Settings first:
//!
//! ```text
//! discr 1                      # our discriminator (default 1)
//! seed 7                       # jitter seed (default 1)
//! hop single                   # or multi (default single)
//! profile tx=300 rx=300 mult=3 passive min-ttl=254   # initial profile (defaults: FRR's)
//! profile echo-mode echo=50    # echo on, echo interval 50 ms (no-echo-mode: off)
//! echo-loop off                # we cannot loop the remote's echo (default on)
//! ```
//!
//! then timed events (milliseconds since the start):
//!
//! ```text
//! @0 admin-up
//! @100 rx Down my=42 your=0 tx=1000 rx=300 mult=3 echo=0 diag=0 P F ttl=255 auth
//! @150 hex 20400318... ttl=255     # raw datagram through the decoder
//! @200 profile tx=100 rx=100 mult=3
//! @300 admin-down
//! @400 path-down
//! @450 echo-rx seq=3 discr=1       # one of our echo packets back (discr: ours by default)
//! @5000 run                        # only let the clock (and timers) run
//! ```
//!
//! `rx` fields left out: `your` = our discriminator, intervals 1000 ms,
//! `mult=3`, `ttl=255`. Before each event the clock fires every timer due by
//! then, earliest first (on a tie: detection, echo detection, transmit,
//! echo transmit).

use std::fmt::Write;
use std::time::Duration;

use super::{Action, Event, Session, Timer};
use crate::echo::EchoPacket;
use crate::packet::{AuthType, Authentication, ControlPacket, Diagnostic, State};
use crate::profile::{Hop, Profile};

/// The session plus its timers, on a simulated clock.
pub struct Sim {
    pub session: Session,
    pub now: Duration,
    /// When each [`Timer`] fires, indexed as `Timer::ALL`.
    pub due: [Option<Duration>; 4],
}

impl Sim {
    pub fn new(session: Session) -> Sim {
        Sim { session, now: Duration::ZERO, due: [None; 4] }
    }

    /// Runs one event now and applies its timer actions.
    pub fn step(&mut self, event: Event) -> Vec<Action> {
        let actions = self.session.handle(event);
        for a in &actions {
            for (timer, delay) in Timer::of(a) {
                self.due[timer as usize] = delay.map(|d| self.now + d);
            }
        }
        actions
    }

    /// The next timer due at or before `until`, if any, with the clock
    /// moved to it.
    pub fn next_timer(&mut self, until: Duration) -> Option<Timer> {
        let (at, timer) = Timer::ALL
            .iter()
            .filter_map(|t| self.due[*t as usize].filter(|at| *at <= until).map(|at| (at, *t)))
            .min_by_key(|(at, t)| (*at, *t as usize))?;
        self.now = at;
        self.due[timer as usize] = None;
        Some(timer)
    }
}

enum Item {
    Event(Event),
    Hex { bytes: Vec<u8>, ttl: u8 },
    Run,
}

/// Runs a script; the result is the printed trace, one line per input and
/// per action. Errors name the line.
pub fn run_script(text: &str) -> Result<String, String> {
    let mut discr = 1;
    let mut seed = 1;
    let mut hop = Hop::Single;
    let mut profile = Profile::default();
    let mut loopable = true;
    let mut sim: Option<Sim> = None;
    let mut out = String::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |e: String| format!("line {}: {e}: {raw:?}", n + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words[0].strip_prefix('@') else {
            if sim.is_some() {
                return Err(err("settings must come before the first event".into()));
            }
            match words.as_slice() {
                ["discr", v] => discr = num(v).map_err(err)?,
                ["seed", v] => seed = num(v).map_err(err)?,
                ["hop", "single"] => hop = Hop::Single,
                ["hop", "multi"] => hop = Hop::Multi,
                ["echo-loop", "on"] => loopable = true,
                ["echo-loop", "off"] => loopable = false,
                ["profile", fields @ ..] => profile = parse_profile(fields, Profile::default()).map_err(err)?,
                _ => return Err(err("unknown setting".into())),
            }
            continue;
        };
        let at = Duration::from_millis(num(at).map_err(err)?);
        let sim = sim.get_or_insert_with(|| {
            let mut session = Session::new(discr as u32, profile.clone(), hop, seed);
            session.set_echo_loopable(loopable);
            Sim::new(session)
        });
        if at < sim.now {
            return Err(err("time goes backwards".into()));
        }
        let item = parse_event(&words[1..], sim.session.local_discr(), sim.session.profile()).map_err(err)?;
        while let Some(timer) = sim.next_timer(at) {
            let _ = writeln!(out, "@{} timer {}", ms(sim.now), timer.name());
            let actions = sim.step(timer.event());
            print_actions(&mut out, sim.now, &actions);
        }
        sim.now = at;
        let _ = writeln!(out, "@{} > {}", ms(at), words[1..].join(" "));
        let event = match item {
            Item::Event(e) => e,
            Item::Run => continue,
            Item::Hex { bytes, ttl } => match ControlPacket::decode(&bytes) {
                Ok(packet) => Event::Received { packet, ttl },
                Err(e) => {
                    let _ = writeln!(out, "@{} decode error: {e}", ms(at));
                    continue;
                }
            },
        };
        let actions = sim.step(event);
        print_actions(&mut out, at, &actions);
    }
    Ok(out)
}

fn ms(d: Duration) -> String {
    let micros = d.as_micros();
    if micros.is_multiple_of(1000) { format!("{}", micros / 1000) } else { format!("{}.{:03}", micros / 1000, micros % 1000) }
}

fn print_actions(out: &mut String, at: Duration, actions: &[Action]) {
    for a in actions {
        let _ = writeln!(out, "@{}   {}", ms(at), describe(a));
    }
}

/// One action as a line (also used in logs).
pub fn describe(a: &Action) -> String {
    match a {
        Action::Send(p) => format!("send {}", describe_packet(p)),
        Action::ArmTransmit(d) => format!("arm transmit {} ms", ms(*d)),
        Action::StopTransmit => "stop transmit".into(),
        Action::ArmDetection(d) => format!("arm detection {} ms", ms(*d)),
        Action::StopDetection => "stop detection".into(),
        Action::StateChanged { from, to, diag } => format!("state {from} -> {to} ({diag})"),
        Action::Discarded(why) => format!("discard: {why}"),
        Action::SendEcho(e) => format!("send echo discr={} seq={}", e.my_discriminator, e.sequence),
        Action::ArmEchoTransmit(d) => format!("arm echo transmit {} ms", ms(*d)),
        Action::ArmEchoDetection(d) => format!("arm echo detection {} ms", ms(*d)),
        Action::StopEcho => "stop echo".into(),
    }
}

pub fn describe_packet(p: &ControlPacket) -> String {
    let mut s = format!(
        "{} my={} your={} tx={} rx={} echo={} mult={} diag={}",
        p.state,
        p.my_discriminator,
        p.your_discriminator,
        ms(Duration::from_micros(u64::from(p.desired_min_tx_us))),
        ms(Duration::from_micros(u64::from(p.required_min_rx_us))),
        ms(Duration::from_micros(u64::from(p.required_min_echo_rx_us))),
        p.detect_mult,
        p.diag
    );
    for (set, flag) in [(p.poll, " P"), (p.final_, " F"), (p.demand, " D"), (p.auth.is_some(), " A")] {
        if set {
            s.push_str(flag);
        }
    }
    s
}

fn num<T: std::str::FromStr>(v: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| format!("{v:?}: {e}"))
}

fn parse_profile(fields: &[&str], mut p: Profile) -> Result<Profile, String> {
    for f in fields {
        match f.split_once('=') {
            Some(("tx", v)) => p.transmit_interval = Duration::from_millis(num(v)?),
            Some(("rx", v)) => p.receive_interval = Duration::from_millis(num(v)?),
            Some(("mult", v)) => p.detect_multiplier = num(v)?,
            Some(("min-ttl", v)) => p.minimum_ttl = num(v)?,
            Some(("echo", v)) => p.echo_interval = Duration::from_millis(num(v)?),
            None if *f == "echo-mode" => p.echo_mode = true,
            None if *f == "no-echo-mode" => p.echo_mode = false,
            None if *f == "passive" => p.passive = true,
            None if *f == "active" => p.passive = false,
            _ => return Err(format!("unknown profile field {f:?}")),
        }
    }
    Ok(p)
}

fn parse_state(word: &str) -> Result<State, String> {
    match word {
        "AdminDown" => Ok(State::AdminDown),
        "Down" => Ok(State::Down),
        "Init" => Ok(State::Init),
        "Up" => Ok(State::Up),
        other => Err(format!("unknown state {other:?}")),
    }
}

fn parse_event(words: &[&str], ours: u32, profile: &Profile) -> Result<Item, String> {
    let Some((kind, rest)) = words.split_first() else {
        return Err("expected an event".into());
    };
    Ok(match *kind {
        "admin-up" => Item::Event(Event::AdminUp),
        "admin-down" => Item::Event(Event::AdminDown),
        "path-down" => Item::Event(Event::PathDown),
        "run" => Item::Run,
        "echo-rx" => {
            let mut echo = EchoPacket { my_discriminator: ours, sequence: 0 };
            for f in rest {
                match f.split_once('=') {
                    Some(("seq", v)) => echo.sequence = num(v)?,
                    Some(("discr", v)) => echo.my_discriminator = num(v)?,
                    _ => return Err(format!("unknown echo-rx field {f:?}")),
                }
            }
            Item::Event(Event::EchoReceived(echo))
        }
        "profile" => Item::Event(Event::Profile(parse_profile(rest, profile.clone())?)),
        "rx" => {
            let (state, fields) = rest.split_first().ok_or("rx needs a state")?;
            let (packet, ttl) = parse_rx(parse_state(state)?, fields, ours)?;
            // Through the encoder and decoder, as the network would.
            match ControlPacket::decode(&packet.encode()) {
                Ok(packet) => Item::Event(Event::Received { packet, ttl }),
                Err(_) => Item::Hex { bytes: packet.encode(), ttl },
            }
        }
        "hex" => {
            let (hex, fields) = rest.split_first().ok_or("hex needs bytes")?;
            let mut ttl = 255;
            for f in fields {
                match f.split_once('=') {
                    Some(("ttl", v)) => ttl = num(v)?,
                    _ => return Err(format!("unknown hex field {f:?}")),
                }
            }
            Item::Hex { bytes: parse_hex(hex)?, ttl }
        }
        other => return Err(format!("unknown event {other:?}")),
    })
}

fn parse_rx(state: State, fields: &[&str], ours: u32) -> Result<(ControlPacket, u8), String> {
    let mut p = ControlPacket::new(state, 0, ours);
    let mut ttl = 255;
    let ms_to_us = |v: &str| -> Result<u32, String> { Ok(num::<u32>(v)?.saturating_mul(1000)) };
    for f in fields {
        match (f.split_once('='), *f) {
            (Some(("my", v)), _) => p.my_discriminator = num(v)?,
            (Some(("your", v)), _) => p.your_discriminator = num(v)?,
            (Some(("tx", v)), _) => p.desired_min_tx_us = ms_to_us(v)?,
            (Some(("rx", v)), _) => p.required_min_rx_us = ms_to_us(v)?,
            (Some(("echo", v)), _) => p.required_min_echo_rx_us = ms_to_us(v)?,
            (Some(("mult", v)), _) => p.detect_mult = num(v)?,
            (Some(("diag", v)), _) => p.diag = Diagnostic::from_code(num(v)?),
            (Some(("ttl", v)), _) => ttl = num(v)?,
            (None, "P") => p.poll = true,
            (None, "F") => p.final_ = true,
            (None, "D") => p.demand = true,
            (None, "auth") => {
                p.auth = Some(Authentication { auth_type: AuthType::SimplePassword, data: b"\x01secret".to_vec() })
            }
            _ => return Err(format!("unknown rx field {f:?}")),
        }
    }
    Ok((p, ttl))
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()).ok_or_else(|| format!("bad hex at {i}")))
        .collect()
}
