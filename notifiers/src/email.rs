//! Email through SMTP with `lettre` (`notify/email/email.go@v0.25.0`).

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::config::{EmailConfig, GlobalConfig};
use crate::data::Data;
use crate::template::Templates;
use crate::{Notifier, NotifyError};

/// One `email_configs` entry.
pub struct Email {
    #[allow(dead_code)]
    cfg: EmailConfig,
    #[allow(dead_code)]
    templates: Arc<Templates>,
}

impl Email {
    pub fn new(
        cfg: &EmailConfig,
        _global: &GlobalConfig,
        templates: Arc<Templates>,
    ) -> Result<Email, (&'static str, String)> {
        Ok(Email {
            cfg: cfg.clone(),
            templates,
        })
    }
}

impl Notifier for Email {
    fn notify<'a>(&'a self, _data: &'a Data) -> BoxFuture<'a, Result<(), NotifyError>> {
        async move {
            Err(NotifyError::permanent(
                "smtp",
                "email is not implemented yet",
            ))
        }
        .boxed()
    }
}
