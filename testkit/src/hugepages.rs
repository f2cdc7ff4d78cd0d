//! 2 MiB hugepages for the tests that need them.
//!
//! [`reserve`] makes sure a few hugepages are free: as root it raises the
//! kernel's reservation itself (writing `nr_hugepages` under
//! `/sys/kernel/mm/hugepages/hugepages-2048kB`) and lowers it back when the
//! returned guard drops, so such tests really run wherever the test suite
//! runs as root. Where they cannot be had, the test is skipped with a
//! `SKIPPED` line, unless `IXTCP_REQUIRE_HUGEPAGES=1` (set by CI) makes the
//! skip a failure.

use std::fs;
use std::path::Path;

use ixtcp_driver::hugepage::{HUGEPAGES_2M_SYSFS, HugepagePool};

use crate::peer;

/// Set to `1`, a hugepage test that cannot get its pages fails instead of
/// skipping.
pub const REQUIRE_HUGEPAGES: &str = "IXTCP_REQUIRE_HUGEPAGES";

/// Free hugepages for a test; restores the kernel's reservation, if the
/// test raised it, when dropped.
#[derive(Debug)]
pub struct Reservation {
    previous: Option<u64>,
}

impl Reservation {
    /// Whether the test raised the reservation (it was root and too few
    /// pages were free).
    pub fn raised(&self) -> bool {
        self.previous.is_some()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(previous) = self.previous {
            let _ = set_reservation(previous);
        }
    }
}

fn set_reservation(total: u64) -> std::io::Result<()> {
    fs::write(Path::new(HUGEPAGES_2M_SYSFS).join("nr_hugepages"), total.to_string())
}

/// Makes sure `needed` hugepages are free, reserving more if it may; or
/// says why they cannot be had.
pub fn try_reserve(needed: u64) -> Result<Reservation, String> {
    let pool = HugepagePool::read().ok_or("the kernel offers no 2 MiB hugepages")?;
    if pool.free >= needed {
        return Ok(Reservation { previous: None });
    }
    let target = pool.total + (needed - pool.free);
    if let Err(e) = set_reservation(target) {
        return Err(format!(
            "only {} hugepages free and reserving more failed ({e}); run as root or scripts/setup-hugepages.sh",
            pool.free
        ));
    }
    // From here on the guard puts the old reservation back, also on error.
    let reservation = Reservation { previous: Some(pool.total) };
    let now = HugepagePool::read().ok_or("hugepage counters vanished")?;
    if now.free < needed {
        return Err(format!("the kernel reserved only {} free hugepages (memory fragmented?)", now.free));
    }
    Ok(reservation)
}

/// [`try_reserve`] for `test`: `None` when the pages cannot be had and the
/// test is skipped ([`peer::skip`] with [`REQUIRE_HUGEPAGES`], so a panic
/// under `IXTCP_REQUIRE_HUGEPAGES=1`).
pub fn reserve(test: &str, needed: u64) -> Option<Reservation> {
    match try_reserve(needed) {
        Ok(r) => Some(r),
        Err(why) => {
            peer::skip(test, &why, REQUIRE_HUGEPAGES);
            None
        }
    }
}

/// Skips `test`, which has its hugepages but cannot use them (`why`), under
/// the same switch.
pub fn skip(test: &str, why: &str) -> bool {
    peer::skip(test, why, REQUIRE_HUGEPAGES)
}
