//! Every setting of the extension is registered here, in one place, from `_PG_init`.
//!
//! Time-ordered IDs need no setting: the generator is per backend and self-seeding. The request
//! context, tenancy and encryption settings (`safeguard.tenant_setting`, `safeguard.master_key_file`,
//! ...) are registered here as those capabilities land.

/// Registers the extension's settings; called once per process from `_PG_init`.
pub fn init() {}
