mod access;
mod audit;
mod calls;
mod email;
mod invariants;
mod invitations;
mod lifecycle;
mod members;
