//! The runtime's side of tracking: which trackers each instance depends on (its own and its
//! sync group's), their current states, and what a tracker update means for each instance
//! (a new effective priority, FAULT or not). The watchers themselves run on the helper thread
//! (`track::watch`); this is called from the VRRP loop and only does bookkeeping.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use anyhow::Result;
use log::{info, warn};
use tokio::{runtime::Handle, sync::mpsc};

use crate::{
    config::model::{Config, Instance as InstanceConfig, Tracked},
    netlink::Netlink,
    track::{
        Counter, Dep, Status, TrackerId, Verdict,
        exec::{self, Outcome},
        file, process, script,
        watch::Update,
    },
};

struct ScriptState {
    name: String,
    counter: Counter,
    /// The last exit code (keepalived logs "now returning N" when it changes; it starts at 0).
    last_code: i32,
    /// Its last run could not be started for want of resources (said once).
    starved: bool,
}

pub struct Tracking {
    scripts: Vec<ScriptState>,
    file_names: Vec<String>,
    process_names: Vec<String>,
    status: HashMap<TrackerId, Status>,
    /// Per instance (the runtime's slot order).
    deps: Vec<Vec<Dep>>,
    /// Tracked interfaces other than the instances' own: ifindex → name.
    interfaces: HashMap<u32, String>,
    pub rx: mpsc::UnboundedReceiver<Update>,
}

impl Tracking {
    /// Resolves every tracker the instances use, reads the initial states that can be read at
    /// once (interfaces, files, processes; scripts start pending), and starts the watchers on
    /// the helper thread. `previous`: the configuration a reload replaces (a track file it
    /// had already is not initialised again).
    pub async fn new(
        config: &Config,
        netlink: &Netlink,
        helpers: &Handle,
        previous: Option<&Config>,
    ) -> Result<Tracking> {
        let g = &config.global;
        let default = exec::default_run_as(g.script_user.as_deref(), g.script_group.as_deref());
        let mut deps = Vec::new();
        let mut interfaces = HashMap::new();
        let mut status = HashMap::new();
        for ic in &config.instances {
            let group = config
                .sync_groups
                .iter()
                .find(|sg| sg.members.contains(&ic.name));
            let mut d = Vec::new();
            let lists: [(&[Tracked], &[Tracked]); 4] = [
                (
                    &ic.track_scripts,
                    group.map_or(&[][..], |g| &g.track_scripts),
                ),
                (&ic.track_files, group.map_or(&[][..], |g| &g.track_files)),
                (
                    &ic.track_processes,
                    group.map_or(&[][..], |g| &g.track_processes),
                ),
                (
                    &ic.track_interfaces,
                    group.map_or(&[][..], |g| &g.track_interfaces),
                ),
            ];
            for (kind, (own, grp)) in lists.into_iter().enumerate() {
                for t in own.iter().chain(grp) {
                    let dep = match kind {
                        0 => script_dep(config, t),
                        1 => file_dep(config, t),
                        2 => process_dep(config, t),
                        _ => interface_dep(ic, t, netlink, &mut interfaces, &mut status).await,
                    };
                    d.extend(dep);
                }
            }
            deps.push(d);
        }
        let used = |id: TrackerId| deps.iter().flatten().any(|d: &Dep| d.id == id);
        let (tx, rx) = mpsc::unbounded_channel();
        // Scripts: each tracked one runs on the helper thread; pending until its first result.
        let mut scripts = Vec::new();
        for (index, s) in config.scripts.iter().enumerate() {
            // `init_fail`: down from the start, so the weights apply as failed and `rise`
            // successes bring it up (keepalived 2.2.7 documents this but its track_script line
            // resets it: a bug).
            let counter = if s.init_fail {
                Counter::failed(s.rise, s.fall)
            } else {
                Counter::new(s.rise, s.fall)
            };
            scripts.push(ScriptState {
                name: s.name.clone(),
                counter,
                last_code: 0,
                starved: false,
            });
            if !used(TrackerId::Script(index)) {
                continue;
            }
            let Some(run_as) = exec::run_as(s.user.as_deref(), s.group.as_deref(), default) else {
                // Checked at load; gone since. It cannot run, so it has failed.
                warn!("Invalid user/group for vrrp script {} - it fails", s.name);
                status.insert(TrackerId::Script(index), Status::Up(false));
                continue;
            };
            status.insert(
                TrackerId::Script(index),
                if s.init_fail {
                    Status::Up(false)
                } else {
                    Status::Pending
                },
            );
            let job = script::Job {
                index,
                argv: exec::canonical(&s.script),
                run_as,
                interval: Duration::from_secs_f64(s.interval.max(0.001)),
                timeout: script::timeout(s.interval, s.timeout),
            };
            helpers.spawn(script::run_loop(job, tx.clone()));
        }
        // Files: init_file, the value now, then inotify.
        let mut watched = Vec::new();
        for (index, f) in config.track_files.iter().enumerate() {
            let Some(path) = &f.file else { continue };
            let path = PathBuf::from(path);
            let known = previous.is_some_and(|p| {
                p.track_files
                    .iter()
                    .any(|o| o.name == f.name && o.file == f.file)
            });
            if let Some((value, overwrite)) = f.init_file
                && !known
                && let Err(e) = file::init(&path, value, overwrite)
            {
                warn!("Unable to initialise track file {}: {e}", path.display());
            }
            if !used(TrackerId::File(index)) {
                continue;
            }
            let value = file::read(&path).unwrap_or(0);
            status.insert(TrackerId::File(index), Status::Value(value));
            watched.push((index, path));
        }
        if !watched.is_empty() {
            helpers.spawn(file::watch(watched, tx.clone()));
        }
        // Processes: one scan now, then periodic scans.
        let jobs: Vec<process::Job> = config
            .track_processes
            .iter()
            .enumerate()
            .filter(|(i, _)| used(TrackerId::Process(*i)))
            .map(|(i, t)| process::Job::from_config(i, t))
            .collect();
        if !jobs.is_empty() {
            let counts = process::counts(&jobs);
            let initial: Vec<bool> = jobs.iter().zip(&counts).map(|(j, c)| j.ok(*c)).collect();
            for (j, ok) in jobs.iter().zip(&initial) {
                status.insert(TrackerId::Process(j.index), Status::Up(*ok));
            }
            helpers.spawn(process::watch(jobs, initial, tx.clone()));
        }
        Ok(Tracking {
            scripts,
            file_names: config.track_files.iter().map(|f| f.name.clone()).collect(),
            process_names: config
                .track_processes
                .iter()
                .map(|p| p.name.clone())
                .collect(),
            status,
            deps,
            interfaces,
            rx,
        })
    }

    /// After a reload: a script defined the same way in both configurations keeps its
    /// result and counters (keepalived's clear_diff_script copies them), so an instance's
    /// priority does not wait for its scripts' next runs. Files, processes and interfaces
    /// were read afresh already.
    pub fn carry(&mut self, old: &Tracking, old_config: &Config, new_config: &Config) {
        for (i, s) in new_config.scripts.iter().enumerate() {
            let Some(j) = old_config
                .scripts
                .iter()
                .position(|o| o.name == s.name && o.same_as(s))
            else {
                continue;
            };
            let (Some(state), Some(prev)) = (self.scripts.get_mut(i), old.scripts.get(j)) else {
                continue;
            };
            state.counter = prev.counter.clone();
            state.last_code = prev.last_code;
            if let (Some(new), Some(prev)) = (
                self.status.get_mut(&TrackerId::Script(i)),
                old.status.get(&TrackerId::Script(j)),
            ) {
                *new = *prev;
            }
        }
    }

    pub fn verdict(&self, slot: usize) -> Verdict {
        Verdict::of(&self.deps[slot], |id| {
            self.status.get(&id).copied().unwrap_or(Status::Up(true))
        })
    }

    /// Whether the instance's only FAULT is scripts that have not finished their first run:
    /// keepalived says "Entering FAULT STATE (init)" then but notifies nothing.
    pub fn only_pending(&self, slot: usize) -> bool {
        let mut any = false;
        for d in &self.deps[slot] {
            let status = self.status.get(&d.id).copied().unwrap_or(Status::Up(true));
            if d.contribution(status) == crate::track::Contribution::Fault {
                if status != Status::Pending {
                    return false;
                }
                any = true;
            }
        }
        any
    }

    /// keepalived's start-up line for an instance held in FAULT by a tracker (none for
    /// scripts still pending).
    pub fn startup_fault_line(&self, slot: usize, name: &str) -> Option<String> {
        if self.only_pending(slot) {
            return None;
        }
        let v = self.verdict(slot);
        let culprit = v.fault?;
        let dep = self.deps[slot].iter().find(|d| d.name == culprit)?;
        Some(match (dep.id, self.status.get(&dep.id)) {
            (TrackerId::Script(_), _) => {
                format!("({name}): entering FAULT state due to script {culprit}")
            }
            (TrackerId::Interface(_), _) => {
                format!("({name}): entering FAULT state (interface {culprit} down)")
            }
            (TrackerId::File(_), Some(Status::Value(v))) => {
                format!("({name}): entering FAULT state (tracked file {culprit} has status {v})")
            }
            (TrackerId::Process(_), _) => format!(
                "({name}) entering FAULT state (tracked process {culprit} quorum not achieved)"
            ),
            _ => format!("({name}) entering FAULT state"),
        })
    }

    /// Records an update; returns the instances whose verdict may have changed.
    pub fn update(&mut self, u: Update) -> Vec<usize> {
        let id = match u {
            Update::Script { index, outcome } => {
                let Some(s) = self.scripts.get_mut(index) else {
                    return Vec::new();
                };
                // A run the host could not start (out of memory or processes) checked
                // nothing: the last result stands, rather than a failover for a script that
                // never ran. It is tried again at the next interval.
                if let Outcome::NoResources(e) = &outcome {
                    if !s.starved {
                        warn!(
                            "VRRP_Script({}) could not be started ({e}): keeping its last result until it runs",
                            s.name
                        );
                        s.starved = true;
                    }
                    return Vec::new();
                }
                if std::mem::take(&mut s.starved) {
                    info!("VRRP_Script({}) runs again", s.name);
                }
                if let Some(code) = script::status_code(&outcome)
                    && code != s.last_code
                {
                    info!("Script `{}` now returning {code}", s.name);
                    s.last_code = code;
                }
                match s.counter.record(outcome == Outcome::Exited(0)) {
                    Some(true) => info!("{}", script::succeeded_line(&s.name)),
                    Some(false) => info!("{}", script::failed_line(&s.name, &outcome)),
                    None => return Vec::new(),
                }
                let id = TrackerId::Script(index);
                self.status
                    .insert(id, Status::Up(s.counter.up() == Some(true)));
                id
            }
            Update::File { index, value } => {
                let id = TrackerId::File(index);
                if self.status.get(&id) == Some(&Status::Value(value)) {
                    return Vec::new();
                }
                self.status.insert(id, Status::Value(value));
                id
            }
            Update::Process { index, ok, count } => {
                let name = self.process_names.get(index).map_or("?", String::as_str);
                info!(
                    "Quorum {} for tracked process {name} ({count} running)",
                    if ok { "gained" } else { "lost" }
                );
                let id = TrackerId::Process(index);
                self.status.insert(id, Status::Up(ok));
                id
            }
        };
        self.dependents(id)
    }

    /// Whether a tracked interface named `name` is known under another index than `index`
    /// (it was deleted and created again).
    pub fn tracks_other_index(&self, name: &str, index: u32) -> bool {
        self.interfaces
            .iter()
            .any(|(i, n)| n == name && *i != index)
    }

    /// A link changed: if it is a tracked interface, the instances that track it.
    pub fn link_change(&mut self, ifindex: u32, up: bool) -> Vec<usize> {
        let id = TrackerId::Interface(ifindex);
        let Some(name) = self.interfaces.get(&ifindex) else {
            return Vec::new();
        };
        if self.status.get(&id) == Some(&Status::Up(up)) {
            return Vec::new();
        }
        info!("Netlink reports {name} {}", if up { "up" } else { "down" });
        self.status.insert(id, Status::Up(up));
        self.dependents(id)
    }

    fn dependents(&self, id: TrackerId) -> Vec<usize> {
        (0..self.deps.len())
            .filter(|k| self.deps[*k].iter().any(|d| d.id == id))
            .collect()
    }

    /// The instance's trackers as the status command shows them.
    pub fn describe(&self, slot: usize) -> Vec<serde_json::Value> {
        self.deps[slot]
            .iter()
            .map(|d| {
                let status = self.status.get(&d.id).copied().unwrap_or(Status::Up(true));
                let (kind, shown) = match (d.id, status) {
                    (TrackerId::Script(_), Status::Pending) => ("script", "pending".to_string()),
                    (TrackerId::Script(_), Status::Up(u)) => {
                        ("script", if u { "ok" } else { "failed" }.to_string())
                    }
                    (TrackerId::Interface(_), Status::Up(u)) => {
                        ("interface", if u { "up" } else { "down" }.to_string())
                    }
                    (TrackerId::Process(_), Status::Up(u)) => (
                        "process",
                        if u { "quorum" } else { "no quorum" }.to_string(),
                    ),
                    (TrackerId::File(_), Status::Value(v)) => ("file", v.to_string()),
                    (_, s) => ("other", format!("{s:?}")),
                };
                let effect = match d.contribution(status) {
                    crate::track::Contribution::Fault => "fault".to_string(),
                    crate::track::Contribution::Weight(w) => format!("{w:+}"),
                };
                serde_json::json!({
                    "name": d.name,
                    "kind": kind,
                    "status": shown,
                    "weight": d.weight,
                    "reverse": d.reverse,
                    "effect": effect,
                })
            })
            .collect()
    }

    /// A `vrrp_script`'s status (None when no instance uses it, so it does not run).
    pub fn script_status(&self, index: usize) -> Option<Status> {
        self.status.get(&TrackerId::Script(index)).copied()
    }

    /// Names for the status of file trackers (log lines).
    pub fn file_name(&self, index: usize) -> &str {
        self.file_names.get(index).map_or("?", String::as_str)
    }
}

fn script_dep(config: &Config, t: &Tracked) -> Option<Dep> {
    let (i, s) = config
        .scripts
        .iter()
        .enumerate()
        .find(|(_, s)| s.name == t.name)?;
    Some(Dep {
        id: TrackerId::Script(i),
        name: t.name.clone(),
        weight: t.weight.unwrap_or(s.weight),
        reverse: t.reverse.unwrap_or(s.weight_reverse),
    })
}

fn file_dep(config: &Config, t: &Tracked) -> Option<Dep> {
    let (i, f) = config
        .track_files
        .iter()
        .enumerate()
        .find(|(_, f)| f.name == t.name)?;
    Some(Dep {
        id: TrackerId::File(i),
        name: t.name.clone(),
        weight: t.weight.unwrap_or(f.weight),
        reverse: t.reverse.unwrap_or(f.weight_reverse),
    })
}

fn process_dep(config: &Config, t: &Tracked) -> Option<Dep> {
    let (i, p) = config
        .track_processes
        .iter()
        .enumerate()
        .find(|(_, p)| p.name == t.name)?;
    Some(Dep {
        id: TrackerId::Process(i),
        name: t.name.clone(),
        weight: t.weight.unwrap_or(p.weight),
        reverse: t.reverse.unwrap_or(p.weight_reverse),
    })
}

async fn interface_dep(
    ic: &InstanceConfig,
    t: &Tracked,
    netlink: &Netlink,
    interfaces: &mut HashMap<u32, String>,
    status: &mut HashMap<TrackerId, Status>,
) -> Option<Dep> {
    match netlink.link(&t.name).await {
        Ok(link) => {
            interfaces.insert(link.index, link.name.clone());
            status.insert(TrackerId::Interface(link.index), Status::Up(link.up));
            Some(Dep {
                id: TrackerId::Interface(link.index),
                name: t.name.clone(),
                // keepalived clamps ±254 to ±253 for interfaces.
                weight: t.weight.unwrap_or(0).clamp(-253, 253),
                reverse: t.reverse.unwrap_or(false),
            })
        }
        Err(_) => {
            warn!("({}) tracked interface {} doesn't exist", ic.name, t.name);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, lexer::ReadOptions, validate::Unchecked};

    fn config(text: &str) -> Config {
        config::load_str(
            std::path::Path::new("t.conf"),
            text.as_bytes(),
            &ReadOptions::default(),
            &Unchecked,
        )
        .config
    }

    #[test]
    fn keepalived_a_tracker_line_keeps_the_scripts_reverse_unless_it_says_otherwise() {
        let c = config(
            "vrrp_script chk {\n script /bin/true\n weight -10 reverse\n}\n\
             vrrp_instance A {\n interface lo\n virtual_router_id 1\n track_script {\n chk weight -20\n }\n}\n\
             vrrp_instance B {\n interface lo\n virtual_router_id 2\n track_script {\n chk weight -20 noreverse\n }\n}\n\
             vrrp_instance C {\n interface lo\n virtual_router_id 3\n track_script {\n chk\n }\n}\n",
        );
        let dep = |k: usize| script_dep(&c, &c.instances[k].track_scripts[0]).unwrap();
        assert_eq!((dep(0).weight, dep(0).reverse), (-20, true));
        assert_eq!((dep(1).weight, dep(1).reverse), (-20, false));
        assert_eq!((dep(2).weight, dep(2).reverse), (-10, true));
    }
}
