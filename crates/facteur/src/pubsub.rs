//! `facteur pub` and `facteur sub`: mosquitto_pub / mosquitto_sub with the same flags and
//! exit codes, on the facteur-client crate.
//!
//! Exit codes: 0 on success; 1 for a bad argument, a connection that failed or was
//! refused, a publication that failed or a subscription refused; 27 when `sub -W` ran out
//! of time (as mosquitto_sub).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{ArgAction, Args};
use facteur_client::{
    parse_protocol, Client, Options, PublishProperties, QoS, Reconnect, Roots, SubscriptionOptions,
    TlsOptions, Transport, Will,
};

/// The flags `facteur pub` and `facteur sub` share (mosquitto's spellings).
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// Print usage.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// The broker's host.
    #[arg(short = 'h', long = "host", default_value = "localhost")]
    host: String,
    /// The broker's port (1883, or 8883 with TLS).
    #[arg(short = 'p', long = "port")]
    port: Option<u16>,
    /// A URL: `mqtt(s)://[user[:password]@]host[:port]/topic` (ws:// and wss:// too).
    #[arg(short = 'L', long = "url")]
    url: Option<String>,
    /// The topic (several for `sub`).
    #[arg(short = 't', long = "topic")]
    topics: Vec<String>,
    /// Quality of service: 0, 1 or 2.
    #[arg(short = 'q', long = "qos", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// The client identifier (a random one otherwise).
    #[arg(short = 'i', long = "id")]
    id: Option<String>,
    /// User name.
    #[arg(short = 'u', long = "username")]
    username: Option<String>,
    /// Password.
    #[arg(short = 'P', long = "pw")]
    password: Option<String>,
    /// Keep alive in seconds.
    #[arg(short = 'k', long = "keepalive", default_value_t = 60)]
    keepalive: u16,
    /// Protocol version: mqttv311 (311) or mqttv5 (5).
    #[arg(short = 'V', long = "protocol-version", default_value = "mqttv311")]
    version: String,
    /// A persistent session (no clean session / clean start).
    #[arg(short = 'c', long = "disable-clean-session")]
    persistent: bool,
    /// Session Expiry Interval in seconds (5.0; -1 for never).
    #[arg(short = 'x', long = "session-expiry", allow_negative_numbers = true)]
    session_expiry: Option<i64>,
    /// A 5.0 property: `-D connect|publish <property> <value>` (user-property takes a name
    /// and a value).
    #[arg(short = 'D', long = "property", num_args = 3..=4, action = ArgAction::Append)]
    properties: Vec<String>,
    /// The CA certificates to trust (PEM), which turns TLS on.
    #[arg(long)]
    cafile: Option<PathBuf>,
    /// A client certificate (PEM) for mutual TLS.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Do not check that the server certificate's name matches the host.
    #[arg(long)]
    insecure: bool,
    /// The will's topic.
    #[arg(long = "will-topic")]
    will_topic: Option<String>,
    /// The will's payload.
    #[arg(long = "will-payload")]
    will_payload: Option<String>,
    /// The will's QoS.
    #[arg(long = "will-qos", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    will_qos: u8,
    /// Retain the will.
    #[arg(long = "will-retain")]
    will_retain: bool,
    /// Print the connection's events (and, for `sub`, each granted subscription) to stderr.
    #[arg(short = 'd', long = "debug")]
    debug: bool,
}

/// `facteur pub`'s own flags.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub(crate) struct PubArgs {
    #[command(flatten)]
    common: Common,
    /// The message.
    #[arg(short = 'm', long = "message")]
    message: Option<String>,
    /// Send this file as the message.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Send each line of standard input as a message.
    #[arg(short = 'l', long = "stdin-line")]
    lines: bool,
    /// Send an empty message.
    #[arg(short = 'n', long = "null-message")]
    null: bool,
    /// Send all of standard input as one message.
    #[arg(short = 's', long = "stdin-file")]
    stdin: bool,
    /// Retain the message.
    #[arg(short = 'r', long = "retain")]
    retain: bool,
}

/// `facteur sub`'s own flags.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub(crate) struct SubArgs {
    #[command(flatten)]
    common: Common,
    /// Print the topic before each message.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Stop after this many messages.
    #[arg(short = 'C', long = "count")]
    count: Option<u64>,
    /// Stop after this many seconds (exit code 27).
    #[arg(short = 'W', long = "timeout")]
    timeout: Option<u64>,
    /// No newline after each message.
    #[arg(short = 'N')]
    no_newline: bool,
}

/// A command-line mistake: printed, exit code 1.
type Usage = String;

/// The client's options and the topic the URL named, from the common flags.
fn options(common: &Common) -> Result<(Options, Option<String>), Usage> {
    let version = parse_protocol(&common.version)
        .ok_or_else(|| format!("unknown protocol version {}", common.version))?;
    let (mut options, url_topic) = match &common.url {
        Some(url) => {
            let (base, topic) = split_url(url)?;
            (Options::from_url(&base).map_err(|e| e.to_string())?, topic)
        }
        None => {
            let tls = common.cafile.is_some() || common.cert.is_some();
            let port = common.port.unwrap_or(if tls { 8883 } else { 1883 });
            (Options::new(common.host.clone(), port), None)
        }
    };
    if common.url.is_some() && common.port.is_some() {
        options.port = common.port.unwrap_or(options.port);
    }
    options.protocol = version;
    if let Some(id) = &common.id {
        options.client_id = id.clone();
    }
    if let Some(user) = &common.username {
        options.username = Some(user.clone());
    }
    if let Some(password) = &common.password {
        options.password = Some(Bytes::from(password.clone().into_bytes()));
    }
    options.keep_alive = Duration::from_secs(u64::from(common.keepalive));
    options.clean_start = !common.persistent;
    if let Some(secs) = common.session_expiry {
        options.session_expiry = Some(u32::try_from(secs).unwrap_or(u32::MAX));
    }
    if common.cafile.is_some() || common.cert.is_some() || common.insecure {
        let mut tls = TlsOptions::default();
        if let Some(ca) = &common.cafile {
            tls.roots = Roots::CaFile(ca.clone());
        }
        match (&common.cert, &common.key) {
            (Some(cert), Some(key)) => tls.client_auth = Some((cert.clone(), key.clone())),
            (None, None) => {}
            _ => return Err("--cert and --key go together".into()),
        }
        tls.skip_name_check = common.insecure;
        options.transport = match std::mem::replace(&mut options.transport, Transport::Tcp) {
            Transport::Ws { path } | Transport::Wss { path, .. } => Transport::Wss { path, tls },
            _ => Transport::Tls(tls),
        };
    }
    if let Some(topic) = &common.will_topic {
        let payload = common.will_payload.clone().unwrap_or_default();
        options.will = Some(
            Will::new(topic.clone(), payload)
                .qos(qos(common.will_qos))
                .retain(common.will_retain),
        );
    }
    for property in grouped(&common.properties)? {
        connect_property(&mut options, &property)?;
    }
    Ok((options, url_topic))
}

/// `mqtts://u:p@host:port/a/b` → (`mqtts://u:p@host:port`, `a/b`).
fn split_url(url: &str) -> Result<(String, Option<String>), Usage> {
    let after_scheme = url.find("://").ok_or_else(|| format!("{url}: not a URL"))? + 3;
    match url[after_scheme..].find('/') {
        Some(slash) => {
            let topic = &url[after_scheme + slash + 1..];
            let topic = (!topic.is_empty()).then(|| topic.to_owned());
            Ok((url[..after_scheme + slash].to_owned(), topic))
        }
        None => Ok((url.to_owned(), None)),
    }
}

/// The `-D` values one property at a time: command, name, value (and a second value for
/// `user-property`).
fn grouped(flat: &[String]) -> Result<Vec<Vec<String>>, Usage> {
    let mut out = Vec::new();
    let mut rest = flat;
    while !rest.is_empty() {
        let n = if rest.get(1).is_some_and(|name| name == "user-property") {
            4
        } else {
            3
        };
        if rest.len() < n {
            return Err(format!("-D {}: a value is missing", rest.join(" ")));
        }
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    Ok(out)
}

fn qos(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, Usage> {
    value
        .parse()
        .map_err(|_| format!("-D {name}: {value} is not a number"))
}

/// `-D connect ...` (other commands are read where they apply).
fn connect_property(options: &mut Options, p: &[String]) -> Result<(), Usage> {
    let (command, name, value) = (p[0].as_str(), p[1].as_str(), p[2].as_str());
    match (command, name) {
        ("connect", "session-expiry-interval") => {
            options.session_expiry = Some(number(name, value)?);
        }
        ("connect", "receive-maximum") => options.receive_maximum = number(name, value)?,
        ("connect", "maximum-packet-size") => options.max_packet_size = number(name, value)?,
        ("connect", "topic-alias-maximum") => {
            options.topic_alias_maximum = number(name, value)?;
        }
        ("connect", "request-problem-information") => {
            options.request_problem_information = number::<u8>(name, value)? != 0;
        }
        ("connect", "user-property") => {
            let v = p
                .get(3)
                .ok_or("-D connect user-property needs a name and a value")?;
            options.user_properties.push((value.to_owned(), v.clone()));
        }
        ("publish", _) | ("subscribe", _) | ("unsubscribe", _) | ("disconnect", _) => {}
        _ => return Err(format!("-D {command} {name}: not a property facteur sends")),
    }
    Ok(())
}

/// `-D publish ...` as message properties.
fn publish_properties(common: &Common) -> Result<PublishProperties, Usage> {
    let mut props = PublishProperties::default();
    let all = grouped(&common.properties)?;
    for p in all.iter().filter(|p| p[0] == "publish") {
        let (name, value) = (p[1].as_str(), p[2].as_str());
        match name {
            "content-type" => props.content_type = Some(value.to_owned()),
            "response-topic" => props.response_topic = Some(value.to_owned()),
            "correlation-data" => {
                props.correlation_data = Some(Bytes::from(value.as_bytes().to_vec()));
            }
            "message-expiry-interval" => props.message_expiry = Some(number(name, value)?),
            "payload-format-indicator" => {
                props.utf8_payload = Some(number::<u8>(name, value)? != 0);
            }
            "user-property" => {
                let v = p
                    .get(3)
                    .ok_or("-D publish user-property needs a name and a value")?;
                props.user_properties.push((value.to_owned(), v.clone()));
            }
            other => return Err(format!("-D publish {other}: not a PUBLISH property")),
        }
    }
    if let Some(p) = all.iter().find(|p| p[0] == "subscribe") {
        return Err(format!("-D subscribe {}: not supported", p[1]));
    }
    Ok(props)
}

fn fail(what: &str, error: impl std::fmt::Display) -> ExitCode {
    eprintln!("Error: {what}{error}");
    ExitCode::from(1)
}

async fn connect(
    options: Options,
    debug: bool,
) -> Result<(Client, facteur_client::Messages), ExitCode> {
    match Client::connect(options).await {
        Ok((client, messages)) => {
            if debug {
                let mut events = client.events();
                tokio::spawn(async move {
                    while let Ok(event) = events.recv().await {
                        eprintln!("{event:?}");
                    }
                });
            }
            Ok((client, messages))
        }
        Err(error) => Err(fail("Connection error: ", error)),
    }
}

/// `facteur pub`.
pub(crate) async fn publish(args: PubArgs) -> ExitCode {
    let (mut options, url_topic) = match options(&args.common) {
        Ok(o) => o,
        Err(usage) => return fail("", usage),
    };
    let topic = match (args.common.topics.first(), url_topic) {
        (Some(t), _) => t.clone(),
        (None, Some(t)) => t,
        (None, None) => return fail("", "a topic is needed (-t or -L)"),
    };
    let sources = [
        args.message.is_some(),
        args.file.is_some(),
        args.lines,
        args.null,
        args.stdin,
    ];
    if sources.iter().filter(|&&s| s).count() != 1 {
        return fail("", "exactly one of -m, -f, -l, -n, -s is needed");
    }
    let properties = match publish_properties(&args.common) {
        Ok(p) => p,
        Err(usage) => return fail("", usage),
    };
    // Messages read before connecting (but -l reads as it goes).
    let one: Option<Vec<u8>> = if let Some(m) = &args.message {
        Some(m.clone().into_bytes())
    } else if let Some(path) = &args.file {
        match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) => return fail(&format!("{}: ", path.display()), e),
        }
    } else if args.null {
        Some(Vec::new())
    } else if args.stdin {
        let mut all = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut all) {
            return fail("standard input: ", e);
        }
        Some(all)
    } else {
        None
    };
    options.reconnect = Reconnect::off();
    let (client, _messages) = match connect(options, args.common.debug).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let qos = qos(args.common.qos);
    let send = |payload: Vec<u8>| {
        client
            .publish(topic.clone(), payload)
            .qos(qos)
            .retain(args.retain)
            .properties(properties.clone())
    };
    let mut failed = false;
    match one {
        Some(payload) => {
            if let Err(e) = send(payload).await {
                eprintln!("Error: publish failed: {e}");
                failed = true;
            }
        }
        None => {
            // -l: one message per line, read on a thread (stdin blocks).
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
            std::thread::spawn(move || {
                let stdin = std::io::stdin();
                let mut line = Vec::new();
                let mut lock = stdin.lock();
                loop {
                    line.clear();
                    match std::io::BufRead::read_until(&mut lock, b'\n', &mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            if line.last() == Some(&b'\n') {
                                line.pop();
                            }
                            if tx.blocking_send(line.clone()).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
            while let Some(line) = rx.recv().await {
                if let Err(e) = send(line).await {
                    eprintln!("Error: publish failed: {e}");
                    failed = true;
                    break;
                }
            }
        }
    }
    let _ = client.disconnect().await;
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `facteur sub`.
pub(crate) async fn subscribe(args: SubArgs) -> ExitCode {
    let (mut options, url_topic) = match options(&args.common) {
        Ok(o) => o,
        Err(usage) => return fail("", usage),
    };
    // -c: pick up the session an earlier run left (it publishes nothing: no QoS 2 risk).
    options.adopt_session = args.common.persistent;
    let mut topics = args.common.topics.clone();
    topics.extend(url_topic);
    if topics.is_empty() {
        return fail("", "a topic is needed (-t or -L)");
    }
    for topic in &topics {
        if let Err(e) = facteur_topic::TopicFilter::new(topic) {
            return fail(&format!("Invalid subscription topic '{topic}': "), e);
        }
    }
    if let Err(usage) = publish_properties(&args.common) {
        return fail("", usage);
    }
    let deadline = args
        .timeout
        .map(|secs| tokio::time::Instant::now() + Duration::from_secs(secs));
    let (client, mut messages) = match connect(options, args.common.debug).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let qos = qos(args.common.qos);
    let filters = topics
        .iter()
        .map(|t| (t.clone(), SubscriptionOptions::qos(qos)))
        .collect();
    match client.subscribe_many(filters).await {
        Ok(results) if results.iter().all(Result::is_err) => {
            return fail("", "all subscription requests were denied");
        }
        Ok(results) => {
            for (topic, result) in topics.iter().zip(results) {
                match result {
                    Err(reason) => {
                        eprintln!("Warning: subscription to {topic} refused: {reason}")
                    }
                    Ok(granted) if args.common.debug => {
                        eprintln!("Subscribed to {topic} (QoS {} granted)", granted as u8)
                    }
                    Ok(_) => {}
                }
            }
        }
        Err(e) => return fail("subscribe: ", e),
    }
    let mut received = 0;
    let code = loop {
        if args.count.is_some_and(|c| received >= c) {
            break ExitCode::SUCCESS;
        }
        let next = async {
            match deadline {
                Some(at) => tokio::time::timeout_at(at, messages.recv()).await.ok(),
                None => Some(messages.recv().await),
            }
        };
        tokio::select! {
            message = next => match message {
                None => break ExitCode::from(27), // -W ran out
                Some(None) => break fail("", "the connection ended"),
                Some(Some(message)) => {
                    received += 1;
                    let mut out = std::io::stdout().lock();
                    let mut line = Vec::with_capacity(message.topic.len() + message.payload.len() + 2);
                    if args.verbose {
                        line.extend_from_slice(message.topic.as_bytes());
                        line.push(b' ');
                    }
                    line.extend_from_slice(&message.payload);
                    if !args.no_newline {
                        line.push(b'\n');
                    }
                    if out.write_all(&line).and_then(|()| out.flush()).is_err() {
                        break ExitCode::from(1);
                    }
                }
            },
            _ = tokio::signal::ctrl_c() => break ExitCode::SUCCESS,
        }
    };
    if deadline.is_some_and(|at| tokio::time::Instant::now() >= at) && code == ExitCode::from(27) {
        eprintln!("Timed out");
    }
    let _ = client.disconnect().await;
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_topic_is_split_off() {
        assert_eq!(
            split_url("mqtts://u:p@h:8883/a/b").unwrap(),
            ("mqtts://u:p@h:8883".into(), Some("a/b".into()))
        );
        assert_eq!(split_url("mqtt://h").unwrap(), ("mqtt://h".into(), None));
        assert!(split_url("h/t").is_err());
        assert_eq!(
            parse_protocol("mqttv5"),
            Some(facteur_client::ProtocolVersion::V5)
        );
        let flat: Vec<String> = [
            "publish",
            "user-property",
            "k",
            "v",
            "connect",
            "receive-maximum",
            "5",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(grouped(&flat).unwrap().len(), 2);
        assert!(grouped(&flat[..3]).is_err());
    }
}
