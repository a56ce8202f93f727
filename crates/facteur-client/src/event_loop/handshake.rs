//! One connection up to its CONNACK: the CONNECT from the options, the CONNACK read
//! within the connect timeout and handed to the session, which negotiates.

use facteur_codec::{
    decode, split_frame, ConnAck, Connect, Encode, Packet, Properties, Property, QoS, ReasonCode,
    Status, Will as WireWill,
};
use tokio::time::timeout;

use super::{EventLoop, ServerLimits};
use crate::transport::{self, Conn};
use crate::Error;

impl EventLoop {
    /// One connection up to its CONNACK: the session negotiates.
    pub(super) async fn connect_once(&mut self) -> Result<(Conn, bool), Error> {
        let limit = self.options.connect_timeout;
        let max = self.options.max_packet_size;
        let mut conn = timeout(limit, transport::connect(&self.options, max as usize))
            .await
            .map_err(|_| Error::Timeout)??;
        let deadline = tokio::time::Instant::now() + limit;
        let version = self.version();
        // 3.1.1: clean session as configured each time; 5.0: clean start once, then resume.
        let clean_start = self.options.clean_start && (self.connections == 0 || !version.is_v5());
        let will_props_list;
        let will_props;
        let will = match &self.options.will {
            Some(will) => {
                let mut list = will.properties.to_list();
                if let Some(delay) = will.delay {
                    list.push(Property::WillDelayInterval(delay));
                }
                will_props_list = list;
                will_props = Properties::from_slice(&will_props_list);
                Some(WireWill {
                    topic: &will.topic,
                    payload: &will.payload,
                    qos: will.qos,
                    retain: will.retain,
                    properties: will_props,
                })
            }
            None => None,
        };
        let mut props = Vec::new();
        if let Some(secs) = self.options.session_expiry {
            props.push(Property::SessionExpiryInterval(secs));
        }
        props.push(Property::ReceiveMaximum(self.session.receive_maximum()));
        props.push(Property::MaximumPacketSize(max));
        if self.session.topic_alias_maximum() > 0 {
            props.push(Property::TopicAliasMaximum(
                self.session.topic_alias_maximum(),
            ));
        }
        if !self.options.request_problem_information {
            props.push(Property::RequestProblemInformation(false));
        }
        for (k, v) in &self.options.user_properties {
            props.push(Property::UserProperty(k, v));
        }
        let connect = Connect {
            protocol: version,
            clean_start,
            keep_alive: self.options.keep_alive_secs(),
            client_id: &self.options.client_id,
            will,
            username: self.options.username.as_deref(),
            password: self.options.password.as_deref(),
            properties: if version.is_v5() {
                Properties::from_slice(&props)
            } else {
                Properties::EMPTY
            },
        };
        let packet = Packet::Connect(connect);
        let len = packet
            .encoded_len(version)
            .map_err(|e| Error::InvalidMessage(format!("CONNECT: {e}")))?;
        let mut out = vec![0; len];
        packet
            .encode(version, &mut out)
            .map_err(|e| Error::InvalidMessage(format!("CONNECT: {e}")))?;
        timeout(limit, conn.write_all(&out))
            .await
            .map_err(|_| Error::Timeout)??;
        self.read_buf.clear();
        let frame = loop {
            match split_frame(&mut self.read_buf, max) {
                Ok(Some(frame)) => break frame,
                Ok(None) => {}
                Err(e) => return Err(Error::Protocol(e.reason_code())),
            }
            let n = tokio::time::timeout_at(deadline, conn.read(&mut self.read_buf))
                .await
                .map_err(|_| Error::Timeout)??;
            if n == 0 {
                return Err(Error::Io(
                    "the broker closed the connection before CONNACK".into(),
                ));
            }
        };
        let connack: ConnAck<'_> = match decode(&frame, version, max) {
            Ok(Status::Complete(d)) => match d.packet {
                Packet::ConnAck(connack) => connack,
                _ => return Err(Error::Protocol(ReasonCode::ProtocolError)),
            },
            Ok(Status::Incomplete(_)) => return Err(Error::Protocol(ReasonCode::MalformedPacket)),
            Err(e) => return Err(Error::Protocol(e.reason_code())),
        };
        let now = self.now();
        let connected = self
            .session
            .accept_connack(now, &connect, &connack)
            .map_err(|reason| {
                if connack.reason_code.is_error() {
                    Error::Refused {
                        reason,
                        reason_string: connack.properties.reason_string().map(str::to_owned),
                    }
                } else {
                    Error::Protocol(reason)
                }
            })?;
        let props = &connack.properties;
        self.server_limits = ServerLimits {
            maximum_qos: props.maximum_qos().unwrap_or(QoS::ExactlyOnce),
            retain_available: props.retain_available().unwrap_or(true),
        };
        // An identifier the broker chose is ours from now on (to resume the session).
        if let Some(assigned) = props.assigned_client_identifier() {
            self.options.client_id = assigned.to_owned();
        }
        self.session.limit_inflight(self.options.max_inflight);
        self.connections += 1;
        self.pending_loss = None;
        self.after_session_events();
        Ok((conn, connected.session_present))
    }
}
