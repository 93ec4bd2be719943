//! A minimal SMTP server in a lab host's namespace: accepts every mail and keeps its
//! Subject line and body, in order (the agent's `smtp_alert` mails).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::TcpListener,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::routers::VrrpLab;

/// One mail: its Subject and its body (the lines after the headers, joined by `\n`).
pub type Mail = (String, String);

pub struct SmtpServer {
    mails: Arc<Mutex<Vec<Mail>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl SmtpServer {
    /// Listening on 127.0.0.1:`port` in `host`'s namespace when it returns.
    pub fn start(lab: &VrrpLab, host: &str, port: u16) -> SmtpServer {
        let mails = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, st) = (mails.clone(), stop.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = lab
            .lab
            .host(host)
            .ns
            .thread(move || {
                let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
                l.set_nonblocking(true).unwrap();
                ready_tx.send(()).unwrap();
                while !st.load(Ordering::Relaxed) {
                    let Ok((c, _)) = l.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut w = c.try_clone().unwrap();
                    let mut r = BufReader::new(c);
                    let _ = w.write_all(b"220 lab ESMTP\r\n");
                    let mut line = String::new();
                    while r.read_line(&mut line).unwrap_or(0) > 0 {
                        let cmd = line.to_ascii_uppercase();
                        if cmd.starts_with("DATA") {
                            let _ = w.write_all(b"354 go ahead\r\n");
                            let (mut subject, mut body, mut in_body) =
                                (String::new(), Vec::new(), false);
                            loop {
                                line.clear();
                                if r.read_line(&mut line).unwrap_or(0) == 0 || line == ".\r\n" {
                                    break;
                                }
                                let text = line.trim_end();
                                if in_body {
                                    if !text.is_empty() {
                                        body.push(text.to_string());
                                    }
                                } else if text.is_empty() {
                                    in_body = true;
                                } else if let Some(sub) = text.strip_prefix("Subject: ") {
                                    subject = sub.to_string();
                                }
                            }
                            m.lock().unwrap().push((subject, body.join("\n")));
                            let _ = w.write_all(b"250 queued\r\n");
                        } else if cmd.starts_with("QUIT") {
                            let _ = w.write_all(b"221 bye\r\n");
                            break;
                        } else {
                            let _ = w.write_all(b"250 ok\r\n");
                        }
                        line.clear();
                    }
                }
            })
            .unwrap();
        ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        SmtpServer {
            mails,
            stop,
            thread: Some(thread),
        }
    }

    pub fn subjects(&self) -> Vec<String> {
        self.mails().into_iter().map(|m| m.0).collect()
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
