//! What the REST layer learned of the database's schema, kept per pool: the return kinds of the
//! functions `rpc()` called, and the catalog of relationships embedding reads. `reloadSchema()`
//! forgets both (after a migration).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::schema::Catalog;

/// What a function returns, as the builder's `rpc()` answers it (PostgREST's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    Void,
    Scalar,
    ScalarSet,
    /// One composite value: answered as an object.
    Row,
    Rows,
}

#[derive(Default)]
pub struct SchemaCache {
    /// `rpc()` targets by quoted name.
    functions: Mutex<HashMap<String, FunctionKind>>,
    /// Embedding's foreign keys, computed relationships and column kinds.
    catalog: Mutex<Option<Arc<Catalog>>>,
}

impl SchemaCache {
    pub fn function_kind(&self, function: &str) -> Option<FunctionKind> {
        self.functions().get(function).copied()
    }

    pub fn remember_function(&self, function: String, kind: FunctionKind) {
        self.functions().insert(function, kind);
    }

    pub fn catalog(&self) -> Option<Arc<Catalog>> {
        self.catalog_slot().clone()
    }

    pub fn remember_catalog(&self, catalog: Catalog) -> Arc<Catalog> {
        let catalog = Arc::new(catalog);
        *self.catalog_slot() = Some(catalog.clone());
        catalog
    }

    /// Forgets what was learned (functions' return kinds, foreign keys, computed fields).
    pub fn forget(&self) {
        self.functions().clear();
        *self.catalog_slot() = None;
    }

    fn functions(&self) -> MutexGuard<'_, HashMap<String, FunctionKind>> {
        self.functions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn catalog_slot(&self) -> MutexGuard<'_, Option<Arc<Catalog>>> {
        self.catalog.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_forgotten() {
        let cache = SchemaCache::default();
        assert_eq!(cache.function_kind("\"f\""), None);
        cache.remember_function("\"f\"".into(), FunctionKind::Row);
        assert_eq!(cache.function_kind("\"f\""), Some(FunctionKind::Row));
        cache.forget();
        assert_eq!(cache.function_kind("\"f\""), None);
        assert!(cache.catalog().is_none());
    }
}
