//! Seed 003's LVS-DR topology in namespaces, for the LVS lab tests and benchmark: directors
//! a (192.168.11.11) and b (.12), real servers r1 (.113) and r2 (.114) running nginx with
//! their own page and the VIP on their loopback (arp_ignore 1, arp_announce 2, as the seed
//! sets them up), and a client (.100–.107) that sends with complete checksums.

use std::{net::Ipv4Addr, path::Path, time::Duration};

use crate::{poll, routers::VrrpLab};

pub const VIP: &str = "192.168.11.200";
const LONG: Duration = Duration::from_secs(30);
const R1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x13];
const R2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x14];

/// The seed's director configuration (tests/configs, from ../shared/configs), adapted.
pub fn director(file: &str, priority: u8) -> String {
    let text =
        std::fs::read_to_string(format!("{}/configs/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let adapted = text
        .replace("interface ens33", "interface eth0")
        .replace("delay_loop 6", "delay_loop 1")
        .replace("delay_before_retry 3", "delay_before_retry 1")
        .replace("connect_timeout 3", "connect_timeout 1")
        .replace("nb_get_retry 3", "nb_get_retry 1");
    let adapted = with_priority(&adapted, priority);
    assert!(adapted.contains("lb_kind DR") && adapted.contains("HTTP_GET"));
    adapted
}

fn with_priority(text: &str, priority: u8) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("priority ") {
                format!("    priority {priority}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

pub struct Seed {
    pub lab: VrrpLab,
}

impl Seed {
    pub fn nginx_conf(&self, r: &str) -> std::path::PathBuf {
        self.lab.dir().join(format!("nginx-{r}.conf"))
    }

    pub fn start_nginx(&self, r: &str) {
        let ns = &self.lab.lab.host(r).ns;
        let out = ns
            .output(&["nginx", "-c", self.nginx_conf(r).to_str().unwrap()])
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn stop_nginx(&self, r: &str) {
        let ns = &self.lab.lab.host(r).ns;
        ns.output(&[
            "nginx",
            "-c",
            self.nginx_conf(r).to_str().unwrap(),
            "-s",
            "stop",
        ])
        .unwrap();
        // Gone when its pid file is.
        let pid = self.lab.dir().join(format!("nginx-{r}.pid"));
        poll(LONG, || (!pid.exists()).then_some(())).expect("nginx stops");
    }

    /// The page the client gets from `src` on a new connection, if any.
    pub fn get(&self, src: Ipv4Addr) -> Option<String> {
        self.get_url(src, &format!("http://{VIP}/"))
    }

    /// As [`Self::get`], for `url` (an IPv6 address in brackets), from `src`.
    pub fn get_url(&self, src: impl std::fmt::Display, url: &str) -> Option<String> {
        let out = self
            .lab
            .lab
            .host("client")
            .ns
            .output(&[
                "curl",
                "-s",
                "-g",
                "-m",
                "2",
                "--interface",
                &src.to_string(),
                url,
            ])
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Which real servers answered `clients` (one request each), in order.
    pub fn pages(&self, clients: &[Ipv4Addr]) -> Vec<String> {
        clients
            .iter()
            .map(|c| self.get(*c).unwrap_or_else(|| "none".into()))
            .collect()
    }

    /// Waits until `director`'s schedule is `want`: for each of r1 (.113) and r2 (.114),
    /// whether it takes new flows. Err: what it was instead, and the logs.
    pub fn wait_serving(&self, director: &str, want: [bool; 2]) -> Result<(), String> {
        let want = vec![
            ("192.168.11.113".to_string(), want[0]),
            ("192.168.11.114".to_string(), want[1]),
        ];
        poll(LONG, || (self.serving(director) == want).then_some(())).ok_or_else(|| {
            format!(
                "{director} serves {:?}, not {want:?}\n{}\n{}",
                self.serving(director),
                self.lab.status(director),
                self.lab.logs()
            )
        })
    }

    /// The master's view of its real servers: (address, serving).
    pub fn serving(&self, director: &str) -> Vec<(String, bool)> {
        self.serving_of(director, 0)
    }

    /// As [`Self::serving`], for the `vs`th virtual server.
    pub fn serving_of(&self, director: &str, vs: usize) -> Vec<(String, bool)> {
        let st = self.lab.status(director);
        st["virtual_servers"][vs]["real_servers"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| {
                        (
                            r["address"].as_str().unwrap_or("").to_string(),
                            r["serving"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub fn client(k: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 11, 100 + k)
}

/// Directors a and b, the client (eight addresses, complete checksums), real servers r1
/// and r2 (nginx with their own page, the VIP on lo, no ARP for it), nginx started.
/// A real server `name` on the LAN: nginx serving its name as the page (configured, not
/// started), the VIP on lo, no ARP for it.
pub fn add_real(lab: &mut VrrpLab, name: &str, mac: [u8; 6], cidr: &str) {
    // A host, not a router: it holds the VIP on lo, and the routers' VIP checks must not
    // count it.
    lab.lab.add_host(name, "eth0", mac, cidr).unwrap();
    let ns = &lab.lab.host(name).ns;
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    ns.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])
        .unwrap();
    ns.output(&[
        "sh",
        "-c",
        "for i in all lo eth0; do echo 1 > /proc/sys/net/ipv4/conf/$i/arp_ignore; echo 2 > /proc/sys/net/ipv4/conf/$i/arp_announce; done",
    ])
    .unwrap();
    let d = lab.dir().display().to_string();
    // A self-signed certificate, for SSL_GET on port 443.
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
        ])
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(lab.dir().join(format!("{name}.key")))
        .arg("-out")
        .arg(lab.dir().join(format!("{name}.crt")))
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    client_certificate(lab.dir());
    std::fs::write(
        lab.dir().join(format!("nginx-{name}.conf")),
        format!(
            "user root;\nworker_processes 1;\npid {d}/nginx-{name}.pid;\nerror_log {d}/nginx-{name}.err;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body-{name};\n  server {{\n    listen 80;\n    listen [::]:80;\n    listen 81;\n    listen 443 ssl;\n    ssl_certificate {d}/{name}.crt;\n    ssl_certificate_key {d}/{name}.key;\n    location / {{ return 200 \"{name}\\n\"; }}\n  }}\n  server {{\n    listen 80;\n    server_name vhost.example;\n    location / {{ return 200 \"vhost-{name}\\n\"; }}\n  }}\n  server {{\n    listen 8443 ssl;\n    ssl_certificate {d}/{name}.crt;\n    ssl_certificate_key {d}/{name}.key;\n    ssl_client_certificate {d}/client-ca.crt;\n    ssl_verify_client on;\n    location / {{ return 200 \"{name}\\n\"; }}\n  }}\n}}\n"
        ),
    )
    .unwrap();
}

/// The lab's client certificate for SSL_GET (`client.crt`, `client.key`, and the key
/// encrypted with the password `lab secret` in `client-enc.key`), signed by a CA
/// (`client-ca.crt`) that the real servers' nginx asks for on port 8443; made once per lab.
fn client_certificate(dir: &Path) {
    if dir.join("client.crt").exists() {
        return;
    }
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "1",
                "-subj",
                "/CN=lab-ca",
                "-keyout",
                "client-ca.key",
                "-out",
                "client-ca.crt",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=director",
                "-keyout",
                "client.key",
                "-out",
                "client.csr",
            ],
        ]
        .concat(),
    );
    // With an extension, so X.509 v3 (rustls takes no v1 certificate).
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(&[
        "x509",
        "-extfile",
        "client.ext",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "client-ca.crt",
        "-CAkey",
        "client-ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        "client.crt",
    ]);
    // The same key encrypted (PKCS#8, AES-256-CBC), for the SSL block's `password`.
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        "client.key",
        "-passout",
        "pass:lab secret",
        "-out",
        "client-enc.key",
    ]);
}

pub fn topology(agent: &Path) -> Seed {
    let mut lab = VrrpLab::pair(agent, true).expect("lab");
    add_real(&mut lab, "r1", R1_MAC, "192.168.11.113/24");
    add_real(&mut lab, "r2", R2_MAC, "192.168.11.114/24");
    // A veth leaves the checksums of what it sends to be completed later, and a frame the
    // XDP program sends on (XDP_TX) loses that mark: the client computes its own, as a NIC
    // on a real wire would have.
    let out = lab
        .lab
        .host("client")
        .ns
        .output(&["ethtool", "-K", "eth0", "tx", "off"])
        .unwrap();
    assert!(
        out.status.success(),
        "ethtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // More client addresses: persistence_timeout keeps each client on its server.
    for k in 1..8 {
        lab.lab
            .host("client")
            .ns
            .ip(&["addr", "add", &format!("{}/24", client(k)), "dev", "eth0"])
            .unwrap();
    }
    let seed = Seed { lab };
    seed.start_nginx("r1");
    seed.start_nginx("r2");
    seed
}
