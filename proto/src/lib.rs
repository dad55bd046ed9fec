//! The generated contracts of recapp's gRPC services.
//!
//! The `.proto` files beside this crate (`recapp/*/v1/*.proto`) are the
//! source of truth; this crate only compiles them.

/// `recapp.identity.v1`: accounts, credentials, sessions, signing keys.
pub mod identity {
    pub mod v1 {
        tonic::include_proto!("recapp.identity.v1");
    }
}

/// `recapp.membership.v1`: workspaces, members, invitations, permissions,
/// audit.
pub mod membership {
    pub mod v1 {
        tonic::include_proto!("recapp.membership.v1");
    }
}

/// The encoded `FileDescriptorSet` of every contract, for gRPC server
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("recapp_descriptor");
