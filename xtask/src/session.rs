//! A headless QEMU a test talks to while it runs: the kernel's console on a pipe (read line by
//! line, written to as if typed) and QMP on a Unix socket for `screendump`. Screenshots and the
//! scripted console test are both sessions.

use crate::qemu::{self, Machine};
use crate::Result;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One running QEMU.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    errors: Option<std::thread::JoinHandle<String>>,
    socket: PathBuf,
    qmp: Option<(BufReader<UnixStream>, UnixStream)>,
    /// Every console line read so far.
    console: String,
    started: Instant,
}

/// A fresh path for a Unix socket in the temporary directory (unique per process and call, so
/// concurrent test runs do not collide).
pub fn temp_socket(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("tricolor-{what}-{}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

impl Session {
    /// Boots `machine` headless with a QMP socket and the console on pipes.
    pub fn start(machine: &Machine) -> Result<Session> {
        Self::start_with(machine, &[])
    }

    /// [`Session::start`] with `extra` QEMU arguments.
    pub fn start_with(machine: &Machine, extra: &[String]) -> Result<Session> {
        let socket = temp_socket("qmp");
        let mut args = vec!["-qmp".to_string(), format!("unix:{},server=on,wait=off", socket.display())];
        args.extend_from_slice(extra);
        let started = Instant::now();
        let mut child = qemu::spawn_interactive_headless(machine, &args)?;
        let lines = line_reader(child.stdout.take().expect("piped stdout"));
        let stderr = child.stderr.take().expect("piped stderr");
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        });
        let stdin = child.stdin.take();
        Ok(Session { child, stdin, lines, errors: Some(errors), socket, qmp: None, console: String::new(), started })
    }

    /// Time since the boot started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Reads console lines until one satisfies `want` (returned) or `timeout` passes.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, want: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.console.push_str(&line);
                    self.console.push('\n');
                    if want(&line) {
                        return Ok(line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!("waited {:.1} s for {what} in vain", timeout.as_secs_f64()))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(format!("QEMU exited before {what}")),
            }
        }
    }

    /// Reads whatever console lines have arrived, without waiting.
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.console.push_str(&line);
            self.console.push('\n');
        }
    }

    /// Types `line` and Enter on the console.
    pub fn send(&mut self, line: &str) -> Result {
        let stdin = self.stdin.as_mut().ok_or("the console input is closed")?;
        stdin
            .write_all(format!("{line}\r").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("typing '{line}': {e}"))
    }

    /// Types `command` and returns the first answer line starting with `answer`.
    pub fn command(&mut self, command: &str, answer: &str, timeout: Duration) -> Result<String> {
        self.send(command)?;
        self.wait_for(&format!("an answer \"{answer}...\" to '{command}'"), timeout, |l| l.starts_with(answer))
    }

    fn qmp(&mut self, command: &str, deadline: Instant) -> Result {
        if self.qmp.is_none() {
            let stream = loop {
                match UnixStream::connect(&self.socket) {
                    Ok(stream) => break stream,
                    Err(e) if Instant::now() >= deadline => {
                        return Err(format!("QMP socket {}: {e}", self.socket.display()))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            };
            let writer = stream.try_clone().map_err(|e| format!("QMP socket: {e}"))?;
            let mut reader = BufReader::new(stream);
            let mut greeting = String::new();
            reader.get_ref().set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| format!("QMP: {e}"))?;
            reader.read_line(&mut greeting).map_err(|e| format!("QMP greeting: {e}"))?;
            self.qmp = Some((reader, writer));
            self.qmp(r#"{"execute": "qmp_capabilities"}"#, deadline)?;
        }
        let (reader, writer) = self.qmp.as_mut().expect("connected above");
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        reader.get_ref().set_read_timeout(Some(left)).map_err(|e| format!("QMP socket: {e}"))?;
        writeln!(writer, "{command}").map_err(|e| format!("QMP write: {e}"))?;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => return Err(format!("QMP closed while waiting for the answer to {command}")),
                Ok(_) if line.contains("\"return\"") => return Ok(()),
                Ok(_) if line.contains("\"error\"") => return Err(format!("QMP {command}: {}", line.trim())),
                Ok(_) => {}
                Err(e) => return Err(format!("QMP answer to {command}: {e}")),
            }
        }
    }

    /// Saves the display as a PNG (QMP `screendump`).
    pub fn screendump(&mut self, out: &Path, timeout: Duration) -> Result {
        let out = std::path::absolute(out).map_err(|e| format!("{}: {e}", out.display()))?;
        let _ = std::fs::remove_file(&out);
        let filename = out.to_str().ok_or("the output path is not UTF-8")?;
        let command = format!(
            r#"{{"execute": "screendump", "arguments": {{"filename": "{}", "format": "png"}}}}"#,
            filename.replace('\\', "\\\\").replace('"', "\\\"")
        );
        self.qmp(&command, Instant::now() + timeout)?;
        match std::fs::metadata(&out) {
            Ok(m) if m.len() > 0 => Ok(()),
            _ => Err(format!("screendump did not write {}", out.display())),
        }
    }

    /// Waits up to `timeout` for QEMU to exit on its own (the kernel powered off).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            if let Some(status) = self.child.try_wait().map_err(|e| format!("waiting for QEMU: {e}"))? {
                self.drain();
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!("QEMU still running {:.1} s later", timeout.as_secs_f64()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends QEMU (if it still runs) and returns the console and QEMU's own messages.
    pub fn finish(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.drain();
        let _ = std::fs::remove_file(&self.socket);
        let stderr = self.errors.take().and_then(|e| e.join().ok()).unwrap_or_default();
        format!("{}{stderr}", self.console)
    }
}

/// Console lines as they arrive.
fn line_reader(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Bytes, not `lines()`: a stray non-UTF-8 byte must not end the reader.
        for line in BufReader::new(pipe).split(b'\n') {
            let Ok(line) = line else { break };
            if tx.send(String::from_utf8_lossy(&line).replace('\r', "")).is_err() {
                break;
            }
        }
    });
    rx
}
