//! `--metrics-listen ADDR:PORT`: a Prometheus / OpenMetrics endpoint (off by default).
//! `GET /metrics` answers with the state of every instance and the kernel's counters, taken
//! from the runtime's snapshot at scrape time. Anything else gets 404. Requests are bounded
//! in size and time; the listener only ever serves this one read-only page.

use std::{io, net::SocketAddr, time::Duration};

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
};

use crate::io::runtime::Control;

const MAX_REQUEST: usize = 8192;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

type Labels = Vec<(String, String)>;

/// Serves scrapes until the runtime goes away.
pub async fn serve(listener: TcpListener, control: mpsc::UnboundedSender<Control>) {
    super::serve_bounded("metrics", listener, |stream| {
        answer(stream, control.clone())
    })
    .await;
}

pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

async fn answer(mut stream: TcpStream, control: mpsc::UnboundedSender<Control>) -> io::Result<()> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut n = 0;
    // The request head only (a scrape has no body).
    let head = tokio::time::timeout(REQUEST_TIMEOUT, async {
        loop {
            let k = stream.read(&mut buf[n..]).await?;
            if k == 0 {
                break;
            }
            n += k;
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") || n == buf.len() {
                break;
            }
        }
        Ok::<_, io::Error>(())
    })
    .await;
    if !matches!(head, Ok(Ok(()))) {
        return Ok(());
    }
    let line = buf[..n].split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if method != "GET" || (path != "/metrics" && !path.starts_with("/metrics?")) {
        let body = "not found: try /metrics\n";
        let resp = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return stream.write_all(resp.as_bytes()).await;
    }
    let (tx, rx) = oneshot::channel();
    if control.send(Control::Status(tx)).is_err() {
        return Ok(());
    }
    let Ok(snapshot) = rx.await else {
        return Ok(());
    };
    let body = render(&snapshot);
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// The OpenMetrics text for a runtime snapshot.
pub fn render(snapshot: &Value) -> String {
    let mut reg = Registry::with_prefix("vrrp_agent");
    let state = Family::<Labels, Gauge>::default();
    let prio = Family::<Labels, Gauge>::default();
    let eff = Family::<Labels, Gauge>::default();
    let transitions = Family::<Labels, Counter>::default();
    let sent = Family::<Labels, Counter>::default();
    let received = Family::<Labels, Counter>::default();
    let errors = Family::<Labels, Counter>::default();
    let age = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let xdp_adverts = Family::<Labels, Counter>::default();
    let xdp = Family::<Labels, Counter>::default();
    for i in snapshot["instances"].as_array().into_iter().flatten() {
        let name = text(&i["name"]);
        let iface = text(&i["interface"]);
        let vrid = text(&i["vrid"]);
        let id = labels(&[("instance", &name), ("interface", &iface), ("vrid", &vrid)]);
        let current = text(&i["state"]).to_lowercase();
        for st in ["init", "backup", "master", "fault"] {
            let mut l = id.clone();
            l.push(("state".into(), st.into()));
            state.get_or_create(&l).set(i64::from(st == current));
        }
        prio.get_or_create(&id)
            .set(i["priority"].as_i64().unwrap_or(0));
        eff.get_or_create(&id)
            .set(i["effective_priority"].as_i64().unwrap_or(0));
        for (st, n) in i["transitions"].as_object().into_iter().flatten() {
            let mut l = id.clone();
            l.push(("state".into(), st.clone()));
            transitions
                .get_or_create(&l)
                .inc_by(n.as_u64().unwrap_or(0));
        }
        let st = &i["stats"];
        sent.get_or_create(&id)
            .inc_by(st["advert_sent"].as_u64().unwrap_or(0));
        received
            .get_or_create(&id)
            .inc_by(st["advert_rcvd"].as_u64().unwrap_or(0));
        for (reason, key) in [
            ("length", "packet_len_err"),
            ("ttl", "ip_ttl_err"),
            ("type", "invalid_type_rcvd"),
            ("interval", "advert_interval_err"),
            ("address_list", "addr_list_err"),
            ("auth_type", "invalid_authtype"),
            ("auth_type_mismatch", "authtype_mismatch"),
            ("auth_failure", "auth_failure"),
        ] {
            let mut l = id.clone();
            l.push(("reason".into(), reason.into()));
            errors
                .get_or_create(&l)
                .inc_by(st[key].as_u64().unwrap_or(0));
        }
        // The kernel's view first (the XDP program stamps every valid advert), else ours.
        if let Some(a) = i["kernel_last_advert_age_s"]
            .as_f64()
            .or_else(|| i["last_advert_age_s"].as_f64())
        {
            age.get_or_create(&id).set(a);
        }
        for (verdict, n) in i["xdp_adverts"].as_object().into_iter().flatten() {
            let mut l = id.clone();
            l.push(("verdict".into(), verdict.clone()));
            xdp_adverts
                .get_or_create(&l)
                .inc_by(n.as_u64().unwrap_or(0));
        }
    }
    // The virtual servers: per real server what the XDP balancer forwarded, whether it is in
    // the schedule, its open flows (lc/wlc); per virtual server the sums.
    let lb_packets = Family::<Labels, Counter>::default();
    let lb_bytes = Family::<Labels, Counter>::default();
    let vs_packets = Family::<Labels, Counter>::default();
    let vs_bytes = Family::<Labels, Counter>::default();
    let rs_up = Family::<Labels, Gauge>::default();
    let rs_open = Family::<Labels, Gauge>::default();
    let addr_packets = Family::<Labels, Counter>::default();
    let addr_bytes = Family::<Labels, Counter>::default();
    for vs in snapshot["virtual_servers"].as_array().into_iter().flatten() {
        let service = text(&vs["service"]);
        // Each address it answers on (a group's entries), counted apart by the kernel.
        for a in vs["address_traffic"].as_array().into_iter().flatten() {
            let l = labels(&[("service", &service), ("address", &text(&a["address"]))]);
            addr_packets
                .get_or_create(&l)
                .inc_by(a["packets"].as_u64().unwrap_or(0));
            addr_bytes
                .get_or_create(&l)
                .inc_by(a["bytes"].as_u64().unwrap_or(0));
        }
        let (mut packets, mut bytes) = (0u64, 0u64);
        for rs in vs["real_servers"].as_array().into_iter().flatten() {
            let real = super::host_port(&text(&rs["address"]), &text(&rs["port"]));
            let l = labels(&[("service", &service), ("real_server", &real)]);
            let (p, b) = (
                rs["packets"].as_u64().unwrap_or(0),
                rs["bytes"].as_u64().unwrap_or(0),
            );
            packets += p;
            bytes += b;
            lb_packets.get_or_create(&l).inc_by(p);
            lb_bytes.get_or_create(&l).inc_by(b);
            rs_up
                .get_or_create(&l)
                .set(i64::from(rs["serving"].as_bool().unwrap_or(false)));
            if let Some(n) = rs["open_flows"].as_u64() {
                rs_open.get_or_create(&l).set(n as i64);
            }
        }
        let l = labels(&[("service", &service)]);
        vs_packets.get_or_create(&l).inc_by(packets);
        vs_bytes.get_or_create(&l).inc_by(bytes);
    }
    reg.register(
        "lb_real_server_packets",
        "Packets the XDP balancer forwarded to the real server",
        lb_packets,
    );
    reg.register(
        "lb_real_server_bytes",
        "Bytes the XDP balancer forwarded to the real server",
        lb_bytes,
    );
    reg.register(
        "lb_virtual_server_packets",
        "Packets the XDP balancer forwarded for the virtual server",
        vs_packets,
    );
    reg.register(
        "lb_virtual_server_bytes",
        "Bytes the XDP balancer forwarded for the virtual server",
        vs_bytes,
    );
    reg.register(
        "lb_virtual_address_packets",
        "Packets the XDP balancer forwarded for the address (each of a group's entries apart)",
        addr_packets,
    );
    reg.register(
        "lb_virtual_address_bytes",
        "Bytes the XDP balancer forwarded for the address (each of a group's entries apart)",
        addr_bytes,
    );
    reg.register(
        "lb_real_server_in_schedule",
        "1 while the real server takes new flows",
        rs_up,
    );
    reg.register(
        "lb_real_server_open_flows",
        "Open flows on the real server (lc/wlc)",
        rs_open,
    );
    for (counter, n) in snapshot["xdp"]["counters"]
        .as_object()
        .into_iter()
        .flatten()
    {
        xdp.get_or_create(&labels(&[("counter", counter)]))
            .inc_by(n.as_u64().unwrap_or(0));
    }
    reg.register(
        "instance_state",
        "Instance state (1 for the current one)",
        state,
    );
    reg.register("instance_priority", "Configured priority", prio);
    reg.register(
        "instance_effective_priority",
        "Priority after tracking",
        eff,
    );
    reg.register(
        "instance_transitions",
        "Transitions into each state",
        transitions,
    );
    reg.register("adverts_sent", "VRRP adverts sent", sent);
    reg.register(
        "adverts_received",
        "VRRP adverts received for the instance (keepalived's count)",
        received,
    );
    reg.register(
        "advert_errors",
        "Received adverts rejected, by keepalived's reason",
        errors,
    );
    reg.register(
        "master_advert_age_seconds",
        "Time since the last valid advert for the VRID, as the kernel saw it",
        age,
    );
    reg.register(
        "xdp_vrrp_packets",
        "VRRP packets the XDP program judged for the VRID, by verdict",
        xdp_adverts,
    );
    reg.register(
        "xdp_frames",
        "Frames the XDP program handled, by outcome (drops by reason, ARP replies sent)",
        xdp,
    );
    let mut out = String::new();
    if encode(&mut out, &reg).is_err() {
        return String::new();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_renders_as_openmetrics() {
        let snap = serde_json::json!({
            "instances": [{
                "name": "VI_1", "interface": "eth0", "vrid": 51, "state": "MASTER",
                "priority": 100, "effective_priority": 102,
                "transitions": {"master": 1, "backup": 1, "fault": 0, "init": 0},
                "stats": {"advert_sent": 7, "advert_rcvd": 3, "ip_ttl_err": 2},
                "kernel_last_advert_age_s": 0.25,
                "xdp_adverts": {"valid": 3, "ttl": 5},
            }],
            "xdp": {"counters": {"arp_reply": 4}},
            "virtual_servers": [{
                "service": "[192.168.11.200]:tcp:80",
                "address_traffic": [
                    {"address": "192.168.11.200:80", "packets": 15, "bytes": 1110},
                ],
                "real_servers": [
                    {"address": "192.168.11.113", "port": 80, "packets": 10, "bytes": 740, "serving": true, "open_flows": 3},
                    {"address": "192.168.11.114", "port": 80, "packets": 5, "bytes": 370, "serving": false, "open_flows": null},
                ],
            }],
        });
        let t = render(&snap);
        for want in [
            "vrrp_agent_instance_state{instance=\"VI_1\",interface=\"eth0\",vrid=\"51\",state=\"master\"} 1",
            "vrrp_agent_instance_state{instance=\"VI_1\",interface=\"eth0\",vrid=\"51\",state=\"backup\"} 0",
            "vrrp_agent_instance_effective_priority{instance=\"VI_1\",interface=\"eth0\",vrid=\"51\"} 102",
            "vrrp_agent_instance_transitions_total{instance=\"VI_1\",interface=\"eth0\",vrid=\"51\",state=\"master\"} 1",
            "vrrp_agent_adverts_sent_total{instance=\"VI_1\",interface=\"eth0\",vrid=\"51\"} 7",
            "vrrp_agent_advert_errors_total{instance=\"VI_1\",interface=\"eth0\",vrid=\"51\",reason=\"ttl\"} 2",
            "vrrp_agent_master_advert_age_seconds{instance=\"VI_1\",interface=\"eth0\",vrid=\"51\"} 0.25",
            "vrrp_agent_xdp_vrrp_packets_total{instance=\"VI_1\",interface=\"eth0\",vrid=\"51\",verdict=\"ttl\"} 5",
            "vrrp_agent_xdp_frames_total{counter=\"arp_reply\"} 4",
            "vrrp_agent_lb_real_server_packets_total{service=\"[192.168.11.200]:tcp:80\",real_server=\"192.168.11.113:80\"} 10",
            "vrrp_agent_lb_virtual_server_bytes_total{service=\"[192.168.11.200]:tcp:80\"} 1110",
            "vrrp_agent_lb_virtual_address_packets_total{service=\"[192.168.11.200]:tcp:80\",address=\"192.168.11.200:80\"} 15",
            "vrrp_agent_lb_real_server_in_schedule{service=\"[192.168.11.200]:tcp:80\",real_server=\"192.168.11.114:80\"} 0",
            "vrrp_agent_lb_real_server_open_flows{service=\"[192.168.11.200]:tcp:80\",real_server=\"192.168.11.113:80\"} 3",
            "# EOF",
        ] {
            assert!(t.contains(want), "{want} missing:\n{t}");
        }
    }
}
