//! The platform's control plane: organizations, projects, their keys and their usage
//! (issue: the platform). It is being built piece by piece; so far:
//!
//! - [`master_key`]: the key that seals every project secret the control plane stores.

pub mod master_key;
