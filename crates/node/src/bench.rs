//! Placeholder, replaced below.
#[derive(Debug, Clone, Default)]
pub struct BenchReport;
pub fn bench_sliver() -> BenchReport {
    BenchReport
}
