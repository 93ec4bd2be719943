//! `smtp_alert`: one mail per transition to `notification_email`, in keepalived's dialogue and
//! format (keepalived/core/smtp.c): HELO, MAIL FROM, RCPT TO each address, DATA, QUIT, every
//! reply awaited within `smtp_connect_timeout`.

use std::{net::SocketAddr, time::Duration};

use log::{info, warn};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::TcpStream,
};

#[derive(Clone, Debug, PartialEq)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub helo: String,
    pub from: String,
    pub to: Vec<String>,
    pub timeout: Duration,
    pub router_id: String,
    /// keepalived's -D: log the connection and the success.
    pub log_detail: bool,
}

/// keepalived's FMT_SMTP_HOST: `[ADDR]:PORT`.
fn shown(a: &SocketAddr) -> String {
    format!("[{}]:{}", a.ip(), a.port())
}

/// The `Date:` header: `%a, %d %b %Y %H:%M:%S %z`, local time.
fn date_header() -> String {
    crate::logging::local_time(c"%a, %d %b %Y %H:%M:%S %z")
}

/// The message as keepalived sends it after DATA (no dot-stuffing: the texts are ours).
pub fn message(smtp: &Smtp, subject: &str, body: &str, date: &str) -> String {
    format!(
        "Date: {date}\r\nFrom: {}\r\nSubject: {subject}\r\nX-Mailer: Keepalived\r\nTo: {}\r\n\r\n{body}\r\n\r\n.\r\n",
        smtp.from,
        smtp.to.join(", ")
    )
}

enum Failure {
    /// Already logged.
    Logged,
}

/// Sends one alert. Failures are logged as keepalived logs them; nothing is retried.
pub async fn send(smtp: &Smtp, subject: &str, body: &str) {
    let addr = match tokio::net::lookup_host((smtp.host.as_str(), smtp.port)).await {
        Ok(mut a) => match a.next() {
            Some(a) => a,
            None => return,
        },
        // keepalived: a failure before the connection is under way is silent.
        Err(_) => return,
    };
    let stream = match tokio::time::timeout(smtp.timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => {
            warn!("SMTP connection ERROR to {}.", shown(&addr));
            return;
        }
        Err(_) => {
            warn!(
                "Timeout opening connection to remote SMTP server {}.",
                shown(&addr)
            );
            return;
        }
    };
    if smtp.log_detail {
        info!("Remote SMTP server {} connected.", shown(&addr));
    }
    let _ = dialogue(smtp, stream, &addr, subject, body).await;
}

async fn dialogue(
    smtp: &Smtp,
    stream: TcpStream,
    addr: &SocketAddr,
    subject: &str,
    body: &str,
) -> Result<(), Failure> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let steps: Vec<(&str, String, u16)> = {
        let mut s = vec![
            ("HELO", format!("HELO {}\r\n", smtp.helo), 250),
            ("MAIL", format!("MAIL FROM:<{}>\r\n", smtp.from), 250),
        ];
        for to in &smtp.to {
            s.push(("RCPT", format!("RCPT TO:<{to}>\r\n"), 250));
        }
        s.push(("DATA", "DATA\r\n".into(), 354));
        s.push(("BODY", message(smtp, subject, body, &date_header()), 250));
        s
    };
    let code = reply(&mut rd, smtp.timeout, addr).await?;
    let mut ok = code == 220;
    if !ok {
        warn!(
            "Error processing (E)SMTP cmd on SMTP server {}. SMTP status code = {code}",
            shown(addr)
        );
    }
    if ok {
        for (name, text, want) in &steps {
            if wr.write_all(text.as_bytes()).await.is_err() {
                warn!("Cannot send data to remote SMTP server {}.", shown(addr));
                return Err(Failure::Logged);
            }
            let code = reply(&mut rd, smtp.timeout, addr).await?;
            if code != *want {
                warn!(
                    "Error processing {name} cmd on SMTP server {}. SMTP status code = {code}",
                    shown(addr)
                );
                ok = false;
                break;
            }
        }
    }
    if ok && smtp.log_detail {
        info!("SMTP alert successfully sent.");
    }
    let _ = wr.write_all(b"QUIT\r\n").await;
    let _ = reply(&mut rd, smtp.timeout, addr).await;
    Ok(())
}

type Reader = BufReader<tokio::net::tcp::OwnedReadHalf>;

/// The code of a reply: the last line's (continuation lines have '-' in column 4).
async fn reply(rd: &mut Reader, timeout: Duration, addr: &SocketAddr) -> Result<u16, Failure> {
    loop {
        let mut line = String::new();
        // keepalived reads into a fixed buffer: a reply line longer than this is cut, and a
        // server streaming junk cannot make us hold more.
        let mut limited = tokio::io::AsyncReadExt::take(&mut *rd, 1024);
        match tokio::time::timeout(timeout, limited.read_line(&mut line)).await {
            Err(_) => {
                warn!(
                    "Timeout reading data to remote SMTP server {}.",
                    shown(addr)
                );
                return Err(Failure::Logged);
            }
            Ok(Err(_)) => {
                warn!(
                    "Error reading data from remote SMTP server {}.",
                    shown(addr)
                );
                return Err(Failure::Logged);
            }
            Ok(Ok(0)) => {
                warn!(
                    "Remote SMTP server {} has closed the connection.",
                    shown(addr)
                );
                return Err(Failure::Logged);
            }
            Ok(Ok(_)) => {}
        }
        if line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        return Ok(line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalived_message_format() {
        let smtp = Smtp {
            host: "localhost".into(),
            port: 25,
            helo: "r1".into(),
            from: "keepalived@r1".into(),
            to: vec!["a@x".into(), "b@x".into()],
            timeout: Duration::from_secs(30),
            router_id: "LVS_DEVEL".into(),
            log_detail: false,
        };
        assert_eq!(
            message(
                &smtp,
                "[LVS_DEVEL] VRRP Instance VI_1 - Entering MASTER state",
                "=> VRRP Instance is now owning VRRP VIPs <=",
                "Sun, 22 Nov 2026 08:00:00 +0000"
            ),
            "Date: Sun, 22 Nov 2026 08:00:00 +0000\r\nFrom: keepalived@r1\r\nSubject: [LVS_DEVEL] VRRP Instance VI_1 - Entering MASTER state\r\nX-Mailer: Keepalived\r\nTo: a@x, b@x\r\n\r\n=> VRRP Instance is now owning VRRP VIPs <=\r\n\r\n.\r\n"
        );
        assert!(date_header().len() > 20);
    }
}
