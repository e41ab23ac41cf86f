"""The shared domain: the records, configuration, clock, history, references and templates that
ingest/ and outbound/ both use. It imports only storage/ below it; see docs/architecture.md."""
