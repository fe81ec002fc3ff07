//! `SmtpSink`: a real SMTP server on loopback (`tests/tools/smtp_sink.py`, on aiosmtpd) that
//! keeps every message it receives as JSON, for the tests of what the app sends by email.

use std::fs::{self, OpenOptions};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The sink's script, found from any working directory.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/smtp_sink.py");

/// How long the sink may take to print `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long `restart` keeps trying while the port is still held.
const RESTART_PATIENCE: Duration = Duration::from_secs(5);

/// A running SMTP sink on `127.0.0.1:port()`: plain SMTP, no TLS, no AUTH. Every message it
/// accepts becomes one JSON object (see `messages`). Its process is killed when the sink is
/// dropped.
pub struct SmtpSink {
    /// The Python process; `None` while stopped. Spawned with `kill_on_drop`.
    child: Option<Child>,
    port: u16,
    /// `messages/` (the JSON files) and `sink.log` (the process's stderr, across restarts).
    dir: TempDir,
}

impl SmtpSink {
    /// Starts a sink on a free loopback port with an empty temporary directory, once it
    /// listens. Panics if aiosmtpd is missing or the sink does not start.
    pub async fn start() -> SmtpSink {
        require_aiosmtpd().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut sink = SmtpSink { child: None, port, dir: TempDir::new().unwrap() };
        fs::create_dir(sink.messages_dir()).unwrap();
        match sink.spawn().await {
            Ok(child) => sink.child = Some(child),
            Err(why) => panic!("the SMTP sink did not start on port {port}: {why}"),
        }
        sink
    }

    /// The port it listens on, the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the sink and waits for it: connecting to its port is refused afterwards. The
    /// messages it kept stay.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill the SMTP sink");
        }
    }

    /// Stops the sink if it runs, then starts it again on the same port and directory,
    /// retrying for a few seconds while the port is still held.
    pub async fn restart(&mut self) {
        self.stop().await;
        let deadline = Instant::now() + RESTART_PATIENCE;
        loop {
            match self.spawn().await {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(why) if Instant::now() >= deadline => {
                    panic!("the SMTP sink did not restart on port {} within {RESTART_PATIENCE:?}: {why}", self.port)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Every message received so far, in arrival order, each as the sink wrote it:
    /// `mail_from`, `rcpt_tos` (the envelope); `from`, `to`, `subject` (decoded headers);
    /// `text`, `html` (decoded bodies, `\n` line ends, or null); `content_type`.
    pub fn messages(&self) -> Vec<Value> {
        // Only `NNNNNN.json`: a file being written is `.NNNNNN.json.tmp` until renamed.
        let mut files: Vec<(u64, PathBuf)> = fs::read_dir(self.messages_dir())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter_map(|path| {
                let number = path.file_name()?.to_str()?.strip_suffix(".json")?.parse().ok()?;
                Some((number, path))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| {
                let json = fs::read_to_string(&path).unwrap();
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{}: {e}: {json}", path.display()))
            })
            .collect()
    }

    /// Polls every 50 ms until at least `count` messages arrived and returns them all;
    /// panics with what did arrive (and the sink's stderr) after `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the SMTP sink got {} of {count} messages within {timeout:?}: {}\nits stderr:\n{}",
                    messages.len(),
                    serde_json::to_string_pretty(&messages).unwrap(),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn messages_dir(&self) -> PathBuf {
        self.dir.path().join("messages")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("sink.log")
    }

    /// The sink's stderr so far, for failure messages.
    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Spawns the script and waits for its `ready`; on failure, kills it and says why.
    async fn spawn(&self) -> Result<Child, String> {
        let log = OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let mut child = Command::new("python3")
            .arg(SCRIPT)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.messages_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run python3: {e}"))?;
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(READY_TIMEOUT, async {
            loop {
                match stdout.next_line().await {
                    Ok(Some(line)) if line.trim() == "ready" => return Ok(()),
                    Ok(Some(_)) => continue,
                    Ok(None) => return Err("it exited before printing \"ready\"".to_owned()),
                    Err(e) => return Err(format!("reading its stdout: {e}")),
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err(format!("no \"ready\" within {READY_TIMEOUT:?}")));
        match ready {
            Ok(()) => Ok(child),
            Err(why) => {
                let _ = child.kill().await;
                Err(format!("{why}; its stderr:\n{}", self.log()))
            }
        }
    }
}

/// Panics unless `python3` can import aiosmtpd: tests that need the sink never skip.
async fn require_aiosmtpd() {
    let status = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    match status {
        Ok(status) if status.success() => {}
        Ok(_) => panic!("aiosmtpd is not installed: pip install aiosmtpd (.ci/run installs it)"),
        Err(e) => panic!("python3 cannot be run ({e}); the SMTP sink needs it, with aiosmtpd"),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;
    use tokio::net::tcp::OwnedReadHalf;

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(10);

    /// Reads one (possibly multi-line) SMTP reply and asserts its code.
    async fn expect_reply(read: &mut BufReader<OwnedReadHalf>, code: &str, after: &str) {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            read.read_line(&mut line).await.unwrap();
            assert!(line.len() >= 4, "after {after}: truncated reply {reply}{line:?}");
            reply.push_str(&line);
            if line.as_bytes()[3] == b' ' {
                break;
            }
        }
        assert!(reply.starts_with(code), "after {after}: expected {code}, got {reply}");
    }

    /// Speaks SMTP by hand: one message (headers, blank line, body; CRLF line ends) from
    /// `from` to `to`, then QUIT.
    async fn send(port: u16, from: &str, to: &str, message: &str) {
        let talk = async {
            let (read, mut write) = TcpStream::connect(("127.0.0.1", port)).await.unwrap().into_split();
            let mut read = BufReader::new(read);
            expect_reply(&mut read, "220", "connecting").await;
            // Dot-stuffed, and ended by a line holding only a dot (the message's last line
            // break belongs to the message).
            let mut data = message.replace("\r\n.", "\r\n..");
            if !data.ends_with("\r\n") {
                data.push_str("\r\n");
            }
            data.push('.');
            let mail_from = format!("MAIL FROM:<{from}>");
            let rcpt_to = format!("RCPT TO:<{to}>");
            for (line, code) in [
                ("EHLO client.test", "250"),
                (&*mail_from, "250"),
                (&*rcpt_to, "250"),
                ("DATA", "354"),
                (&*data, "250"),
            ] {
                write.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
                expect_reply(&mut read, code, line.lines().next().unwrap()).await;
            }
            write.write_all(b"QUIT\r\n").await.unwrap();
            expect_reply(&mut read, "221", "QUIT").await;
        };
        tokio::time::timeout(PATIENCE, talk).await.expect("the SMTP conversation took too long");
    }

    #[tokio::test]
    async fn the_sink_receives_decodes_and_survives_a_restart() {
        let mut sink = SmtpSink::start().await;
        let html = "<p>Café — 2 seats for <b>Dune</b></p>";
        let message = [
            "From: Boxoffice <tickets@boxoffice.test>",
            "To: =?UTF-8?Q?Zo=C3=AB?= <zoe@example.test>",
            "Subject: =?UTF-8?Q?Caf=C3=A9_=E2=80=94_2_seats?=",
            "MIME-Version: 1.0",
            "Content-Type: multipart/alternative; boundary=\"b0undary\"",
            "",
            "--b0undary",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
            "",
            "Caf=C3=A9 =E2=80=94 2 seats for Dune, Saturday 20:00, on a line long enough =",
            "to be soft-broken.",
            ".A line that starts with a dot.",
            "",
            "--b0undary",
            "Content-Type: text/html; charset=utf-8",
            "Content-Transfer-Encoding: base64",
            "",
            &base64::engine::general_purpose::STANDARD.encode(html),
            "--b0undary--",
        ]
        .join("\r\n");
        send(sink.port(), "tickets@boxoffice.test", "zoe@example.test", &message).await;

        let first = sink.wait_for(1, PATIENCE).await.remove(0);
        assert_eq!(first["mail_from"], "tickets@boxoffice.test");
        assert_eq!(first["rcpt_tos"], json!(["zoe@example.test"]));
        assert_eq!(first["from"], "Boxoffice <tickets@boxoffice.test>");
        assert_eq!(first["to"], "Zoë <zoe@example.test>");
        assert_eq!(first["subject"], "Café — 2 seats");
        assert_eq!(
            first["text"],
            "Café — 2 seats for Dune, Saturday 20:00, on a line long enough to be soft-broken.\n\
             .A line that starts with a dot.\n"
        );
        assert_eq!(first["html"], html);
        assert_eq!(first["content_type"], "multipart/alternative");

        sink.stop().await;
        let refused = TcpStream::connect(("127.0.0.1", sink.port())).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

        sink.restart().await;
        let second = "From: tickets@boxoffice.test\r\nTo: zoe@example.test\r\nSubject: Second\r\n\r\nAgain.\r\n";
        send(sink.port(), "tickets@boxoffice.test", "zoe@example.test", second).await;
        let messages = sink.wait_for(2, PATIENCE).await;
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert_eq!(messages[0], first, "the first message survives the restart");
        assert_eq!(messages[1]["subject"], "Second");
        assert_eq!(messages[1]["text"], "Again.\n");
        assert_eq!(messages[1]["html"], Value::Null);
        assert_eq!(messages[1]["content_type"], "text/plain");
    }
}
