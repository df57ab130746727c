//! Alert webhooks: to be written.
