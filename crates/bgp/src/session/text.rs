//! A line-oriented text form of session events and actions, for the replay
//! tests in tests/replay (one event per line, the actions it produced
//! indented under it).
//!
//! Script lines (`#` starts a comment):
//! - `config KEY=VALUE ...` (re)creates the session. Keys: `local-asn`,
//!   `peer-asn` (a number, `internal`, `external` or `any`), `router-id`,
//!   `hold`, `keepalive`, `retry`, `retry-max` (seconds), `families`
//!   (`ipv4,ipv6`), `gr` (restart time), and the flag `passive`.
//! - `start`, `stop [SUBCODE]`, `tcp-connected`, `tcp-failed`, `tcp-closed`
//! - `timer connect-retry|hold|keepalive`
//! - `recv keepalive`, `recv notification CODE/SUB`, `recv update`,
//!   `recv route-refresh ipv4|ipv6`
//! - `recv open asn=N hold=N id=A [version=N] [caps=mp4,mp6,as4,rr,gr]`:
//!   encoded and decoded again, so the codec is part of the replay
//! - `recv-bytes HEX`: a raw message through the decoder.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::{Action, Event, Outgoing, PeerAsn, Session, SessionConfig, State, Timer};
use crate::packet::{
    self, Capabilities, Family, GracefulRestart, Message, Notification, Open, ReceivedUpdate,
};

#[derive(Debug)]
pub enum Line {
    Config(SessionConfig),
    Event(String, Event),
}

fn kv<'a>(words: &'a [&'a str]) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    words.iter().map(|w| w.split_once('=').unwrap_or((w, "")))
}

fn num<T: std::str::FromStr>(v: &str, what: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("bad {what}: {v:?}"))
}

fn family(v: &str) -> Result<Family, String> {
    match v {
        "ipv4" => Ok(Family::Ipv4Unicast),
        "ipv6" => Ok(Family::Ipv6Unicast),
        _ => Err(format!("bad family {v:?}")),
    }
}

fn parse_config(words: &[&str]) -> Result<SessionConfig, String> {
    let mut c = SessionConfig {
        local_asn: 64512,
        peer_asn: PeerAsn::Exact(64500),
        router_id: Ipv4Addr::new(198, 51, 100, 11),
        hold_time: 90,
        keepalive: None,
        connect_retry: Duration::from_secs(1),
        connect_retry_max: Duration::from_secs(120),
        families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        graceful_restart: None,
        passive: false,
    };
    for (k, v) in kv(words) {
        match k {
            "local-asn" => c.local_asn = num(v, k)?,
            "peer-asn" => {
                c.peer_asn = match v {
                    "internal" => PeerAsn::Internal,
                    "external" => PeerAsn::External,
                    "any" => PeerAsn::Any,
                    n => PeerAsn::Exact(num(n, k)?),
                }
            }
            "router-id" => c.router_id = num(v, k)?,
            "hold" => c.hold_time = num(v, k)?,
            "keepalive" => c.keepalive = Some(num(v, k)?),
            "retry" => c.connect_retry = Duration::from_secs(num(v, k)?),
            "retry-max" => c.connect_retry_max = Duration::from_secs(num(v, k)?),
            "families" => c.families = v.split(',').map(family).collect::<Result<_, _>>()?,
            "gr" => c.graceful_restart = Some(num(v, k)?),
            "passive" => c.passive = true,
            _ => return Err(format!("unknown config key {k:?}")),
        }
    }
    Ok(c)
}

fn parse_open(words: &[&str]) -> Result<Open, String> {
    let mut asn = 64500u32;
    let mut hold = 90u16;
    let mut id = Ipv4Addr::new(198, 51, 100, 1);
    let mut version = 4u8;
    let mut caps = Capabilities::default();
    let mut with_as4 = false;
    for (k, v) in kv(words) {
        match k {
            "asn" => asn = num(v, k)?,
            "hold" => hold = num(v, k)?,
            "id" => id = num(v, k)?,
            "version" => version = num(v, k)?,
            "caps" => {
                for c in v.split(',').filter(|c| !c.is_empty()) {
                    match c {
                        "mp4" => caps.families.push(Family::Ipv4Unicast),
                        "mp6" => caps.families.push(Family::Ipv6Unicast),
                        "as4" => with_as4 = true,
                        "rr" => caps.route_refresh = true,
                        "gr" => {
                            caps.graceful_restart = Some(GracefulRestart {
                                restarting: false,
                                restart_time: 120,
                                families: vec![],
                            })
                        }
                        _ => return Err(format!("unknown capability {c:?}")),
                    }
                }
            }
            _ => return Err(format!("unknown open key {k:?}")),
        }
    }
    let mut open = Open::new(asn, hold, id, caps);
    if !with_as4 {
        open.caps.four_octet_as = None;
        open.my_as = u16::try_from(asn).unwrap_or(packet::open::AS_TRANS);
    }
    open.version = version;
    Ok(open)
}

/// A message through the encoder and the decoder, as on a real connection.
fn through_wire(bytes: Vec<u8>) -> Event {
    match packet::decode(&bytes, true) {
        Ok(m) => Event::Message(m),
        Err(e) => Event::Malformed(e),
    }
}

fn parse_event(words: &[&str]) -> Result<Event, String> {
    Ok(match words {
        ["start"] => Event::Start,
        ["stop"] => Event::Stop { cease_subcode: 2 },
        ["stop", s] => Event::Stop {
            cease_subcode: num(s, "subcode")?,
        },
        ["tcp-connected"] => Event::TcpConnected,
        ["tcp-failed"] => Event::TcpFailed,
        ["tcp-closed"] => Event::TcpClosed,
        ["timer", "connect-retry"] => Event::TimerFired(Timer::ConnectRetry),
        ["timer", "hold"] => Event::TimerFired(Timer::Hold),
        ["timer", "keepalive"] => Event::TimerFired(Timer::Keepalive),
        ["recv", "keepalive"] => through_wire(packet::encode_keepalive()),
        ["recv", "update"] => Event::Message(Message::Update(ReceivedUpdate::default())),
        ["recv", "notification", cs] => {
            let (c, s) = cs.split_once('/').ok_or("notification needs CODE/SUB")?;
            through_wire(Notification::new(num(c, "code")?, num(s, "subcode")?, vec![]).encode())
        }
        ["recv", "route-refresh", f] => {
            through_wire(packet::encode_route_refresh(family(f)?).map_err(|e| e.to_string())?)
        }
        ["recv", "open", rest @ ..] => {
            let open = parse_open(rest)?;
            let mut bytes = open.encode().map_err(|e| e.to_string())?;
            // netgauze always writes version 4; patch the byte to test others.
            bytes[packet::HEADER_LEN] = open.version;
            // Version errors surface in the decoder (netgauze refuses them).
            match packet::decode(&bytes, false) {
                Ok(m) => Event::Message(m),
                Err(e) => Event::Malformed(e),
            }
        }
        ["recv-bytes", hex @ ..] => {
            let s: String = hex.concat();
            let bytes = (0..s.len() / 2)
                .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|e| e.to_string())?;
            through_wire(bytes)
        }
        _ => return Err(format!("unknown event {:?}", words.join(" "))),
    })
}

pub fn parse_script(text: &str) -> Result<Vec<Line>, String> {
    let mut out = vec![];
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let parsed = match words.as_slice() {
            ["config", rest @ ..] => parse_config(rest).map(Line::Config),
            _ => parse_event(&words).map(|e| Line::Event(line.to_string(), e)),
        };
        out.push(parsed.map_err(|e| format!("line {}: {e}", i + 1))?);
    }
    Ok(out)
}

fn fmt_secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

fn fmt_timer(t: Timer) -> &'static str {
    match t {
        Timer::ConnectRetry => "connect-retry",
        Timer::Hold => "hold",
        Timer::Keepalive => "keepalive",
    }
}

fn fmt_families(f: &[Family]) -> String {
    f.iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn fmt_caps(c: &Capabilities) -> String {
    let mut v = vec![fmt_families(&c.families)];
    if let Some(a) = c.four_octet_as {
        v.push(format!("as4={a}"));
    }
    if c.route_refresh {
        v.push("route-refresh".into());
    }
    if let Some(gr) = &c.graceful_restart {
        v.push(format!("gr={}s", gr.restart_time));
    }
    v.join(" ")
}

pub fn format_action(a: &Action) -> String {
    match a {
        Action::Connect => "connect".into(),
        Action::Send(Outgoing::Open(o)) => format!(
            "send open my-as={} hold={} id={} caps: {}",
            o.my_as,
            o.hold_time,
            o.router_id,
            fmt_caps(&o.caps)
        ),
        Action::Send(Outgoing::Keepalive) => "send keepalive".into(),
        Action::Send(Outgoing::Notification(n)) => format!("send notification {n}"),
        Action::Close => "close".into(),
        Action::Arm(t, d) => format!("arm {} {}", fmt_timer(*t), fmt_secs(*d)),
        Action::Cancel(t) => format!("cancel {}", fmt_timer(*t)),
        Action::Up(n) => {
            let mut s = format!(
                "up peer-as={} id={} hold={} keepalive={} families={}",
                n.peer_asn,
                n.peer_router_id,
                n.hold_time,
                n.keepalive,
                fmt_families(&n.families)
            );
            for (on, name) in [
                (n.four_octet_as, "as4"),
                (n.route_refresh, "route-refresh"),
                (n.graceful_restart.is_some(), "graceful-restart"),
                (n.ibgp, "ibgp"),
            ] {
                if on {
                    s.push(' ');
                    s.push_str(name);
                }
            }
            s
        }
        Action::Down(r) => format!("down: {r}"),
        Action::ResendRoutes(f) => format!("resend-routes {f}"),
    }
}

fn fmt_state(s: State) -> &'static str {
    match s {
        State::Idle => "idle",
        State::Connect => "connect",
        State::Active => "active",
        State::OpenSent => "open-sent",
        State::OpenConfirm => "open-confirm",
        State::Established => "established",
    }
}

fn fmt_event(e: &Event) -> Option<String> {
    match e {
        Event::Malformed(err) => Some(format!("decode error: {err}")),
        Event::Message(Message::Open(o)) => Some(format!(
            "open from as {} caps: {}",
            o.asn(),
            fmt_caps(&o.caps)
        )),
        _ => None,
    }
}

/// Runs the script and returns the output lines.
pub fn replay(lines: Vec<Line>) -> Vec<String> {
    let mut out = vec![];
    let mut session: Option<Session> = None;
    for line in lines {
        match line {
            Line::Config(c) => {
                out.push(format!(
                    "= config local-as={} hold={} passive={}",
                    c.local_asn, c.hold_time, c.passive
                ));
                session = Some(Session::new(c));
            }
            Line::Event(text, event) => {
                out.push(format!("> {text}"));
                let Some(s) = session.as_mut() else {
                    out.push("  ! no config yet".into());
                    continue;
                };
                if let Some(d) = fmt_event(&event) {
                    out.push(format!("  ({d})"));
                }
                let before = s.state();
                for a in s.step(event) {
                    out.push(format!("  {}", format_action(&a)));
                }
                if s.state() != before {
                    out.push(format!(
                        "  state {} -> {}",
                        fmt_state(before),
                        fmt_state(s.state())
                    ));
                }
            }
        }
    }
    out
}
