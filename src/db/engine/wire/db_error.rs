//! A server's ErrorResponse read into the library's database error: its SQLSTATE, message and
//! the optional fields Postgres fills in (detail, hint, position, the object it concerns).
//!
//! The severity is kept as the server sent it (`ERROR`, `FATAL`, `PANIC`): a `FATAL` error means
//! the server ends the session after it and reads nothing more of what was sent.

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::ErrorFields;

use crate::error::DatabaseErrorFields;

/// The fields of one ErrorResponse (or NoticeResponse).
pub fn read_fields(mut fields: ErrorFields<'_>) -> DatabaseErrorFields {
    let mut out = DatabaseErrorFields::default();
    let mut localized_severity = None;
    while let Ok(Some(field)) = fields.next() {
        let value = || String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            // V is the severity in English (9.6+); S may be localized.
            b'V' => out.severity = value(),
            b'S' => localized_severity = Some(value()),
            b'C' => out.code = value(),
            b'M' => out.message = value(),
            b'D' => out.detail = Some(value()),
            b'H' => out.hint = Some(value()),
            b'P' => out.position = value().parse().ok(),
            b's' => out.schema = Some(value()),
            b't' => out.table = Some(value()),
            b'c' => out.column = Some(value()),
            b'n' => out.constraint = Some(value()),
            _ => {}
        }
    }
    if out.severity.is_empty() {
        out.severity = localized_severity.unwrap_or_else(|| "ERROR".into());
    }
    if out.code.is_empty() {
        out.code = "XX000".into();
    }
    out
}

/// Whether the server ends the session after this error.
pub fn is_fatal(fields: &DatabaseErrorFields) -> bool {
    matches!(fields.severity.as_str(), "FATAL" | "PANIC")
}

/// SQLSTATEs with which the server ends the session, aborting what it was running: an
/// administrator's shutdown or `pg_terminate_backend`, a crash of another backend, a server that
/// is starting or stopping.
pub fn session_ended(code: &str) -> bool {
    matches!(code, "57P01" | "57P02" | "57P03")
}

/// FATAL codes the server sends to a session that was idle (idle_session_timeout): it was
/// running nothing, and reads nothing more.
pub fn ended_idle(code: &str) -> bool {
    code == "57P05"
}

/// query_canceled: a CancelRequest (ours, or `pg_cancel_backend`) stopped the statement.
pub const QUERY_CANCELED: &str = "57014";

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use postgres_protocol::message::backend::Message;

    /// An ErrorResponse as the server writes it: tagged fields, each NUL-terminated.
    fn error_response(fields: &[(u8, &str)]) -> BytesMut {
        let mut body = Vec::new();
        for (tag, value) in fields {
            body.push(*tag);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        BytesMut::from(&crate::db::engine::wire::testing::message(b'E', &body)[..])
    }

    #[test]
    fn reads_every_field() {
        let mut buf = error_response(&[
            (b'S', "ERREUR"),
            (b'V', "ERROR"),
            (b'C', "23505"),
            (
                b'M',
                "duplicate key value violates unique constraint \"t_pkey\"",
            ),
            (b'D', "Key (id)=(1) already exists."),
            (b'P', "15"),
            (b's', "public"),
            (b't', "t"),
            (b'n', "t_pkey"),
        ]);
        let Some(Message::ErrorResponse(body)) = Message::parse(&mut buf).unwrap() else {
            panic!("not an error response")
        };
        let fields = read_fields(body.fields());
        assert_eq!(fields.severity, "ERROR", "the English severity wins");
        assert_eq!(fields.code, "23505");
        assert_eq!(
            fields.detail.as_deref(),
            Some("Key (id)=(1) already exists.")
        );
        assert_eq!(fields.position, Some(15));
        assert_eq!(fields.constraint.as_deref(), Some("t_pkey"));
        assert!(!is_fatal(&fields));
    }

    #[test]
    fn a_fatal_shutdown_ends_the_session() {
        let mut buf = error_response(&[(b'S', "FATAL"), (b'C', "57P01"), (b'M', "terminating")]);
        let Some(Message::ErrorResponse(body)) = Message::parse(&mut buf).unwrap() else {
            panic!("not an error response")
        };
        let fields = read_fields(body.fields());
        assert!(is_fatal(&fields));
        assert!(session_ended(&fields.code));
        assert!(!session_ended(QUERY_CANCELED));
    }
}
