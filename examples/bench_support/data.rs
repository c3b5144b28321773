//! Generated data: statewide files of a given number of rows, and their district.
//!
//! A smaller sample file is an exact prefix of a larger one with the same seed (each
//! educator derives from the seed and their index alone), so files of 250k, 500k and
//! 1M rows share their first educators. The district is built over the first quarter
//! of the largest file: every file then matches the same employees and imports the
//! same records, and only the number of rows the parser reads changes. That is what
//! shows whether memory grows with the file.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use alis_import::sample::{self, SampleDistrict, SampleSpec};
use alis_import::store::Store;

/// Seed of every benchmark's data.
pub const SEED: u64 = 2026;

/// The date the data is as of (and the imports' `--as-of`).
pub fn as_of() -> jiff::civil::Date {
    jiff::civil::date(2026, 11, 30)
}

/// A spec with `educators` in the statewide file and `employees` in the district.
pub fn spec(educators: usize, employees: usize) -> SampleSpec {
    SampleSpec {
        seed: SEED,
        statewide_educators: educators,
        employees,
        as_of: as_of(),
    }
}

/// Counts bytes written and discards them.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How many educators make a file of about `rows` data rows (within a fraction of a
/// percent: estimated from the first 20,000 educators, then corrected once).
pub fn educators_for_rows(rows: u64) -> usize {
    let rows_of = |educators: usize| {
        sample::write_statewide_file(&spec(educators, 1), Counter(0)).expect("count rows")
    };
    let probe = 20_000usize.min(rows as usize);
    let per_educator = rows_of(probe) as f64 / probe as f64;
    let estimate = (rows as f64 / per_educator).round() as usize;
    if rows > 200_000 {
        return estimate;
    }
    let actual = rows_of(estimate) as f64;
    (estimate as f64 * rows as f64 / actual).round() as usize
}

/// A generated statewide file.
#[derive(Debug, Clone)]
pub struct StatewideFile {
    /// Where it is.
    pub path: PathBuf,
    /// Data rows (without the header).
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Educators in it.
    pub educators: usize,
}

/// The file of `educators` under `dir`. With `alis_name` it gets the name a source
/// recognises (an inbox holds nothing else); otherwise it is named after its spec and
/// reused by later runs, with its row count beside it.
pub fn statewide_file(dir: &Path, educators: usize, alis_name: bool) -> StatewideFile {
    let spec = spec(educators, 1);
    let write = |path: &Path| {
        let file = std::fs::File::create(path).expect("create the statewide file");
        sample::write_statewide_file(&spec, BufWriter::new(file)).expect("write the statewide file")
    };
    let (path, rows) = if alis_name {
        let path = dir.join(sample::file_name(&spec));
        let rows = write(&path);
        (path, rows)
    } else {
        let path = dir.join(format!("statewide-s{SEED}-e{educators}.csv"));
        let rows_path = path.with_extension("rows");
        let cached = std::fs::read_to_string(&rows_path)
            .ok()
            .and_then(|r| r.trim().parse().ok())
            .filter(|_| path.is_file());
        let rows = cached.unwrap_or_else(|| {
            let rows = write(&path);
            std::fs::write(&rows_path, rows.to_string()).expect("write the row count");
            rows
        });
        (path, rows)
    };
    let bytes = std::fs::metadata(&path).expect("statewide file").len();
    StatewideFile {
        path,
        rows,
        bytes,
        educators,
    }
}

/// The district: `employees` over the first `educators` of the file.
pub fn district(educators: usize, employees: usize) -> SampleDistrict {
    sample::district(&spec(educators, employees))
}

/// Active employees of a district.
pub fn active(district: &SampleDistrict) -> usize {
    district
        .employees
        .iter()
        .filter(|e| e.status == "ACTIVE")
        .count()
}

/// Creates the schema and writes the district into the database at `url`.
pub async fn seed_database(url: &str, district: &SampleDistrict) {
    let store = Store::connect(url).await.expect("connect");
    store.migrate(true).await.expect("migrate");
    store
        .insert_district(district)
        .await
        .expect("insert the district");
    store.close().await;
}
