//! The RFC 5880 §6.8 state machine of one session, asynchronous mode, as a
//! pure function: [`Session::handle`] takes an [`Event`] and returns the
//! [`Action`]s to carry out. Timers are relative delays the caller arms
//! (re-arming replaces); randomness (the §6.8.7 jitter) comes from a seeded
//! generator owned by the session, so a run is a function of seed and inputs.
//!
//! Not here: demand mode (never requested; a remote's D bit is ignored and
//! we keep sending, see docs/bfd.md), echo (refused, Required Min Echo RX
//! is always 0), authentication (packets carrying it are discarded, as
//! §6.8.6 requires when none is configured).

pub mod replay;
#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::packet::{ControlPacket, Diagnostic, State};
use crate::profile::{Hop, Profile};

/// §6.8.3: while not Up, the transmit interval is at least one second.
pub const SLOW_TX: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A control packet that passed the decoder, with the TTL or hop limit
    /// it arrived with.
    Received { packet: ControlPacket, ttl: u8 },
    TransmitTimer,
    DetectionTimer,
    AdminUp,
    AdminDown,
    /// The local path to the peer is known to be down (link down).
    PathDown,
    /// New timers or roles (a changed BFDProfile): a Poll Sequence, no flap.
    Profile(Profile),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Send(ControlPacket),
    /// (Re)arm the transmit timer to fire after this long.
    ArmTransmit(Duration),
    StopTransmit,
    /// (Re)arm the detection timer to fire after this long.
    ArmDetection(Duration),
    StopDetection,
    StateChanged { from: State, to: State, diag: Diagnostic },
    Discarded(Discard),
}

/// A decoded packet the session refuses (§6.8.6 checks that need state).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Discard {
    #[error("TTL {ttl} below {min}")]
    Ttl { ttl: u8, min: u8 },
    #[error("authentication present but none configured")]
    Authentication,
    #[error("Your Discriminator {got} is not ours ({ours})")]
    Discriminator { got: u32, ours: u32 },
    #[error("session is AdminDown")]
    AdminDown,
}

/// Per-session state variables of §6.8.1 plus what the timers need.
#[derive(Debug)]
pub struct Session {
    hop: Hop,
    profile: Profile,
    state: State,
    remote_state: State,
    local_discr: u32,
    remote_discr: u32,
    local_diag: Diagnostic,
    /// The Desired Min TX actually used for timing: lags the profile while
    /// an increase waits for its Poll Sequence (§6.8.3).
    tx_in_use: Duration,
    /// The Required Min RX used for the detection time: lags a decrease.
    rx_in_use: Duration,
    remote_min_rx: Duration,
    remote_desired_tx: Duration,
    remote_detect_mult: u8,
    polling: bool,
    /// The intervals the current poll announced; the Final acknowledges
    /// these, not a profile that changed since.
    polled: (Duration, Duration),
    /// The profile changed again during a poll: poll once more after Final.
    repoll: bool,
    transmit_armed: bool,
    detection_armed: bool,
    received_any: bool,
    /// Set by the first AdminUp: a session never started sends nothing.
    started: bool,
    rng: fastrand::Rng,
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Session {
    /// A session in AdminDown with no timer running; [`Event::AdminUp`]
    /// starts it. `local_discr` must be nonzero and unique per system.
    pub fn new(local_discr: u32, profile: Profile, hop: Hop, seed: u64) -> Session {
        Session {
            hop,
            tx_in_use: profile.transmit_interval,
            rx_in_use: profile.receive_interval,
            profile,
            state: State::AdminDown,
            remote_state: State::Down,
            local_discr,
            remote_discr: 0,
            local_diag: Diagnostic::None,
            // §6.8.1: initialised to 1 so the active side sends at once.
            remote_min_rx: Duration::from_micros(1),
            remote_desired_tx: Duration::ZERO,
            remote_detect_mult: 0,
            polling: false,
            polled: (Duration::ZERO, Duration::ZERO),
            repoll: false,
            transmit_armed: false,
            detection_armed: false,
            received_any: false,
            started: false,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }
    pub fn remote_state(&self) -> State {
        self.remote_state
    }
    pub fn local_diag(&self) -> Diagnostic {
        self.local_diag
    }
    pub fn local_discr(&self) -> u32 {
        self.local_discr
    }
    pub fn remote_discr(&self) -> u32 {
        self.remote_discr
    }
    pub fn profile(&self) -> &Profile {
        &self.profile
    }
    pub fn polling(&self) -> bool {
        self.polling
    }
    pub fn transmit_armed(&self) -> bool {
        self.transmit_armed
    }
    pub fn detection_armed(&self) -> bool {
        self.detection_armed
    }
    pub fn received_any(&self) -> bool {
        self.received_any
    }

    /// §6.8.4, asynchronous mode.
    pub fn detection_time(&self) -> Duration {
        self.rx_in_use.max(self.remote_desired_tx) * u32::from(self.remote_detect_mult)
    }

    /// The Desired Min TX Interval we advertise (§6.8.3 slow start).
    fn advertised_tx(&self) -> Duration {
        if self.state == State::Up { self.profile.transmit_interval } else { self.profile.transmit_interval.max(SLOW_TX) }
    }

    /// §6.8.7: the larger of what we want and what the remote accepts.
    pub fn transmit_interval(&self) -> Duration {
        let ours = if self.state == State::Up { self.tx_in_use } else { self.tx_in_use.max(SLOW_TX) };
        ours.max(self.remote_min_rx)
    }

    /// §6.8.7: no packets while the remote asks for none, nor (passive)
    /// before the remote has spoken.
    fn may_transmit(&self) -> bool {
        let silent_remote = self.profile.passive && self.remote_discr == 0;
        !self.remote_min_rx.is_zero() && !silent_remote
    }

    fn jittered(&mut self, interval: Duration) -> Duration {
        // §6.8.7: 0-25 % shorter; at most 90 % of it with a multiplier of 1.
        let top = if self.profile.detect_multiplier == 1 { 900 } else { 1000 };
        interval * self.rng.u32(750..=top) / 1000
    }

    fn packet(&self, poll: bool, final_: bool) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll,
            final_,
            control_plane_independent: false,
            demand: false,
            multipoint: false,
            detect_mult: self.profile.detect_multiplier,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx_us: us(self.advertised_tx()),
            required_min_rx_us: us(self.profile.receive_interval),
            required_min_echo_rx_us: 0,
            auth: None,
        }
    }

    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        let before = self.transmit_interval();
        match event {
            Event::Received { packet, ttl } => self.received(packet, ttl, &mut out),
            Event::TransmitTimer => {
                self.transmit_armed = false;
                if self.may_transmit() {
                    out.push(Action::Send(self.packet(self.polling, false)));
                }
            }
            Event::DetectionTimer => self.detection_expired(&mut out),
            Event::AdminDown => {
                if self.state != State::AdminDown {
                    self.set_state(State::AdminDown, Diagnostic::AdministrativelyDown, &mut out);
                    self.stop_detection(&mut out);
                    // §6.8.16: tell the remote, so it goes Down with diag 3
                    // rather than waiting for its detection time.
                    if self.may_transmit() {
                        out.push(Action::Send(self.packet(false, false)));
                    }
                }
            }
            Event::AdminUp => {
                if self.state == State::AdminDown {
                    self.started = true;
                    self.set_state(State::Down, Diagnostic::None, &mut out);
                    if self.may_transmit() {
                        out.push(Action::Send(self.packet(false, false)));
                    }
                }
            }
            Event::PathDown => {
                if matches!(self.state, State::Init | State::Up) {
                    self.set_state(State::Down, Diagnostic::PathDown, &mut out);
                    if self.may_transmit() {
                        out.push(Action::Send(self.packet(false, false)));
                    }
                }
            }
            Event::Profile(profile) => self.new_profile(profile, &mut out),
        }
        self.schedule_transmit(before, &mut out);
        out
    }

    /// Keeps the transmit timer consistent with [`Self::may_transmit`]: armed
    /// when sending is allowed (re-armed when the interval changed), stopped
    /// otherwise.
    fn schedule_transmit(&mut self, before: Duration, out: &mut Vec<Action>) {
        if !self.started {
            return;
        }
        let interval = self.transmit_interval();
        if self.may_transmit() {
            if !self.transmit_armed || interval != before {
                let d = self.jittered(interval);
                out.push(Action::ArmTransmit(d));
                self.transmit_armed = true;
            }
        } else if self.transmit_armed {
            out.push(Action::StopTransmit);
            self.transmit_armed = false;
        }
    }

    fn set_state(&mut self, to: State, diag: Diagnostic, out: &mut Vec<Action>) {
        let from = self.state;
        self.state = to;
        self.local_diag = diag;
        out.push(Action::StateChanged { from, to, diag });
        if to != State::Up && self.polling {
            // A poll only matters for an Up session's timing.
            self.finish_poll();
        }
        if to == State::Up && self.profile.transmit_interval != SLOW_TX {
            // Leaving slow start changes the advertised Desired Min TX.
            self.start_poll();
        }
    }

    fn start_poll(&mut self) {
        self.polling = true;
        self.polled = (self.profile.transmit_interval, self.profile.receive_interval);
    }

    /// Applies what the remote acknowledged (or, leaving Up, everything:
    /// timing outside Up is not negotiated).
    fn finish_poll(&mut self) {
        self.polling = false;
        self.repoll = false;
        if self.state == State::Up {
            // A faster transmit or slower receive set since is already safe.
            self.tx_in_use = self.polled.0.min(self.profile.transmit_interval);
            self.rx_in_use = self.polled.1.max(self.profile.receive_interval);
        } else {
            self.tx_in_use = self.profile.transmit_interval;
            self.rx_in_use = self.profile.receive_interval;
        }
    }

    fn stop_detection(&mut self, out: &mut Vec<Action>) {
        if self.detection_armed {
            self.detection_armed = false;
            out.push(Action::StopDetection);
        }
    }

    fn received(&mut self, p: ControlPacket, ttl: u8, out: &mut Vec<Action>) {
        let min = self.hop.min_ttl(&self.profile);
        if ttl < min {
            out.push(Action::Discarded(Discard::Ttl { ttl, min }));
            return;
        }
        if p.auth.is_some() {
            out.push(Action::Discarded(Discard::Authentication));
            return;
        }
        if p.your_discriminator != 0 && p.your_discriminator != self.local_discr {
            out.push(Action::Discarded(Discard::Discriminator { got: p.your_discriminator, ours: self.local_discr }));
            return;
        }
        self.received_any = true;
        self.remote_discr = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_min_rx = Duration::from_micros(u64::from(p.required_min_rx_us));
        self.remote_desired_tx = Duration::from_micros(u64::from(p.desired_min_tx_us));
        self.remote_detect_mult = p.detect_mult;
        let mut poll_again = false;
        if p.final_ && self.polling {
            poll_again = self.repoll;
            self.finish_poll();
        }
        if self.state == State::AdminDown {
            out.push(Action::Discarded(Discard::AdminDown));
            return;
        }
        let old = self.state;
        match (old, p.state) {
            (State::Init | State::Up, State::AdminDown) => {
                self.set_state(State::Down, Diagnostic::NeighborSignaledSessionDown, out)
            }
            (State::Down, State::Down) => self.set_state(State::Init, Diagnostic::None, out),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.set_state(State::Up, Diagnostic::None, out)
            }
            (State::Up, State::Down) => self.set_state(State::Down, Diagnostic::NeighborSignaledSessionDown, out),
            _ => {}
        }
        let mut poll_now = false;
        if poll_again && self.state == State::Up {
            self.start_poll();
            poll_now = true;
        }
        // The detection timer restarts on every accepted packet (§6.8.4).
        out.push(Action::ArmDetection(self.detection_time()));
        self.detection_armed = true;
        if p.poll {
            // §6.8.7: answer a Poll at once, whatever the transmit timer; a
            // packet never carries both P and F, so our own P waits for the
            // next periodic packet.
            out.push(Action::Send(self.packet(false, true)));
        } else if (self.state != old || poll_now) && self.may_transmit() {
            out.push(Action::Send(self.packet(self.polling, false)));
        }
    }

    fn detection_expired(&mut self, out: &mut Vec<Action>) {
        self.detection_armed = false;
        if matches!(self.state, State::Init | State::Up) {
            self.set_state(State::Down, Diagnostic::ControlDetectionTimeExpired, out);
        }
        // §6.8.1: a silent remote is forgotten; back to the initial values.
        self.remote_discr = 0;
        self.remote_state = State::Down;
        self.remote_min_rx = Duration::from_micros(1);
        self.remote_desired_tx = Duration::ZERO;
        if self.state == State::Down && self.may_transmit() {
            out.push(Action::Send(self.packet(false, false)));
        }
    }

    fn new_profile(&mut self, profile: Profile, out: &mut Vec<Action>) {
        let timers_changed = profile.transmit_interval != self.profile.transmit_interval
            || profile.receive_interval != self.profile.receive_interval
            || profile.detect_multiplier != self.profile.detect_multiplier;
        self.profile = profile;
        if self.state != State::Up {
            self.tx_in_use = self.profile.transmit_interval;
            self.rx_in_use = self.profile.receive_interval;
            return;
        }
        if !timers_changed {
            return;
        }
        // §6.8.3: a faster transmit and a slower receive are safe at once;
        // the other two directions wait for the remote's Final.
        self.tx_in_use = self.tx_in_use.min(self.profile.transmit_interval);
        self.rx_in_use = self.rx_in_use.max(self.profile.receive_interval);
        if self.polling {
            self.repoll = true;
        } else {
            self.start_poll();
            out.push(Action::Send(self.packet(true, false)));
        }
    }
}
