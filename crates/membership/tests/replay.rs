//! Replay tests: each `tests/replay/NAME.in` is a timed script run on the
//! simulator (no loss, fixed seed, so the run is deterministic) and the
//! membership changes and views it produces must equal `NAME.out` line for
//! line. `FERROLB_UPDATE_REPLAY=1 cargo test --test replay` rewrites the .out files; a
//! rewritten file is read and checked by hand before it is committed.
//!
//! Script lines (times in ms, nodes by index; `#` starts a comment):
//! `nodes N`, `seed S`, `trace` (also print every message sent other than
//! heartbeats and acks), `at T` (run until T), `start I [INCARNATION]`,
//! `seeds I J K..`, `kill I`, `leave I`, `meta I TEXT`, `block I J` (drop I→J),
//! `partition I J | K L`, `heal`, `freeze I MS`, `inject I FROM dead NAME INC`.

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use ferrolb_membership::packet::Message;
use ferrolb_membership::sim::{Observed, Sim, SimConfig};
use ferrolb_membership::state::{Change, DownReason};

fn run(script: &str) -> Result<String, String> {
    let mut nodes = 3;
    let mut seed = 1;
    let mut trace = false;
    let mut lines = Vec::new();
    for (n, line) in script.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[0] {
            "nodes" => nodes = num(&words, 1, n)? as usize,
            "seed" => seed = num(&words, 1, n)?,
            "trace" => trace = true,
            _ => lines.push((n, words)),
        }
    }
    let mut cfg = SimConfig::new(nodes, seed);
    cfg.latency_min = Duration::from_millis(1);
    cfg.latency_max = Duration::from_millis(1);
    let mut sim = Sim::new(cfg);
    sim.trace_sends = trace;
    let mut out = String::new();
    let mut printed = 0;
    for (n, w) in lines {
        let idx = |i: usize| -> Result<usize, String> { Ok(num(&w, i, n)? as usize) };
        match w[0] {
            "at" => sim.run_until(Duration::from_millis(num(&w, 1, n)?)),
            "start" => {
                let inc = if w.len() > 2 { num(&w, 2, n)? } else { 1_000 };
                sim.start(idx(1)?, inc);
            }
            "seeds" => {
                let seeds: Result<Vec<usize>, String> = (2..w.len()).map(idx).collect();
                sim.seed(idx(1)?, &seeds?);
            }
            "kill" => sim.kill(idx(1)?),
            "leave" => sim.leave(idx(1)?),
            "meta" => sim.set_meta(idx(1)?, w[2..].join(" ").into_bytes()),
            "block" => sim.block(idx(1)?, idx(2)?),
            "heal" => sim.heal(),
            "freeze" => sim.freeze(idx(1)?, Duration::from_millis(num(&w, 2, n)?)),
            "partition" => {
                let mut groups = vec![Vec::new()];
                for (i, word) in w.iter().enumerate().skip(1) {
                    if *word == "|" {
                        groups.push(Vec::new());
                    } else if let Some(g) = groups.last_mut() {
                        g.push(idx(i)?);
                    }
                }
                sim.partition(&groups);
            }
            "inject" if w.len() == 6 && w[3] == "dead" => {
                let msg = Message::Dead { name: w[4].to_string(), incarnation: num(&w, 5, n)? };
                sim.inject(idx(1)?, idx(2)?, msg);
            }
            other => return Err(format!("line {}: unknown command {other:?}", n + 1)),
        }
        for o in &sim.observations[printed..] {
            let _ = writeln!(out, "{:>6} {} {}", o.at.as_millis(), sim.name(o.observer), describe(&sim, &o.what));
        }
        printed = sim.observations.len();
    }
    Ok(out)
}

fn num(w: &[&str], i: usize, line: usize) -> Result<u64, String> {
    w.get(i).and_then(|s| s.parse().ok()).ok_or_else(|| format!("line {}: expected a number at word {}", line + 1, i + 1))
}

fn describe(sim: &Sim, what: &Observed) -> String {
    match what {
        Observed::View(v) => {
            let members: Vec<String> = v
                .members
                .values()
                .map(|m| {
                    let meta = if m.meta.is_empty() { String::new() } else { format!("[{}]", String::from_utf8_lossy(&m.meta)) };
                    format!("{}@{}{meta}", m.name, m.incarnation)
                })
                .collect();
            format!("view{} {}", if v.settled { "" } else { " (unsettled)" }, members.join(" "))
        }
        Observed::Change(Change::Up { name, incarnation, via }) => format!("up {name}@{incarnation} via {via}"),
        Observed::Change(Change::Updated { name, incarnation }) => format!("updated {name}@{incarnation}"),
        Observed::Change(Change::Down { name, incarnation, reason }) => {
            let why = match reason {
                DownReason::Unresponsive { silent_for } => format!("unresponsive, silent {} ms", silent_for.as_millis()),
                DownReason::ReportedDead { by } => format!("reported dead by {by}"),
                DownReason::Left => "left".to_string(),
            };
            format!("down {name}@{incarnation}: {why}")
        }
        Observed::Change(Change::Refuted { incarnation, by }) => format!("refuted as @{incarnation} (accused by {by})"),
        Observed::Sent { to, msg } => format!("-> {} {}", sim.name(*to), short(msg)),
    }
}

fn short(msg: &Message) -> String {
    match msg {
        Message::Sync { records, reply } => format!("Sync {{ {} records, reply: {reply} }}", records.len()),
        Message::Alive { record, want_sync } => {
            format!("Alive {{ {}@{}, want_sync: {want_sync} }}", record.name, record.incarnation)
        }
        other => format!("{other:?}"),
    }
}

#[test]
fn replays() {
    ferrolb_test_harness::golden::check_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay"), 7, run);
}
