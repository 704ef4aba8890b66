//! The master key printed by a command (`safeguard.master_key_command`), for deployments that
//! keep it in a key service (Vault, a cloud KMS, an HSM) rather than in a file on the server, as
//! PostgreSQL does for TLS with `ssl_passphrase_command`.
//!
//! The command runs under `/bin/sh -c`, with no standard input, in its own process group (so
//! that a command that hangs is killed with everything it started), and must print the key (64
//! hex digits or the base64 of 32 bytes, surrounding white space ignored) and exit with 0 within
//! the timeout. What it prints is never put into a message: its standard output may be the key,
//! and its standard error may echo it. Errors say what went wrong and how many bytes it wrote.
//! Pure Rust: no PostgreSQL here.

use super::keys::{self, BadKeyFile, Key};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The most a key command may print on standard output: a key is 64 characters; a command that
/// prints a page is printing something else.
pub const MAX_OUTPUT: usize = 4096;

#[derive(Debug, PartialEq, Eq)]
pub enum BadTemplate {
    /// `%` followed by a character that is no placeholder.
    UnknownPlaceholder(char),
    /// A `%` at the end of the command.
    DanglingPercent,
}

/// The command line with its placeholders replaced: `%d` by the data directory (quoted for the
/// shell), `%%` by `%`.
pub fn expand(template: &str, data_directory: &str) -> Result<String, BadTemplate> {
    let mut command = String::with_capacity(template.len() + data_directory.len());
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            command.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => command.push_str(&shell_quote(data_directory)),
            Some('%') => command.push('%'),
            Some(other) => return Err(BadTemplate::UnknownPlaceholder(other)),
            None => return Err(BadTemplate::DanglingPercent),
        }
    }
    Ok(command)
}

/// `text` as one word for `/bin/sh`: in single quotes, each single quote written as `'\''`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[derive(Debug)]
pub enum Failure {
    /// `/bin/sh` could not be started.
    Spawn(std::io::Error),
    /// Still running when the timeout passed: killed, with its process group.
    TimedOut(Duration),
    /// Ended with a non-zero status or by a signal.
    Exited { status: ExitStatus, stderr_bytes: usize },
    /// Printed more than MAX_OUTPUT bytes.
    TooMuchOutput,
    /// Exited with 0, but what it printed is no key.
    NotAKey { reason: BadKeyFile, stdout_bytes: usize },
}

impl Failure {
    /// One sentence for an error's detail; never anything the command printed.
    pub fn describe(&self) -> String {
        match self {
            Failure::Spawn(e) => format!("/bin/sh could not be started: {e}."),
            Failure::TimedOut(after) => {
                format!("It was still running after {} s and was killed, with the processes it started.", after.as_secs())
            }
            Failure::Exited { status, stderr_bytes } => {
                let how = match (status.code(), status.signal()) {
                    (Some(code), _) => format!("exited with status {code}"),
                    (None, Some(signal)) => format!("was ended by signal {signal}"),
                    (None, None) => "failed".to_owned(),
                };
                format!(
                    "It {how}; its standard error held {stderr_bytes} bytes, not logged because they could hold key \
                     material: run the command by hand as the server's operating-system user to read them."
                )
            }
            Failure::TooMuchOutput => format!("It printed more than {MAX_OUTPUT} bytes; a key is 64 hex digits or 44 base64 characters."),
            Failure::NotAKey { reason, stdout_bytes } => match reason {
                BadKeyFile::NotAKey => format!(
                    "It exited with 0 but printed {stdout_bytes} bytes that are neither 64 hex digits nor the base64 of 32 bytes."
                ),
                BadKeyFile::Degenerate => "It printed 32 equal bytes: a placeholder, not a random key.".to_owned(),
            },
        }
    }
}

/// Kills the command's process group unless it was waited for: a command that timed out, or a
/// wait interrupted by the caller (a query cancel raised from `waiting`), leaves nothing behind.
struct Running {
    child: Child,
    reaped: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: signals the process group the child leads (process_group(0) made it).
            unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// Runs `command` and returns the key it printed. `waiting` is called about every 100 ms while
/// the command runs (a backend checks for a query cancel there).
pub fn run(command: &str, timeout: Duration, mut waiting: impl FnMut()) -> Result<Key, Failure> {
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(Failure::Spawn)?;
    let mut running = Running { child, reaped: false };
    let deadline = Instant::now() + timeout;
    let mut stdout = running.child.stdout.take().expect("piped above");
    let mut stderr = running.child.stderr.take().expect("piped above");
    for fd in [stdout.as_raw_fd(), stderr.as_raw_fd()] {
        // SAFETY: fcntl on pipe ends this function owns.
        unsafe { libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK) };
    }
    let mut output = Zeroizing::new(Vec::with_capacity(128));
    let mut stderr_bytes = 0usize;
    let (mut stdout_open, mut stderr_open) = (true, true);
    let mut chunk = Zeroizing::new([0u8; 1024]);
    while stdout_open || stderr_open {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::TimedOut(timeout));
        }
        let mut fds = Vec::with_capacity(2);
        if stdout_open {
            fds.push(libc::pollfd { fd: stdout.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        if stderr_open {
            fds.push(libc::pollfd { fd: stderr.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        let wait_ms = left.min(Duration::from_millis(100)).as_millis() as libc::c_int;
        // SAFETY: `fds` is a valid array of pollfd of the given length.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        waiting();
        if stdout_open {
            match stdout.read(&mut chunk[..]) {
                Ok(0) => stdout_open = false,
                Ok(n) => {
                    if output.len() + n > MAX_OUTPUT {
                        return Err(Failure::TooMuchOutput);
                    }
                    output.extend_from_slice(&chunk[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => stdout_open = false,
            }
        }
        if stderr_open {
            match stderr.read(&mut chunk[..]) {
                Ok(0) => stderr_open = false,
                Ok(n) => stderr_bytes += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => stderr_open = false,
            }
        }
    }
    // Both pipes closed: the command is ending (or has handed them to a process that exits).
    let status = loop {
        if let Some(status) = running.child.try_wait().map_err(Failure::Spawn)? {
            running.reaped = true;
            break status;
        }
        if Instant::now() >= deadline {
            return Err(Failure::TimedOut(timeout));
        }
        std::thread::sleep(Duration::from_millis(5));
        waiting();
    };
    if !status.success() {
        return Err(Failure::Exited { status, stderr_bytes });
    }
    keys::parse_master_key(&output).map_err(|reason| Failure::NotAKey { reason, stdout_bytes: output.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn run_quickly(command: &str) -> Result<Key, Failure> {
        run(command, Duration::from_secs(5), || {})
    }

    #[test]
    fn placeholders_are_expanded_and_quoted() {
        assert_eq!(expand("cat %d/key", "/var/lib/pg").unwrap(), "cat '/var/lib/pg'/key");
        assert_eq!(expand("echo 100%%", "/x").unwrap(), "echo 100%");
        assert_eq!(expand("cat %d", "/it's here").unwrap(), r"cat '/it'\''s here'");
        assert_eq!(expand("no placeholders", "/x").unwrap(), "no placeholders");
        assert_eq!(expand("cat %p", "/x"), Err(BadTemplate::UnknownPlaceholder('p')));
        assert_eq!(expand("cat 100%", "/x"), Err(BadTemplate::DanglingPercent));
    }

    #[test]
    fn a_printed_key_is_read_in_hex_and_base64() {
        let key = run_quickly(&format!("echo {HEX}")).unwrap();
        assert_eq!(key[1], 1);
        assert_eq!(key[31], 0x1f);
        let base64 = run_quickly("printf 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\\n'").unwrap();
        assert_eq!(*base64, *key);
    }

    #[test]
    fn failures_are_told_apart_without_the_output() {
        let failed = run_quickly(&format!("echo {HEX}; echo {HEX} >&2; exit 3")).unwrap_err();
        assert!(matches!(failed, Failure::Exited { stderr_bytes: 65, .. }), "{failed:?}");
        assert!(failed.describe().contains("status 3"));
        assert!(!failed.describe().contains(HEX));
        let garbage = run_quickly("echo this is not a key").unwrap_err();
        assert!(matches!(garbage, Failure::NotAKey { stdout_bytes: 18, .. }), "{garbage:?}");
        assert!(!garbage.describe().contains("this is not"));
        assert!(matches!(run_quickly("yes"), Err(Failure::TooMuchOutput)));
        assert!(matches!(run_quickly("kill -9 $$"), Err(Failure::Exited { .. })));
        let zeros = format!("echo {}", "00".repeat(32));
        assert!(matches!(run_quickly(&zeros), Err(Failure::NotAKey { reason: BadKeyFile::Degenerate, .. })));
    }

    #[test]
    fn a_slow_command_is_waited_for_and_a_hanging_one_killed() {
        assert!(run(&format!("sleep 0.3; echo {HEX}"), Duration::from_secs(5), || {}).is_ok());
        let started = Instant::now();
        let mut ticks = 0;
        // The background sleep keeps the pipes open: the whole group must be killed.
        let hung = run("sleep 30 & sleep 30", Duration::from_millis(500), || ticks += 1).unwrap_err();
        assert!(matches!(hung, Failure::TimedOut(_)), "{hung:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(ticks >= 3, "waiting() is called while the command runs");
    }
}
