//! The CPU features the build assumes. `.cargo/config.toml` compiles AES-GCM for AES-NI and
//! PCLMULQDQ on x86-64 (1.6 times faster than dispatching at run time, see
//! docs/benchmarks.md). A library built that way would die of an illegal instruction on a CPU
//! without them, so `_PG_init` checks first and refuses to load with an error instead.

/// The instruction sets this build was compiled to use and this CPU lacks, by name.
pub fn missing_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut missing = Vec::new();
    #[cfg(all(target_arch = "x86_64", target_feature = "aes"))]
    if !std::arch::is_x86_feature_detected!("aes") {
        missing.push("AES-NI");
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "pclmulqdq"))]
    if !std::arch::is_x86_feature_detected!("pclmulqdq") {
        missing.push("PCLMULQDQ");
    }
    missing
}

/// Raises a FEATURE_NOT_SUPPORTED error (the library is then not loaded) when this CPU lacks an
/// instruction set the build uses.
pub fn require_build_features() {
    let missing = missing_features();
    if !missing.is_empty() {
        crate::error::SafeguardError::new(
            pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("pg_safeguard was built for CPUs with {} and this CPU has not", missing.join(" and ")),
        )
        .with_hint(
            "Rebuild with RUSTFLAGS=\"\" (run-time detection of the instructions, slower encryption) \
             or install on a CPU that has them (every x86-64 server CPU since 2010).",
        )
        .report()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_build_machine_has_what_the_build_uses() {
        assert!(super::missing_features().is_empty());
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_build_uses_the_hardware_aes_gcm_instructions() {
        // Guards the flags in .cargo/config.toml: without them encryption silently gets slower.
        assert!(cfg!(target_feature = "aes") && cfg!(target_feature = "pclmulqdq"));
    }
}
