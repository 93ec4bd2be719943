//! The model back to keepalived.conf text. Reading the printed text gives the same model
//! (locations aside): the round trip the tests check. Used to show an operator the effective
//! configuration in keepalived's own syntax.

use std::fmt::Write as _;

use super::model::*;

/// A word as keepalived reads it back: plain when it can be, in double quotes otherwise.
/// keepalived has no escapes inside quotes, so a word holding `"` cannot be printed (such words
/// cannot be read from a file either).
fn word(w: &str) -> String {
    let plain = !w.is_empty()
        && !w.contains(|c: char| {
            c.is_ascii_whitespace()
                || matches!(
                    c,
                    '{' | '}' | '!' | '#' | '"' | '\'' | '\\' | '$' | '~' | '@'
                )
        });
    if plain {
        w.to_string()
    } else {
        format!("\"{w}\"")
    }
}

/// A command line as one double-quoted word, the form keepalived splits back into the argv
/// (single quotes keep an argument with spaces together).
fn command(argv: &[String]) -> String {
    let parts: Vec<String> = argv
        .iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_ascii_whitespace()) {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect();
    format!("\"{}\"", parts.join(" "))
}

fn words(ws: &[String]) -> String {
    ws.iter().map(|w| word(w)).collect::<Vec<_>>().join(" ")
}

struct Out {
    text: String,
    depth: usize,
}

impl Out {
    fn line(&mut self, s: impl AsRef<str>) {
        for _ in 0..self.depth {
            self.text.push_str("    ");
        }
        self.text.push_str(s.as_ref());
        self.text.push('\n');
    }

    fn open(&mut self, s: impl AsRef<str>) {
        self.line(format!("{} {{", s.as_ref()));
        self.depth += 1;
    }

    fn close(&mut self) {
        self.depth -= 1;
        self.line("}");
    }

    fn opt(&mut self, kw: &str, v: &Option<impl ToString>) {
        if let Some(v) = v {
            self.line(format!("{kw} {}", word(&v.to_string())));
        }
    }

    fn flag(&mut self, kw: &str, on: bool) {
        if on {
            self.line(kw);
        }
    }

    fn other(&mut self, other: &Other) {
        for (kw, uses) in other {
            for args in uses {
                if args.is_empty() {
                    self.line(kw);
                } else {
                    self.line(format!("{kw} {}", words(args)));
                }
            }
        }
    }

    fn raw(&mut self, b: &RawBlock) {
        let head = if b.args.is_empty() {
            word(&b.keyword)
        } else {
            format!("{} {}", word(&b.keyword), words(&b.args))
        };
        if b.children.is_empty() {
            self.line(head);
        } else {
            self.open(head);
            for c in &b.children {
                self.raw(c);
            }
            self.close();
        }
    }

    fn script(&mut self, kw: &str, v: &Option<NotifyScript>) {
        if let Some(n) = v {
            let mut l = format!("{kw} {}", command(&n.argv));
            for w in n.user.iter().chain(&n.group) {
                l.push(' ');
                l.push_str(&word(w));
            }
            self.line(l)
        }
    }

    fn notify(&mut self, n: &Notify) {
        for (kw, v) in [
            ("notify_master", &n.master),
            ("notify_backup", &n.backup),
            ("notify_fault", &n.fault),
            ("notify_stop", &n.stop),
            ("notify_deleted", &n.deleted),
            ("notify_master_rx_lower_pri", &n.master_rx_lower_pri),
            ("notify", &n.generic),
        ] {
            match v {
                Some(n) if n.argv.is_empty() => self.line(kw),
                v => self.script(kw, v),
            }
        }
    }

    fn tracked(&mut self, kw: &str, list: &[Tracked]) {
        if list.is_empty() {
            return;
        }
        self.open(kw);
        for t in list {
            let mut l = word(&t.name);
            if let Some(w) = t.weight {
                let _ = write!(l, " weight {w}");
            }
            match t.reverse {
                Some(true) => l.push_str(" reverse"),
                Some(false) => l.push_str(" noreverse"),
                None => {}
            }
            self.line(l);
        }
        self.close();
    }

    fn addresses(&mut self, kw: &str, list: &[VirtualAddress]) {
        if list.is_empty() {
            return;
        }
        self.open(kw);
        for v in list {
            let mut l = format!("{}/{}", v.addr, v.prefix);
            for (k, val) in [
                ("brd", v.brd.map(|a| a.to_string())),
                ("dev", v.dev.clone()),
                ("scope", v.scope.clone()),
                ("label", v.label.clone()),
                ("peer", v.peer.map(|a| a.to_string())),
            ] {
                if let Some(val) = val {
                    let _ = write!(l, " {k} {}", word(&val));
                }
            }
            if v.no_track {
                l.push_str(" no_track");
            }
            match v.preferred_lft {
                Some(u32::MAX) => l.push_str(" preferred_lft forever"),
                Some(n) => {
                    let _ = write!(l, " preferred_lft {n}");
                }
                None => {}
            }
            for o in &v.other {
                let _ = write!(l, " {}", word(o));
            }
            self.line(l);
        }
        self.close();
    }
}

/// keepalived.conf text for `config`.
pub fn print(config: &Config) -> String {
    let mut o = Out {
        text: String::new(),
        depth: 0,
    };
    if let Some(name) = &config.instance {
        o.line(format!("instance {}", word(name)));
    }
    global_defs(&mut o, &config.global);
    if !config.linkbeat_interfaces.is_empty() {
        o.open("linkbeat_interfaces");
        for iface in &config.linkbeat_interfaces {
            o.line(word(&iface.name));
        }
        o.close();
    }
    for b in &config.bfd_instances {
        o.raw(b);
    }
    for s in &config.scripts {
        o.open(format!("vrrp_script {}", word(&s.name)));
        if !s.script.is_empty() {
            o.line(format!("script {}", command(&s.script)));
        }
        o.line(format!("interval {}", s.interval));
        o.opt("timeout", &s.timeout);
        o.line(format!(
            "weight {}{}",
            s.weight,
            if s.weight_reverse { " reverse" } else { "" }
        ));
        o.line(format!("rise {}", s.rise));
        o.line(format!("fall {}", s.fall));
        o.flag("init_fail", s.init_fail);
        if let Some(user) = &s.user {
            o.line(format!(
                "user {}{}",
                word(user),
                s.group
                    .as_ref()
                    .map_or(String::new(), |g| format!(" {}", word(g)))
            ));
        }
        o.close();
    }
    for t in &config.track_files {
        o.open(format!("vrrp_track_file {}", word(&t.name)));
        o.opt("file", &t.file);
        o.line(format!(
            "weight {}{}",
            t.weight,
            if t.weight_reverse { " reverse" } else { "" }
        ));
        if let Some((value, overwrite)) = t.init_file {
            o.line(format!(
                "init_file {value}{}",
                if overwrite { " overwrite" } else { "" }
            ));
        }
        o.close();
    }
    for t in &config.track_processes {
        o.open(format!("vrrp_track_process {}", word(&t.name)));
        if !t.process.is_empty() {
            o.line(format!("process {}", words(&t.process)));
        }
        o.line(format!(
            "weight {}{}",
            t.weight,
            if t.weight_reverse { " reverse" } else { "" }
        ));
        o.line(format!("quorum {}", t.quorum));
        o.opt("quorum_max", &t.quorum_max);
        o.opt("delay", &t.delay);
        o.other(&t.other);
        o.close();
    }
    for i in &config.instances {
        instance(&mut o, i);
    }
    for g in &config.sync_groups {
        o.open(format!("vrrp_sync_group {}", word(&g.name)));
        o.open("group");
        for m in &g.members {
            o.line(word(m));
        }
        o.close();
        o.tracked("track_script", &g.track_scripts);
        o.tracked("track_interface", &g.track_interfaces);
        o.tracked("track_file", &g.track_files);
        o.tracked("track_process", &g.track_processes);
        o.tracked("track_bfd", &g.track_bfds);
        o.notify(&g.notify);
        o.flag("smtp_alert", g.smtp_alert);
        o.flag("sync_group_tracking_weight", g.sync_group_tracking_weight);
        o.other(&g.other);
        o.close();
    }
    if let Some(ssl) = &config.ssl {
        o.open("SSL");
        o.opt("password", &ssl.password);
        o.opt("ca", &ssl.ca);
        o.opt("certificate", &ssl.certificate);
        o.opt("key", &ssl.key);
        o.close();
    }
    for g in &config.virtual_server_groups {
        o.raw(g);
    }
    for vs in &config.virtual_servers {
        o.open(format!("virtual_server {}", words(&vs.address)));
        for b in vs.other.iter().chain(&vs.real_servers) {
            o.raw(b);
        }
        o.close();
    }
    o.text
}

fn global_defs(o: &mut Out, g: &GlobalDefs) {
    o.open("global_defs");
    o.opt("router_id", &g.router_id);
    if !g.notification_email.is_empty() {
        o.open("notification_email");
        for e in &g.notification_email {
            o.line(word(e));
        }
        o.close();
    }
    o.opt("notification_email_from", &g.notification_email_from);
    if let Some(s) = &g.smtp_server {
        o.line(format!("smtp_server {} {}", word(&s.host), s.port));
    }
    o.opt("smtp_helo_name", &g.smtp_helo_name);
    o.line(format!("smtp_connect_timeout {}", g.smtp_connect_timeout));
    // Written as read: `smtp_alert false` differs from no smtp_alert (a real server's alerts).
    match g.smtp_alert {
        Some(true) => o.line("smtp_alert"),
        Some(false) => o.line("smtp_alert false"),
        None => {}
    }
    o.flag("smtp_alert_vrrp", g.smtp_alert_vrrp);
    if let Some(on) = g.smtp_alert_checker {
        o.line(format!("smtp_alert_checker {on}"));
    }
    o.flag("no_checker_emails", g.no_checker_emails);
    o.flag("checker_log_all_failures", g.checker_log_all_failures);
    if let Some(user) = &g.script_user {
        o.line(format!(
            "script_user {}{}",
            word(user),
            g.script_group
                .as_ref()
                .map_or(String::new(), |gr| format!(" {}", word(gr)))
        ));
    }
    o.flag("enable_script_security", g.enable_script_security);
    o.line(format!("vrrp_version {}", g.vrrp_version));
    o.flag("vrrp_strict", g.vrrp_strict);
    o.line(format!("vrrp_mcast_group4 {}", g.vrrp_mcast_group4));
    o.line(format!("vrrp_mcast_group6 {}", g.vrrp_mcast_group6));
    o.line(format!(
        "vrrp_garp_master_delay {}",
        g.vrrp_garp_master_delay
    ));
    o.line(format!(
        "vrrp_garp_master_repeat {}",
        g.vrrp_garp_master_repeat
    ));
    o.line(format!(
        "vrrp_garp_master_refresh {}",
        g.vrrp_garp_master_refresh
    ));
    o.line(format!(
        "vrrp_garp_master_refresh_repeat {}",
        g.vrrp_garp_master_refresh_repeat
    ));
    o.opt("vrrp_garp_lower_prio_delay", &g.vrrp_garp_lower_prio_delay);
    o.opt(
        "vrrp_garp_lower_prio_repeat",
        &g.vrrp_garp_lower_prio_repeat,
    );
    o.line(format!("vrrp_garp_interval {}", g.vrrp_garp_interval));
    o.line(format!("vrrp_gna_interval {}", g.vrrp_gna_interval));
    o.line(format!("vrrp_min_garp {}", g.vrrp_min_garp));
    o.line(format!(
        "vrrp_lower_prio_no_advert {}",
        g.vrrp_lower_prio_no_advert
    ));
    o.line(format!(
        "vrrp_higher_prio_send_advert {}",
        g.vrrp_higher_prio_send_advert
    ));
    o.flag("vrrp_check_unicast_src", g.vrrp_check_unicast_src);
    o.line(format!(
        "vrrp_skip_check_adv_addr {}",
        g.vrrp_skip_check_adv_addr
    ));
    o.line(format!(
        "vrrp_down_timer_adverts {}",
        g.vrrp_down_timer_adverts
    ));
    o.line(format!("vrrp_startup_delay {}", g.vrrp_startup_delay));
    o.opt("notify_fifo", &g.notify_fifo);
    o.script("notify_fifo_script", &g.notify_fifo_script);
    o.opt("vrrp_notify_fifo", &g.vrrp_notify_fifo);
    o.script("vrrp_notify_fifo_script", &g.vrrp_notify_fifo_script);
    o.other(&g.other);
    o.close();
}

fn instance(o: &mut Out, i: &Instance) {
    o.open(format!("vrrp_instance {}", word(&i.name)));
    o.line(match i.state {
        State::Master => "state MASTER",
        State::Backup => "state BACKUP",
    });
    o.opt("interface", &i.interface);
    o.opt("virtual_router_id", &i.virtual_router_id);
    if i.priority_set {
        o.line(format!("priority {}", i.priority));
    }
    o.line(format!("version {}", i.version));
    o.opt("down_timer_adverts", &i.down_timer_adverts);
    o.opt("lower_prio_no_advert", &i.lower_prio_no_advert);
    o.opt("higher_prio_send_advert", &i.higher_prio_send_advert);
    o.line(format!("advert_int {}", f64::from(i.advert_int_cs) / 100.0));
    o.flag("nopreempt", i.nopreempt);
    o.line(format!("preempt_delay {}", i.preempt_delay));
    match &i.auth {
        Auth::None => {}
        Auth::Pass(p) | Auth::Ah(p) => {
            o.open("authentication");
            o.line(if matches!(i.auth, Auth::Pass(_)) {
                "auth_type PASS"
            } else {
                "auth_type AH"
            });
            o.line(format!("auth_pass {}", word(p)));
            o.close();
        }
    }
    o.addresses("virtual_ipaddress", &i.virtual_ipaddress);
    o.addresses("virtual_ipaddress_excluded", &i.virtual_ipaddress_excluded);
    for (kw, list) in [
        ("virtual_routes", &i.virtual_routes),
        ("virtual_rules", &i.virtual_rules),
    ] {
        if !list.is_empty() {
            o.open(kw);
            for b in list {
                o.raw(b);
            }
            o.close();
        }
    }
    o.tracked("track_interface", &i.track_interfaces);
    o.tracked("track_script", &i.track_scripts);
    o.tracked("track_file", &i.track_files);
    o.tracked("track_process", &i.track_processes);
    o.tracked("track_bfd", &i.track_bfds);
    o.flag("dont_track_primary", i.dont_track_primary);
    o.opt("mcast_src_ip", &i.mcast_src_ip);
    o.opt("unicast_src_ip", &i.unicast_src_ip);
    if !i.unicast_peers.is_empty() {
        o.open("unicast_peer");
        for p in &i.unicast_peers {
            let mut l = p.addr.to_string();
            if let Some(t) = p.min_ttl {
                let _ = write!(l, " min_ttl {t}");
            }
            if let Some(t) = p.max_ttl {
                let _ = write!(l, " max_ttl {t}");
            }
            o.line(l);
        }
        o.close();
    }
    if !i.allowed_peers.is_empty() {
        let addrs: Vec<String> = i.allowed_peers.iter().map(|a| a.to_string()).collect();
        o.line(format!("allowed_peers {}", addrs.join(" ")));
    }
    o.line(format!("unicast_ttl {}", i.unicast_ttl));
    o.opt("use_vmac", &i.use_vmac);
    o.flag("vmac_xmit_base", i.vmac_xmit_base);
    match i.accept {
        Some(true) => o.line("accept"),
        Some(false) => o.line("no_accept"),
        None => {}
    }
    o.opt("garp_master_delay", &i.garp_master_delay);
    o.opt("garp_master_repeat", &i.garp_master_repeat);
    o.opt("garp_master_refresh", &i.garp_master_refresh);
    o.opt("garp_master_refresh_repeat", &i.garp_master_refresh_repeat);
    o.opt("garp_lower_prio_delay", &i.garp_lower_prio_delay);
    o.opt("garp_lower_prio_repeat", &i.garp_lower_prio_repeat);
    o.notify(&i.notify);
    o.flag("smtp_alert", i.smtp_alert);
    o.opt("strict_mode", &i.strict_mode);
    o.opt("skip_check_adv_addr", &i.skip_check_adv_addr);
    o.flag("check_unicast_src", i.check_unicast_src);
    o.flag("v3_checksum_as_v2", i.v3_checksum_as_v2);
    o.other(&i.other);
    o.close();
}
