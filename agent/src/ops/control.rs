//! The control socket: an abstract unix socket (`@vrrp-agent` by default), so every network
//! namespace has its own agent's and nothing lingers on disk. Only root peers are answered
//! (checked with SO_PEERCRED). One request per connection, one line, bounded; the answer is
//! JSON and the connection closes.

use std::{
    io::{self, Read as _, Write as _},
    os::linux::net::SocketAddrExt as _,
    time::Duration,
};

use log::warn;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};

use crate::io::runtime::Control;

/// The default name of the abstract socket.
pub const DEFAULT_SOCKET: &str = "vrrp-agent";
/// The longest request line read.
pub const MAX_REQUEST: u64 = 64;
/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest answer a client accepts.
const MAX_ANSWER: u64 = 64 << 20;

fn address(name: &str) -> io::Result<std::os::unix::net::SocketAddr> {
    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
}

/// Binds the socket (an agent already running in this namespace holds it: an error).
pub fn bind(name: &str) -> io::Result<UnixListener> {
    let std = std::os::unix::net::UnixListener::bind_addr(&address(name)?)?;
    std.set_nonblocking(true)?;
    UnixListener::from_std(std)
}

/// Serves requests until the runtime goes away.
pub async fn serve(listener: UnixListener, control: mpsc::UnboundedSender<Control>) {
    super::serve_bounded("control socket", listener, |stream| {
        answer(stream, control.clone())
    })
    .await;
}

async fn answer(stream: UnixStream, control: mpsc::UnboundedSender<Control>) -> io::Result<()> {
    let cred = stream.peer_cred()?;
    let (rd, mut wr) = stream.into_split();
    // The request is read (bounded) before anything is answered, so a refusal reaches the
    // client rather than a reset connection.
    let mut line = Vec::new();
    let mut rd = BufReader::new(rd.take(MAX_REQUEST));
    tokio::time::timeout(REQUEST_TIMEOUT, rd.read_until(b'\n', &mut line))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request"))??;
    if cred.uid() != 0 {
        warn!(
            "control socket: refused a request from uid {} (root only)",
            cred.uid()
        );
        wr.write_all(b"{\"error\":\"permission denied: root only\"}\n")
            .await?;
        return Ok(());
    }
    let reply: Value = match parse_request(&line) {
        Request::Status => {
            let (tx, rx) = oneshot::channel();
            if control.send(Control::Status(tx)).is_err() {
                return Ok(());
            }
            match rx.await {
                Ok(v) => v,
                Err(_) => return Ok(()),
            }
        }
        Request::Unknown(other) => {
            serde_json::json!({ "error": format!("unknown request {:?}", other) })
        }
    };
    let mut text = serde_json::to_vec(&reply).map_err(io::Error::other)?;
    text.push(b'\n');
    wr.write_all(&text).await
}

/// What a client asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Status,
    /// Anything else, as text (lossy), for the error answer.
    Unknown(String),
}

/// A request line as read from a client: any bytes (at most [`MAX_REQUEST`]), the newline
/// optional, surrounding whitespace ignored.
pub fn parse_request(line: &[u8]) -> Request {
    match line.trim_ascii() {
        b"status" => Request::Status,
        other => Request::Unknown(String::from_utf8_lossy(other).into_owned()),
    }
}

/// An answer as the client reads it: the status, or the agent's error.
pub fn parse_answer(buf: &[u8]) -> io::Result<Value> {
    let v: Value = serde_json::from_slice(buf).map_err(io::Error::other)?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            e.to_string(),
        ));
    }
    Ok(v)
}

/// The client side: asks the agent of this namespace for its status.
pub fn request_status(name: &str) -> io::Result<Value> {
    let mut s = std::os::unix::net::UnixStream::connect_addr(&address(name)?)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    // A refusal may close the socket before the request is written: read the answer anyway.
    let _ = s.write_all(b"status\n");
    let mut buf = Vec::new();
    s.take(MAX_ANSWER).read_to_end(&mut buf)?;
    parse_answer(&buf)
}

/// `vrrp-agent status` as a table.
pub fn render(v: &Value) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let s = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let _ = writeln!(t, "vrrp-agent {} (pid {})", s(&v["version"]), s(&v["pid"]));
    let _ = writeln!(
        t,
        "{:<12} {:<10} {:>4} {:<7} {:>5} {:>5} {:<16} {:>9}  VIPS",
        "INSTANCE", "INTERFACE", "VRID", "STATE", "PRIO", "EFF", "MASTER", "ADVERT"
    );
    for i in v["instances"].as_array().into_iter().flatten() {
        let age = i["last_advert_age_s"]
            .as_f64()
            .map_or("-".to_string(), |a| format!("{a:.1}s ago"));
        let vips: Vec<String> = i["vips"].as_array().into_iter().flatten().map(s).collect();
        let _ = writeln!(
            t,
            "{:<12} {:<10} {:>4} {:<7} {:>5} {:>5} {:<16} {:>9}  {}",
            s(&i["name"]),
            s(&i["interface"]),
            s(&i["vrid"]),
            s(&i["state"]),
            s(&i["priority"]),
            s(&i["effective_priority"]),
            s(&i["master"]),
            age,
            vips.join(" ")
        );
        for tr in i["trackers"].as_array().into_iter().flatten() {
            let _ = writeln!(
                t,
                "    {} {}: {} (weight {}, {})",
                s(&tr["kind"]),
                s(&tr["name"]),
                s(&tr["status"]),
                s(&tr["weight"]),
                s(&tr["effect"])
            );
        }
        let st = &i["stats"];
        let _ = writeln!(
            t,
            "    adverts received {} sent {}, became master {}, released {}",
            s(&st["advert_rcvd"]),
            s(&st["advert_sent"]),
            s(&st["become_master"]),
            s(&st["release_master"])
        );
        if let Some(x) = i["xdp_adverts"].as_object() {
            let parts: Vec<String> = x
                .iter()
                .filter(|(_, n)| n.as_u64() != Some(0))
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(
                t,
                "    XDP adverts: {}",
                if parts.is_empty() {
                    "none".into()
                } else {
                    parts.join(", ")
                }
            );
        }
    }
    // The virtual servers (LVS), each real server under its virtual server.
    for vs in v["virtual_servers"].as_array().into_iter().flatten() {
        let addresses: Vec<String> = vs["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        let ipvs = vs["backend"].as_str() == Some("ipvs");
        let _ = writeln!(
            t,
            "VS {} ({}{}{}): {}",
            s(&vs["service"]),
            s(&vs["algo"]),
            if ipvs { ", by IPVS" } else { "" },
            if vs["follows_vip"].as_bool() == Some(true) {
                ", while this node holds the VIP"
            } else {
                ""
            },
            addresses.join(" ")
        );
        for r in vs["real_servers"].as_array().into_iter().flatten() {
            let open = match (r["open_flows"].as_u64(), r["active_connections"].as_u64()) {
                (Some(n), _) => format!(", {n} open flows"),
                (None, Some(n)) => format!(", {n} active connections"),
                (None, None) => String::new(),
            };
            // IPVS finds the server's MAC itself.
            let mac = if ipvs {
                String::new()
            } else {
                format!(", MAC {}", s(&r["mac"]))
            };
            let _ = writeln!(
                t,
                "    {} {} weight {}: {}, {}{mac}; {} packets, {} bytes{open}",
                super::host_port(&s(&r["address"]), &s(&r["port"])),
                s(&r["forwarding"]),
                s(&r["weight"]),
                if r["alive"].as_bool() == Some(true) {
                    "alive"
                } else {
                    "down"
                },
                if r["serving"].as_bool() == Some(true) {
                    "in the schedule"
                } else {
                    "not in the schedule"
                },
                s(&r["packets"]),
                s(&r["bytes"]),
            );
        }
    }
    // Indexing a `Value` gives Null for a missing key; indexing the `Map` that `as_object`
    // returns panics instead (the status fuzz target found this), so only `Value`s are indexed.
    match &v["xdp"] {
        x if !x.is_object() => {
            let _ = writeln!(t, "XDP: not loaded");
        }
        x => {
            let modes: Vec<String> = x["attachments"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| format!("{} {}", s(&a["interface"]), s(&a["mode"])))
                .collect();
            let _ = writeln!(t, "XDP: {}", modes.join(", "));
            if let Some(c) = x["counters"].as_object() {
                let parts: Vec<String> = c
                    .iter()
                    .filter(|(_, n)| n.as_u64() != Some(0))
                    .map(|(k, n)| format!("{k}={n}"))
                    .collect();
                let _ = writeln!(t, "XDP counters: {}", parts.join(" "));
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_word_status_asks_for_the_status() {
        for ok in [&b"status\n"[..], b"status", b"  status \r\n"] {
            assert_eq!(parse_request(ok), Request::Status);
        }
        assert_eq!(
            parse_request(b"stat\xffus\n"),
            Request::Unknown("stat\u{fffd}us".into())
        );
        assert_eq!(parse_request(b""), Request::Unknown(String::new()));
        assert!(parse_answer(b"{\"error\":\"permission denied: root only\"}\n").is_err());
        assert!(parse_answer(b"not json").is_err());
        assert!(parse_answer(b"{\"instances\":[]}").is_ok());
    }

    #[test]
    fn any_answer_renders_without_a_panic() {
        // The status fuzz target's crash: an "xdp" object without "attachments".
        for answer in [
            &b"{\"xdp\":{\"\":{}}}"[..],
            b"{\"xdp\":{}}",
            b"{\"xdp\":{\"attachments\":7,\"counters\":[]}}",
            b"{\"instances\":[{\"xdp_adverts\":{},\"stats\":3}]}",
            b"[]",
            b"7",
        ] {
            let v = parse_answer(answer).unwrap();
            let text = render(&v);
            assert!(text.starts_with("vrrp-agent "), "{text}");
        }
        let v = parse_answer(b"{\"xdp\":{}}").unwrap();
        assert!(render(&v).contains("XDP: \n"));
        let v = parse_answer(b"{}").unwrap();
        assert!(render(&v).contains("XDP: not loaded"));
    }

    #[test]
    fn virtual_servers_and_their_real_servers_are_in_the_table() {
        let answer = br#"{"virtual_servers":[{"service":"[192.168.11.200]:tcp:80","algo":"rr","follows_vip":true,
            "addresses":["192.168.11.200:80"],"real_servers":[
            {"address":"192.168.11.113","port":80,"forwarding":"DR","weight":1,"alive":true,"mac":"02:00:00:00:00:13","serving":true,"open_flows":null,"packets":12,"bytes":3456},
            {"address":"192.168.11.114","port":80,"forwarding":"TUN","weight":0,"alive":false,"mac":null,"serving":false,"open_flows":2,"packets":0,"bytes":0}]}]}"#;
        let text = render(&parse_answer(answer).unwrap());
        for line in [
            "VS [192.168.11.200]:tcp:80 (rr, while this node holds the VIP): 192.168.11.200:80\n",
            "    192.168.11.113:80 DR weight 1: alive, in the schedule, MAC 02:00:00:00:00:13; 12 packets, 3456 bytes\n",
            "    192.168.11.114:80 TUN weight 0: down, not in the schedule, MAC -; 0 packets, 0 bytes, 2 open flows\n",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
    }
}
