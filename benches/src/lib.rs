//! Benchmarks live in `benches/`; this crate only carries their dependencies.
