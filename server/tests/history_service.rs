//! The history use cases the console's History pages call (`service::audit::scoped` and
//! `service::audit::commit`), through a real server's store and repository: who sees which
//! records and commits, the intent diff and the rendered objects of one commit.

mod support;

use axum::http::Method;
use serde_json::json;
use server::service::audit::commit::{ChangeKind, commit_view};
use server::service::audit::scoped::{HistoryError, HistoryFilter, org_history};
use server::service::caller::{Caller, Via};
use support::Person;

fn caller(person: &Person) -> Caller {
    Caller {
        user: person.user.clone(),
        via: Via::Token,
    }
}

#[tokio::test]
async fn a_commit_shows_its_intent_diff_and_rendered_objects_to_who_may_see_it() {
    let server = support::server("history-service").await;
    let owner = server.person("owner@example.com").await;
    let member = server.person("member@example.com").await;
    let stranger = server.person("stranger@example.com").await;
    server.org("acme", &owner).await;
    let base = "/api/v1/orgs/acme/workspaces";
    for (path, body) in [
        (
            base.to_owned(),
            json!({"name": "shop", "plan": "shared-small"}),
        ),
        (
            base.to_owned(),
            json!({"name": "lab", "plan": "shared-small"}),
        ),
        (
            format!("{base}/shop/groups/WSUsers/members"),
            json!({"user": member.user.email}),
        ),
        (format!("{base}/shop/projects"), json!({"name": "web"})),
        (format!("{base}/lab/projects"), json!({"name": "secret"})),
    ] {
        let answer = server
            .call(Method::POST, &path, Some(&owner), Some(body))
            .await;
        assert!(answer.status.is_success(), "{path}: {}", answer.body);
    }
    let commits = server.commits();
    let web = commits
        .iter()
        .find(|c| c.message.starts_with("Create project web"))
        .or_else(|| {
            commits.iter().find(|c| {
                c.trailer("Hexabase-Workspace") == Some("shop") && c.message.contains("web")
            })
        })
        .expect("the commit of project web");
    let lab = commits
        .iter()
        .find(|c| c.trailer("Hexabase-Workspace") == Some("lab") && c.message.contains("secret"))
        .expect("the commit of project secret");

    // The owner sees the intent diff and the rendered objects the project added.
    let view = commit_view(&server.state, &caller(&owner), "acme", &web.id[..12])
        .await
        .expect("the owner sees the commit");
    assert_eq!(view.commit, web.id);
    assert_eq!(view.actor, owner.identity());
    assert!(
        view.intent
            .iter()
            .any(|d| d.path.starts_with("intent/acme/shop/")
                && d.diff.contains("+")
                && d.diff.contains("web")),
        "{:#?}",
        view.intent
    );
    let shop = view
        .rendered
        .iter()
        .find(|g| g.workspace.as_deref() == Some("shop"))
        .expect("rendered objects of shop");
    assert!(
        shop.objects
            .iter()
            .any(|o| o.change == ChangeKind::Added && o.name.contains("web")),
        "{:#?}",
        shop.objects
    );
    assert!(
        view.rendered
            .iter()
            .all(|g| g.workspace.as_deref() == Some("shop"))
    );

    // A member of shop sees shop's commit, not lab's, and only shop's records.
    commit_view(&server.state, &caller(&member), "acme", &web.id)
        .await
        .expect("the member sees shop's commit");
    assert!(matches!(
        commit_view(&server.state, &caller(&member), "acme", &lab.id).await,
        Err(HistoryError::NotFound(_))
    ));
    let records = org_history(
        &server.state,
        &caller(&member),
        "acme",
        HistoryFilter::default(),
    )
    .await
    .expect("the member's history");
    assert!(!records.is_empty());
    assert!(
        records
            .iter()
            .all(|r| r.workspace.as_deref() == Some("shop")),
        "{records:#?}"
    );
    assert!(matches!(
        org_history(
            &server.state,
            &caller(&member),
            "acme",
            HistoryFilter {
                workspace: Some("lab".into()),
                ..HistoryFilter::default()
            }
        )
        .await,
        Err(HistoryError::NotFound(_))
    ));

    // A stranger learns nothing; bad ids and bad filters are refused by name.
    assert!(matches!(
        commit_view(&server.state, &caller(&stranger), "acme", &web.id).await,
        Err(HistoryError::NotFound(_))
    ));
    for bad in [
        "HEAD",
        "main",
        "../x",
        "abc",
        "<b>1234567</b>",
        "00000000000000",
    ] {
        assert!(
            matches!(
                commit_view(&server.state, &caller(&owner), "acme", bad).await,
                Err(HistoryError::NotFound(_))
            ),
            "{bad}"
        );
    }
    match org_history(
        &server.state,
        &caller(&owner),
        "acme",
        HistoryFilter {
            since: Some("yesterday".into()),
            limit: Some(0),
            ..HistoryFilter::default()
        },
    )
    .await
    {
        Err(HistoryError::Invalid(problems)) => {
            let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
            assert_eq!(fields, ["since", "limit"]);
        }
        other => panic!("{other:?}"),
    }
}
