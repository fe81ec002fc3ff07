//! `SmtpSink`: a real SMTP server on loopback, inside the test process, that keeps every
//! message it receives; and `Email`, a message decoded the way the tests read it (from the
//! sink, or from the file outbox's `.eml` files).
//!
//! The sink speaks as much SMTP as a client needs to deliver (RFC 5321: EHLO/HELO, MAIL FROM,
//! RCPT TO, DATA with dot-unstuffing, RSET, NOOP, QUIT), in plain text: the tests configure
//! the app with `tls = "none"` and no credentials, so neither STARTTLS nor AUTH is offered.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The name the sink gives itself in its greeting and its EHLO reply.
const HOSTNAME: &str = "smtp-sink";

/// A message as the tests read it: headers and bodies decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Email {
    /// The `From`, `To` and `Subject` headers, unfolded and decoded (RFC 2047); `None` when
    /// absent.
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    /// The first `text/plain` and `text/html` parts (the message itself when it is one),
    /// decoded (transfer encoding, charset), with `\n` line ends; `None` when there is none.
    pub text: Option<String>,
    pub html: Option<String>,
    /// The top-level message's, e.g. `multipart/alternative`.
    pub content_type: String,
}

impl Email {
    /// Decodes an RFC 5322 message; panics, quoting it, when it cannot be parsed.
    pub fn parse(raw: &[u8]) -> Email {
        let parsed = mailparse::parse_mail(raw)
            .unwrap_or_else(|e| panic!("not an RFC 5322 message ({e}):\n{}", String::from_utf8_lossy(raw)));
        let header = |name: &str| parsed.headers.iter().find(|h| h.get_key_ref().eq_ignore_ascii_case(name));
        let body = |mimetype: &str| {
            let part = first_part(&parsed, mimetype)?;
            let body = part.get_body().unwrap_or_else(|e| panic!("the {mimetype} part cannot be decoded: {e}"));
            Some(body.replace("\r\n", "\n"))
        };
        Email {
            from: header("From").map(mailparse::MailHeader::get_value),
            to: header("To").map(mailparse::MailHeader::get_value),
            subject: header("Subject").map(mailparse::MailHeader::get_value),
            text: body("text/plain"),
            html: body("text/html"),
            content_type: parsed.ctype.mimetype.clone(),
        }
    }

    /// Whether its text or its HTML part mentions `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        [&self.text, &self.html].into_iter().flatten().any(|body| body.contains(needle))
    }
}

/// The first part of `mail` (itself included, depth first) of type `mimetype` that is not an
/// attachment.
fn first_part<'a>(mail: &'a mailparse::ParsedMail<'a>, mimetype: &str) -> Option<&'a mailparse::ParsedMail<'a>> {
    let attachment = mail.get_content_disposition().disposition == mailparse::DispositionType::Attachment;
    if mail.ctype.mimetype == mimetype && !attachment {
        return Some(mail);
    }
    mail.subparts.iter().find_map(|part| first_part(part, mimetype))
}

/// A message the sink accepted: its envelope and the message itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    /// `MAIL FROM`'s address.
    pub mail_from: String,
    /// Every `RCPT TO`'s address, in order.
    pub rcpt_tos: Vec<String>,
    pub email: Email,
}

/// A running SMTP sink on `127.0.0.1:port()`. Every message it accepts is kept, across
/// `stop` and `restart`, in arrival order. It stops when dropped.
pub struct SmtpSink {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    /// The task that accepts connections and owns their tasks; `None` while stopped.
    server: Option<JoinHandle<()>>,
}

impl SmtpSink {
    /// Starts a sink on a free loopback port; it listens when this returns.
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SMTP sink to a loopback port");
        let port = listener.local_addr().expect("the SMTP sink's address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let server = Some(tokio::spawn(serve(listener, Arc::clone(&received))));
        SmtpSink { port, received, server }
    }

    /// The port it listens on, the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops listening and drops every open connection, as a mail server that went down:
    /// connecting to its port is refused afterwards. The messages it kept stay.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            // Once the task is gone, so are its listener and its connections' tasks.
            let _ = server.await;
        }
    }

    /// Stops the sink if it runs, then listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        // Tokio sets SO_REUSEADDR: the connections just closed do not hold the port.
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap_or_else(|e| panic!("the SMTP sink cannot listen on port {} again: {e}", self.port));
        self.server = Some(tokio::spawn(serve(listener, Arc::clone(&self.received))));
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().expect("the sink's messages").clone()
    }

    /// Polls every 50 ms until at least `count` messages arrived and returns them all;
    /// panics with what did arrive after `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "the SMTP sink got {} of {count} messages within {timeout:?}: {messages:#?}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Accepts connections until aborted; aborting it drops the `JoinSet`, which aborts every
/// connection's task.
async fn serve(listener: TcpListener, received: Arc<Mutex<Vec<Received>>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // A failed accept (e.g. the client already gone) concerns that client only.
                if let Ok((stream, _)) = accepted {
                    connections.spawn(converse(stream, Arc::clone(&received)));
                }
            }
            // Reaps finished conversations so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One client's session: replies to each command line, keeps each message DATA completes.
/// Ends at QUIT or when the client hangs up; an I/O error ends it too (the client sees a
/// dropped connection, as with any server).
async fn converse(stream: TcpStream, received: Arc<Mutex<Vec<Received>>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(format!("220 {HOSTNAME} ESMTP\r\n").as_bytes()).await?;
    // The transaction in progress: MAIL FROM's address, then the RCPT TO addresses.
    let mut mail_from: Option<String> = None;
    let mut rcpt_tos: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line);
        let command = command.trim_end_matches(['\r', '\n']);
        let (verb, argument) = command.split_once(' ').unwrap_or((command, ""));
        let reply = match verb.to_ascii_uppercase().as_str() {
            // 8BITMIME and SMTPUTF8: the message and the addresses are kept as bytes.
            "EHLO" => format!("250-{HOSTNAME}\r\n250-8BITMIME\r\n250 SMTPUTF8"),
            "HELO" => format!("250 {HOSTNAME}"),
            "MAIL" => match address(argument, "FROM:") {
                Some(from) => {
                    mail_from = Some(from);
                    rcpt_tos.clear();
                    "250 OK".to_owned()
                }
                None => "501 Syntax: MAIL FROM:<address>".to_owned(),
            },
            "RCPT" if mail_from.is_none() => "503 Error: need MAIL command".to_owned(),
            "RCPT" => match address(argument, "TO:") {
                Some(to) => {
                    rcpt_tos.push(to);
                    "250 OK".to_owned()
                }
                None => "501 Syntax: RCPT TO:<address>".to_owned(),
            },
            "DATA" if rcpt_tos.is_empty() => "503 Error: need RCPT command".to_owned(),
            "DATA" => {
                write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let Some(content) = data(&mut read).await? else { return Ok(()) };
                let message = Received {
                    mail_from: mail_from.take().unwrap_or_default(),
                    rcpt_tos: std::mem::take(&mut rcpt_tos),
                    email: Email::parse(&content),
                };
                received.lock().expect("the sink's messages").push(message);
                "250 OK: message accepted".to_owned()
            }
            "RSET" => {
                mail_from = None;
                rcpt_tos.clear();
                "250 OK".to_owned()
            }
            "NOOP" => "250 OK".to_owned(),
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => "500 Error: command not recognized".to_owned(),
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// The address in `FROM:<address> PARAMETERS` (with `keyword` "FROM:"), parameters ignored;
/// `None` when the argument has another shape. The null sender `<>` is the empty address.
fn address(argument: &str, keyword: &str) -> Option<String> {
    let (head, rest) = argument.split_at_checked(keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let (address, _) = rest.trim_start().strip_prefix('<')?.split_once('>')?;
    Some(address.to_owned())
}

/// Reads a message's lines up to the one holding only a dot, undoing the dot-stuffing; the
/// line break before that dot belongs to the message. `None` when the client hangs up first.
async fn data(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<Option<Vec<u8>>> {
    let mut content = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some(content));
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        content.extend_from_slice(unstuffed);
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
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

    /// Speaks SMTP by hand: each `(command, expected reply code)` in turn, then QUIT.
    async fn talk(port: u16, steps: &[(&str, &str)]) {
        let conversation = async {
            let (read, mut write) = TcpStream::connect(("127.0.0.1", port)).await.unwrap().into_split();
            let mut read = BufReader::new(read);
            expect_reply(&mut read, "220", "connecting").await;
            for (line, code) in steps.iter().copied().chain([("QUIT", "221")]) {
                write.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
                expect_reply(&mut read, code, line.lines().next().unwrap()).await;
            }
        };
        tokio::time::timeout(PATIENCE, conversation).await.expect("the SMTP conversation took too long");
    }

    /// `message` (CRLF line ends) as DATA's content: dot-stuffed, and ended by a line holding
    /// only a dot (the message's last line break belongs to the message).
    fn dot_stuffed(message: &str) -> String {
        let mut data = message.replace("\r\n.", "\r\n..");
        if !data.ends_with("\r\n") {
            data.push_str("\r\n");
        }
        data.push('.');
        data
    }

    /// One message from `from` to `to`.
    async fn send(port: u16, from: &str, to: &str, message: &str) {
        let (mail_from, rcpt_to, data) =
            (format!("MAIL FROM:<{from}>"), format!("RCPT TO:<{to}>"), dot_stuffed(message));
        talk(
            port,
            &[("EHLO client.test", "250"), (&mail_from, "250"), (&rcpt_to, "250"), ("DATA", "354"), (&data, "250")],
        )
        .await;
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
        assert_eq!(first.mail_from, "tickets@boxoffice.test");
        assert_eq!(first.rcpt_tos, ["zoe@example.test"]);
        let email = &first.email;
        assert_eq!(email.from.as_deref(), Some("Boxoffice <tickets@boxoffice.test>"));
        assert_eq!(email.to.as_deref(), Some("Zoë <zoe@example.test>"));
        assert_eq!(email.subject.as_deref(), Some("Café — 2 seats"));
        assert_eq!(
            email.text.as_deref(),
            Some(
                "Café — 2 seats for Dune, Saturday 20:00, on a line long enough to be soft-broken.\n\
                 .A line that starts with a dot.\n"
            )
        );
        assert_eq!(email.html.as_deref(), Some(html));
        assert_eq!(email.content_type, "multipart/alternative");

        sink.stop().await;
        let refused = TcpStream::connect(("127.0.0.1", sink.port())).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

        sink.restart().await;
        let second = "From: tickets@boxoffice.test\r\nTo: zoe@example.test\r\nSubject: Second\r\n\r\nAgain.\r\n";
        send(sink.port(), "tickets@boxoffice.test", "zoe@example.test", second).await;
        let messages = sink.wait_for(2, PATIENCE).await;
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert_eq!(messages[0], first, "the first message survives the restart");
        let again = &messages[1].email;
        assert_eq!(again.subject.as_deref(), Some("Second"));
        assert_eq!(again.text.as_deref(), Some("Again.\n"));
        assert_eq!(again.html, None);
        assert_eq!(again.content_type, "text/plain");
    }

    #[tokio::test]
    async fn the_sink_keeps_to_the_order_of_a_transaction_and_forgets_a_reset_one() {
        let sink = SmtpSink::start().await;
        let message = dot_stuffed("Subject: Kept\r\n\r\nKept.\r\n");
        talk(
            sink.port(),
            &[
                ("HELO client.test", "250"),
                ("RCPT TO:<early@example.test>", "503"),
                ("DATA", "503"),
                ("MAIL FROM:<tickets@boxoffice.test>", "250"),
                ("RCPT TO:<forgotten@example.test>", "250"),
                ("RSET", "250"),
                ("DATA", "503"),
                ("NOOP", "250"),
                ("MAIL tickets@boxoffice.test", "501"),
                ("VRFY zoe", "500"),
                ("mail from:<tickets@boxoffice.test> BODY=8BITMIME", "250"),
                ("RCPT TO:<zoe@example.test>", "250"),
                ("RCPT TO:<yan@example.test>", "250"),
                ("DATA", "354"),
                (&message, "250"),
            ],
        )
        .await;
        let messages = sink.wait_for(1, PATIENCE).await;
        assert_eq!(messages.len(), 1, "{messages:#?}");
        assert_eq!(messages[0].mail_from, "tickets@boxoffice.test");
        assert_eq!(messages[0].rcpt_tos, ["zoe@example.test", "yan@example.test"]);
        assert_eq!(messages[0].email.subject.as_deref(), Some("Kept"));
    }
}
