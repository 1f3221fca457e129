//! The napi entry point of `/metrics`: takes the two native pools (either may be absent) and
//! returns the exposition text; the rendering lives in `metrics.rs`.

use napi_derive::napi;

use crate::db::NativeDatabasePool;
use crate::openai::NativeOpenAiPool;

/// The OpenMetrics text of the given pools, ending in `# EOF`; serve it with `metricsContentType`.
#[napi(catch_unwind)]
pub fn render_metrics(
    database: Option<&NativeDatabasePool>,
    openai: Option<&NativeOpenAiPool>,
) -> napi::Result<String, String> {
    crate::error::sync_boundary(|| {
        Ok(crate::metrics::render(
            database.map(NativeDatabasePool::metrics),
            openai.map(NativeOpenAiPool::metrics),
        ))
    })
}

/// The Content-Type that `renderMetrics` text must be served with.
#[napi]
pub const METRICS_CONTENT_TYPE: &str = crate::metrics::CONTENT_TYPE;
