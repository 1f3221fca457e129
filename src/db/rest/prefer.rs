//! PostgREST's `Prefer` and `Accept` request headers.

use super::error::pgrst;
use crate::db::rest::builder::CountMode;
use crate::db::rest::error::request_error;
use crate::error::PoolError;

/// `return=`: what a mutation answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Return {
    #[default]
    Minimal,
    HeadersOnly,
    Representation,
}

/// `resolution=`: an insert becomes an upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    MergeDuplicates,
    IgnoreDuplicates,
}

/// The preferences PostgREST honours (unknown ones are ignored, as PostgREST does by default).
#[derive(Debug, Default, PartialEq)]
pub struct Prefer {
    pub return_: Return,
    pub count: Option<CountMode>,
    pub resolution: Option<Resolution>,
    pub missing_default: bool,
    pub rollback: bool,
    pub max_affected: Option<u64>,
}

impl Prefer {
    /// Reads one `Prefer` header value (`return=representation, count=exact`).
    pub fn parse(header: &str) -> Result<Self, PoolError> {
        let mut prefer = Prefer::default();
        for item in header.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) = item.split_once('=').unwrap_or((item, ""));
            match (name.trim(), value.trim()) {
                ("return", "representation") => prefer.return_ = Return::Representation,
                ("return", "headers-only") => prefer.return_ = Return::HeadersOnly,
                ("return", _) => prefer.return_ = Return::Minimal,
                ("count", mode) => prefer.count = count_mode(mode),
                ("resolution", "merge-duplicates") => {
                    prefer.resolution = Some(Resolution::MergeDuplicates)
                }
                ("resolution", "ignore-duplicates") => {
                    prefer.resolution = Some(Resolution::IgnoreDuplicates)
                }
                ("missing", "default") => prefer.missing_default = true,
                ("tx", "rollback") => prefer.rollback = true,
                ("max-affected", n) => {
                    prefer.max_affected = Some(n.parse().map_err(|_| {
                        request_error(format!("'max-affected={n}' needs a number"), None)
                    })?)
                }
                _ => {}
            }
        }
        Ok(prefer)
    }

    pub fn returns_body(&self) -> bool {
        self.return_ == Return::Representation
    }
}

/// The media type a request accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// `application/json` (and `*/*`, and the array form): a JSON array.
    Json,
    /// `application/vnd.pgrst.object+json`: exactly one row, as an object.
    Object,
    /// `text/csv`.
    Csv,
    /// `application/vnd.pgrst.plan+json|text; options=analyze|verbose|…`: the plan (explain()).
    Plan(Plan),
}

/// What `explain()` asks for: the format and EXPLAIN's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Plan {
    pub text: bool,
    pub analyze: bool,
    pub verbose: bool,
    pub settings: bool,
    pub buffers: bool,
    pub wal: bool,
}

impl Plan {
    /// `options=analyze|verbose` and the other parameters of the media type.
    fn parse(media_type: &str, text: bool) -> Plan {
        let mut plan = Plan {
            text,
            ..Plan::default()
        };
        for parameter in media_type.split(';').skip(1) {
            if let Some(options) = parameter.trim().strip_prefix("options=") {
                for option in options.split('|') {
                    match option.trim() {
                        "analyze" => plan.analyze = true,
                        "verbose" => plan.verbose = true,
                        "settings" => plan.settings = true,
                        "buffers" => plan.buffers = true,
                        "wal" => plan.wal = true,
                        _ => {}
                    }
                }
            }
        }
        plan
    }

    /// `EXPLAIN (FORMAT JSON, ANALYZE, …) `, to put before the statement.
    pub fn prefix(&self) -> String {
        let mut options = vec![if self.text {
            "FORMAT TEXT"
        } else {
            "FORMAT JSON"
        }];
        for (on, name) in [
            (self.analyze, "ANALYZE"),
            (self.verbose, "VERBOSE"),
            (self.settings, "SETTINGS"),
            (self.buffers, "BUFFERS"),
            (self.wal, "WAL"),
        ] {
            if on {
                options.push(name);
            }
        }
        format!("EXPLAIN ({}) ", options.join(", "))
    }
}

impl Accept {
    pub fn parse(header: Option<&str>) -> Result<Self, PoolError> {
        let Some(header) = header else {
            return Ok(Accept::Json);
        };
        let mut best = None;
        for media_type in header.split(',') {
            let media = media_type.split(';').next().unwrap_or("").trim();
            let kind = match media {
                "application/vnd.pgrst.plan+json" => {
                    Some(Accept::Plan(Plan::parse(media_type, false)))
                }
                "application/vnd.pgrst.plan+text" | "application/vnd.pgrst.plan" => {
                    Some(Accept::Plan(Plan::parse(media_type, true)))
                }
                "application/json" | "*/*" | "application/*" | "" => Some(Accept::Json),
                "application/vnd.pgrst.array+json" | "application/vnd.pgrst.array" => {
                    Some(Accept::Json)
                }
                "application/vnd.pgrst.object+json" | "application/vnd.pgrst.object" => {
                    Some(Accept::Object)
                }
                "text/csv" => Some(Accept::Csv),
                _ => None,
            };
            if kind.is_some() {
                best = kind;
                break;
            }
        }
        best.ok_or_else(|| {
            pgrst(
                "PGRST107",
                format!("None of these media types are available: {header}"),
                None,
                None,
            )
        })
    }

    /// `nulls=stripped` on the JSON media type asked for (postgrest-js's `stripNulls()`): keys
    /// whose value is null are left out of the answer's objects.
    pub fn strips_nulls(header: Option<&str>) -> bool {
        header.is_some_and(|header| {
            header.split(',').any(|media_type| {
                let mut parts = media_type.split(';');
                let media = parts.next().unwrap_or("").trim();
                media.starts_with("application/vnd.pgrst.")
                    && parts.any(|p| p.trim().eq_ignore_ascii_case("nulls=stripped"))
            })
        })
    }
}

/// The count mode of `count=exact|planned|estimated`.
pub fn count_mode(value: &str) -> Option<CountMode> {
    match value {
        "exact" => Some(CountMode::Exact),
        "planned" => Some(CountMode::Planned),
        "estimated" => Some(CountMode::Estimated),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_reads_every_preference_and_ignores_unknown_ones() {
        let prefer = Prefer::parse(
            "return=representation, count=exact,resolution=ignore-duplicates, missing=default, tx=rollback, max-affected=3, handling=strict, timezone=UTC",
        )
        .unwrap();
        assert_eq!(
            prefer,
            Prefer {
                return_: Return::Representation,
                count: Some(CountMode::Exact),
                resolution: Some(Resolution::IgnoreDuplicates),
                missing_default: true,
                rollback: true,
                max_affected: Some(3),
            }
        );
        assert_eq!(Prefer::parse("").unwrap(), Prefer::default());
        assert!(Prefer::parse("max-affected=lots").is_err());
    }

    #[test]
    fn accept_picks_the_first_known_media_type() {
        assert_eq!(Accept::parse(None).unwrap(), Accept::Json);
        assert_eq!(
            Accept::parse(Some("application/vnd.pgrst.object+json;nulls=stripped")).unwrap(),
            Accept::Object
        );
        assert_eq!(Accept::parse(Some("text/csv")).unwrap(), Accept::Csv);
        assert!(Accept::strips_nulls(Some(
            "application/vnd.pgrst.array+json;nulls=stripped"
        )));
        assert!(!Accept::strips_nulls(Some("application/json")));
        assert_eq!(
            Accept::parse(Some("application/vnd.pgrst.array;nulls=stripped")).unwrap(),
            Accept::Json
        );
        assert_eq!(
            Accept::parse(Some("image/png")).unwrap_err().code(),
            "PGRST107"
        );
    }

    #[test]
    fn explain_asks_for_a_plan_with_options() {
        let accept = Accept::parse(Some(
            "application/vnd.pgrst.plan+json; for=\"application/json\"; options=analyze|verbose;",
        ))
        .unwrap();
        let Accept::Plan(plan) = accept else {
            panic!("{accept:?}")
        };
        assert_eq!(plan.prefix(), "EXPLAIN (FORMAT JSON, ANALYZE, VERBOSE) ");
        let Accept::Plan(plan) =
            Accept::parse(Some("application/vnd.pgrst.plan+text; for=\"text/csv\"")).unwrap()
        else {
            panic!()
        };
        assert_eq!(plan.prefix(), "EXPLAIN (FORMAT TEXT) ");
    }
}
