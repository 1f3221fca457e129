//! Property tests over everything that reads untrusted text: the PostgREST grammar (select,
//! logic trees, JSON paths, array literals, whole requests built into SQL), the statement
//! guard's lexer, the SSE usage scanner and the BOM filter, the rate-limit and retry headers, and date rendering. The
//! property is that they answer (a value or an error) and never panic or recurse without bound.
//!
//! Ignored in `cargo test`; `npm run fuzz` runs them with many cases (`PROPTEST_CASES`) for a
//! bounded time. A failure is shrunk by proptest and saved under `proptest-regressions/`.

use proptest::prelude::*;

use crate::db::codec::params;
use crate::db::codec::params::Param;
use crate::db::engine::{guard, lexer};
use crate::db::rest::{self, builder, filters};

/// Text made mostly of the grammar's own characters, so that cases reach deep into it.
fn grammar_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "(", ")", ",", ".", ":", "::", "!", "\"", "\\", "{", "}", "*", "->", "->>", "...", " ",
        "or", "and", "not.", "eq.", "in.", "is.", "null", "cs.", "fts", "inner", "a", "b", "id",
        "1", "%", "'", "é", "\u{feff}",
    ]);
    prop::collection::vec(pieces, 0..80).prop_map(|p| p.concat())
}

/// SQL-like text: keywords, literals of every quoting, comments.
fn sql_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "select ",
        "set ",
        "local ",
        "role ",
        "begin",
        "commit",
        "rollback ",
        "to ",
        "do ",
        "$$",
        "$x$",
        "'",
        "''",
        "E'",
        "\\'",
        "\"",
        "--",
        "\n",
        "/*",
        "*/",
        "set_config(",
        "'role'",
        ",",
        "true",
        "false",
        ")",
        ";",
        "$1",
        "temp ",
        "into ",
        "create ",
        "with hold",
        " ",
        "é",
    ]);
    prop::collection::vec(pieces, 0..60).prop_map(|p| p.concat())
}

proptest! {
    #[test]
    #[ignore]
    fn fuzz_select_and_logic_trees_answer(text in grammar_text()) {
        let _ = rest::select::parse(&text);
        if let Ok(condition) = filters::parse_logic(&text, true, false) {
            let _ = filters::render(&condition, &mut Vec::new());
        }
        let _ = rest::ident::json_path(&text);
        let _ = filters::split_top_level(&text);
        let _ = params::parse_array_literal(&text);
        let _ = builder::column_item(&text);
    }

    #[test]
    #[ignore]
    fn fuzz_whole_requests_parse_and_build(select in grammar_text(), filter in grammar_text(), order in grammar_text()) {
        let encode = |t: &str| url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>();
        let url = format!("/t?select={}&or=({})&id={}&order={}", encode(&select), encode(&filter), encode(&filter), encode(&order));
        for method in ["GET", "POST", "PATCH", "DELETE"] {
            let request = rest::parse::ApiRequest {
                method: method.into(),
                url: url.clone(),
                prefer: Some("return=representation,count=exact".into()),
                accept: None,
                profile: None,
                body: Some(r#"{"id":1}"#.into()),
            };
            if let Ok(parsed) = rest::parse::parse(&request, &["public".to_string()]) {
                let _ = builder::data_statement(&parsed.spec);
            }
        }
    }

    #[test]
    #[ignore]
    fn fuzz_the_statement_guard_answers(sql in sql_text(), text in ".{0,200}") {
        let params = [Param::Text("role".into()), Param::Bool(false)];
        for user in [false, true] {
            for scope in [guard::Scope::Shared, guard::Scope::Transaction] {
                let caller = guard::Caller { scope, user };
                let _ = guard::check(&sql, &params, caller);
                let _ = guard::check(&text, &params, caller);
            }
        }
        prop_assert!(lexer::Lexer::new(&sql).count() <= sql.len());
    }

    #[test]
    #[ignore]
    fn fuzz_sse_bodies_in_any_chunks(body in prop::collection::vec(any::<u8>(), 0..400), cuts in prop::collection::vec(0usize..400, 0..8)) {
        let mut body = body;
        if cuts.len() % 2 == 0 {
            body.splice(0..0, *b"\xEF\xBB\xBF");
        }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
        cuts.sort_unstable();
        cuts.push(body.len());
        let mut chunks = Vec::new();
        let mut at = 0;
        for cut in cuts {
            chunks.push(Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(&body[at..cut.max(at)])));
            at = cut.max(at);
        }
        let mut scanner = crate::openai::usage::UsageScanner::default();
        for chunk in &chunks {
            scanner.feed(chunk.as_ref().unwrap());
        }
        let stripped: Vec<u8> = futures::executor::block_on(futures::StreamExt::concat(
            futures::StreamExt::map(crate::forward::without_bom(futures::stream::iter(chunks)), |c| c.unwrap().to_vec()),
        ));
        prop_assert!(stripped.len() <= body.len());
    }

    #[test]
    #[ignore]
    fn fuzz_headers_and_dates_answer(text in ".{0,40}", number in any::<f64>(), micros in any::<i64>(), days in any::<i32>()) {
        let _ = crate::openai::ratelimit::parse_duration_ms(&text);
        let header = |name: &str| (name.starts_with("retry-after") || name.starts_with("x-ratelimit")).then(|| text.clone());
        let _ = crate::openai::retry::retry_after(&header, std::time::SystemTime::now());
        let _ = crate::openai::ratelimit::exhausted_for(&header);
        let _ = crate::openai::retry::capped_seconds(number);
        let _ = crate::db::codec::datetime::format_timestamp(micros, true);
        let _ = crate::db::codec::datetime::format_date(days);
        let _ = crate::db::codec::datetime::parse_timestamp(&text, true);
    }

    #[test]
    #[ignore]
    fn fuzz_codecs_answer(bytes in prop::collection::vec(any::<u8>(), 0..64), text in ".{0,40}", number in any::<f64>(), oid in prop::sample::select(CODEC_OIDS.to_vec())) {
        let _ = crate::db::codec::numeric::decode_to_text(&bytes);
        let _ = crate::db::codec::numeric::encode_from_text(&text);
        let kind = crate::db::codec::types::classify_oid(oid);
        for style in [crate::db::codec::rows::ValueStyle::Driver, crate::db::codec::rows::ValueStyle::ToJson] {
            let _ = crate::db::codec::rows::write_value(&kind, &bytes, style, &mut String::new());
        }
        if let Some(ty) = postgres_types::Type::from_oid(oid) {
            let values = [Param::Text(text.clone()), Param::Number(number), Param::Bytes(bytes.clone()),
                Param::Array(vec![Param::Number(number), Param::Null, Param::Text(text.clone())]), Param::Json(text.clone())];
            for value in values {
                let _ = params::encode_all(std::slice::from_ref(&value), std::slice::from_ref(&ty));
            }
        }
    }
}

/// Types whose values cross the codecs: the scalars, their arrays, json, dates, numeric, uuid.
const CODEC_OIDS: [u32; 26] = [
    16, 17, 20, 21, 23, 25, 26, 114, 700, 701, 1043, 1082, 1083, 1114, 1184, 1186, 1266, 1700,
    2950, 3802, 1000, 1007, 1009, 1016, 1022, 3807,
];
