//! Repository trait with SQLite and PostgreSQL implementations.
