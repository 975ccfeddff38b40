//! The simulated device's generator: the workspace's one PRNG (`tricolor_abi::rng`).

pub use tricolor_abi::rng::Rng;
