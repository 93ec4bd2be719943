//! Health checkers with keepalived's semantics (check_tcp.c, check_http.c): a real server
//! starts up; a failed check is tried again `retry` times, `delay_before_retry` apart, before
//! the server goes down; a down server is checked every `delay_loop` and its first success
//! brings it up. Each checker is one task on the helper runtime (thousands of real servers
//! are thousands of small tasks, not threads); what it decides goes to the VRRP loop, which
//! changes the data path.

use std::{net::SocketAddr, os::fd::AsRawFd, time::Duration};

use log::info;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    sync::mpsc,
};

use super::model::{Check, CheckKind};

/// What one checker reports after every check: whether its server is up by its rules, and
/// where the server's frames go as the kernel's tables have it (the check's connection made
/// the kernel resolve it), looked up here on the checker's task rather than on the VRRP loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The real server's index in the balancer.
    pub real: u32,
    /// Which of its checkers.
    pub checker: usize,
    pub up: bool,
    pub path: Option<Path>,
    /// This checker's share of the server's weight (keepalived's `cur_weight`): the
    /// server's weight is its configured one plus every checker's share, within
    /// 0..=i32::MAX. A `misc_dynamic` script's or a FILE_CHECK's; 0 for the others.
    pub share: i64,
}

/// How a check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    /// MISC_CHECK: the script exited with this code.
    Exited(i32),
    /// MISC_CHECK: killed by this signal.
    Signalled(i32),
    /// MISC_CHECK: killed at `misc_timeout`.
    TimedOut,
}

/// Why one check failed, as keepalived says it under `log_all_failures`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer within connect_timeout (TCP_CHECK, PING_CHECK).
    Timeout,
    /// Refused, unreachable or any other error.
    Failed,
    /// UDP_CHECK: a reply other than the one required.
    Mismatch,
    /// HTTP_GET / SSL_GET: keepalived's words for the step that failed (check_http.c's
    /// timeout_epilog callers).
    Http(&'static str),
}

impl Failure {
    /// keepalived's line for this failure of the checker `name` (FMT_CHK) of the virtual
    /// server `vs`.
    pub fn line(self, kind: &CheckKind, name: &str, vs: &str) -> String {
        match (self, kind) {
            (Failure::Http(what), _) => format!("{what} server {name}."),
            (Failure::Timeout, CheckKind::Ping) => {
                format!("ICMP connection to address {name} timeout.")
            }
            (_, CheckKind::Ping) => format!("ICMP connection to {name} of {vs} failed."),
            (Failure::Mismatch, _) => format!("UDP check to {name} reply data mismatch."),
            (_, CheckKind::Udp(_)) => format!("UDP connection to {name} failed."),
            (Failure::Timeout, _) => format!("TCP connection to {name} timeout."),
            _ => format!("TCP connection to {name} failed."),
        }
    }
}

/// The decision after a check (sans-IO: the runner does the checking and the waiting).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Up or down, when the server's state changed (or on the first check).
    pub now_up: Option<bool>,
    /// Under `log_all_failures`: the failure itself, said before `line`.
    pub detail: Option<String>,
    /// keepalived's line for it.
    pub line: Option<String>,
    /// Until the next check.
    pub wait: Duration,
}

impl Step {
    /// Nothing changed, nothing said, the next check after `delay_loop`.
    fn quiet(check: &Check) -> Step {
        Step {
            now_up: None,
            detail: None,
            line: None,
            wait: check.delay_loop,
        }
    }
}

/// One checker's state, keepalived's `is_up`, `has_run`, `retry_it` and `cur_weight`.
#[derive(Clone, Debug)]
pub struct State {
    pub is_up: bool,
    has_run: bool,
    retry_it: u32,
    /// HTTP_GET / SSL_GET: the url checked next (keepalived's `url_it`) and the one that
    /// took the server down (`failed_url`), checked alone until it answers.
    url_it: usize,
    failed_url: Option<usize>,
    /// `misc_dynamic`: the exit code's weight less the server's configured one (see
    /// [`Report::share`]); kept while the script fails within its retries, 0 once it is
    /// down or exits 0.
    pub share: i64,
}

impl Default for State {
    fn default() -> Self {
        // keepalived: a checker starts up (without `alpha`), so its server takes traffic
        // from the start.
        State {
            is_up: true,
            has_run: false,
            retry_it: 0,
            url_it: 0,
            failed_url: None,
            share: 0,
        }
    }
}

impl State {
    /// A checker's state when it starts: up unless `alpha`, and (as keepalived sets
    /// `retry_it` to `retry` at start) with no retries left, so one failure before the first
    /// success takes the server down. After a reload, `carried`: where it was.
    pub fn start(check: &Check, carried: Option<bool>) -> State {
        State {
            is_up: carried.unwrap_or(!check.alpha),
            has_run: carried.is_some(),
            retry_it: if carried.is_some() { 0 } else { check.retry },
            url_it: 0,
            failed_url: None,
            share: 0,
        }
    }

    /// HTTP_GET / SSL_GET: the url to check next (an index into the checker's urls).
    pub fn url(&self) -> usize {
        self.url_it
    }

    /// After HTTP_GET or SSL_GET checked its url [`Self::url`], as keepalived's check_http.c
    /// epilog: one url per check, the next after `delay_loop`, the server up once every url
    /// has answered in a row; a failure retried `retry` times `delay_before_retry` apart,
    /// then the server is down and only the failed url is checked (every `delay_loop`, at
    /// least `delay_before_retry`) until it answers; then all of them again from the first.
    /// With `fast_recovery`, a server that has not run or is down with no failed url is
    /// checked again at once. The error: the failure's line ([`Failure::line`]), said under
    /// `log_all_failures`.
    pub fn record_http(&mut self, check: &Check, name: &str, result: Result<(), String>) -> Step {
        let urls = match &check.kind {
            CheckKind::Http(urls) | CheckKind::Https(urls) => urls.as_slice(),
            _ => &[],
        };
        let fast_recovery = check.fast_recovery;
        let mut step = Step::quiet(check);
        match result {
            Ok(()) => {
                // http_handle_response: each url that answers while the server is down is
                // said, by the last test it passed.
                if !self.is_up
                    && let Some(url) = urls.get(self.url_it)
                {
                    let what = match (&url.regex, &url.digest) {
                        (Some(_), _) => "Regex match",
                        (None, Some(_)) => "MD5 digest",
                        (None, None) => "HTTP status code",
                    };
                    step.detail = Some(format!("{what} success to {name} url({})", url.path));
                }
                // REGISTER_CHECKER_NEW.
                self.url_it += 1;
                self.retry_it = 0;
                let done = self.url_it >= urls.len();
                if done && self.failed_url.is_none() {
                    if !self.is_up || !self.has_run {
                        step.line = Some(format!("Remote Web server {name} succeed on service."));
                        step.now_up = Some(true);
                        self.is_up = true;
                        self.has_run = true;
                    }
                    self.url_it = 0;
                } else if self.failed_url.is_some() {
                    // The failed url answers: every url again, from the first.
                    self.failed_url = None;
                    self.url_it = 0;
                }
                if !self.has_run {
                    self.retry_it = check.retry;
                }
            }
            Err(reason) if self.is_up || !self.has_run => {
                // timeout_epilog, then REGISTER_CHECKER_RETRY.
                if check.log_all_failures && !reason.is_empty() {
                    step.detail = Some(reason);
                }
                self.has_run = true;
                // (keepalived's unsigned counter wraps at a `retry` of 4294967295; this one
                // stays there: such a server is never taken down either way.)
                self.retry_it = self.retry_it.saturating_add(1);
                if self.retry_it > check.retry {
                    if self.is_up {
                        step.line = Some(if check.retry > 0 {
                            format!(
                                "HTTP_CHECK on service {name} failed after {} retries.",
                                self.retry_it - 1
                            )
                        } else {
                            format!("HTTP_CHECK on service {name} failed.")
                        });
                        step.now_up = Some(false);
                        self.is_up = false;
                    }
                    self.failed_url = Some(self.url_it);
                }
                step.wait = if self.failed_url.is_some() {
                    check.delay_before_retry.max(check.delay_loop)
                } else {
                    check.delay_before_retry
                };
            }
            // Down already (REGISTER_CHECKER_FAILED): this url again, after
            // delay_before_retry (at least delay_loop while a failed url is waited for).
            // keepalived may have no failed url here (another url failed after the failed
            // one answered, or after a reload): with fast_recovery it would then check again
            // at once, in a loop, so this url is taken as the failed one.
            Err(_) => {
                if fast_recovery {
                    self.failed_url.get_or_insert(self.url_it);
                }
                step.wait = if self.failed_url.is_some() {
                    check.delay_before_retry.max(check.delay_loop)
                } else {
                    check.delay_before_retry
                };
            }
        }
        if fast_recovery && (!self.has_run || (!self.is_up && self.failed_url.is_none())) {
            step.wait = Duration::ZERO;
        }
        step
    }

    /// After a check of `check` on server `name` (`[ADDR]:tcp:PORT`) that succeeded or not.
    pub fn record(&mut self, check: &Check, name: &str, ok: bool) -> Step {
        self.record_result(check, name, if ok { Ok(()) } else { Err(String::new()) })
    }

    /// As [`Self::record`], with why a check failed (SMTP_CHECK and DNS_CHECK say it).
    pub fn record_result(&mut self, check: &Check, name: &str, result: Result<(), String>) -> Step {
        self.record_for(check, (name, ""), result)
    }

    /// As [`Self::record_result`], for a server of virtual server `vs` (PING_CHECK names it).
    /// The error: SMTP_CHECK's and DNS_CHECK's reason; for the other kinds the failure's own
    /// line ([`Failure::line`]), said under `log_all_failures`.
    pub fn record_for(
        &mut self,
        check: &Check,
        (name, vs): (&str, &str),
        result: Result<(), String>,
    ) -> Step {
        let kind = match &check.kind {
            CheckKind::Tcp => "TCP_CHECK",
            CheckKind::Ping => "ICMP CHECK",
            CheckKind::Udp(_) => "UDP_CHECK",
            // `run_file` reports without lines.
            CheckKind::File(_) => "FILE_CHECK",
            // keepalived's SSL_GET shares HTTP_GET's code; both go url by url.
            CheckKind::Http(_) | CheckKind::Https(_) => {
                return self.record_http(check, name, result);
            }
            CheckKind::Smtp(_) => "SMTP_CHECK",
            CheckKind::Dns(_) => "DNS_CHECK",
            // `record_misc` has its own lines.
            CheckKind::Misc(_) => "MISC_CHECK",
        };
        let mut step = Step::quiet(check);
        match result {
            Ok(()) => {
                if !self.is_up || !self.has_run {
                    step.line = match check.kind {
                        CheckKind::Tcp | CheckKind::Misc(_) => {
                            Some(format!("TCP connection to {name} success."))
                        }
                        CheckKind::Http(_) | CheckKind::Https(..) => None,
                        CheckKind::Smtp(_) => {
                            Some(format!("Remote SMTP server {name} succeed on service."))
                        }
                        // keepalived's DNS_CHECK says nothing when it succeeds.
                        CheckKind::Dns(_) => None,
                        CheckKind::Ping => Some(format!("ICMP connection to {name} success.")),
                        CheckKind::Udp(_) => Some(format!("UDP connection to {name} success.")),
                        CheckKind::File(_) => None,
                    };
                    step.now_up = Some(true);
                    self.is_up = true;
                }
                self.retry_it = 0;
            }
            Err(reason) if self.is_up || !self.has_run => {
                // log_all_failures: each failure is said as it happens; TCP, UDP and PING
                // only while the checker is up, SMTP and DNS also before its first result
                // (keepalived's conditions). SMTP's and DNS's is their usual line, said early.
                let log_each = check.log_all_failures
                    && !reason.is_empty()
                    && (self.is_up || matches!(check.kind, CheckKind::Smtp(_) | CheckKind::Dns(_)));
                let retrying = self.retry_it < check.retry;
                match check.kind {
                    CheckKind::Smtp(_) if log_each && retrying => {
                        step.line = Some(format!("SMTP_CHECK {reason} server {name}"));
                    }
                    CheckKind::Dns(_) if log_each && retrying => {
                        step.line = Some(format!("DNS_CHECK ({name}) {reason}"));
                    }
                    // Their final line is the usual one, below.
                    CheckKind::Smtp(_) | CheckKind::Dns(_) => {}
                    _ if log_each => step.detail = Some(reason.clone()),
                    _ => {}
                }
                if retrying {
                    // Not yet: the same check again after delay_before_retry.
                    self.retry_it += 1;
                    step.wait = check.delay_before_retry;
                } else {
                    // keepalived counts retries only once the checker has run.
                    let counted = check.retry > 0 && self.has_run;
                    let retries = if counted {
                        format!(" after {} retries", self.retry_it)
                    } else {
                        String::new()
                    };
                    step.line = Some(match check.kind {
                        CheckKind::Smtp(_) => format!("SMTP_CHECK {reason} server {name}"),
                        CheckKind::Dns(_) => format!("DNS_CHECK ({name}) {reason}{retries}"),
                        CheckKind::Ping if counted => {
                            format!("{kind} on service {name} of {vs} failed{retries}.")
                        }
                        _ => format!("{kind} on service {name} failed{retries}."),
                    });
                    step.now_up = Some(false);
                    self.is_up = false;
                    self.retry_it = 0;
                }
            }
            // Down already: no retries, the next check after delay_loop (keepalived's
            // REGISTER_CHECKER_FAILED).
            Err(_) => {}
        }
        self.has_run = true;
        step
    }
}

impl State {
    /// After a MISC_CHECK of server `name` of VS `vs` by `script` ended as `outcome`, with
    /// keepalived's check_misc.c lines (`Misc check for [[10.0.0.2]:tcp:80 VS
    /// [10.0.0.1]:tcp:80] by [/bin/chk] failed after 1 retry (exited with status 1).`).
    pub fn record_misc(
        &mut self,
        check: &Check,
        dynamic: bool,
        (name, vs, script): (&str, &str, &str),
        outcome: Outcome,
    ) -> Step {
        let mut step = Step::quiet(check);
        let code = match outcome {
            Outcome::Exited(c) => Some(c),
            Outcome::Ok => Some(0),
            _ => None,
        };
        let ok = code.is_some_and(|c| c == 0 || (dynamic && (2..=255).contains(&c)));
        if ok {
            if dynamic {
                // keepalived: the weight is the exit code less 2 (0 keeps the configured one).
                self.share = code
                    .filter(|c| *c != 0)
                    .map_or(0, |c| i64::from(c - 2) - i64::from(check.weight));
            }
            if !self.is_up || !self.has_run {
                step.line = Some(format!(
                    "Misc check for [{name} VS {vs}] by [{script}] succeeded."
                ));
                step.now_up = Some(true);
                self.is_up = true;
            }
            self.retry_it = 0;
        } else if self.is_up || !self.has_run {
            let (what, reason) = match outcome {
                Outcome::TimedOut => ("timed out", String::new()),
                Outcome::Signalled(s) => ("failed", format!(" (due to signal {s})")),
                Outcome::Exited(c) => ("failed", format!(" (exited with status {c})")),
                Outcome::Ok | Outcome::Failed => ("failed", String::new()),
            };
            if self.retry_it < check.retry {
                self.retry_it += 1;
                step.wait = check.delay_before_retry;
                // log_all_failures: keepalived says each failure within the retries too.
                if check.log_all_failures {
                    let plural = if check.retry == 1 { "retry" } else { "retries" };
                    let how = if self.retry_it == 1 {
                        format!(", will do {} {plural}", check.retry)
                    } else {
                        format!(" on retry {}/{}", self.retry_it - 1, check.retry)
                    };
                    step.line = Some(format!(
                        "Misc check for [{name} VS {vs}] by [{script}] {what}{how}{reason}."
                    ));
                }
            } else {
                let how = match check.retry {
                    0 => " with retry disabled".to_string(),
                    1 => " after 1 retry".to_string(),
                    n => format!(" after {n} retries"),
                };
                step.line = Some(format!(
                    "Misc check for [{name} VS {vs}] by [{script}] {what}{how}{reason}."
                ));
                step.now_up = Some(false);
                self.is_up = false;
                self.retry_it = 0;
                self.share = 0;
            }
        }
        self.has_run = true;
        step
    }
}

/// One check: connect within `connect_timeout`; HTTP_GET then asks each url and wants its
/// status code, the whole exchange within `connect_timeout` per url as keepalived times it.
pub async fn check_once(check: &Check) -> Result<(), Failure> {
    let connect = || async {
        match tokio::time::timeout(check.connect_timeout, tcp_connect(check)).await {
            Err(_) => Err(Failure::Timeout),
            Ok(Err(_)) => Err(Failure::Failed),
            Ok(Ok(stream)) => Ok(stream),
        }
    };
    match &check.kind {
        // Run by `run` itself (their outcome is more than up or down).
        CheckKind::Misc(_) | CheckKind::Smtp(_) | CheckKind::Dns(_) | CheckKind::File(_) => {
            Err(Failure::Failed)
        }
        CheckKind::Ping => ping_once(check).await,
        CheckKind::Udp(u) => udp_once(check, u).await,
        CheckKind::Tcp => connect().await.map(drop),
        CheckKind::Http(urls) | CheckKind::Https(urls) => {
            for url in urls {
                http_url(check, url).await?;
            }
            Ok(())
        }
    }
}

/// keepalived's line for a url whose page's Content-Length is not the bytes that came
/// (`lengths`), said the first time the difference is seen (`last`: the url's last one, 0
/// when they matched).
fn length_mismatch(
    last: &mut i64,
    (length, received): (usize, usize),
    url: &super::model::Url,
    (real_name, vs_name): (&str, &str),
) -> Option<String> {
    // keepalived's ssize_t difference (a Content-Length past i64 wraps, never panics).
    let diff = (length as i64).wrapping_sub(received as i64);
    let seen = std::mem::replace(last, diff);
    (diff != 0 && seen != diff).then(|| {
        format!(
            "http_check for RS {real_name} VS {vs_name} url {}{}: content_length ({length}) does not match received bytes ({received})",
            url.own_virtualhost.as_deref().unwrap_or(""),
            url.path
        )
    })
}

/// HTTP_GET / SSL_GET of one url: connect (and the TLS handshake), ask, judge the answer.
pub async fn http_url(check: &Check, url: &super::model::Url) -> Result<(), Failure> {
    http_url_measured(check, url, &mut None).await
}

/// As [`http_url`], with `lengths` set once the status code is judged good (where
/// keepalived compares them): the page's `Content-Length` (the bytes received without one)
/// and the bytes received.
pub async fn http_url_measured(
    check: &Check,
    url: &super::model::Url,
    lengths: &mut Option<(usize, usize)>,
) -> Result<(), Failure> {
    let stream = match tokio::time::timeout(check.connect_timeout, tcp_connect(check)).await {
        Err(_) => return Err(Failure::Http("Timeout connecting")),
        Ok(Err(_)) => return Err(Failure::Http("Error connecting")),
        Ok(Ok(stream)) => stream,
    };
    match &check.kind {
        CheckKind::Https(_) => {
            let s = tls(stream, check, url.sni.as_deref()).await?;
            http_exchange(s, check, url, lengths).await
        }
        _ => http_exchange(stream, check, url, lengths).await,
    }
}

/// The checker's TCP connection from its `bindto` / `bind_port` / `bind_if` / `fwmark`.
async fn tcp_connect(check: &Check) -> std::io::Result<TcpStream> {
    let socket = if check.addr.is_ipv6() {
        tokio::net::TcpSocket::new_v6()?
    } else {
        tokio::net::TcpSocket::new_v4()?
    };
    let src = &check.source;
    originate(&socket, src)?;
    if src.addr.is_some() || src.port.is_some() {
        if src.port.is_some() {
            socket.set_reuseaddr(true)?;
        }
        socket.bind(SocketAddr::from((
            src.addr.unwrap_or(unspecified(check.addr)),
            src.port.unwrap_or(0),
        )))?;
    }
    socket
        .connect(SocketAddr::from((check.addr, check.port)))
        .await
}

/// The checker's UDP socket, bound as its connection options say.
async fn udp_socket(check: &Check) -> std::io::Result<tokio::net::UdpSocket> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let src = &check.source;
    let family = if check.addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe {
        OwnedFd::from_raw_fd(crate::io::socket::check(libc::socket(
            family,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        ))?)
    };
    // The device first (`bind_if`), then the address: a link-local `bindto` needs it.
    originate(&fd, src)?;
    crate::io::socket::bind_at(
        &fd,
        SocketAddr::from((
            src.addr.unwrap_or(unspecified(check.addr)),
            src.port.unwrap_or(0),
        )),
    )?;
    tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

/// The unspecified address of `addr`'s family (a checker's socket binds there without
/// `bindto`).
fn unspecified(addr: std::net::IpAddr) -> std::net::IpAddr {
    match addr {
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// `fwmark` (SO_MARK) and `bind_if` (SO_BINDTODEVICE) on a checker's socket. An interface
/// that does not exist fails the check, as keepalived's connect fails.
fn originate(fd: &impl AsRawFd, src: &super::model::Source) -> std::io::Result<()> {
    use crate::io::socket::{bind_to_device, setsockopt};
    if let Some(mark) = src.fwmark {
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_MARK, &mark)?;
    }
    if let Some(dev) = &src.interface {
        bind_to_device(fd, dev)?;
    }
    Ok(())
}

/// One url asked on an open connection (plain or TLS): its status code in the url's, with a
/// digest the page's MD5 the one wanted, and with a regex a match in the page.
async fn http_exchange<S>(
    mut stream: S,
    check: &Check,
    url: &super::model::Url,
    lengths: &mut Option<(usize, usize)>,
) -> Result<(), Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // keepalived's request_template: the `Host:` a virtualhost, else ADDR:PORT (an IPv6
    // address in brackets, RFC 2732, as its request_template_ipv6).
    use super::model::HttpProtocol;
    let host = url
        .virtualhost
        .clone()
        .unwrap_or_else(|| SocketAddr::from((check.addr, check.port)).to_string());
    let (minor, close) = match url.protocol {
        HttpProtocol::V10 => (0, ""),
        HttpProtocol::V10C => (0, "Connection: close\r\n"),
        HttpProtocol::V11 => (1, "Connection: close\r\n"),
    };
    let request = format!(
        "GET {} HTTP/1.{minor}\r\nUser-Agent: KeepAliveClient\r\n{close}Host: {host}\r\n\r\n",
        url.path
    );
    let t = check.connect_timeout;
    // keepalived's words for each step that fails (check_http.c).
    let fail = |what| Err(Failure::Http(what));
    match tokio::time::timeout(t, stream.write_all(request.as_bytes())).await {
        Err(_) => return fail("Timeout WEB write"),
        Ok(Err(_)) => return fail("Cannot send get request to"),
        Ok(Ok(())) => {}
    }
    // keepalived reads the answer to its end. Here: the headers always; with a digest or a
    // regex the body too (kept); without, the body is only counted, and only when the
    // headers give a Content-Length (keepalived compares them), so a server that keeps the
    // connection open after its headers is not waited for. Each read within connect_timeout,
    // as keepalived times them; at most MAX_PAGE in all, the server being no more trusted
    // than anything else.
    let whole = url.digest.is_some() || url.regex.is_some();
    // The headers, and under `whole` the body after them.
    let mut buf = Vec::with_capacity(512);
    let mut header_end: Option<usize> = None;
    let mut length: Option<usize> = None;
    let (mut total, mut counted, mut complete) = (0usize, 0usize, false);
    let mut chunk = [0u8; 4096];
    while (whole || header_end.is_none() || length.is_some()) && total < MAX_PAGE {
        let n = match tokio::time::timeout(t, stream.read(&mut chunk)).await {
            Ok(Ok(0)) => {
                complete = true;
                break;
            }
            Ok(Ok(n)) => n,
            // A TLS server that closes without close_notify has still sent its page.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                complete = true;
                break;
            }
            // keepalived's first read is http_response_thread's, the rest http_read_thread's.
            Err(_) if total == 0 => return fail("Timeout WEB read"),
            Err(_) => return fail("Timeout HTTP read"),
            Ok(Err(_)) => return fail("Read error with"),
        };
        total += n;
        if header_end.is_some() && !whole {
            counted += n;
            continue;
        }
        // Only the new bytes (and the three before them) are searched for the headers' end.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if header_end.is_none()
            && let Some(p) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n")
        {
            let end = from + p + 4;
            header_end = Some(end);
            length = content_length(&buf[..end]);
            if !whole {
                counted = buf.len() - end;
                buf.truncate(end);
            }
        }
    }
    if total == 0 {
        // keepalived's words, its trailing space too.
        return fail("Read, no data received from ");
    }
    if !status_code(&buf).is_some_and(|code| {
        url.status
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&code))
    }) {
        return fail("HTTP status code error to");
    }
    // keepalived's http_handle_response: a Content-Length other than the bytes that came is
    // reported (by the caller, once per difference), and the digest covers no more than it.
    // An answer cut at MAX_PAGE is not compared.
    let received = if whole {
        header_end.map_or(0, |e| buf.len() - e)
    } else {
        counted
    };
    *lengths = match length {
        Some(l) if complete => Some((l, received)),
        Some(_) => None,
        None => Some((received, received)),
    };
    // Then the digest, then the regex (keepalived's order).
    if let Some(want) = &url.digest
        && body_md5(&buf).as_deref() != Some(want.as_str())
    {
        return fail("MD5 digest error to");
    }
    match &url.regex {
        Some(re) if !body(&buf).is_some_and(|b| re.passes(b)) => fail("Regex match failed"),
        _ => Ok(()),
    }
}

/// The TLS session for SSL_GET, within connect_timeout. The server's certificate is not
/// checked (keepalived checks none without a `ca`); the handshake's signatures are.
/// SSL_GET's TLS context, shared by every SSL_GET checker as keepalived's one SSL_CTX (set by
/// the balancer from the `SSL` block when it starts).
static TLS: std::sync::RwLock<Option<std::sync::Arc<rustls::ClientConfig>>> =
    std::sync::RwLock::new(None);

/// Builds SSL_GET's TLS context from the `SSL` block, as keepalived's init_ssl_ctx: any TLS
/// version the library allows, the server's certificate not verified (keepalived never
/// checks it, `ca` or not), and with `certificate` and `key` the client certificate it
/// presents when the server asks. Err: keepalived's lines for a file it cannot load (then it
/// runs no checks at all).
pub fn set_tls(ssl: Option<&crate::config::model::Ssl>) -> Result<(), Vec<String>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    use std::sync::Arc;
    let fail = |what: &str| {
        let ssl = ssl.cloned();
        let field = |f: Option<String>| f.unwrap_or_else(|| "(null)".into());
        vec![
            format!("SSL error : Cant load {what} file..."),
            "Error Initialize SSL, ctx Instance".to_string(),
            format!(
                "  SSL  keyfile:{}",
                field(ssl.as_ref().and_then(|s| s.key.clone()))
            ),
            // keepalived logs the password itself; not here.
            format!(
                "  SSL password:{}",
                if ssl.as_ref().is_some_and(|s| s.password.is_some()) {
                    "(set)"
                } else {
                    "(null)"
                }
            ),
            format!(
                "  SSL   cafile:{}",
                field(ssl.as_ref().and_then(|s| s.ca.clone()))
            ),
            "Terminate...".to_string(),
        ]
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|_| vec!["SSL error: cannot create new SSL context".to_string()])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)));
    let chain = match ssl.and_then(|s| s.certificate.as_deref()) {
        Some(path) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect())
                .map_err(|_| fail("certificate"))?;
            if chain.is_empty() {
                return Err(fail("certificate"));
            }
            Some(chain)
        }
        None => None,
    };
    let key = match ssl.and_then(|s| s.key.as_deref()) {
        // Decrypted with the block's `password` where it is encrypted, as OpenSSL's password
        // callback does for keepalived; why it cannot be loaded is said under its line.
        Some(path) => Some(
            super::key::load(path, ssl.and_then(|s| s.password.as_deref())).map_err(|e| {
                let mut lines = fail("key");
                lines.insert(1, format!("  SSL key {path}: {e}"));
                lines
            })?,
        ),
        None => None,
    };
    if let Some(path) = ssl.and_then(|s| s.ca.as_deref()) {
        // Loaded as keepalived loads it (a bad file is fatal), and, as there, verifies nothing.
        let cas: Result<Vec<CertificateDer<'static>>, _> =
            CertificateDer::pem_file_iter(path).and_then(|c| c.collect());
        if !cas.is_ok_and(|c| !c.is_empty()) {
            return Err(fail("CA"));
        }
    }
    let config = match (chain, key) {
        // (rustls also refuses what OpenSSL would take: an X.509 v1 certificate, a key that
        // does not match it; said with keepalived's line for the key, and why.)
        (Some(chain), Some(key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            let mut lines = fail("key");
            lines.insert(1, format!("  SSL certificate and key: {e}"));
            lines
        })?,
        // Only one of them: nothing to present (keepalived would fail the handshake of a
        // server that asks).
        _ => builder.with_no_client_auth(),
    };
    if let Ok(mut tls) = TLS.write() {
        *tls = Some(Arc::new(config));
    }
    Ok(())
}

async fn tls(
    stream: TcpStream,
    check: &Check,
    sni: Option<&str>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
    const HANDSHAKE: Failure = Failure::Http("SSL handshake/communication error connecting to");
    let config = TLS.read().ok().and_then(|t| t.clone()).ok_or(HANDSHAKE)?;
    // No SNI for an address (rustls sends none), the virtualhost's name under enable_sni.
    let name = match sni.map(|n| rustls::pki_types::ServerName::try_from(n.to_string())) {
        Some(Ok(n)) => n,
        _ => rustls::pki_types::ServerName::IpAddress(check.addr.into()),
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(check.connect_timeout, connector.connect(name, stream)).await {
        Err(_) => Err(Failure::Http("Timeout connecting")),
        Ok(Err(_)) => Err(HANDSHAKE),
        Ok(Ok(s)) => Ok(s),
    }
}

/// keepalived's SSL_GET without a `ca`: any certificate; the handshake signatures are still
/// verified with the provider's algorithms.
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// keepalived's SMTP_CHECK dialogue: a 220 greeting, `HELO name` answered 250, `QUIT`; each
/// step within `connect_timeout`. The error is keepalived's wording of what went wrong.
pub async fn smtp_once(check: &Check, helo: &str) -> Result<(), String> {
    use tokio::io::AsyncBufReadExt as _;
    let t = check.connect_timeout;
    let stream = match tokio::time::timeout(t, tcp_connect(check)).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => return Err("Error connecting to".into()),
        Err(_) => return Err("Timeout connecting to".into()),
    };
    let mut stream = tokio::io::BufReader::new(stream);
    // One reply: its lines up to the last (`250-` continues, `250 ` ends), its code.
    async fn reply(
        s: &mut tokio::io::BufReader<TcpStream>,
        t: Duration,
    ) -> Result<Option<u16>, String> {
        let mut code = None;
        for _ in 0..64 {
            // A line of at most 512 bytes (RFC 5321's limit): a server is not trusted to end
            // its lines.
            let mut line = Vec::new();
            let mut limited = tokio::io::AsyncReadExt::take(&mut *s, 512);
            match tokio::time::timeout(t, limited.read_until(b'\n', &mut line)).await {
                Err(_) => return Err("Read timeout from".into()),
                Ok(Err(_)) | Ok(Ok(0)) => return Err("Read failure from".into()),
                Ok(Ok(_)) => {}
            }
            code = line
                .get(..3)
                .and_then(|c| std::str::from_utf8(c).ok()?.parse().ok());
            if line.get(3) != Some(&b'-') {
                return Ok(code);
            }
        }
        Ok(code)
    }
    if reply(&mut stream, t).await? != Some(220) {
        return Err("Bad greeting banner from".into());
    }
    async fn send(
        s: &mut tokio::io::BufReader<TcpStream>,
        line: &str,
        t: Duration,
    ) -> Result<(), String> {
        match tokio::time::timeout(t, s.get_mut().write_all(line.as_bytes())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err("Write failure to".into()),
            Err(_) => Err("Write timeout to".into()),
        }
    }
    send(&mut stream, &format!("HELO {helo}\r\n"), t).await?;
    if reply(&mut stream, t).await? != Some(250) {
        return Err("Bad HELO response from".into());
    }
    send(&mut stream, "QUIT\r\n", t).await?;
    // Whatever the server says to QUIT, it spoke SMTP.
    reply(&mut stream, t).await.map(|_| ())
}

/// A DNS query as keepalived's DNS_CHECK sends it: one question, recursion desired.
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(32);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // 1 question
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    q
}

/// keepalived's verdict on a DNS reply to query `id`: Ok for a response (QR) with rcode 0.
/// None: not the reply (too short, another id, a query): keep waiting.
pub fn dns_verdict(reply: &[u8], id: u16) -> Option<Result<(), String>> {
    if reply.len() < 12 || u16::from_be_bytes([reply[0], reply[1]]) != id {
        return None;
    }
    let flags = u16::from_be_bytes([reply[2], reply[3]]);
    if flags & 0x8000 == 0 {
        return None;
    }
    match flags & 0x000f {
        0 => Some(Ok(())),
        rcode => Some(Err(format!("read error occurred. (rcode = {rcode})"))),
    }
}

/// DNS_CHECK: the query over UDP to the server, its reply within `connect_timeout`.
pub async fn dns_once(check: &Check, q: &super::model::DnsQuery) -> Result<(), String> {
    let sock = udp_socket(check)
        .await
        .map_err(|_| "connection failure.".to_string())?;
    let id: u16 = rand_id();
    let query = dns_query(id, &q.name, q.qtype);
    sock.connect((check.addr, check.port))
        .await
        .map_err(|_| "connection error.".to_string())?;
    sock.send(&query)
        .await
        .map_err(|_| "failed to write socket.".to_string())?;
    let wait = async {
        let mut buf = [0u8; 1500];
        loop {
            let n = sock.recv(&mut buf).await.map_err(|e| {
                format!(
                    "failed to read socket; errno {} ({e})",
                    e.raw_os_error().unwrap_or(0)
                )
            })?;
            if let Some(v) = dns_verdict(&buf[..n], id) {
                return v;
            }
        }
    };
    match tokio::time::timeout(check.connect_timeout, wait).await {
        Ok(r) => r,
        Err(_) => Err("read timeout from socket".into()),
    }
}

/// PING_CHECK: an ICMP echo to the server and its reply within `connect_timeout`. On a raw
/// socket (the agent runs as root; keepalived opens an unprivileged ping socket and widens
/// `net.ipv4.ping_group_range` for it, which this leaves alone), connected to the server so
/// only its packets arrive, filtered to echo replies; the reply must carry this echo's
/// identifier and sequence number. The payload is keepalived's: 128 bytes of filler.
pub async fn ping_once(check: &Check) -> Result<(), Failure> {
    match tokio::time::timeout(check.connect_timeout, ping(check.addr, &check.source)).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Ok(true)) => Ok(()),
        Ok(_) => Err(Failure::Failed),
    }
}

async fn ping(addr: std::net::IpAddr, src: &super::model::Source) -> std::io::Result<bool> {
    use crate::io::socket::{bind_ip, check as cvt, connect_ip, setsockopt};
    use std::os::fd::{FromRawFd, OwnedFd};
    use tokio::io::{Interest, unix::AsyncFd};
    let v6 = addr.is_ipv6();
    let (family, proto) = if v6 {
        (libc::AF_INET6, libc::IPPROTO_ICMPV6)
    } else {
        (libc::AF_INET, libc::IPPROTO_ICMP)
    };
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe {
        OwnedFd::from_raw_fd(cvt(libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto,
        ))?)
    };
    // Everything but echo replies is filtered out in the kernel: ICMP_FILTER (1) blocks the
    // types whose bits are set; ICMPV6_FILTER (1) is a 256-bit set of blocked types, echo
    // reply being 129.
    if v6 {
        let mut blocked = [u32::MAX; 8];
        blocked[129 >> 5] &= !(1u32 << (129 & 31));
        setsockopt(&fd, libc::IPPROTO_ICMPV6, 1, &blocked)?;
    } else {
        setsockopt(&fd, libc::SOL_RAW, 1, &!(1u32 << 0))?;
    }
    originate(&fd, src)?;
    if let Some(from) = src.addr {
        bind_ip(&fd, from)?;
    }
    connect_ip(&fd, addr)?;
    let (id, seq) = (rand_id(), rand_id());
    // The kernel fills in an ICMPv6 checksum (it covers a pseudo-header only it knows).
    let echo = if v6 {
        icmp6_echo(id, seq, &super::model::filler(128))
    } else {
        icmp_echo(id, seq, &super::model::filler(128))
    };
    // SAFETY: echo is live for the call, its length passed with it.
    cvt(unsafe { libc::send(fd.as_raw_fd(), echo.as_ptr().cast(), echo.len(), 0) } as libc::c_int)?;
    // SAFETY: the OwnedFd stays open and the same until the AsyncFd drops it.
    let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    let mut buf = [0u8; 512];
    loop {
        let mut ready = fd.readable().await?;
        // SAFETY: buf is live and writable for its length.
        let n = match ready.try_io(|fd| {
            let n = unsafe {
                libc::recv(
                    fd.get_ref().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                )
            };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }) {
            Ok(r) => r?,
            Err(_would_block) => continue,
        };
        let reply = if v6 {
            is_echo6_reply(&buf[..n], id, seq)
        } else {
            is_echo_reply(&buf[..n], id, seq)
        };
        if reply {
            return Ok(true);
        }
    }
}

/// An ICMP echo request with its checksum.
pub fn icmp_echo(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    let sum = crate::vrrp::packet::internet_checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

/// An ICMPv6 echo request (RFC 4443 §4.1), its checksum left for the kernel.
pub fn icmp6_echo(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![128, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    m
}

/// Whether `message` (an ICMPv6 message as a raw socket reads it: no IPv6 header) is the
/// echo reply (type 129) to (`id`, `seq`).
pub fn is_echo6_reply(message: &[u8], id: u16, seq: u16) -> bool {
    message.get(..8).is_some_and(|icmp| {
        icmp[0] == 129
            && icmp[1] == 0
            && u16::from_be_bytes([icmp[4], icmp[5]]) == id
            && u16::from_be_bytes([icmp[6], icmp[7]]) == seq
    })
}

/// Whether `packet` (an IPv4 datagram as a raw socket reads it) is the echo reply to
/// (`id`, `seq`).
pub fn is_echo_reply(packet: &[u8], id: u16, seq: u16) -> bool {
    let Some(&first) = packet.first() else {
        return false;
    };
    let ihl = usize::from(first & 0x0f) * 4;
    packet.get(ihl..ihl + 8).is_some_and(|icmp| {
        icmp[0] == 0
            && icmp[1] == 0
            && u16::from_be_bytes([icmp[4], icmp[5]]) == id
            && u16::from_be_bytes([icmp[6], icmp[7]]) == seq
    })
}

/// UDP_CHECK, as keepalived's: the payload to the server; then within `connect_timeout`
/// a reply (under `require_reply` with data: of a length in [min, max] whose first bytes
/// match), or silence (up unless `require_reply`). An ICMP destination unreachable (the
/// kernel's refused or unreachable errors on the connected socket) is down.
pub async fn udp_once(check: &Check, u: &super::model::UdpCheck) -> Result<(), Failure> {
    let Ok(sock) = udp_socket(check).await else {
        return Err(Failure::Failed);
    };
    if sock.connect((check.addr, check.port)).await.is_err()
        || sock.send(&u.payload).await.ok() != Some(u.payload.len())
    {
        return Err(Failure::Failed);
    }
    let mut buf = vec![0u8; u.max_reply + 1];
    let ok = match tokio::time::timeout(check.connect_timeout, sock.recv(&mut buf)).await {
        Err(_) => u.require_reply.is_none(),
        Ok(Err(e)) => !matches!(
            e.raw_os_error(),
            Some(
                libc::ECONNREFUSED
                    | libc::EHOSTUNREACH
                    | libc::ENETUNREACH
                    | libc::EHOSTDOWN
                    | libc::ENONET
                    | libc::EACCES
            )
        ),
        Ok(Ok(n)) if !udp_reply_fits(u, &buf[..n]) => return Err(Failure::Mismatch),
        Ok(Ok(_)) => true,
    };
    if ok { Ok(()) } else { Err(Failure::Failed) }
}

/// keepalived's check of a UDP reply: with reply data required, a length within
/// [min_reply_length, max_reply_length] and the first bytes (as many as both have) matching,
/// wildcard half-bytes aside; any reply otherwise.
pub fn udp_reply_fits(u: &super::model::UdpCheck, reply: &[u8]) -> bool {
    match &u.require_reply {
        Some(want) if !want.is_empty() => {
            (u.min_reply..=u.max_reply).contains(&reply.len())
                && reply
                    .iter()
                    .zip(want)
                    .all(|(got, (value, mask))| got & !mask == *value)
        }
        _ => true,
    }
}

/// A random number in [0, 1).
fn random_fraction() -> f64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom into an 8-byte buffer we own.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, 0) };
    (u64::from_ne_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// A query id nobody can predict from outside (a spoofed answer must guess it).
fn rand_id() -> u16 {
    let mut b = [0u8; 2];
    // SAFETY: getrandom into a 2-byte buffer we own.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), 2, 0) };
    u16::from_ne_bytes(b)
}

/// The largest page a digest is computed over, or a regex matched against.
const MAX_PAGE: usize = 16 << 20;

/// The MD5 of an HTTP response's body (after the blank line ending the headers), lowercase
/// hex as keepalived's genhash prints it.
pub fn body_md5(response: &[u8]) -> Option<String> {
    use md5::{Digest as _, Md5};
    let at = body_at(response)?;
    let body = &response[at..];
    // keepalived hashes no more than the Content-Length.
    let len = content_length(&response[..at]).map_or(body.len(), |l| l.min(body.len()));
    let sum = Md5::digest(&body[..len]);
    Some(sum.iter().map(|b| format!("{b:02x}")).collect())
}

/// An HTTP response's body: what follows the blank line ending the headers.
fn body(response: &[u8]) -> Option<&[u8]> {
    Some(&response[body_at(response)?..])
}

/// Where an HTTP response's body starts, once its headers are complete.
fn body_at(response: &[u8]) -> Option<usize> {
    Some(response.windows(4).position(|w| w == b"\r\n\r\n")? + 4)
}

/// The `Content-Length` of an HTTP response's headers, as keepalived's
/// extract_content_length reads it: the first `Content-Length:` (that case exactly), blanks,
/// a decimal number ending the line.
fn content_length(headers: &[u8]) -> Option<usize> {
    const NAME: &[u8] = b"Content-Length:";
    let at = headers.windows(NAME.len()).position(|w| w == NAME)? + NAME.len();
    let rest = &headers[at..];
    let rest = &rest[rest.iter().position(|b| !matches!(b, b' ' | b'\t'))?..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || !matches!(rest.get(digits), None | Some(b'\r' | b'\n')) {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// The status code of an HTTP response's status line (`HTTP/1.1 200 OK`).
pub fn status_code(response: &[u8]) -> Option<u16> {
    let line = response.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let code: u16 = parts.next()?.parse().ok()?;
    (100..=599).contains(&code).then_some(code)
}

/// The neighbour table's complete entry for `addr` (/proc/net/arp of this network
/// namespace): its MAC and the interface it is on. Without one, the kernel is asked to
/// resolve it (a datagram to the discard port makes it ARP; a later look finds the answer).
fn neighbour_or_resolve(addr: std::net::Ipv4Addr) -> Option<([u8; 6], String)> {
    let table = std::fs::read_to_string("/proc/net/arp").ok()?;
    let found = parse_arp_table(&table, addr).map(|(mac, dev)| (mac, dev.to_string()));
    if found.is_none()
        && let Ok(s) = std::net::UdpSocket::bind("0.0.0.0:0")
    {
        let _ = s.send_to(b"", (addr, 9));
    }
    found
}

/// A neighbour's interface by its name: its index and its own MAC (NAT and TUN send a real
/// server's frames from there).
fn interface(dev: &str) -> Option<(u32, [u8; 6])> {
    // An interface name from the kernel's own table; still checked before it names a path.
    if dev.is_empty() || dev.contains('/') || dev.starts_with('.') {
        return None;
    }
    let ifindex = crate::iface::index(dev)?;
    let text = std::fs::read_to_string(format!("/sys/class/net/{dev}/address")).ok()?;
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    Some((ifindex, mac))
}

/// Where a real server's frames go: the MAC they are sent to (the server's; for a TUN
/// server the next hop's toward it) and the interface the neighbour table has it on, with
/// that interface's MAC (NAT and TUN send from there). TUN also needs the source address the
/// kernel would use toward the server (IPVS's tunnel takes the route's) and the interface's
/// MTU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Path {
    pub mac: [u8; 6],
    /// 0 when the neighbour table does not name it.
    pub ifindex: u32,
    pub out_mac: [u8; 6],
    pub src: [u8; 4],
    pub mtu: u16,
}

/// `message` (with `flags`) sent to the kernel on a socket of its own, whose answer is then
/// read from it.
fn rtnetlink_ask(
    message: netlink_packet_route::RouteNetlinkMessage,
    flags: u16,
) -> Option<netlink_sys::Socket> {
    let mut req = netlink_packet_core::NetlinkMessage::from(message);
    req.header.flags = flags;
    req.header.sequence_number = 1;
    req.finalize();
    let mut buf = vec![0u8; req.buffer_len()];
    req.serialize(&mut buf);
    // Its reads are bounded: a checker never waits on the kernel for ever.
    let sock = crate::netlink::socket(netlink_sys::protocols::NETLINK_ROUTE).ok()?;
    sock.send(&buf, 0).ok()?;
    Some(sock)
}

/// The IPv6 neighbour table's usable entry for `addr` (RTM_GETNEIGH, as `ip -6 neigh`): its
/// MAC and interface index. Without one, the kernel is asked to resolve it (a datagram to
/// the discard port makes it send a neighbour solicitation).
fn neighbour6_or_resolve(addr: std::net::Ipv6Addr) -> Option<([u8; 6], u32)> {
    let found = neighbour6(addr);
    if found.is_none()
        && let Ok(s) = std::net::UdpSocket::bind("[::]:0")
    {
        let _ = s.send_to(b"", (addr, 9));
    }
    found
}

fn neighbour6(addr: std::net::Ipv6Addr) -> Option<([u8; 6], u32)> {
    use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::{
        AddressFamily, RouteNetlinkMessage,
        neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
    };
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet6;
    let sock = rtnetlink_ask(
        RouteNetlinkMessage::GetNeighbour(msg),
        NLM_F_REQUEST | NLM_F_DUMP,
    )?;
    let mut found = None;
    // The dump comes in as many datagrams as it needs, up to its NLMSG_DONE.
    loop {
        let (reply, _) = sock.recv_from_full().ok()?;
        let mut at = 0;
        while at < reply.len() {
            let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply[at..]).ok()?;
            let len = m.header.length as usize;
            if len == 0 {
                return None;
            }
            at += len.next_multiple_of(4);
            match m.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n)) => {
                    // Usable: resolved, or still believed (stale, being checked again).
                    let usable = matches!(
                        n.header.state,
                        NeighbourState::Reachable
                            | NeighbourState::Stale
                            | NeighbourState::Delay
                            | NeighbourState::Probe
                            | NeighbourState::Permanent
                    );
                    let mut dst = None;
                    let mut mac = None;
                    for a in n.attributes {
                        match a {
                            NeighbourAttribute::Destination(NeighbourAddress::Inet6(d)) => {
                                dst = Some(d);
                            }
                            NeighbourAttribute::LinkLayerAddress(l) => {
                                mac = <[u8; 6]>::try_from(l.as_slice()).ok();
                            }
                            _ => {}
                        }
                    }
                    if usable
                        && dst == Some(addr)
                        && let Some(mac) = mac
                        && found.is_none()
                    {
                        found = Some((mac, n.header.ifindex));
                    }
                }
                NetlinkPayload::Done(_) => return found,
                NetlinkPayload::Error(_) => return None,
                _ => {}
            }
        }
    }
}

/// The path to real server `addr` (through an IPIP tunnel: to the next hop toward it), once
/// the MAC is known; else None, after asking the kernel to resolve it.
pub fn path_to(addr: std::net::IpAddr, tunnel: bool) -> Option<Path> {
    let addr = match addr {
        std::net::IpAddr::V4(a) => a,
        // IPv6 servers are reached by direct routing: the server's own MAC.
        std::net::IpAddr::V6(a) => {
            let (mac, ifindex) = neighbour6_or_resolve(a)?;
            let out_mac = crate::iface::name(ifindex)
                .and_then(|dev| interface(&dev))
                .map_or([0; 6], |i| i.1);
            return Some(Path {
                mac,
                ifindex,
                out_mac,
                ..Path::default()
            });
        }
    };
    if !tunnel {
        let (mac, dev) = neighbour_or_resolve(addr)?;
        let (ifindex, out_mac) = interface(&dev).unwrap_or_default();
        return Some(Path {
            mac,
            ifindex,
            out_mac,
            ..Path::default()
        });
    }
    // The kernel's own route (policy rules, a route's `mtu`, its `src`); /proc/net/route's
    // main table and the interface's MTU if netlink cannot say.
    let route = route_to(addr);
    let hop = match &route {
        Some(r) => r.hop,
        None => next_hop(addr)?,
    };
    let (mac, dev) = neighbour_or_resolve(hop)?;
    let (ifindex, out_mac) = interface(&dev)?;
    let dev_mtu: u32 = std::fs::read_to_string(format!("/sys/class/net/{dev}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let route_mtu = route.as_ref().and_then(|r| r.mtu).filter(|m| *m > 0);
    let mtu = route_mtu
        .map_or(dev_mtu, |m| m.min(dev_mtu))
        .min(u32::from(u16::MAX)) as u16;
    let src = match route.and_then(|r| r.src) {
        Some(src) => src,
        None => {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
            s.connect((addr, 9)).ok()?;
            let std::net::IpAddr::V4(src) = s.local_addr().ok()?.ip() else {
                return None;
            };
            src
        }
    };
    Some(Path {
        mac,
        ifindex,
        out_mac,
        src: src.octets(),
        mtu,
    })
}

/// The kernel's route to an address, as `ip route get` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The gateway, or the address itself on a link.
    pub hop: std::net::Ipv4Addr,
    /// The source address it would send from.
    pub src: Option<std::net::Ipv4Addr>,
    /// The route's own `mtu`, if it sets one.
    pub mtu: Option<u32>,
}

/// RTM_GETROUTE for `addr` (what the kernel would do sending there: policy rules and all).
/// None when it has no usable route, or netlink cannot be asked.
pub fn route_to(addr: std::net::Ipv4Addr) -> Option<Route> {
    use netlink_packet_core::{NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::{
        AddressFamily, RouteNetlinkMessage,
        route::{RouteAddress, RouteAttribute, RouteMessage, RouteMetric, RouteType},
    };
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet;
    msg.header.destination_prefix_length = 32;
    msg.attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet(addr)));
    let sock = rtnetlink_ask(RouteNetlinkMessage::GetRoute(msg), NLM_F_REQUEST)?;
    // The kernel answers while handling the request: the reply is there, or an error is.
    let (reply, _) = sock.recv_from_full().ok()?;
    let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply).ok()?;
    let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(route)) = reply.payload else {
        return None;
    };
    if route.header.kind != RouteType::Unicast {
        return None;
    }
    let mut found = Route {
        hop: addr,
        src: None,
        mtu: None,
    };
    for a in route.attributes {
        match a {
            RouteAttribute::Gateway(RouteAddress::Inet(gw)) => found.hop = gw,
            RouteAttribute::PrefSource(RouteAddress::Inet(src)) => found.src = Some(src),
            RouteAttribute::Metrics(metrics) => {
                for m in metrics {
                    if let RouteMetric::Mtu(mtu) = m {
                        found.mtu = Some(mtu);
                    }
                }
            }
            _ => {}
        }
    }
    Some(found)
}

/// The next hop toward `addr` in the main routing table: the gateway of its longest
/// matching route, or `addr` itself on a link.
pub fn next_hop(addr: std::net::Ipv4Addr) -> Option<std::net::Ipv4Addr> {
    parse_route_table(&std::fs::read_to_string("/proc/net/route").ok()?, addr)
}

/// /proc/net/route's longest match for `addr` (the lower metric on a tie): its gateway, or
/// `addr` when the route has none. None when that route rejects (unreachable, prohibit,
/// blackhole). Addresses there are the kernel's network-order words printed as numbers of
/// this host's byte order; the metric is printed signed.
pub fn parse_route_table(table: &str, addr: std::net::Ipv4Addr) -> Option<std::net::Ipv4Addr> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    const RTF_REJECT: u32 = 0x200;
    let want = u32::from_ne_bytes(addr.octets());
    let hex = |f: &str| u32::from_str_radix(f, 16).ok();
    let (_, _, flags, hop) = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, gw, flags) = (hex(f.get(1)?)?, hex(f.get(2)?)?, hex(f.get(3)?)?);
            let (metric, mask) = (f.get(6)?.parse::<i64>().ok()? as u32, hex(f.get(7)?)?);
            (want & mask == dest & mask).then(|| {
                let hop = if flags & RTF_GATEWAY != 0 && gw != 0 {
                    std::net::Ipv4Addr::from(gw.to_ne_bytes())
                } else {
                    addr
                };
                (mask.count_ones(), std::cmp::Reverse(metric), flags, hop)
            })
        })
        .max_by_key(|(len, metric, ..)| (*len, *metric))?;
    // A blackhole route has no flags at all.
    (flags & RTF_UP != 0 && flags & RTF_REJECT == 0).then_some(hop)
}

/// /proc/net/arp's complete entry for `addr`: its MAC and its interface's name.
fn parse_arp_table(table: &str, addr: std::net::Ipv4Addr) -> Option<([u8; 6], &str)> {
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(ip), Some(flags), Some(mac), Some(dev)) =
            (f.first(), f.get(2), f.get(3), f.get(5))
        else {
            continue;
        };
        // ATF_COM: resolved.
        let complete =
            u32::from_str_radix(flags.trim_start_matches("0x"), 16).is_ok_and(|v| v & 0x2 != 0);
        if ip.parse() != Ok(addr) || !complete {
            continue;
        }
        let mut out = [0u8; 6];
        let mut parts = mac.split(':');
        for b in &mut out {
            *b = u8::from_str_radix(parts.next()?, 16).ok()?;
        }
        return Some((out, dev));
    }
    None
}

/// Runs checker `checker` of real server `real` until the receiver goes. `run_as`: who a
/// MISC_CHECK script runs as.
pub async fn run(
    check: Check,
    (real, checker): (u32, usize),
    (real_name, vs_name): (String, String),
    (run_as, carried): (crate::track::exec::RunAs, Option<bool>),
    mut gate: Option<tokio::sync::watch::Receiver<bool>>,
    tx: mpsc::UnboundedSender<Report>,
) {
    if let CheckKind::File(f) = &check.kind {
        return run_file(&check, f, (real, checker), tx).await;
    }
    // keepalived's register_checkers_thread: an `ha_suspend` checker whose address is not on
    // this node starts deactivated.
    let active = gate.as_ref().is_none_or(|g| *g.borrow());
    info!(
        "{}ctivating healthchecker for service {real_name} for VS {vs_name}",
        if active { "A" } else { "Dea" }
    );
    // keepalived names a checker by where it connects (FMT_CHK: connect_ip/connect_port).
    let name = super::model::trio(check.addr, check.proto, check.port);
    // keepalived's alpha: down until the first success says otherwise. After a reload, the
    // same checker of the same server goes on from where it was (keepalived's
    // migrate_checkers): up or down, with no warmup.
    let mut state = State::start(&check, carried);
    // HTTP_GET / SSL_GET: each url's last Content-Length mismatch (keepalived's
    // url->len_mismatch).
    let mut len_mismatch: Vec<i64> = Vec::new();
    // keepalived's warmup: the first check at a random moment within it, so checks of many
    // servers spread out. Meanwhile the server's MAC is looked for, so a server that starts up
    // takes traffic from the start.
    if !check.warmup.is_zero() && carried.is_none() {
        let _ = path_to(check.addr, check.tunnel);
        let first = check.warmup.mul_f64(random_fraction());
        let look = first.min(Duration::from_millis(200));
        tokio::time::sleep(look).await;
        let report = Report {
            real,
            checker,
            up: state.is_up,
            path: path_to(check.addr, check.tunnel),
            share: 0,
        };
        if tx.send(report).is_err() {
            return;
        }
        tokio::time::sleep(first - look).await;
    }
    loop {
        // Suspended (ha_suspend, the address elsewhere): no check, the server's state kept,
        // until the address comes back; then a check at once (the balancer said so).
        if let Some(g) = gate.as_mut()
            && g.wait_for(|on| *on).await.is_err()
        {
            return;
        }
        let (step, ok) = match &check.kind {
            CheckKind::Misc(m) => {
                use crate::track::exec::{self, Outcome as Ran};
                let outcome = match exec::run(&m.argv, run_as, Some(m.timeout)).await {
                    Ran::Exited(c) => Outcome::Exited(c),
                    Ran::Signalled(s) => Outcome::Signalled(s),
                    Ran::TimedOut => Outcome::TimedOut,
                    Ran::NotStarted(_) | Ran::NoResources(_) => Outcome::Failed,
                };
                let script = m.argv.first().map_or("", String::as_str);
                let step = state.record_misc(&check, m.dynamic, (&name, &vs_name, script), outcome);
                (step, state.is_up)
            }
            CheckKind::Smtp(helo) => {
                let r = smtp_once(&check, helo).await;
                let ok = r.is_ok();
                (state.record_result(&check, &name, r), ok)
            }
            CheckKind::Dns(q) => {
                let r = dns_once(&check, q).await;
                let ok = r.is_ok();
                (state.record_result(&check, &name, r), ok)
            }
            CheckKind::Http(urls) | CheckKind::Https(urls) if !urls.is_empty() => {
                let at = state.url().min(urls.len() - 1);
                let url = &urls[at];
                let mut lengths = None;
                let result = http_url_measured(&check, url, &mut lengths)
                    .await
                    .map_err(|f| f.line(&check.kind, &name, &vs_name));
                // keepalived reports a length mismatch the first time it sees that
                // difference for the url.
                len_mismatch.resize(urls.len(), 0);
                if let Some(line) = lengths.and_then(|l| {
                    length_mismatch(&mut len_mismatch[at], l, url, (&real_name, &vs_name))
                }) {
                    info!("{line}");
                }
                let ok = result.is_ok();
                (state.record_http(&check, &name, result), ok)
            }
            _ => {
                let result = check_once(&check)
                    .await
                    .map_err(|f| f.line(&check.kind, &name, &vs_name));
                let ok = result.is_ok();
                (state.record_for(&check, (&name, &vs_name), result), ok)
            }
        };
        for line in step.detail.iter().chain(&step.line) {
            info!("{line}");
        }
        let report = Report {
            real,
            checker,
            up: state.is_up,
            // A script's success says nothing of the neighbour table: it is looked at anyway.
            // (The address checked: a `connect_ip` elsewhere says nothing of the server, but
            // is rare.)
            path: if ok {
                path_to(check.addr, check.tunnel)
            } else {
                None
            },
            share: state.share,
        };
        if tx.send(report).is_err() {
            return;
        }
        tokio::time::sleep(step.wait).await;
    }
}

/// FILE_CHECK: the file's number read at start and whenever the file is written, moved or
/// deleted (inotify, as keepalived), each time reported as up or down and the weight it
/// sets; meanwhile the server's MAC is looked for, and looked at again every few seconds.
async fn run_file(
    check: &Check,
    f: &super::model::FileCheck,
    (real, checker): (u32, usize),
    tx: mpsc::UnboundedSender<Report>,
) {
    use crate::track::{file, watch::Update};
    let (utx, mut urx) = mpsc::unbounded_channel();
    // Ends when `urx` goes (this task stopped).
    tokio::spawn(file::watch(vec![(0, f.path.clone())], utx));
    let mut watching = true;
    let mut value = file::read(&f.path).unwrap_or(0);
    loop {
        let (up, share) = file_verdict(f, value);
        let path = path_to(check.addr, check.tunnel);
        if tx
            .send(Report {
                real,
                checker,
                up,
                path,
                share,
            })
            .is_err()
        {
            return;
        }
        let wait = Duration::from_millis(if path.is_some() { 5000 } else { 200 });
        tokio::select! {
            u = urx.recv(), if watching => match u {
                Some(Update::File { value: v, .. }) => value = v,
                Some(_) => {}
                None => watching = false,
            },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// What a FILE_CHECK's number says (keepalived's track_file for real servers): at weight 0,
/// down when the number is not 0 (when it is 0 under `reverse`); otherwise up, with a share
/// of number × weight (minus under `reverse`) added to the server's weight.
pub fn file_verdict(f: &super::model::FileCheck, value: i64) -> (bool, i64) {
    if f.weight == 0 {
        return ((value != 0) == f.reverse, 0);
    }
    let sign = if f.reverse { -1 } else { 1 };
    let share = value
        .saturating_mul(f.weight)
        .saturating_mul(sign)
        .clamp(i64::from(i32::MIN), i64::from(i32::MAX));
    (true, share)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvs::model::Url;

    fn check(kind: CheckKind, retry: u32) -> Check {
        Check {
            alpha: false,
            warmup: Duration::ZERO,
            kind,
            addr: "10.0.0.2".parse().unwrap(),
            port: 80,
            source: Default::default(),
            proto: crate::lvs::model::Proto::Tcp,
            connect_timeout: Duration::from_secs(3),
            retry,
            delay_before_retry: Duration::from_secs(3),
            delay_loop: Duration::from_secs(6),
            weight: 1,
            log_all_failures: false,
            fast_recovery: false,
            tunnel: false,
        }
    }

    const NAME: &str = "[10.0.0.2]:tcp:80";

    #[test]
    fn keepalived_a_failing_web_server_goes_down_after_its_retries_and_up_again() {
        let c = check(CheckKind::Http(vec![web_url("/")]), 3);
        let mut s = State::default();
        let first = s.record(&c, NAME, true);
        assert_eq!(first.now_up, Some(true));
        assert_eq!(
            first.line.as_deref(),
            Some("Remote Web server [10.0.0.2]:tcp:80 succeed on service.")
        );
        assert_eq!(first.wait, Duration::from_secs(6));
        // Steady: nothing said.
        assert_eq!(s.record(&c, NAME, true).line, None);
        // Three failures are retried 3 s apart, the fourth takes it down.
        for _ in 0..3 {
            let st = s.record(&c, NAME, false);
            assert_eq!((st.now_up, st.wait), (None, Duration::from_secs(3)));
        }
        let down = s.record(&c, NAME, false);
        assert_eq!(down.now_up, Some(false));
        assert_eq!(
            down.line.as_deref(),
            Some("HTTP_CHECK on service [10.0.0.2]:tcp:80 failed after 3 retries.")
        );
        // Down: checked every delay_loop, no retries, nothing said.
        let st = s.record(&c, NAME, false);
        assert_eq!(
            (st.now_up, st.line, st.wait),
            (None, None, Duration::from_secs(6))
        );
        // keepalived's epilog: the failed url's success starts the urls over; the server is
        // up once they have all answered, a delay_loop later.
        let st = s.record(&c, NAME, true);
        assert_eq!((st.now_up, st.wait), (None, Duration::from_secs(6)));
        // Each url that answers while the server is down is said (http_handle_response).
        assert_eq!(
            st.detail.as_deref(),
            Some("HTTP status code success to [10.0.0.2]:tcp:80 url(/)")
        );
        assert_eq!(s.record(&c, NAME, true).now_up, Some(true));
        // A success in the middle of retries resets them.
        s.record(&c, NAME, false);
        s.record(&c, NAME, true);
        for _ in 0..3 {
            assert_eq!(s.record(&c, NAME, false).now_up, None);
        }
    }

    fn web_url(path: &str) -> Url {
        Url {
            path: path.into(),
            status: vec![(200, 299)],
            digest: None,
            regex: None,
            virtualhost: None,
            own_virtualhost: None,
            sni: None,
            protocol: Default::default(),
        }
    }

    /// keepalived's HTTP_GET goes url by url, a delay_loop apart: the server is up once all
    /// have answered in a row; when one fails (after its retries) the server is down and that
    /// url alone is checked until it answers, then all of them again from the first.
    /// fast_recovery checks at once while the server has not run, or is down with no failed
    /// url.
    #[test]
    fn keepalived_http_get_checks_its_urls_one_by_one() {
        let mut c = check(
            CheckKind::Http(vec![web_url("/a"), web_url("/b"), web_url("/c")]),
            1,
        );
        let mut s = State::start(&c, None);
        let loop_ = Duration::from_secs(6);
        let ok = |s: &mut State| {
            let url = s.url();
            let st = s.record_http(&c, NAME, Ok(()));
            (url, st.now_up, st.wait)
        };
        // Starting: /a, /b, /c a delay_loop apart; up after /c.
        assert_eq!(ok(&mut s), (0, None, loop_));
        assert_eq!(ok(&mut s), (1, None, loop_));
        assert_eq!(ok(&mut s), (2, Some(true), loop_));
        assert_eq!(ok(&mut s), (0, None, loop_));
        // /b fails: retried after delay_before_retry, then down.
        let fail = |s: &mut State, c: &Check| {
            let url = s.url();
            let st = s.record_http(c, NAME, Err(String::new()));
            (url, st.now_up, st.wait)
        };
        assert_eq!(fail(&mut s, &c), (1, None, Duration::from_secs(3)));
        assert_eq!(fail(&mut s, &c), (1, Some(false), loop_));
        assert!(!s.is_up);
        // Down: /b alone until it answers, then /a, /b, /c.
        assert_eq!(fail(&mut s, &c), (1, None, loop_));
        assert_eq!(ok(&mut s), (1, None, loop_));
        assert_eq!(ok(&mut s), (0, None, loop_));
        assert_eq!(ok(&mut s), (1, None, loop_));
        assert_eq!(ok(&mut s), (2, Some(true), loop_));
        // fast_recovery: at start, the urls one after the other at once.
        c.fast_recovery = true;
        let mut s = State::start(&c, None);
        for url in 0..2 {
            assert_eq!(s.url(), url);
            let st = s.record_http(&c, NAME, Ok(()));
            assert_eq!((st.now_up, st.wait), (None, Duration::ZERO));
        }
        let st = s.record_http(&c, NAME, Ok(()));
        assert_eq!((st.now_up, st.wait), (Some(true), loop_));
        // Down, its failed url answers: the others follow at once.
        s.record_http(&c, NAME, Err(String::new()));
        let st = s.record_http(&c, NAME, Err(String::new()));
        assert_eq!((st.now_up, st.wait), (Some(false), loop_));
        let waits: Vec<_> = (0..4)
            .map(|_| s.record_http(&c, NAME, Ok(())))
            .map(|st| (st.now_up, st.wait))
            .collect();
        assert_eq!(
            waits,
            [
                (None, Duration::ZERO),
                (None, Duration::ZERO),
                (None, Duration::ZERO),
                (Some(true), loop_),
            ]
        );
    }

    /// keepalived sets `retry_it` to `retry` when a checker starts: one failure before the
    /// first success takes a server down, without retries; once up, failures are retried.
    #[test]
    fn keepalived_a_first_failure_takes_a_server_down_at_once() {
        let mut c = check(CheckKind::Tcp, 3);
        let mut s = State::start(&c, None);
        let st = s.record(&c, NAME, false);
        assert_eq!((st.now_up, st.wait), (Some(false), Duration::from_secs(6)));
        assert_eq!(
            st.line.as_deref(),
            Some("TCP_CHECK on service [10.0.0.2]:tcp:80 failed.")
        );
        assert_eq!(s.record(&c, NAME, true).now_up, Some(true));
        for _ in 0..3 {
            assert_eq!(s.record(&c, NAME, false).now_up, None);
        }
        let st = s.record(&c, NAME, false);
        assert_eq!(
            st.line.as_deref(),
            Some("TCP_CHECK on service [10.0.0.2]:tcp:80 failed after 3 retries.")
        );
        // HTTP_GET says "after N retries" from the first (its failure path marks it run).
        c.kind = CheckKind::Http(Vec::new());
        let st = State::start(&c, None).record(&c, NAME, false);
        assert_eq!(
            st.line.as_deref(),
            Some("HTTP_CHECK on service [10.0.0.2]:tcp:80 failed after 3 retries.")
        );
        // PING_CHECK names the virtual server once it has run.
        c.kind = CheckKind::Ping;
        let mut s = State::start(&c, None);
        let vs = "[10.0.0.1]:tcp:80";
        let st = s.record_for(&c, (NAME, vs), Ok(()));
        assert_eq!(
            st.line.as_deref(),
            Some("ICMP connection to [10.0.0.2]:tcp:80 success.")
        );
        for _ in 0..3 {
            s.record_for(&c, (NAME, vs), Err(String::new()));
        }
        let st = s.record_for(&c, (NAME, vs), Err(String::new()));
        assert_eq!(
            st.line.as_deref(),
            Some(
                "ICMP CHECK on service [10.0.0.2]:tcp:80 of [10.0.0.1]:tcp:80 failed after 3 retries."
            )
        );
        // After a reload, a checker goes on where it was, retries and all.
        c.kind = CheckKind::Tcp;
        let mut s = State::start(&c, Some(true));
        assert_eq!(s.record(&c, NAME, false).now_up, None);
        // alpha: down until its first success.
        c.alpha = true;
        let mut s = State::start(&c, None);
        assert!(!s.is_up);
        assert_eq!(s.record(&c, NAME, true).now_up, Some(true));
    }

    #[test]
    fn the_icmp_echo_and_its_reply() {
        let echo = icmp_echo(0x1234, 7, &crate::lvs::model::filler(128));
        assert_eq!(echo.len(), 136);
        assert_eq!(&echo[8..27], b"keepalived check - ");
        assert_eq!(
            crate::vrrp::packet::internet_checksum(&echo),
            0,
            "checksummed"
        );
        // The reply as a raw socket reads it: an IPv4 header, then type 0.
        let mut reply = vec![0x45u8; 20];
        reply.extend_from_slice(&echo);
        reply[20] = 0;
        assert!(is_echo_reply(&reply, 0x1234, 7));
        assert!(!is_echo_reply(&reply, 0x1234, 8), "another sequence");
        assert!(!is_echo_reply(&reply, 0x1235, 7), "another identifier");
        reply[20] = 8;
        assert!(!is_echo_reply(&reply, 0x1234, 7), "a request");
        assert!(!is_echo_reply(&reply[..24], 0x1234, 7), "cut short");
        assert!(!is_echo_reply(&[], 0x1234, 7));
    }

    /// ICMPv6 (RFC 4443 §4.1): request type 128 (its checksum the kernel's), reply type 129
    /// read without an IPv6 header.
    #[test]
    fn the_icmpv6_echo_and_its_reply() {
        let echo = icmp6_echo(0x1234, 7, &crate::lvs::model::filler(128));
        assert_eq!(echo.len(), 136);
        assert_eq!(&echo[..8], [128, 0, 0, 0, 0x12, 0x34, 0, 7]);
        let mut reply = echo.clone();
        reply[0] = 129;
        assert!(is_echo6_reply(&reply, 0x1234, 7));
        assert!(!is_echo6_reply(&reply, 0x1234, 8), "another sequence");
        assert!(!is_echo6_reply(&echo, 0x1234, 7), "a request");
        assert!(!is_echo6_reply(&reply[..7], 0x1234, 7), "cut short");
    }

    /// Why an HTTP_GET failed, in keepalived's words (what log_all_failures says).
    #[tokio::test]
    async fn http_failures_in_keepalived_words() {
        use crate::lvs::model::Url;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        let url = |digest: Option<&str>| Url {
            path: "/".into(),
            status: vec![(200, 299)],
            digest: digest.map(str::to_string),
            regex: None,
            virtualhost: None,
            own_virtualhost: None,
            sni: None,
            protocol: Default::default(),
        };
        for (answer, digest, want) in [
            (
                &b"HTTP/1.0 500 Oops\r\n\r\n"[..],
                None,
                "HTTP status code error to",
            ),
            (b"", None, "Read, no data received from "),
            (b"not http\r\n", None, "HTTP status code error to"),
            (
                b"HTTP/1.0 200 OK\r\n\r\nok",
                Some("00"),
                "MD5 digest error to",
            ),
        ] {
            let mut c = check(CheckKind::Http(vec![url(digest)]), 0);
            c.addr = "127.0.0.1".parse().unwrap();
            c.port = port;
            let serve = async {
                let (mut conn, _) = server.accept().await.unwrap();
                let mut buf = vec![0u8; 1024];
                let _ = conn.read(&mut buf).await.unwrap();
                conn.write_all(answer).await.unwrap();
            };
            let (got, ()) = tokio::join!(check_once(&c), serve);
            assert_eq!(got, Err(Failure::Http(want)), "{answer:?}");
        }
        // Nothing listening: refused.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = check(CheckKind::Http(vec![url(None)]), 0);
        c.addr = "127.0.0.1".parse().unwrap();
        c.port = closed.local_addr().unwrap().port();
        drop(closed);
        assert_eq!(check_once(&c).await, Err(Failure::Http("Error connecting")));
    }

    /// A UDP checker's socket: bound to its `bindto` / `bind_port`, its device (`bind_if`,
    /// as root) set before the address, as a link-local `bindto` needs; without them, the
    /// unspecified address of the server's family.
    #[tokio::test]
    async fn a_udp_checker_s_socket_is_bound_as_its_options_say() {
        use crate::lvs::model::Source;
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let free = std::net::UdpSocket::bind("127.0.0.2:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = check(CheckKind::Tcp, 0);
        c.addr = "127.0.0.1".parse().unwrap();
        c.source = Source {
            addr: Some("127.0.0.2".parse().unwrap()),
            port: Some(free),
            interface: root.then(|| "lo".to_string()),
            fwmark: None,
        };
        let s = udp_socket(&c).await.unwrap();
        assert_eq!(
            s.local_addr().unwrap(),
            SocketAddr::from(([127, 0, 0, 2], free))
        );
        c.source = Source::default();
        c.addr = "::1".parse().unwrap();
        if let Ok(s) = udp_socket(&c).await {
            assert!(s.local_addr().unwrap().is_ipv6());
        }
    }

    /// HTTP_GET's request as keepalived writes it (`Host:` the virtualhost, `http_protocol`),
    /// from the checker's `bindto` / `bind_port` (and its `fwmark` set, as root).
    #[tokio::test]
    async fn the_http_request_and_where_it_comes_from() {
        use crate::lvs::model::{HttpProtocol, Source, Url};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        let url = |virtualhost: Option<&str>, protocol| Url {
            path: "/health".into(),
            status: vec![(200, 299)],
            digest: None,
            regex: None,
            virtualhost: virtualhost.map(str::to_string),
            own_virtualhost: None,
            sni: None,
            protocol,
        };
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        // A source port nothing holds (taken and let go).
        let src_port = std::net::TcpListener::bind("127.0.0.2:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        for (u, source, want, from) in [
            (
                url(None, HttpProtocol::V10),
                Source::default(),
                format!(
                    "GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 127.0.0.1:{port}\r\n\r\n"
                ),
                None,
            ),
            (
                url(Some("www.example.org"), HttpProtocol::V11),
                Source {
                    addr: Some("127.0.0.2".parse().unwrap()),
                    port: Some(src_port),
                    interface: root.then(|| "lo".to_string()),
                    fwmark: root.then_some(7),
                },
                "GET /health HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: www.example.org\r\n\r\n"
                    .to_string(),
                Some(SocketAddr::from(([127, 0, 0, 2], src_port))),
            ),
            (
                url(Some("www.example.org"), HttpProtocol::V10C),
                Source::default(),
                "GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: www.example.org\r\n\r\n"
                    .to_string(),
                None,
            ),
        ] {
            let mut c = check(CheckKind::Http(vec![u]), 0);
            c.addr = "127.0.0.1".parse().unwrap();
            c.port = port;
            c.source = source;
            let serve = async {
                let (mut conn, peer) = server.accept().await.unwrap();
                let mut buf = vec![0u8; 1024];
                let mut got = Vec::new();
                while !got.ends_with(b"\r\n\r\n") {
                    let n = conn.read(&mut buf).await.unwrap();
                    assert!(n > 0);
                    got.extend_from_slice(&buf[..n]);
                }
                conn.write_all(b"HTTP/1.0 200 OK\r\n\r\nok").await.unwrap();
                (String::from_utf8(got).unwrap(), peer)
            };
            let (up, (request, peer)) = tokio::join!(check_once(&c), serve);
            assert_eq!(up, Ok(()));
            assert_eq!(request, want);
            if let Some(from) = from {
                assert_eq!(peer, from);
            }
        }
        // An interface that does not exist fails the check.
        if root {
            let mut c = check(CheckKind::Tcp, 0);
            c.addr = "127.0.0.1".parse().unwrap();
            c.port = port;
            c.source.interface = Some("nosuch0".into());
            assert_eq!(check_once(&c).await, Err(Failure::Failed));
        }
    }

    #[tokio::test]
    async fn ping_check_on_loopback() {
        // A raw socket needs root (as the agent runs).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let mut c = check(CheckKind::Ping, 0);
        c.addr = "127.0.0.1".parse().unwrap();
        c.connect_timeout = Duration::from_secs(2);
        assert_eq!(ping_once(&c).await, Ok(()));
    }

    #[tokio::test]
    async fn keepalived_udp_check_replies_silence_and_refusals() {
        use crate::lvs::model::{UdpCheck, filler, hex_str};
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = server.recv_from(&mut buf).await {
                // Answers "OK " and what it got.
                let mut reply = b"OK ".to_vec();
                reply.extend_from_slice(&buf[..n]);
                let _ = server.send_to(&reply, from).await;
            }
        });
        let mut c = check(CheckKind::Tcp, 0);
        c.addr = "127.0.0.1".parse().unwrap();
        c.port = port;
        c.connect_timeout = Duration::from_millis(300);
        let mut u = UdpCheck {
            payload: filler(32),
            require_reply: None,
            min_reply: 0,
            max_reply: 255,
        };
        assert_eq!(udp_once(&c, &u).await, Ok(()), "a reply");
        u.require_reply = hex_str("4f4b 2x", true);
        assert_eq!(udp_once(&c, &u).await, Ok(()), "'OK ' matches 4f 4b 2x");
        u.require_reply = hex_str("4f4c", true);
        assert_eq!(
            udp_once(&c, &u).await,
            Err(Failure::Mismatch),
            "'OK' is not 4f 4c"
        );
        u.require_reply = hex_str("4f", true);
        u.max_reply = 10;
        assert_eq!(
            udp_once(&c, &u).await,
            Err(Failure::Mismatch),
            "35 bytes is over max_reply_length 10"
        );
        // A closed port: the ICMP port unreachable refuses it.
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        c.port = closed.local_addr().unwrap().port();
        drop(closed);
        u.require_reply = None;
        assert_eq!(udp_once(&c, &u).await, Err(Failure::Failed), "refused");
        // Silence: up, unless a reply is required.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        c.port = silent.local_addr().unwrap().port();
        assert_eq!(udp_once(&c, &u).await, Ok(()), "silence");
        u.require_reply = Some(Vec::new());
        assert_eq!(
            udp_once(&c, &u).await,
            Err(Failure::Failed),
            "silence with require_reply"
        );
    }

    #[test]
    fn keepalived_file_check_numbers() {
        let mut f = crate::lvs::model::FileCheck {
            path: "/nonexistent".into(),
            weight: 0,
            reverse: false,
        };
        assert_eq!(file_verdict(&f, 0), (true, 0));
        assert_eq!(file_verdict(&f, 7), (false, 0));
        f.reverse = true;
        assert_eq!(file_verdict(&f, 0), (false, 0));
        assert_eq!(file_verdict(&f, -1), (true, 0));
        f.weight = 2;
        assert_eq!(file_verdict(&f, 5), (true, -10));
        f.reverse = false;
        assert_eq!(file_verdict(&f, 5), (true, 10));
        assert_eq!(file_verdict(&f, -1), (true, -2));
        assert_eq!(
            file_verdict(&f, i64::from(i32::MAX)),
            (true, i64::from(i32::MAX))
        );
    }

    #[test]
    fn the_ssl_block_s_files_or_keepalived_s_lines() {
        let dir = std::env::temp_dir().join(format!("vrrp-agent-ssl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes", "-days", "1", "-subj", "/CN=t", "-keyout", "t.key", "-out", "t.crt",
            ])
            .current_dir(&dir)
            .output();
        if !out.is_ok_and(|o| o.status.success()) {
            return;
        }
        let path = |f: &str| Some(dir.join(f).display().to_string());
        let mut ssl = crate::config::model::Ssl {
            at: crate::config::diag::Loc {
                file: std::sync::Arc::new("t.conf".into()),
                line: 1,
            },
            password: None,
            ca: path("t.crt"),
            certificate: path("t.crt"),
            key: path("t.key"),
        };
        assert_eq!(set_tls(Some(&ssl)), Ok(()));
        assert_eq!(set_tls(None), Ok(()));
        ssl.certificate = path("nosuch.crt");
        let lines = set_tls(Some(&ssl)).unwrap_err();
        assert_eq!(lines[0], "SSL error : Cant load certificate file...");
        assert_eq!(lines.last().unwrap(), "Terminate...");
        ssl.certificate = path("t.crt");
        ssl.key = path("t.crt");
        assert_eq!(
            set_tls(Some(&ssl)).unwrap_err()[0],
            "SSL error : Cant load key file..."
        );
        ssl.key = path("t.key");
        // The key encrypted (OpenSSL's traditional form): loaded with the block's password,
        // refused with the key's line and the reason without it or with a wrong one.
        let enc = std::process::Command::new("openssl")
            .args([
                "ec", "-in", "t.key", "-aes256", "-passout", "pass:pw", "-out", "t.enc",
            ])
            .current_dir(&dir)
            .output();
        assert!(enc.is_ok_and(|o| o.status.success()), "openssl ec -aes256");
        ssl.key = path("t.enc");
        let lines = set_tls(Some(&ssl)).unwrap_err();
        assert_eq!(lines[0], "SSL error : Cant load key file...");
        assert!(
            lines[1].ends_with("t.enc: it is encrypted and the SSL block has no password"),
            "{lines:?}"
        );
        assert!(lines.contains(&"  SSL password:(null)".to_string()));
        ssl.password = Some("wrong".into());
        let lines = set_tls(Some(&ssl)).unwrap_err();
        assert!(lines[1].ends_with("t.enc: wrong password, or a damaged key"));
        assert!(
            lines.contains(&"  SSL password:(set)".to_string()),
            "never the password"
        );
        ssl.password = Some("pw".into());
        assert_eq!(set_tls(Some(&ssl)), Ok(()));
        ssl.key = path("t.key");
        ssl.ca = path("t.key");
        assert_eq!(
            set_tls(Some(&ssl)).unwrap_err()[0],
            "SSL error : Cant load CA file..."
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A TUN server's next hop from /proc/net/route: the longest match's gateway, or the
    /// server on a link; none behind a reject or blackhole route.
    #[test]
    fn next_hops_from_the_route_table() {
        // As this host prints them: network-order words as numbers of its own byte order.
        let word = |a: &str| {
            format!(
                "{:08X}",
                u32::from_ne_bytes(a.parse::<std::net::Ipv4Addr>().unwrap().octets())
            )
        };
        let route = |iface: &str, dest: &str, gw: &str, flags: u32, metric: i64, mask: &str| {
            format!(
                "{iface}\t{}\t{}\t{flags:04X}\t0\t0\t{metric}\t{}\t0\t0\t0\n",
                word(dest),
                word(gw),
                word(mask)
            )
        };
        let table = [
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
                .to_string(),
            route("eth0", "0.0.0.0", "192.168.2.1", 0x3, 100, "0.0.0.0"),
            route("eth0", "0.0.0.0", "192.168.2.2", 0x3, 50, "0.0.0.0"),
            route("eth0", "192.168.2.0", "0.0.0.0", 0x1, 100, "255.255.255.0"),
            route("eth1", "10.0.0.0", "10.0.0.254", 0x3, 0, "255.0.0.0"),
            route("eth1", "10.1.0.0", "0.0.0.0", 0x1, -1, "255.255.255.0"),
            route("lo", "10.9.0.0", "0.0.0.0", 0x201, 0, "255.255.255.0"),
            route("lo", "10.8.0.0", "0.0.0.0", 0x0, 0, "255.255.255.0"),
            "garbage line\n".to_string(),
        ]
        .concat();
        let hop = |a: &str| parse_route_table(&table, a.parse().unwrap()).map(|h| h.to_string());
        assert_eq!(
            hop("192.168.2.5").as_deref(),
            Some("192.168.2.5"),
            "on the link"
        );
        assert_eq!(
            hop("8.8.8.8").as_deref(),
            Some("192.168.2.2"),
            "the lower metric"
        );
        assert_eq!(
            hop("10.1.0.7").as_deref(),
            Some("10.1.0.7"),
            "the longer prefix"
        );
        assert_eq!(hop("10.2.0.7").as_deref(), Some("10.0.0.254"));
        assert_eq!(hop("10.9.0.1"), None, "unreachable");
        assert_eq!(hop("10.8.0.1"), None, "blackhole");
        assert_eq!(parse_route_table("", "10.0.0.1".parse().unwrap()), None);
    }

    /// keepalived's log_all_failures: each failure said as it happens (TCP only while the
    /// checker is up, HTTP also before its first result), then the line that takes it down.
    #[test]
    fn keepalived_log_all_failures_says_each_failure() {
        let vs = "[10.0.0.1]:tcp:80";
        let mut c = check(CheckKind::Tcp, 2);
        let timeout = Failure::Timeout.line(&c.kind, NAME, vs);
        assert_eq!(timeout, "TCP connection to [10.0.0.2]:tcp:80 timeout.");
        // Off: retries are silent.
        let mut s = State::default();
        s.record(&c, NAME, true);
        let st = s.record_for(&c, (NAME, vs), Err(timeout.clone()));
        assert_eq!((st.detail, st.line), (None, None));
        c.log_all_failures = true;
        let mut s = State::default();
        s.record(&c, NAME, true);
        for _ in 0..2 {
            let st = s.record_for(&c, (NAME, vs), Err(timeout.clone()));
            assert_eq!(
                (st.detail.as_deref(), st.line),
                (Some(timeout.as_str()), None)
            );
        }
        let st = s.record_for(&c, (NAME, vs), Err(timeout.clone()));
        assert_eq!(st.detail.as_deref(), Some(timeout.as_str()));
        assert_eq!(
            st.line.as_deref(),
            Some("TCP_CHECK on service [10.0.0.2]:tcp:80 failed after 2 retries.")
        );
        // Down: nothing more.
        assert_eq!(
            s.record_for(&c, (NAME, vs), Err(timeout.clone())).detail,
            None
        );
        // With alpha a TCP checker starts down: its first failure is not said twice...
        c.alpha = true;
        let mut s = State::start(&c, None);
        assert_eq!(s.record_for(&c, (NAME, vs), Err(timeout)).detail, None);
        // ...an HTTP one's is (keepalived's timeout_epilog).
        let mut h = check(CheckKind::Http(Vec::new()), 0);
        h.alpha = true;
        h.log_all_failures = true;
        let why = Failure::Http("HTTP status code error to").line(&h.kind, NAME, vs);
        assert_eq!(why, "HTTP status code error to server [10.0.0.2]:tcp:80.");
        let mut s = State::start(&h, None);
        assert_eq!(
            s.record_for(&h, (NAME, vs), Err(why.clone())).detail,
            Some(why)
        );
        // The other kinds' words.
        let udp = CheckKind::Udp(crate::lvs::model::UdpCheck {
            payload: Vec::new(),
            require_reply: None,
            min_reply: 0,
            max_reply: 0,
        });
        assert_eq!(
            Failure::Mismatch.line(&udp, NAME, vs),
            "UDP check to [10.0.0.2]:tcp:80 reply data mismatch."
        );
        assert_eq!(
            Failure::Failed.line(&udp, NAME, vs),
            "UDP connection to [10.0.0.2]:tcp:80 failed."
        );
        assert_eq!(
            Failure::Timeout.line(&CheckKind::Ping, NAME, vs),
            "ICMP connection to address [10.0.0.2]:tcp:80 timeout."
        );
        assert_eq!(
            Failure::Failed.line(&CheckKind::Ping, NAME, vs),
            "ICMP connection to [10.0.0.2]:tcp:80 of [10.0.0.1]:tcp:80 failed."
        );
    }

    /// SMTP_CHECK and DNS_CHECK say their usual line at each failure under log_all_failures;
    /// MISC_CHECK says where it is in its retries (check_misc.c).
    #[test]
    fn keepalived_log_all_failures_of_smtp_dns_and_misc() {
        let mut c = check(CheckKind::Smtp("h".into()), 1);
        c.log_all_failures = true;
        let mut s = State::default();
        s.record(&c, NAME, true);
        let st = s.record_result(&c, NAME, Err("Error connecting to".into()));
        assert_eq!(
            (st.now_up, st.line.as_deref()),
            (
                None,
                Some("SMTP_CHECK Error connecting to server [10.0.0.2]:tcp:80")
            )
        );
        let st = s.record_result(&c, NAME, Err("Error connecting to".into()));
        assert_eq!(st.now_up, Some(false));
        let q = crate::lvs::model::DnsQuery {
            name: ".".into(),
            qtype: 6,
        };
        let mut d = check(CheckKind::Dns(q), 1);
        d.log_all_failures = true;
        let mut s = State::default();
        s.record(&d, NAME, true);
        let st = s.record_result(&d, NAME, Err("no answer".into()));
        assert_eq!(
            st.line.as_deref(),
            Some("DNS_CHECK ([10.0.0.2]:tcp:80) no answer")
        );
        let st = s.record_result(&d, NAME, Err("no answer".into()));
        assert_eq!(
            st.line.as_deref(),
            Some("DNS_CHECK ([10.0.0.2]:tcp:80) no answer after 1 retries")
        );
        let mut m = check(
            CheckKind::Misc(crate::lvs::model::Misc {
                argv: vec!["/bin/chk".into()],
                timeout: Duration::from_secs(6),
                dynamic: false,
                user: None,
            }),
            2,
        );
        m.log_all_failures = true;
        let who = (NAME, "[10.0.0.1]:tcp:80", "/bin/chk");
        let mut s = State::default();
        s.record_misc(&m, false, who, Outcome::Exited(0));
        let lines: Vec<_> = (0..3)
            .map(|_| {
                s.record_misc(&m, false, who, Outcome::Exited(1))
                    .line
                    .unwrap()
            })
            .collect();
        let head = "Misc check for [[10.0.0.2]:tcp:80 VS [10.0.0.1]:tcp:80] by [/bin/chk] failed";
        assert_eq!(
            lines,
            [
                format!("{head}, will do 2 retries (exited with status 1)."),
                format!("{head} on retry 1/2 (exited with status 1)."),
                format!("{head} after 2 retries (exited with status 1)."),
            ]
        );
        assert!(!s.is_up);
    }

    #[test]
    fn keepalived_hex_strings() {
        use crate::lvs::model::hex_str;
        assert_eq!(hex_str("0a0B", false), Some(vec![(0x0a, 0), (0x0b, 0)]));
        assert_eq!(
            hex_str("a b\t1f2", false),
            Some(vec![(0xa, 0), (0xb, 0), (0x1f, 0), (2, 0)])
        );
        assert_eq!(
            hex_str("4x X1", true),
            Some(vec![(0x40, 0x0f), (0x01, 0xf0)])
        );
        assert_eq!(hex_str("4x", false), None, "no wildcard in a payload");
        assert_eq!(hex_str("zz", true), None);
        assert_eq!(hex_str("  ", true), None);
    }

    #[test]
    fn keepalived_tcp_check_without_retries_and_a_first_check_that_fails() {
        let c = check(CheckKind::Tcp, 0);
        let mut s = State::default();
        let st = s.record(&c, NAME, false);
        assert_eq!(st.now_up, Some(false));
        assert_eq!(
            st.line.as_deref(),
            Some("TCP_CHECK on service [10.0.0.2]:tcp:80 failed.")
        );
        let st = s.record(&c, NAME, true);
        assert_eq!(
            st.line.as_deref(),
            Some("TCP connection to [10.0.0.2]:tcp:80 success.")
        );
    }

    #[test]
    fn keepalived_misc_check_lines_and_misc_dynamic_weights() {
        let misc = |retry| {
            let mut c = check(CheckKind::Tcp, retry);
            c.kind = CheckKind::Misc(crate::lvs::model::Misc {
                argv: vec!["/bin/chk".into()],
                timeout: Duration::from_secs(6),
                dynamic: true,
                user: None,
            });
            c
        };
        let who = (NAME, "[10.0.0.1]:tcp:80", "/bin/chk");
        let c = misc(0);
        let mut s = State::default();
        let st = s.record_misc(&c, true, who, Outcome::Exited(0));
        assert_eq!(
            st.line.as_deref(),
            Some(
                "Misc check for [[10.0.0.2]:tcp:80 VS [10.0.0.1]:tcp:80] by [/bin/chk] succeeded."
            )
        );
        assert_eq!(s.share, 0, "exit 0: the configured weight");
        // misc_dynamic: exit 7 is up at weight 5, nothing said: the configured weight (1)
        // plus a share of 4.
        let st = s.record_misc(&c, true, who, Outcome::Exited(7));
        assert_eq!((st.now_up, st.line, s.share), (None, None, 4));
        // Exit 1 is down, without retries by default, and the share goes.
        let st = s.record_misc(&c, true, who, Outcome::Exited(1));
        assert_eq!((st.now_up, s.share), (Some(false), 0));
        assert_eq!(
            st.line.as_deref(),
            Some(
                "Misc check for [[10.0.0.2]:tcp:80 VS [10.0.0.1]:tcp:80] by [/bin/chk] failed with retry disabled (exited with status 1)."
            )
        );
        // With a retry, and a script killed at its timeout: the share stays while it retries.
        let c = misc(1);
        let mut s = State::default();
        s.record_misc(&c, true, who, Outcome::Exited(12));
        let st = s.record_misc(&c, false, who, Outcome::TimedOut);
        assert_eq!(
            (st.now_up, st.wait, s.share),
            (None, Duration::from_secs(3), 9)
        );
        let st = s.record_misc(&c, false, who, Outcome::TimedOut);
        assert_eq!(
            st.line.as_deref(),
            Some(
                "Misc check for [[10.0.0.2]:tcp:80 VS [10.0.0.1]:tcp:80] by [/bin/chk] timed out after 1 retry."
            )
        );
        // Without misc_dynamic, exit 2 is a failure.
        let mut s = State::default();
        assert_eq!(
            s.record_misc(&c, false, who, Outcome::Exited(2)).now_up,
            None
        );
    }

    /// A one-connection SMTP server on loopback speaking `script` (what it answers to the
    /// greeting, HELO and QUIT); returns its port.
    async fn smtp_server(script: [&'static str; 3]) -> u16 {
        use tokio::io::AsyncBufReadExt as _;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut s = tokio::io::BufReader::new(s);
            for (k, answer) in script.iter().enumerate() {
                if k > 0 {
                    let mut line = String::new();
                    if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                }
                let _ = s.get_mut().write_all(answer.as_bytes()).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn keepalived_smtp_check_dialogue() {
        let mut c = check(CheckKind::Smtp("me".into()), 0);
        c.addr = "127.0.0.1".parse().unwrap();
        c.connect_timeout = Duration::from_secs(2);
        c.port = smtp_server(["220-mx ready\r\n220 go\r\n", "250 hi\r\n", "221 bye\r\n"]).await;
        assert_eq!(smtp_once(&c, "me").await, Ok(()));
        c.port = smtp_server(["554 no\r\n", "", ""]).await;
        assert_eq!(
            smtp_once(&c, "me").await,
            Err("Bad greeting banner from".into())
        );
        c.port = smtp_server(["220 go\r\n", "500 what\r\n", ""]).await;
        assert_eq!(
            smtp_once(&c, "me").await,
            Err("Bad HELO response from".into())
        );
        let mut s = State::default();
        let st = s.record_result(
            &c,
            "[127.0.0.1]:tcp:25",
            Err("Bad HELO response from".into()),
        );
        assert_eq!(
            st.line.as_deref(),
            Some("SMTP_CHECK Bad HELO response from server [127.0.0.1]:tcp:25")
        );
    }

    #[tokio::test]
    async fn keepalived_dns_check_wants_a_response_with_rcode_0() {
        let q = dns_query(0x1234, "example.org", 6);
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x07example\x03org\x00\x00\x06\x00\x01");
        assert_eq!(dns_query(1, "", 6)[12..], [0, 0, 6, 0, 1], "the root");
        let mut reply = q.clone();
        reply[2] |= 0x80;
        assert_eq!(dns_verdict(&reply, 0x1234), Some(Ok(())));
        assert_eq!(dns_verdict(&reply, 0x1235), None, "another id");
        assert_eq!(dns_verdict(&q, 0x1234), None, "a query");
        reply[3] |= 3;
        assert_eq!(
            dns_verdict(&reply, 0x1234),
            Some(Err("read error occurred. (rcode = 3)".into()))
        );
        // A server that answers, and one that does not.
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = server.recv_from(&mut buf).await {
                buf[2] |= 0x80;
                let _ = server.send_to(&buf[..n], from).await;
            }
        });
        let query = crate::lvs::model::DnsQuery {
            name: String::new(),
            qtype: 6,
        };
        let mut c = check(CheckKind::Dns(query.clone()), 3);
        c.addr = "127.0.0.1".parse().unwrap();
        c.port = port;
        c.connect_timeout = Duration::from_millis(500);
        assert_eq!(dns_once(&c, &query).await, Ok(()));
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        c.port = silent.local_addr().unwrap().port();
        let r = dns_once(&c, &query).await;
        assert_eq!(r, Err("read timeout from socket".into()));
        let mut s = State::default();
        for _ in 0..3 {
            s.record_result(&c, "[127.0.0.1]:udp:53", r.clone());
        }
        let st = s.record_result(&c, "[127.0.0.1]:udp:53", r);
        assert_eq!(
            st.line.as_deref(),
            Some("DNS_CHECK ([127.0.0.1]:udp:53) read timeout from socket after 3 retries")
        );
    }

    #[test]
    fn the_digest_is_the_md5_of_the_body() {
        // echo -n r1 | md5sum
        assert_eq!(
            body_md5(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr1").as_deref(),
            Some("7c92cf1eee8d99cc85f8355a3d6e4b86")
        );
        assert_eq!(body_md5(b"HTTP/1.1 200 OK\r\n"), None, "no end of headers");
        // keepalived hashes no more than the Content-Length.
        assert_eq!(
            body_md5(b"HTTP/1.1 200 OK\r\nContent-Length:  2\r\n\r\nr1 and more").as_deref(),
            Some("7c92cf1eee8d99cc85f8355a3d6e4b86")
        );
        assert_eq!(
            content_length(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"),
            Some(12)
        );
        // keepalived's extract_content_length: that case exactly, nothing after the number.
        for bad in ["-1", "", "1x", "2 ", "99999999999999999999999"] {
            let h = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(content_length(h.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(
            content_length(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n"),
            None,
            "another case"
        );
    }

    /// HTTP_GET over IPv6: `Host: [ADDR]:PORT` (RFC 2732, keepalived's
    /// request_template_ipv6), and the page's Content-Length against the bytes that came,
    /// which keepalived reports.
    #[tokio::test]
    async fn http_get_over_ipv6_and_content_length() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(server) = tokio::net::TcpListener::bind("[::1]:0").await else {
            return; // no IPv6 loopback here
        };
        let port = server.local_addr().unwrap().port();
        let url = web_url("/");
        let mut c = check(CheckKind::Http(vec![url.clone()]), 0);
        c.addr = "::1".parse().unwrap();
        c.port = port;
        for (answer, want) in [
            (
                &b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nr1"[..],
                Some((10, 2)),
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nr1",
                Some((2, 2)),
            ),
            (b"HTTP/1.0 200 OK\r\n\r\nr1", Some((2, 2))),
            (b"HTTP/1.0 503 No\r\nContent-Length: 10\r\n\r\n", None),
        ] {
            let serve = async {
                let (mut conn, _) = server.accept().await.unwrap();
                let mut buf = vec![0u8; 1024];
                let n = conn.read(&mut buf).await.unwrap();
                conn.write_all(answer).await.unwrap();
                String::from_utf8_lossy(&buf[..n]).into_owned()
            };
            let mut lengths = None;
            let (_, request) = tokio::join!(http_url_measured(&c, &url, &mut lengths), serve);
            assert!(
                request.contains(&format!("\r\nHost: [::1]:{port}\r\n")),
                "{request}"
            );
            assert_eq!(lengths, want, "{answer:?}");
        }
        // keepalived says a difference the first time it sees it, again when it changes or
        // comes back after the lengths matched.
        let mut last = 0;
        let names = ("[::1]:tcp:80", "[::2]:tcp:80");
        let said = |last: &mut i64, l| length_mismatch(last, l, &url, names);
        assert_eq!(
            said(&mut last, (10, 2)).as_deref(),
            Some(
                "http_check for RS [::1]:tcp:80 VS [::2]:tcp:80 url /: content_length (10) does not match received bytes (2)"
            )
        );
        assert_eq!(said(&mut last, (10, 2)), None, "the same difference");
        assert!(said(&mut last, (10, 3)).is_some(), "another one");
        assert_eq!(said(&mut last, (3, 3)), None);
        assert!(said(&mut last, (10, 3)).is_some(), "back after a match");
    }

    #[test]
    fn status_lines_and_the_arp_table_are_read_defensively() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\nServer: x\r\n"), Some(200));
        assert_eq!(
            status_code(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b"HTTP/1.1 2000 x\r\n"), None);
        assert_eq!(status_code(b""), None);
        let table = "IP address       HW type     Flags       HW address            Mask     Device\n\
                     10.0.0.2         0x1         0x2         02:00:00:00:00:0b     *        eth0\n\
                     10.0.0.3         0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        let a = |s: &str| s.parse().unwrap();
        assert_eq!(
            parse_arp_table(table, a("10.0.0.2")),
            Some(([2, 0, 0, 0, 0, 0x0b], "eth0"))
        );
        assert_eq!(parse_arp_table(table, a("10.0.0.3")), None, "incomplete");
        assert_eq!(parse_arp_table(table, a("10.0.0.4")), None);
    }
}
