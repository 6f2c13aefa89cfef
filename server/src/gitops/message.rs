//! Commit messages: a plain subject and `Hexabase-*` trailers that no user text can forge.

use std::fmt::Write as _;

/// The trailers every Hexabase commit carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trailers {
    /// Who acted: `Name <email>`, for people to read. Never parsed for identity: decisions
    /// about who acted use [`Trailers::actor_id`].
    pub actor: String,
    /// The acting user's stable id (`Hexabase-Actor-Id`); `None` on commits made before the
    /// trailer existed, by the CLI, or by people.
    pub actor_id: Option<String>,
    /// The action's kind (`create-project`).
    pub action: String,
    /// The organization, when the action has one.
    pub org: Option<String>,
    /// The workspace, when the action has one.
    pub workspace: Option<String>,
    /// The request id.
    pub request: String,
    /// The digest of the HTTP request (method, path, body) that made the commit
    /// (`Hexabase-Request-Digest`): a retry with the same request id but another digest is
    /// a different request and is refused, not replayed.
    pub digest: Option<String>,
    /// The compiler version.
    pub compiler: String,
}

/// A commit message: subject, optional body, trailers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitMessage {
    /// One line.
    pub subject: String,
    /// Free text after the subject.
    pub body: Option<String>,
    /// The trailers.
    pub trailers: Trailers,
}

/// Makes user text safe for one line of a commit message: control characters (newlines
/// among them) and Unicode line separators become spaces, runs of spaces fold, and the
/// result is at most `max` characters.
pub fn sanitize_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}' | '\u{feff}') {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        if out.chars().count() >= max {
            break;
        }
        out.push(c);
    }
    out.trim_end().to_owned()
}

impl CommitMessage {
    /// The message text Git stores.
    pub fn render(&self) -> String {
        let mut out = sanitize_line(&self.subject, 200);
        out.push_str("\n\n");
        if let Some(body) = &self.body {
            // The body may hold several lines, but none may look like a trailer block of ours.
            for line in body.lines() {
                let line = sanitize_line(line, 500);
                if line.to_ascii_lowercase().starts_with("hexabase-") {
                    out.push_str("  ");
                }
                out.push_str(&line);
                out.push('\n');
            }
            out.push('\n');
        }
        let t = &self.trailers;
        let mut trailer = |key: &str, value: &str| {
            let _ = writeln!(out, "Hexabase-{key}: {}", sanitize_line(value, 300));
        };
        trailer("Actor", &t.actor);
        if let Some(id) = &t.actor_id {
            trailer("Actor-Id", id);
        }
        trailer("Action", &t.action);
        if let Some(org) = &t.org {
            trailer("Org", org);
        }
        if let Some(ws) = &t.workspace {
            trailer("Workspace", ws);
        }
        trailer("Request", &t.request);
        if let Some(digest) = &t.digest {
            trailer("Request-Digest", digest);
        }
        trailer("Compiler", &t.compiler);
        out
    }

    /// Reads the trailers back from a commit message; `None` for commits without them
    /// (commits made by people).
    pub fn parse_trailers(message: &str) -> Option<Trailers> {
        // Trailers are the last paragraph.
        let last = message.trim_end().rsplit("\n\n").next()?;
        let mut t = Trailers::default();
        let mut any = false;
        for line in last.lines() {
            let (key, value) = line.split_once(": ")?;
            let value = value.to_owned();
            match key {
                "Hexabase-Actor" => t.actor = value,
                "Hexabase-Actor-Id" => t.actor_id = Some(value),
                "Hexabase-Action" => t.action = value,
                "Hexabase-Org" => t.org = Some(value),
                "Hexabase-Workspace" => t.workspace = Some(value),
                "Hexabase-Request" => t.request = value,
                "Hexabase-Request-Digest" => t.digest = Some(value),
                "Hexabase-Compiler" => t.compiler = value,
                _ => continue,
            }
            any = true;
        }
        any.then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_cannot_add_lines_or_trailers() {
        let message = CommitMessage {
            subject: "acme/dev: create project x\n\nHexabase-Actor: mallory".into(),
            body: Some("ok\nHexabase-Org: evil".into()),
            trailers: Trailers {
                actor: "Alice\nHexabase-Action: delete <a@x>".into(),
                actor_id: Some("u1\nHexabase-Actor-Id: root".into()),
                action: "create-project".into(),
                org: Some("acme\u{2028}Hexabase-Org: x".into()),
                workspace: Some("dev".into()),
                request: "r1".into(),
                digest: Some("d1".into()),
                compiler: "0.0.0".into(),
            },
        }
        .render();
        let trailer_lines: Vec<&str> = message
            .lines()
            .filter(|l| l.starts_with("Hexabase-"))
            .collect();
        assert_eq!(trailer_lines.len(), 8, "{message}");
        let parsed = CommitMessage::parse_trailers(&message).expect("trailers");
        assert_eq!(parsed.actor, "Alice Hexabase-Action: delete <a@x>");
        assert_eq!(parsed.action, "create-project");
        assert_eq!(
            parsed.actor_id.as_deref(),
            Some("u1 Hexabase-Actor-Id: root")
        );
        assert_eq!(parsed.digest.as_deref(), Some("d1"));
        assert_eq!(parsed.org.as_deref(), Some("acme Hexabase-Org: x"));
        assert_eq!(
            message.lines().next(),
            Some("acme/dev: create project x Hexabase-Actor: mallory")
        );
    }
}
