//! The emails the service sends. Every interpolated value is escaped for
//! HTML, and stripped of control characters for the subject line.

use chrono::{DateTime, Utc};

/// The invitation to join a workspace: `(subject, text, html)`.
pub fn invitation_email(
    workspace_name: &str,
    inviter: &str,
    role_label: &str,
    link: &str,
    expires: DateTime<Utc>,
) -> (String, String, String) {
    render(
        Variant::First,
        workspace_name,
        inviter,
        role_label,
        link,
        expires,
    )
}

/// A resent invitation: the same email, saying the earlier link stopped
/// working (a resend replaces the token).
pub fn resend_email(
    workspace_name: &str,
    inviter: &str,
    role_label: &str,
    link: &str,
    expires: DateTime<Utc>,
) -> (String, String, String) {
    render(
        Variant::Resent,
        workspace_name,
        inviter,
        role_label,
        link,
        expires,
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    First,
    Resent,
}

fn render(
    variant: Variant,
    workspace_name: &str,
    inviter: &str,
    role_label: &str,
    link: &str,
    expires: DateTime<Utc>,
) -> (String, String, String) {
    let when = expires.format("%-d %B %Y at %H:%M UTC").to_string();
    let subject = one_line(&match variant {
        Variant::First => format!("{inviter} invited you to {workspace_name} on MSP Recapp"),
        Variant::Resent => {
            format!("Reminder: {inviter} invited you to {workspace_name} on MSP Recapp")
        }
    });
    let resent_note = match variant {
        Variant::First => "",
        Variant::Resent => "This is a new link: any earlier invitation link no longer works.",
    };

    let mut text = format!(
        "Hello,\n\n\
         {inviter} invited you to join the workspace \"{workspace_name}\" on MSP Recapp \
         as {role_label}.\n\n\
         Accept the invitation:\n{link}\n\n\
         The link expires on {when}.\n"
    );
    if !resent_note.is_empty() {
        text.push_str(resent_note);
        text.push('\n');
    }
    text.push_str(
        "\nIf you did not expect this invitation, you can ignore this email: \
         nothing happens unless you open the link.\n",
    );

    let (workspace_h, inviter_h, role_h, link_h, when_h) = (
        escape(workspace_name),
        escape(inviter),
        escape(role_label),
        escape(link),
        escape(&when),
    );
    // Only web links become clickable; anything else shows as text.
    let button = if is_web_link(link) {
        format!(r#"<p><a href="{link_h}">Accept the invitation</a></p>"#)
    } else {
        String::new()
    };
    let resent_h = if resent_note.is_empty() {
        String::new()
    } else {
        format!("<p>{}</p>\n", escape(resent_note))
    };
    let html = format!(
        "<!DOCTYPE html>\n\
         <html lang=\"en\">\n\
         <head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body style=\"font-family: sans-serif; line-height: 1.5;\">\n\
         <p>Hello,</p>\n\
         <p>{inviter_h} invited you to join the workspace <strong>{workspace_h}</strong> \
         on MSP Recapp as {role_h}.</p>\n\
         {button}\n\
         <p>Or copy this address into your browser:<br>{link_h}</p>\n\
         <p>The link expires on {when_h}.</p>\n\
         {resent_h}\
         <p>If you did not expect this invitation, you can ignore this email: \
         nothing happens unless you open the link.</p>\n\
         </body>\n\
         </html>\n",
        title = escape(&subject),
    );
    (subject, text, html)
}

/// Text safe inside HTML elements and quoted attributes.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// Control characters (line breaks in a workspace name) become spaces.
fn one_line(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn is_web_link(link: &str) -> bool {
    let lower = link.to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn expires() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 10, 9, 5, 0).unwrap()
    }

    #[test]
    fn a_script_tag_in_a_workspace_name_shows_as_text() {
        let (_, _, html) = invitation_email(
            "<script>alert(1)</script>",
            "Ann & \"Bob\"",
            "Tenant <b>Admin</b>",
            "https://recapp.example/invitations/accept?token=abc&x='1'",
            expires(),
        );
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("Ann &amp; &quot;Bob&quot;"));
        assert!(html.contains("Tenant &lt;b&gt;Admin&lt;/b&gt;"));
        assert!(html.contains(
            r#"href="https://recapp.example/invitations/accept?token=abc&amp;x=&#x27;1&#x27;""#
        ));
    }

    #[test]
    fn the_email_names_the_inviter_the_role_the_link_and_the_expiry() {
        let link = "https://recapp.example/invitations/accept?token=abc";
        let (subject, text, html) =
            invitation_email("Acme IT", "Ann Admin", "User", link, expires());
        assert_eq!(subject, "Ann Admin invited you to Acme IT on MSP Recapp");
        for body in [&text, &html] {
            assert!(body.contains(link));
            assert!(body.contains("Ann Admin"));
            assert!(body.contains("User"));
            assert!(body.contains("10 December 2026 at 09:05 UTC"));
            assert!(body.contains("you can ignore this email"));
        }
    }

    #[test]
    fn a_link_that_is_not_a_web_address_is_not_clickable() {
        let (_, _, html) = invitation_email("W", "A", "User", "javascript:alert(1)", expires());
        assert!(!html.contains("href"));
        assert!(html.contains("javascript:alert(1)"));
    }

    #[test]
    fn line_breaks_never_reach_the_subject() {
        let (subject, _, _) = invitation_email(
            "Acme\r\nBcc: victim@example.com",
            "A",
            "User",
            "https://x",
            expires(),
        );
        assert!(!subject.contains('\n') && !subject.contains('\r'));
    }

    #[test]
    fn a_resent_invitation_says_the_old_link_is_dead() {
        let (subject, text, html) = resend_email("W", "A", "User", "https://x", expires());
        assert!(subject.starts_with("Reminder: "));
        assert!(text.contains("earlier invitation link no longer works"));
        assert!(html.contains("earlier invitation link no longer works"));
    }
}
