//! The access matrix, driven by `/openapi.json`: every operation, every principal kind, own
//! and foreign resources.
