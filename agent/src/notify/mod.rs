//! Notifications: notify scripts, notify FIFOs and SMTP alerts for every instance and sync
//! group transition, with keepalived's argv, line format and mail texts.
//!
//! Delivery is ordered: each instance (and group) has its own queue, and its scripts run one
//! after another — the state's own script, then `notify` — each waited for before the next
//! transition's, so scripts see transitions in the order they happened and never overlap
//! (keepalived forks them all without waiting: keepalived#996, #1055). A slow script delays
//! only its own instance's later notifications. FIFO lines are written at once, in the order
//! of the transitions across all instances. Everything runs on the helper thread; the VRRP
//! loop only queues.

pub mod fifo;
pub mod smtp;

use std::time::Duration;

use log::warn;
use tokio::{
    runtime::Handle,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use crate::{
    config::model::{Config, Notify, NotifyScript},
    track::exec::{self, Outcome, RunAs},
};

/// What is notified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Master,
    Backup,
    Fault,
    Stop,
    Deleted,
    /// A master heard a lower priority (`notify_master_rx_lower_pri`; FIFO only otherwise).
    MasterRxLowerPri,
    /// The effective priority changed (`notify_priority_changes`; FIFO only).
    MasterPriority,
    BackupPriority,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Master,
        State::Backup,
        State::Fault,
        State::Stop,
        State::Deleted,
        State::MasterRxLowerPri,
        State::MasterPriority,
        State::BackupPriority,
    ];

    /// keepalived's word (argv of `notify`, FIFO lines).
    pub fn word(self) -> &'static str {
        match self {
            State::Master => "MASTER",
            State::Backup => "BACKUP",
            State::Fault => "FAULT",
            State::Stop => "STOP",
            State::Deleted => "DELETED",
            State::MasterRxLowerPri => "MASTER_RX_LOWER_PRI",
            State::MasterPriority => "MASTER_PRIORITY",
            State::BackupPriority => "BACKUP_PRIORITY",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Instance,
    Group,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Instance => "INSTANCE",
            Kind::Group => "GROUP",
        }
    }
}

/// A script and who it runs as.
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    pub argv: Vec<String>,
    pub run_as: RunAs,
}

/// An instance or a sync group, as notifications see it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Target {
    pub kind: Option<Kind>,
    pub name: String,
    pub master: Option<Script>,
    pub backup: Option<Script>,
    pub fault: Option<Script>,
    pub stop: Option<Script>,
    pub deleted: Option<Script>,
    pub master_rx_lower_pri: Option<Script>,
    pub generic: Option<Script>,
    /// `smtp_alert` resolved (instance, then global `smtp_alert_vrrp`, then `smtp_alert`).
    pub smtp_alert: bool,
    /// `no_email_faults`: no mail for FAULT.
    pub no_email_faults: bool,
}

impl Target {
    fn kind(&self) -> Kind {
        self.kind.unwrap_or(Kind::Instance)
    }

    /// The scripts one transition runs, in order, with their timeout.
    pub fn scripts(&self, state: State, priority: u8) -> Vec<(Vec<String>, RunAs)> {
        let own = match state {
            State::Master => &self.master,
            State::Backup => &self.backup,
            State::Fault => &self.fault,
            State::Stop => &self.stop,
            State::Deleted => &self.deleted,
            State::MasterRxLowerPri => &self.master_rx_lower_pri,
            State::MasterPriority | State::BackupPriority => return Vec::new(),
        };
        let mut out = Vec::new();
        if let Some(s) = own
            && !s.argv.is_empty()
        {
            out.push((s.argv.clone(), s.run_as));
        }
        // keepalived never calls `notify` for MASTER_RX_LOWER_PRI.
        if let Some(g) = &self.generic
            && state != State::MasterRxLowerPri
        {
            let mut argv = g.argv.clone();
            argv.push(self.kind().word().into());
            argv.push(self.name.clone());
            argv.push(state.word().into());
            argv.push(self.shown_priority(priority).to_string());
            out.push((argv, g.run_as));
        }
        out
    }

    /// keepalived reports a group's priority as 0.
    fn shown_priority(&self, priority: u8) -> u8 {
        match self.kind() {
            Kind::Instance => priority,
            Kind::Group => 0,
        }
    }

    /// keepalived's FIFO line: `INSTANCE "VI_1" MASTER 100`.
    pub fn fifo_line(&self, state: State, priority: u8) -> String {
        format!(
            "{} \"{}\" {} {}\n",
            self.kind().word(),
            self.name,
            state.word(),
            self.shown_priority(priority)
        )
    }

    /// A FIFO line as a reader takes it apart: (kind, name, state word, priority). The name
    /// runs from the first quote to the last, so a name holding quotes or spaces still reads
    /// back. keepalived's sample readers split on spaces; see `config` for the names allowed.
    pub fn parse_fifo_line(line: &str) -> Option<(Kind, &str, &str, u8)> {
        let line = line.strip_suffix('\n')?;
        let (kind, rest) = line.split_once(' ')?;
        let kind = match kind {
            "INSTANCE" => Kind::Instance,
            "GROUP" => Kind::Group,
            _ => return None,
        };
        let rest = rest.strip_prefix('"')?;
        let (name, tail) = rest.rsplit_once('"')?;
        let (state, priority) = tail.strip_prefix(' ')?.split_once(' ')?;
        Some((kind, name, state, priority.parse().ok()?))
    }

    /// keepalived's mail subject and body for a transition (None: no mail for it).
    pub fn mail(&self, router_id: &str, state: State) -> Option<(String, String)> {
        let (what, body) = match (self.kind(), state) {
            (_, State::MasterRxLowerPri | State::MasterPriority | State::BackupPriority) => {
                return None;
            }
            (Kind::Instance, State::Master) => (
                "Entering MASTER state",
                "=> VRRP Instance is now owning VRRP VIPs <=",
            ),
            (Kind::Instance, State::Backup) => (
                "Entering BACKUP state",
                "=> VRRP Instance is no longer owning VRRP VIPs <=",
            ),
            (Kind::Instance, State::Fault) => (
                "Entering FAULT state",
                "=> VRRP Instance is no longer owning VRRP VIPs <=",
            ),
            (Kind::Instance, State::Stop) => ("Stopping", "=> VRRP Instance stopping <="),
            (Kind::Instance, State::Deleted) => ("Deleted", "=> VRRP Deleted at reload <="),
            (Kind::Group, State::Master) => (
                "Entering MASTER state",
                "=> All VRRP group instances are now in MASTER state <=",
            ),
            (Kind::Group, State::Backup) => (
                "Entering BACKUP state",
                "=> All VRRP group instances are now in BACKUP state <=",
            ),
            (Kind::Group, State::Fault) => (
                "Entering FAULT state",
                "=> All VRRP group instances are now in FAULT state <=",
            ),
            (Kind::Group, State::Stop | State::Deleted) => (
                "Stopping",
                "=> All VRRP group instances are now stopping <=",
            ),
        };
        let kind = match self.kind() {
            Kind::Instance => "Instance",
            Kind::Group => "Group",
        };
        Some((
            format!("[{router_id}] VRRP {kind} {} - {what}", self.name),
            body.to_string(),
        ))
    }
}

/// One transition to notify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note {
    pub target: usize,
    pub state: State,
    pub priority: u8,
}

/// Everything the notifier needs, built from the configuration.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    pub targets: Vec<Target>,
    pub fifos: Vec<fifo::Spec>,
    pub smtp: Option<smtp::Smtp>,
}

impl Setup {
    /// Targets are the instances in configuration order, then the sync groups.
    pub fn from_config(config: &Config, log_detail: bool) -> Setup {
        let g = &config.global;
        let default = exec::default_run_as(g.script_user.as_deref(), g.script_group.as_deref());
        let script = |n: &Option<NotifyScript>| {
            let n = n.as_ref()?;
            let Some(run_as) = exec::run_as(n.user.as_deref(), n.group.as_deref(), default) else {
                warn!(
                    "Invalid user/group for notify script {} - ignoring",
                    n.argv.first().map_or("", String::as_str)
                );
                return None;
            };
            Some(Script {
                argv: exec::canonical(&n.argv),
                run_as,
            })
        };
        let target = |kind, name: &str, n: &Notify, smtp_alert: bool| Target {
            kind: Some(kind),
            name: name.to_string(),
            master: script(&n.master),
            backup: script(&n.backup),
            fault: script(&n.fault),
            stop: script(&n.stop),
            deleted: script(&n.deleted),
            master_rx_lower_pri: script(&n.master_rx_lower_pri),
            generic: script(&n.generic),
            // keepalived: the instance's smtp_alert, else smtp_alert_vrrp, else smtp_alert.
            smtp_alert: smtp_alert || g.smtp_alert_vrrp || g.smtp_alert == Some(true),
            no_email_faults: flag(&g.other, "no_email_faults").unwrap_or(false),
        };
        let mut targets: Vec<Target> = config
            .instances
            .iter()
            .map(|i| target(Kind::Instance, &i.name, &i.notify, i.smtp_alert))
            .collect();
        targets.extend(
            config
                .sync_groups
                .iter()
                .map(|sg| target(Kind::Group, &sg.name, &sg.notify, sg.smtp_alert)),
        );
        let fifo_script = |s: &Option<NotifyScript>| script(s);
        let mut fifos = Vec::new();
        if let Some(path) = &g.notify_fifo {
            fifos.push(fifo::Spec {
                path: path.clone(),
                script: fifo_script(&g.notify_fifo_script),
                prefix: "",
            });
        }
        if let Some(path) = &g.vrrp_notify_fifo {
            if g.notify_fifo.as_ref() == Some(path) {
                warn!(
                    "notify FIFO {path} has been specified for global and vrrp FIFO - ignoring vrrp FIFO"
                );
            } else {
                fifos.push(fifo::Spec {
                    path: path.clone(),
                    script: fifo_script(&g.vrrp_notify_fifo_script),
                    prefix: "vrrp_",
                });
            }
        }
        let smtp = smtp_of(g, log_detail);
        Setup {
            targets,
            fifos,
            smtp,
        }
    }
}

/// A boolean keyword kept in a block's `other` map: present alone is true, else its word.
pub fn flag(other: &crate::config::model::Other, keyword: &str) -> Option<bool> {
    let args = other.get(keyword)?.last()?;
    Some(match args.first().map(String::as_str) {
        None => true,
        Some(w) => matches!(w, "true" | "on" | "yes"),
    })
}

/// keepalived's `local_name`: the host name.
/// Where and how alerts are mailed, from `global_defs`: None unless there are both a server
/// and recipients (keepalived mails only then).
pub fn smtp_of(g: &crate::config::model::GlobalDefs, log_detail: bool) -> Option<smtp::Smtp> {
    let (Some(server), false) = (&g.smtp_server, g.notification_email.is_empty()) else {
        return None;
    };
    let host = local_name();
    Some(smtp::Smtp {
        host: server.host.clone(),
        port: server.port,
        helo: g.smtp_helo_name.clone().unwrap_or_else(|| host.clone()),
        from: g
            .notification_email_from
            .clone()
            .unwrap_or_else(|| format!("{}@{host}", login_name())),
        to: g.notification_email.clone(),
        timeout: Duration::from_secs(u64::from(g.smtp_connect_timeout.max(1))),
        router_id: g.router_id.clone().unwrap_or(host),
        log_detail,
    })
}

pub fn local_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname into our buffer.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return "[unknown]".into();
    }
    let n = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The login name of our uid (keepalived's default sender is `<login>@<host>`).
fn login_name() -> String {
    // SAFETY: getpwuid's result is read at once, on this thread.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() {
            return "root".into();
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

enum Msg {
    Note(Note),
    /// A reload's setup: targets are matched by kind and name; an unchanged one keeps its
    /// queue, a changed or new one gets a fresh queue, and changed FIFOs are reopened.
    Update(Setup),
    /// Finish every queue (bounded by the deadline), close the FIFOs, then answer.
    Drain(Duration, oneshot::Sender<()>),
}

/// The runtime's handle on the notifier (the work happens on the helper thread).
pub struct Notifier {
    tx: mpsc::UnboundedSender<Msg>,
}

impl Notifier {
    pub fn start(setup: Setup, helpers: &Handle) -> Notifier {
        let (tx, rx) = mpsc::unbounded_channel();
        helpers.spawn(dispatch(setup, rx));
        Notifier { tx }
    }

    /// A reload: later notifications use the new setup (targets in the new order; notes
    /// queued before this keep the old order).
    pub fn update(&self, setup: Setup) {
        let _ = self.tx.send(Msg::Update(setup));
    }

    /// Queues a notification; never waits.
    pub fn send(&self, note: Note) {
        let _ = self.tx.send(Msg::Note(note));
    }

    /// Waits until every queued notification has been delivered (at most `limit`), then closes
    /// the FIFOs and stops their scripts.
    pub async fn drain(&self, limit: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Drain(limit, tx)).is_ok() {
            // Bounded here too: the helper thread may be stuck in a read.
            let _ = tokio::time::timeout(limit + Duration::from_secs(3), rx).await;
        }
    }
}

/// How long one notify script is waited for before the queue moves on (the script is left
/// running): ordering must not let one hung script silence an instance for good.
pub const NOTIFY_WAIT: Duration = Duration::from_secs(60);

/// Runs one target's scripts, one transition after another.
async fn script_queue(target: Target, mut rx: mpsc::UnboundedReceiver<(State, u8)>) {
    while let Some((state, priority)) = rx.recv().await {
        for (argv, run_as) in target.scripts(state, priority) {
            if state == State::Stop {
                // keepalived gives STOP scripts a second, then kills their process group.
                if exec::run(&argv, run_as, Some(Duration::from_secs(1))).await == Outcome::TimedOut
                {
                    warn!("Notify script {} (STOP) killed after 1 second", argv[0]);
                }
                continue;
            }
            let mut child = match exec::spawn_detached(&argv, run_as) {
                Ok(c) => c,
                Err(e) => {
                    warn!("Error exec-ing command '{}', error: {e}", argv[0]);
                    continue;
                }
            };
            if tokio::time::timeout(NOTIFY_WAIT, child.wait())
                .await
                .is_err()
            {
                warn!(
                    "Notify script {} still running after {} s - not waiting for it",
                    argv[0],
                    NOTIFY_WAIT.as_secs()
                );
                // Reaped in the background when it ends.
                tokio::spawn(async move {
                    let _ = child.wait().await;
                });
            }
        }
    }
}

/// Sends one target's mails in order; keepalived mails a state only when it differs from the
/// last one mailed.
async fn mail_queue(target: Target, smtp: smtp::Smtp, mut rx: mpsc::UnboundedReceiver<State>) {
    let mut last: Option<State> = None;
    while let Some(state) = rx.recv().await {
        if last == Some(state) || (state == State::Fault && target.no_email_faults) {
            continue;
        }
        let Some((subject, body)) = target.mail(&smtp.router_id, state) else {
            continue;
        };
        last = Some(state);
        smtp::send(&smtp, &subject, &body).await;
    }
}

/// One target's queues: its scripts, and its mails when it sends any.
struct Queues {
    scripts: mpsc::UnboundedSender<(State, u8)>,
    mails: Option<mpsc::UnboundedSender<State>>,
}

impl Queues {
    fn start(t: &Target, smtp: &Option<smtp::Smtp>, tasks: &mut Vec<JoinHandle<()>>) -> Queues {
        let (tx, rx) = mpsc::unbounded_channel();
        tasks.push(tokio::spawn(script_queue(t.clone(), rx)));
        let mails = match (smtp, t.smtp_alert) {
            (Some(smtp), true) => {
                let (tx, rx) = mpsc::unbounded_channel();
                tasks.push(tokio::spawn(mail_queue(t.clone(), smtp.clone(), rx)));
                Some(tx)
            }
            _ => None,
        };
        Queues { scripts: tx, mails }
    }
}

async fn dispatch(mut setup: Setup, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut fifos = fifo::Fifos::open(&setup.fifos);
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut queues: Vec<Queues> = setup
        .targets
        .iter()
        .map(|t| Queues::start(t, &setup.smtp, &mut tasks))
        .collect();
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Note(n) => {
                let (Some(t), Some(q)) = (setup.targets.get(n.target), queues.get(n.target)) else {
                    continue;
                };
                fifos.write(&t.fifo_line(n.state, n.priority));
                let _ = q.scripts.send((n.state, n.priority));
                if let Some(m) = &q.mails {
                    let _ = m.send(n.state);
                }
            }
            Msg::Update(new) => {
                if new.fifos != setup.fifos {
                    // The old FIFOs' readers see EOF (their scripts are stopped), the new
                    // ones open.
                    fifos.close().await;
                    fifos = fifo::Fifos::open(&new.fifos);
                }
                let mut old: Vec<Option<Queues>> = queues.drain(..).map(Some).collect();
                for t in &new.targets {
                    // Unchanged: the same queue, so its order holds across the reload. Changed
                    // or new: a fresh one (the old one finishes what it has).
                    let same = setup
                        .targets
                        .iter()
                        .position(|o| o == t)
                        .filter(|_| new.smtp == setup.smtp)
                        .and_then(|k| old[k].take());
                    queues.push(same.unwrap_or_else(|| Queues::start(t, &new.smtp, &mut tasks)));
                }
                setup = new;
                // Queues of targets that are gone close here; their tasks finish what they have.
                drop(old);
                tasks.retain(|t| !t.is_finished());
            }
            Msg::Drain(limit, done) => {
                queues.clear();
                let all = futures_util::future::join_all(tasks.drain(..));
                if tokio::time::timeout(limit, all).await.is_err() {
                    warn!("notifications still running at exit - not waiting for them");
                }
                fifos.close().await;
                let _ = done.send(());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
