//! prext's command-line tools as a library: [`backup`] (`prext backup` and `prext restore`),
//! [`migrate`] (`prext migrate`) and [`plugin`]
//! (the `kubectl-prext` plugin). The binaries in `src/bin/` only parse their arguments and
//! call into these.

pub mod backup;
pub mod migrate;
pub mod plugin;
