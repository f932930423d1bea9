//! Serials: reserved durably in the serial file before use (a crash can waste a serial,
//! never reuse one), in blocks for the daemon, or drawn at random (`rand_serial`).

use std::fs;
use std::io;

use super::durable::write_durably;
use super::{Locked, Reservation, StoreError};
use crate::ca::index;

impl Locked<'_> {
    /// Reserves the next serial and makes the reservation durable before returning it:
    /// the serial file is rewritten (write-new, fsync, rename, fsync directory), the
    /// number is never behind the highest serial in index.txt, and a serial that already
    /// has a newcerts file (an orphan from an interrupted enrollment) is skipped.
    pub fn reserve(&mut self) -> Result<Reservation, StoreError> {
        self.allocate_serial().map(|serial| Reservation { serial })
    }

    fn allocate_serial(&mut self) -> Result<String, StoreError> {
        let paths = &self.store.paths;
        if self.store.rand_serial {
            for _ in 0..16 {
                let s = random_serial()
                    .map_err(|e| StoreError::io(&paths.new_certs_dir, "draw a random serial", e))?;
                if !self.store.cert_file(&s).exists() {
                    return Ok(s);
                }
            }
            return Err(StoreError::SerialsExhausted(paths.new_certs_dir.clone()));
        }
        {
            let mut reserved = self.store.reserved.lock().unwrap_or_else(|p| p.into_inner());
            while let Some(s) = reserved.pop_front() {
                if !self.store.cert_file(&s).exists() {
                    return Ok(s);
                }
            }
        }
        let text = fs::read_to_string(&paths.serial).map_err(|e| StoreError::io(&paths.serial, "read", e))?;
        let mut serial = index::normalize_serial(&text).ok_or_else(|| StoreError::BadSerialFile {
            path: paths.serial.clone(),
            content: text.trim().chars().take(64).collect(),
        })?;
        if let Some(max) = &self.view().max_serial
            && index::serial_cmp(&serial, max).is_le()
        {
            log::warn!(
                "{}: {serial} is not above the highest serial in index.txt ({max}); moving on",
                paths.serial.display()
            );
            serial = index::serial_next(max);
        }
        let mut tries = 0;
        while self.store.cert_file(&serial).exists() {
            log::warn!(
                "{}: skipping serial {serial}, which already has a certificate file",
                paths.serial.display()
            );
            serial = index::serial_next(&serial);
            tries += 1;
            if tries > 10_000 {
                return Err(StoreError::SerialsExhausted(paths.new_certs_dir.clone()));
            }
        }
        let mut block = Vec::with_capacity(self.store.serial_block);
        let mut next = serial.clone();
        for _ in 0..self.store.serial_block {
            block.push(next.clone());
            next = index::serial_next(&next);
        }
        write_durably(&paths.serial, format!("{next}\n").as_bytes())?;
        let mut reserved = self.store.reserved.lock().unwrap_or_else(|p| p.into_inner());
        reserved.extend(block.into_iter().skip(1));
        Ok(serial)
    }
}

/// 127 random bits (positive, never zero, as RFC 5280 wants). A random-number failure is
/// an error: never a predictable serial.
fn random_serial() -> io::Result<String> {
    let mut b = [0u8; 16];
    openssl::rand::rand_bytes(&mut b).map_err(io::Error::other)?;
    b[0] &= 0x7f;
    b[0] |= 0x01;
    Ok(b.iter().map(|x| format!("{x:02X}")).collect())
}
