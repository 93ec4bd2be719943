//! A virtual machine for what this machine's kernel lacks (IPVS: CONFIG_IP_VS is off here).
//! Debian's kernel, which has it as modules, is fetched by `cargo xtask setup` into
//! `target/vm/kernel`; qemu boots it under software emulation with a small initramfs
//! (busybox and the modules a test names) that mounts this machine's root file system,
//! shared read-only over 9p, under a tmpfs overlay, and runs a script there. So the test runs
//! the real binary and this machine's tools (ip, nft, ipvsadm, curl), all writable, and
//! nothing it does reaches this machine: the VM has no network device.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};

/// Where `cargo xtask setup` puts the kernel (the package's files: `boot/vmlinuz-*`,
/// `lib/modules/*`, with `modules.dep`).
pub fn kernel_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/vm/kernel")
}

/// The kernel image and its modules' directory.
pub struct Kernel {
    pub image: PathBuf,
    pub modules: PathBuf,
}

pub fn kernel() -> Result<Kernel> {
    let dir = kernel_dir();
    let image = std::fs::read_dir(dir.join("boot"))
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| {
            format!(
                "no kernel in {} (cargo xtask setup fetches it)",
                dir.display()
            )
        })?;
    let version = image
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .context("kernel image name")?
        .to_string();
    let modules = dir.join("lib/modules").join(version);
    ensure!(
        modules.join("modules.dep").exists(),
        "{} has no modules.dep (cargo xtask setup runs depmod)",
        modules.display()
    );
    Ok(Kernel { image, modules })
}

/// The files of `names` and of what they depend on, as `modules.dep` lists them (paths
/// relative to the modules' directory).
fn module_files(modules: &Path, names: &[&str]) -> Result<Vec<String>> {
    let dep = std::fs::read_to_string(modules.join("modules.dep")).context("modules.dep")?;
    let mut files = Vec::new();
    for name in names {
        let line = dep
            .lines()
            .find(|l| {
                l.split(':').next().is_some_and(|f| {
                    Path::new(f)
                        .file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| n.split('.').next())
                        .is_some_and(|n| n.replace('-', "_") == name.replace('-', "_"))
                })
            })
            .with_context(|| format!("module {name} is not in modules.dep"))?;
        let (file, deps) = line.split_once(':').unwrap_or((line, ""));
        for f in std::iter::once(file).chain(deps.split_whitespace()) {
            if !files.iter().any(|x| x == f) {
                files.push(f.to_string());
            }
        }
    }
    Ok(files)
}

/// The VM's /init: modules loaded, this machine's root under an overlay, the script run
/// there (its path and arguments come on the kernel command line), then power off.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules); do modprobe "$m" || echo "VM: modprobe $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot /lower || echo "VM: 9p failed"
mount -t tmpfs tmpfs /rw && mkdir /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || echo "VM: overlay failed"
mount -t proc proc /newroot/proc; mount -t sysfs sys /newroot/sys; mount -t devtmpfs dev /newroot/dev
mount -t tmpfs tmpfs /newroot/run; mount -t tmpfs tmpfs /newroot/tmp; mount -t bpf bpf /newroot/sys/fs/bpf
CMD=$(sed -n 's/.* vmrun=\(.*\)$/\1/p' /proc/cmdline | tr ',' ' ')
echo "VM: running $CMD"
chroot /newroot /bin/sh -c "PATH=/usr/sbin:/usr/bin:/sbin:/bin; export PATH; sh $CMD" 2>&1
echo "VM-EXIT $?"
poweroff -f
"#;

/// Boots the kernel with `modules` loaded and runs `script` with `args` (paths on this
/// machine, without spaces or commas) in it; returns what the console printed. Fails when it
/// does not power off within `timeout`.
pub fn run(script: &Path, args: &[&Path], modules: &[&str], timeout: Duration) -> Result<String> {
    let kernel = kernel()?;
    let dir = TempDir::new("vrrp-vm")?;
    let dir = &dir.0;
    let root = dir.join("initramfs");
    for d in ["bin", "lower", "rw", "newroot", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .context("/bin/busybox (the busybox-static package)")?;
    let version = kernel
        .modules
        .file_name()
        .context("modules' directory")?
        .to_owned();
    let mods = root.join("lib/modules").join(&version);
    std::fs::create_dir_all(&mods)?;
    for f in ["modules.dep", "modules.builtin", "modules.order"] {
        let _ = std::fs::copy(kernel.modules.join(f), mods.join(f));
    }
    for f in module_files(&kernel.modules, modules)? {
        let to = mods.join(&f);
        std::fs::create_dir_all(to.parent().context("module path")?)?;
        std::fs::copy(kernel.modules.join(&f), &to).with_context(|| f.clone())?;
    }
    std::fs::write(root.join("modules"), modules.join(" "))?;
    std::fs::write(root.join("init"), INIT)?;
    std::fs::set_permissions(
        root.join("init"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let initrd = dir.join("initrd.cpio");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && find . | busybox cpio -o -H newc > '{}' 2>/dev/null",
            root.display(),
            initrd.display()
        ))
        .status()?;
    ensure!(status.success(), "building the initramfs ({status})");
    let mut run = vec![script.display().to_string()];
    run.extend(args.iter().map(|a| a.display().to_string()));
    for a in &run {
        ensure!(
            !a.contains([' ', ',']),
            "{a}: a VM argument cannot hold a space or comma"
        );
    }
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-accel", "tcg", "-m", "1024", "-smp", "2"])
        .args(["-nographic", "-no-reboot", "-net", "none"])
        .arg("-kernel")
        .arg(&kernel.image)
        .arg("-initrd")
        .arg(&initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 quiet panic=-1 vmrun={}",
            run.join(",")
        ))
        .args([
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = qemu
        .spawn()
        .context("starting qemu-system-x86_64 (the qemu-system-x86 package)")?;
    // Both streams are read as it runs (a full pipe would stop it).
    let read = |mut from: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = from.read_to_end(&mut out);
            out
        })
    };
    let reader = read(Box::new(child.stdout.take().context("qemu's output")?));
    let errors = read(Box::new(child.stderr.take().context("qemu's errors")?));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    out.push_str(&String::from_utf8_lossy(&errors.join().unwrap_or_default()));
    match status {
        None => bail!("the VM did not finish within {timeout:?}:\n{out}"),
        Some(s) if !s.success() => bail!("qemu failed ({s}):\n{out}"),
        Some(_) => Ok(out),
    }
}

/// A directory of its own, removed when dropped (whatever way `run` returns).
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Result<TempDir> {
        let dir = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
