//! CONNECT (§3.1): the first packet of every connection; it carries the protocol version.

use super::{check_field, check_topic_name, Plan};
use crate::property::PropertyContext;
use crate::read::Reader;
use crate::write::{Sink, SinkExt};
use crate::{DecodeError, DecodeErrorKind, EncodeError, Properties, ProtocolVersion, QoS};

/// A client's request to connect.
///
/// The protocol version is the packet's own: CONNECT is decoded and encoded with
/// [`Connect::protocol`], whatever version the caller passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    /// The version the client speaks.
    pub protocol: ProtocolVersion,
    /// Clean session (3.x) / clean start (5.0).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 turns it off.
    pub keep_alive: u16,
    /// The client identifier (may be empty: the server then assigns one, where it allows it).
    pub client_id: &'a str,
    /// The will message, published if the connection is lost without DISCONNECT.
    pub will: Option<Will<'a>>,
    /// User name.
    pub username: Option<&'a str>,
    /// Password.
    pub password: Option<&'a [u8]>,
    /// CONNECT properties (5.0).
    pub properties: Properties<'a>,
}

/// The will message of a CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Will<'a> {
    /// Will topic (a topic name).
    pub topic: &'a str,
    /// Will payload.
    pub payload: &'a [u8],
    /// QoS of the will.
    pub qos: QoS,
    /// Retain flag of the will.
    pub retain: bool,
    /// Will properties (5.0): delay, expiry, content type, response topic, ...
    pub properties: Properties<'a>,
}

impl<'a> Connect<'a> {
    /// A CONNECT with the given version and client id, clean start, keep alive 60 s and
    /// nothing else.
    pub const fn new(protocol: ProtocolVersion, client_id: &'a str) -> Self {
        Self {
            protocol,
            clean_start: true,
            keep_alive: 60,
            client_id,
            will: None,
            username: None,
            password: None,
            properties: Properties::EMPTY,
        }
    }

    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let name_at = r.offset();
        let name = r.binary()?;
        let level_at = r.offset();
        let level = r.u8()?;
        let protocol = match (name, ProtocolVersion::from_level(level)) {
            (b"MQIsdp", Some(ProtocolVersion::V3_1)) => ProtocolVersion::V3_1,
            (b"MQTT", Some(v @ (ProtocolVersion::V3_1_1 | ProtocolVersion::V5))) => v,
            (b"MQTT" | b"MQIsdp", _) => {
                return Err(r.error_at(DecodeErrorKind::UnsupportedProtocolVersion(level), level_at))
            }
            _ => return Err(r.error_at(DecodeErrorKind::InvalidProtocolName, name_at)),
        };
        let flags_at = r.offset();
        let flags = r.u8()?;
        if flags & 0x01 != 0 {
            return Err(r.error_at(DecodeErrorKind::ReservedBitSet, flags_at));
        }
        let has_will = flags & 0x04 != 0;
        let will_qos = QoS::from_u8((flags >> 3) & 0x03)
            .ok_or_else(|| r.error_at(DecodeErrorKind::InvalidQoS, flags_at))?;
        let will_retain = flags & 0x20 != 0;
        let has_password = flags & 0x40 != 0;
        let has_username = flags & 0x80 != 0;
        if !has_will && (will_qos != QoS::AtMostOnce || will_retain)
            || (!protocol.is_v5() && has_password && !has_username)
        {
            return Err(r.error_at(DecodeErrorKind::InconsistentFlags, flags_at));
        }
        let keep_alive = r.u16()?;
        let properties = Properties::decode(r, protocol, PropertyContext::Connect)?;
        let client_id = r.utf8()?;
        let will = if has_will {
            let properties = Properties::decode(r, protocol, PropertyContext::Will)?;
            let topic_at = r.offset();
            let topic = r.utf8()?;
            facteur_topic::TopicName::new(topic)
                .map_err(|e| r.error_at(DecodeErrorKind::InvalidTopicName(e), topic_at))?;
            let payload = r.binary()?;
            Some(Will {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if has_username { Some(r.utf8()?) } else { None };
        let password = if has_password {
            Some(r.binary()?)
        } else {
            None
        };
        r.finish()?;
        Ok(Self {
            protocol,
            clean_start: flags & 0x02 != 0,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
        })
    }

    pub(crate) fn plan(&self) -> Result<Plan, EncodeError> {
        let v = self.protocol;
        if !v.is_v5() && self.password.is_some() && self.username.is_none() {
            return Err(EncodeError::Invalid(DecodeErrorKind::InconsistentFlags));
        }
        let props = self.properties.validate(PropertyContext::Connect)?;
        let mut body = 2 + v.protocol_name().len() + 1 + 1 + 2;
        body += Properties::section_len(v, props);
        body += check_field(self.client_id.len())?;
        let mut will_props = 0;
        if let Some(will) = &self.will {
            check_topic_name(will.topic)?;
            will_props = will.properties.validate(PropertyContext::Will)?;
            body += Properties::section_len(v, will_props);
            body += check_field(will.topic.len())? + check_field(will.payload.len())?;
        }
        if let Some(username) = self.username {
            body += check_field(username.len())?;
        }
        if let Some(password) = self.password {
            body += check_field(password.len())?;
        }
        Ok(Plan {
            body,
            props,
            extra: will_props,
        })
    }

    #[inline]
    pub(crate) fn write<S: Sink + ?Sized>(&self, plan: &Plan, out: &mut S) {
        let v = self.protocol;
        out.put_str(v.protocol_name());
        out.put_u8(v.level());
        let mut flags = u8::from(self.clean_start) << 1;
        if let Some(will) = &self.will {
            flags |= 0x04 | (will.qos as u8) << 3 | u8::from(will.retain) << 5;
        }
        flags |= u8::from(self.password.is_some()) << 6 | u8::from(self.username.is_some()) << 7;
        out.put_u8(flags);
        out.put_u16(self.keep_alive);
        self.properties.write(v, plan.props, out);
        out.put_str(self.client_id);
        if let Some(will) = &self.will {
            will.properties.write(v, plan.extra, out);
            out.put_str(will.topic);
            out.put_binary(will.payload);
        }
        if let Some(username) = self.username {
            out.put_str(username);
        }
        if let Some(password) = self.password {
            out.put_binary(password);
        }
    }
}
