//! Sending the one-time sign-in links Candor mails to customers, over SMTP (lettre). A link is
//! sent after the request that made it is durable and the answer is on its way, so the answer's
//! timing is the same whether or not the address was a customer's. The address and the link are
//! never logged.

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use candor_vault::signin::LinkMail;

/// How Candor reaches the business's mail server and what its links point at.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// The SMTP server, as `smtp://host:port` (plain, for a relay on the machine or network),
    /// `smtps://…` or `smtp://…?tls=required` (lettre's URL form).
    pub smtp_url: String,
    /// The sender, `Shop Privacy <privacy@shop.example>`.
    pub from: String,
    /// Where the privacy center is served, for the link (`https://privacy.shop.example`).
    pub public_url: String,
    /// The business's name, for the message.
    pub business: String,
}

/// Sends sign-in links.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: String,
    business: String,
}

impl Mailer {
    /// A mailer; nothing is sent until a link is.
    pub fn new(settings: MailSettings) -> Result<Mailer, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.smtp_url)
            .map_err(|e| MailError(format!("the SMTP URL: {e}")))?
            .build();
        let from = settings
            .from
            .parse()
            .map_err(|e| MailError(format!("the sender address: {e}")))?;
        Ok(Mailer {
            transport,
            from,
            public_url: settings.public_url.trim_end_matches('/').to_owned(),
            business: settings.business,
        })
    }

    /// Sends `mail` in the background, logging a failure without the address.
    pub fn send_later(self: &std::sync::Arc<Self>, mail: LinkMail) {
        let mailer = self.clone();
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&mail).await {
                tracing::warn!(error = %e, purpose = mail.purpose, "a sign-in link was not sent");
            }
        });
    }

    async fn send(&self, mail: &LinkMail) -> Result<(), String> {
        let link = format!("{}/signin/email?token={}", self.public_url, &*mail.token);
        let (subject, why) = match mail.purpose {
            "verify_address" => (
                format!("Confirm the address you sign in to {} with", self.business),
                "This address was set as the one you sign in with. Open the link to confirm it and sign in.",
            ),
            _ => (
                format!("Your link to sign in to {}", self.business),
                "Someone asked to sign in with this address. If it was you, open the link.",
            ),
        };
        let body = format!(
            "{why}\r\n\r\n{link}\r\n\r\nThe link works once, for 15 minutes. If you did not ask for it, ignore this message; nothing happens without it.\r\n"
        );
        let to: Mailbox = mail.to.parse().map_err(|e| format!("the address: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .singlepart(
                // lettre picks the transfer encoding (quoted-printable for the long link line);
                // mail readers decode it back to the whole link.
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(body),
            )
            .map_err(|e| e.to_string())?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// The mail settings are unusable; the message names which, never a secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MailError(String);
